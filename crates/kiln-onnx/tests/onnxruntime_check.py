"""Kiln's ONNX exports checked by ONNX's own checker and run by onnxruntime. Run by `.ci/run`:

    python onnxruntime_check.py DIR [MODEL.onnx ROW PROBABILITIES]

DIR holds what `cargo run -p kiln-onnx --example onnx_fixtures -- DIR` wrote: each model's
.onnx file and Kiln's inputs and outputs at batch sizes 2 and 5. Each file must pass
`onnx.checker.check_model(full_check=True)` (which runs ONNX's shape inference), declare a
symbolic batch dim, and give Kiln's outputs in onnxruntime within 1e-5, relative to the
output's largest magnitude, at both batch sizes.

With MODEL.onnx (`kiln export --format onnx` of a `kiln train` run of the digits CNN), ROW (64
pixel values) and PROBABILITIES (what `kiln predict` printed for it, to 4 decimals), the
exported classifier's `probabilities` output must equal them.
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-5

directory = sys.argv[1]
manifest = json.load(open(os.path.join(directory, "manifest.json")))
options = ort.SessionOptions()
options.intra_op_num_threads = 2
failures = []
for m in manifest["models"]:
    path = os.path.join(directory, m["onnx"])
    model = onnx.load(path)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # the checker's own exception types vary by version
        failures.append(f"{m['name']}: onnx.checker: {e}")
        continue
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    if batch.dim_param != "batch":
        failures.append(f"{m['name']}: input dim 0 is {batch}, not the symbolic `batch`")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for run in m["runs"]:
        i, o = run["input"], run["output"]
        x = np.fromfile(os.path.join(directory, i["file"]), dtype=i["dtype"]).reshape(i["shape"])
        want = np.fromfile(os.path.join(directory, o["file"]), dtype=np.float32).reshape(o["shape"])
        got = session.run(None, {name: x})[0]
        if got.shape != want.shape:
            failures.append(f"{m['name']}: shape {got.shape}, Kiln {want.shape}")
            continue
        scale = max(1.0, float(np.max(np.abs(want))))
        error = float(np.max(np.abs(got.astype(np.float64) - want))) / scale
        worst = max(worst, error)
    if worst > TOLERANCE:
        failures.append(f"{m['name']}: differs from Kiln by {worst:.2e} (relative)")
    print(f"{m['name']:28s} ops {len(model.graph.node):4d}  max relative difference {worst:.1e}")

if len(sys.argv) > 2:
    path, row, expected = sys.argv[2:5]
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    pixels = np.array([float(v) for v in row.split(",")], dtype=np.float32).reshape(1, 1, 8, 8)
    want = np.array([float(v) for v in expected.split(",")], dtype=np.float32)
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"input": np.repeat(pixels, 3, axis=0)})))
    if names != ["logits", "probabilities"]:
        failures.append(f"kiln export --format onnx: outputs {names}")
    elif not np.allclose(got["probabilities"], want, atol=5e-5):
        failures.append(f"kiln export --format onnx: {got['probabilities'][0]} vs kiln predict {want}")
    else:
        print("kiln export --format onnx: probabilities equal kiln predict's (a batch of 3)")

for f in manifest["not_exported"]:
    failures.append(f"not exported: {f}")
print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}: "
      f"{len(manifest['models'])} models checked, {len(failures)} problems")
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
