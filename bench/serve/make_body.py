#!/usr/bin/env python3
"""Write an Open Inference Protocol v2 infer body (JSON) for the serving benchmark.

Stdlib only, so it runs before any venv exists. The same file is sent to Kiln and
to the MLServer peer, so both servers parse and compute on identical bytes.

  make_body.py --name input__0 --shape 1,784 --out /tmp/mlp.json
  make_body.py --name input__0 --shape 1,1,8,8 --out /tmp/cnn.json
"""
import argparse
import json
import random
import struct


def f32(v: float) -> float:
    # Round to the nearest FP32 so the JSON carries exactly what the server stores.
    return struct.unpack("f", struct.pack("f", v))[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="input__0")
    ap.add_argument("--shape", required=True, help="comma-separated, e.g. 1,784")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    shape = [int(d) for d in a.shape.split(",")]
    n = 1
    for d in shape:
        n *= d
    rng = random.Random(a.seed)
    # %.9g round-trips any FP32 exactly while keeping the body short.
    data = [float("%.9g" % f32(rng.random())) for _ in range(n)]
    body = {"inputs": [{"name": a.name, "datatype": "FP32", "shape": shape, "data": data}]}
    with open(a.out, "w") as f:
        json.dump(body, f, separators=(",", ":"))
    print(f"{a.out}: {n} values, {a.name} {shape}")


if __name__ == "__main__":
    main()
