#!/usr/bin/env python3
"""Runs DIR/model.onnx in onnxruntime on DIR/test_data_set_*/input_*.pb and compares with the
output_*.pb beside them (written by Kiln), as numpy.allclose with rtol 1e-4, atol 1e-5.

usage: ort_case_check.py DIR
"""

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def read(p):
    t = onnx.TensorProto()
    t.ParseFromString(p.read_bytes())
    return numpy_helper.to_array(t)


def main():
    d = Path(sys.argv[1])
    onnx.checker.check_model(str(d / "model.onnx"), full_check=True)
    sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    worst = 0.0
    for s in sorted(d.glob("test_data_set_*")):
        ins = [read(p) for p in sorted(s.glob("input_*.pb"))]
        want = [read(p) for p in sorted(s.glob("output_*.pb"))]
        got = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), ins)})
        for g, w in zip(got, want):
            if not np.allclose(g, w, rtol=1e-4, atol=1e-5):
                sys.exit(f"ort_case_check: {s.name}: onnxruntime differs from Kiln: "
                         f"max |diff| {np.abs(g - w).max():.3g}")
            worst = max(worst, float(np.max(np.abs(g - w) / (np.abs(w) + 1e-12))))
    print(f"ort_case_check: {d}: onnxruntime matches Kiln (largest relative difference {worst:.2g})")


if __name__ == "__main__":
    main()
