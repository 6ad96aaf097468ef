#!/usr/bin/env python3
"""PyTorch (CPU, f32) timings of the workloads kiln-bench measures, measured the same way.

Every key here is defined exactly as in crates/kiln-bench: the same shapes, `randn` f32
inputs, warm-up and timed call counts, and the median taken as sorted(samples)[n // 2].
Prints one JSON object (indent 1, values rounded to 3 decimals) on stdout.

usage: torch_reference.py [--threads N] [--only KEY[,KEY...]]...
"""
import argparse
import json
import os
import sys
import time

import torch


def median_seconds(call, warm, iters):
    """Median wall time of `call()` over `iters` timed runs after `warm` untimed ones."""
    for _ in range(warm):
        call()
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2]


# ---- workloads: each yields (key, value) for the selected keys --------------------------

MATMUL = {256: 20, 1024: 20, 2048: 5}  # size -> timed calls (3 warm-up calls each)


def matmul(wants):
    for n, iters in MATMUL.items():
        key = "matmul_%d_gflops" % n
        if not wants(key):
            continue
        a = torch.randn(n, n, dtype=torch.float32)
        b = torch.randn(n, n, dtype=torch.float32)
        secs = median_seconds(lambda: torch.matmul(a, b), warm=3, iters=iters)
        yield key, 2.0 * n ** 3 / secs / 1e9


ADD_CHAIN = 10_000


def eager(wants):
    key = "eager_add16_us_per_op"
    if not wants(key):
        return
    x = torch.randn(16, dtype=torch.float32)

    def chain():
        y = x
        for _ in range(ADD_CHAIN):
            y = y + x
        return y

    secs = median_seconds(chain, warm=3, iters=5)
    yield key, secs / ADD_CHAIN * 1e6


WORKLOADS = {
    "matmul": (matmul, ["matmul_%d_gflops" % n for n in MATMUL]),
    "eager": (eager, ["eager_add16_us_per_op"]),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int,
                   default=int(os.environ.get("KILN_NUM_THREADS") or 2))
    p.add_argument("--only", action="append", default=[],
                   help="key or workload family (repeatable, comma-separated)")
    args = p.parse_args()

    selected = set()
    for name in (s for item in args.only for s in item.split(",") if s):
        if name in WORKLOADS:
            selected.update(WORKLOADS[name][1])
        elif any(name in keys for _, keys in WORKLOADS.values()):
            selected.add(name)
        else:
            p.error("unknown key %r" % name)
    wants = (lambda k: k in selected) if selected else (lambda k: True)

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    print("torch_reference: torch %s, %d thread(s)" % (torch.__version__, torch.get_num_threads()),
          file=sys.stderr)
    out = {}
    for run, _ in WORKLOADS.values():
        out.update(run(wants))
    print(json.dumps({k: round(v, 3) for k, v in out.items()}, indent=1))


if __name__ == "__main__":
    main()
