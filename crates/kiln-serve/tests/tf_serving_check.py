"""TF Serving's REST API of `kiln serve`, checked with `requests` as a TF Serving client would
call it: model status, signature metadata, `:predict` with `instances` (rows) and `inputs`
(columns), and errors. Run by `.ci/run`:

    python tf_serving_check.py URL MODEL ROW PROBABILITIES

URL is host:port of a running `kiln serve` of a `kiln train` run of the digits CNN (outputs
`logits` and `probabilities`); ROW is a comma-separated row of 64 pixels and PROBABILITIES the
ten probabilities `kiln predict` printed for it (to its 4 decimals).
"""

import json
import sys

import numpy as np
import requests

url, model, row, expected = sys.argv[1:5]
base = f"http://{url}/v1/models/{model}"
image = np.array([float(v) for v in row.split(",")], dtype=np.float32).reshape(1, 8, 8).tolist()
want = np.array([float(v) for v in expected.split(",")], dtype=np.float32)

status = requests.get(base, timeout=30)
assert status.status_code == 200, status.text
assert status.json() == {
    "model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}, status.json()
assert requests.get(f"{base}/versions/1", timeout=30).json() == status.json()

meta = requests.get(f"{base}/metadata", timeout=30).json()
assert meta["model_spec"] == {"name": model, "signature_name": "", "version": "1"}, meta
signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
dims = [int(d["size"]) for d in signature["inputs"]["input"]["tensor_shape"]["dim"]]
assert dims == [-1, 1, 8, 8] and signature["inputs"]["input"]["dtype"] == "DT_FLOAT", signature
assert sorted(signature["outputs"]) == ["logits", "probabilities"], signature

# Rows: two instances, each answered with both outputs.
for instances in ([image, image], [{"input": image}, {"input": image}]):
    answer = requests.post(f"{base}:predict", json={"instances": instances}, timeout=30)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert len(predictions) == 2, predictions
    for p in predictions:
        assert np.allclose(p["probabilities"], want, atol=5e-5), (p, want)
        assert len(p["logits"]) == 10

# Columns: one tensor in, a tensor per output back.
answer = requests.post(f"{base}/versions/1:predict", json={"inputs": {"input": [image]}}, timeout=30)
assert answer.status_code == 200, answer.text
outputs = answer.json()["outputs"]
assert np.allclose(outputs["probabilities"], [want], atol=5e-5), outputs
assert np.array(outputs["logits"]).shape == (1, 10)

# As TF Serving's own examples post: `curl -d`, a form content type.
answer = requests.post(
    f"{base}:predict",
    data=json.dumps({"signature_name": "serving_default", "instances": [image]}),
    headers={"Content-Type": "application/x-www-form-urlencoded"},
    timeout=30,
)
assert answer.status_code == 200, answer.text

for path, body, code, named in [
    (f"http://{url}/v1/models/no-such-model:predict", {"instances": [image]}, 404, "no-such-model"),
    (f"{base}:predict", {"instances": [image], "inputs": [image]}, 400, "exactly one"),
    (f"{base}:predict", {"instances": [[1.0, 2.0]]}, 400, "shape"),
    (f"{base}:predict", {"signature_name": "classify", "instances": [image]}, 400, "classify"),
]:
    answer = requests.post(path, json=body, timeout=30)
    assert answer.status_code == code, (path, body, answer.status_code, answer.text)
    assert named in answer.json()["error"], answer.text

print("tf serving REST: ok (status, metadata, instances rows and named, inputs columns, 4 errors)")
