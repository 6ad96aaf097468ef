"""Conformance of `kiln serve` with NVIDIA Triton's own clients (tritonclient, unchanged), over
HTTP and over gRPC: health, server and model metadata, inference with JSON and with binary
tensors (HTTP) or raw tensors (gRPC), requested outputs, a batch, errors, and the answers
against `kiln predict`'s. Run by `.ci/run`:

    python tritonclient_check.py HTTP_URL GRPC_URL MODEL ROW PROBABILITIES

The URLs are host:port of a running `kiln serve` of a `kiln train` run of the digits CNN; ROW
is a comma-separated row of 64 pixel values and PROBABILITIES the ten probabilities
`kiln predict` printed for it (checked to its 4 decimals).
"""

import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

http_url, grpc_url, model, row, expected = sys.argv[1:6]
pixels = np.array([float(v) for v in row.split(",")], dtype=np.float32).reshape(1, 1, 8, 8)
want = np.array([float(v) for v in expected.split(",")], dtype=np.float32)


def check(proto, client, binary_choices):
    """Runs every check with one protocol's client; returns how many inferences it checked."""
    assert client.is_server_live(), "server live"
    assert client.is_server_ready(), "server ready"
    assert client.is_model_ready(model), "model ready"
    assert client.is_model_ready(model, "1"), "version 1 ready"
    assert not client.is_model_ready("no-such-model"), "an unknown model is not ready"

    server = client.get_server_metadata(**as_json(proto))
    assert server["name"] == "kiln" and "binary_tensor_data" in server["extensions"], server

    meta = client.get_model_metadata(model, **as_json(proto))
    # gRPC's JSON form writes int64 as strings.
    shapes = [[int(d) for d in t["shape"]] for t in meta["inputs"] + meta["outputs"]]
    assert [t["name"] for t in meta["inputs"]] == ["input"], meta
    assert meta["inputs"][0]["datatype"] == "FP32", meta
    assert [o["name"] for o in meta["outputs"]] == ["logits", "probabilities"], meta
    assert shapes == [[-1, 1, 8, 8], [-1, 10], [-1, 10]], meta

    checked = 0
    for binary_in, binary_out in binary_choices:
        inp = proto.InferInput("input", [1, 1, 8, 8], "FP32")
        out = requested(proto, "probabilities", binary_out)
        if binary_in is None:
            inp.set_data_from_numpy(pixels)
        else:
            inp.set_data_from_numpy(pixels, binary_data=binary_in)
        result = client.infer(model, [inp], outputs=[out], request_id="check")
        got = result.as_numpy("probabilities")
        assert got.shape == (1, 10), got.shape
        assert np.allclose(got[0], want, atol=5e-5), (got, want)
        assert result.as_numpy("logits") is None, "only the requested output comes back"
        checked += 1

    # A batch of 3 rows: each row's answer is the single row's.
    batch = np.repeat(pixels, 3, axis=0)
    inp = proto.InferInput("input", list(batch.shape), "FP32")
    inp.set_data_from_numpy(batch)
    result = client.infer(model, [inp])
    probs = result.as_numpy("probabilities")
    assert probs.shape == (3, 10) and np.allclose(probs, want, atol=5e-5), probs
    assert result.as_numpy("logits").shape == (3, 10)

    # Errors are exceptions with the server's message, and the server goes on serving.
    for bad, message in [
        (proto.InferInput("input", [1, 64], "FP32"), "shape [1, 64]"),
        (proto.InferInput("pixels", [1, 1, 8, 8], "FP32"), "no input named `pixels`"),
        (proto.InferInput("input", [1, 1, 8, 8], "INT64"), "datatype INT64"),
    ]:
        data = np.zeros(bad.shape(), dtype=np.float32 if bad.datatype() == "FP32" else np.int64)
        bad.set_data_from_numpy(data)
        try:
            client.infer(model, [bad])
            raise AssertionError(f"{message}: accepted")
        except InferenceServerException as e:
            assert message in str(e), (message, str(e))
    try:
        client.get_model_metadata("no-such-model")
        raise AssertionError("unknown model: accepted")
    except InferenceServerException as e:
        assert "unknown model" in str(e), str(e)
    return checked


def as_json(proto):
    return {"as_json": True} if proto is grpcclient else {}


def requested(proto, name, binary):
    if proto is grpcclient:
        return proto.InferRequestedOutput(name)
    return proto.InferRequestedOutput(name, binary_data=binary)


http_checked = check(
    httpclient,
    httpclient.InferenceServerClient(url=http_url),
    [(True, True), (True, False), (False, True), (False, False)],
)
grpc_checked = check(grpcclient, grpcclient.InferenceServerClient(url=grpc_url), [(None, None)])
print(
    f"tritonclient: ok (HTTP: {http_checked} JSON/binary combinations; gRPC: raw tensors; "
    "each with a batch of 3 and 4 bad requests)"
)
