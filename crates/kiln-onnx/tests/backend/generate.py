#!/usr/bin/env python3
"""Writes the ONNX backend node tests as files, in the layout of onnx's own backend/test/data:
DIR/<test>/model.onnx and DIR/<test>/test_data_set_<k>/{input,output}_<i>.pb, plus
DIR/manifest.json with each test's tolerances and the domains its nodes use.

The cases come from `onnx.backend.test.case.node.collect_testcases()` of the pinned onnx release
(1.23.2: 1,884 cases), so the suite is regenerated, not downloaded or committed.

usage: generate.py DIR
"""

import json
import sys
import warnings
from pathlib import Path

import onnx
from onnx import numpy_helper
from onnx.backend.test.case.node import collect_testcases

PINNED = "1.23.2"


def tensor_bytes(value, info):
    """One test value as TensorProto bytes, or None when it is not a plain tensor."""
    if not info.type.HasField("tensor_type"):
        return None
    if isinstance(value, onnx.TensorProto):
        # Cases whose values NumPy cannot hold as the ONNX type (the cast tests' float8,
        # int4, bfloat16 data) give them as tensors already.
        t = onnx.TensorProto()
        t.CopyFrom(value)
        t.name = info.name
        return t.SerializeToString()
    try:
        return numpy_helper.from_array(value, info.name).SerializeToString()
    except Exception:  # noqa: BLE001 - strings, maps and other values Kiln does not take
        return None


def main():
    if onnx.__version__ != PINNED:
        sys.exit(f"generate.py: onnx {onnx.__version__} installed, the suite is pinned to {PINNED}")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore")
    manifest = {}
    cases = collect_testcases()
    for case in cases:
        d = out / case.name
        d.mkdir(exist_ok=True)
        (d / "model.onnx").write_bytes(case.model.SerializeToString())
        graph = case.model.graph
        plain = True
        for k, (inputs, outputs) in enumerate(case.data_sets or []):
            s = d / f"test_data_set_{k}"
            s.mkdir(exist_ok=True)
            for kind, values, infos in (("input", inputs, graph.input), ("output", outputs, graph.output)):
                for i, v in enumerate(values):
                    b = tensor_bytes(v, infos[i]) if i < len(infos) else None
                    if b is None:
                        plain = False
                        continue
                    (s / f"{kind}_{i}.pb").write_bytes(b)
        manifest[case.name] = {
            "rtol": case.rtol,
            "atol": case.atol,
            "domains": sorted({n.domain or "ai.onnx" for n in graph.node}),
            "tensors_only": plain,
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    print(f"generate.py: {len(cases)} node tests written to {out} (onnx {onnx.__version__})")


if __name__ == "__main__":
    main()
