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
import resource
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


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


# ---- training steps: zero_grad(set_to_none) + forward + cross_entropy + backward + step ---

def train_step_ms(model, inputs, targets, optimizer, iters, logits=None):
    """Median ms of one training step (3 warm-up steps), like kiln-bench's train::step_ms."""
    logits = logits or model

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(logits(inputs), targets)
        loss.backward()
        optimizer.step()

    return median_seconds(step, warm=3, iters=iters) * 1e3


def mlp_model():
    """Flatten -> 784-512 -> ReLU -> 512-512 -> ReLU -> 512-10 (kiln-bench's mlp::model)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(),
                         nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


def mlp_train(wants):
    key = "mlp_train_step_ms"
    if not wants(key):
        return
    model = mlp_model()
    inputs = torch.randn(128, 1, 28, 28)
    targets = torch.randint(0, 10, (128,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    yield key, train_step_ms(model, inputs, targets, optimizer, iters=30)


def cnn_train(wants):
    key = "cnn_train_step_ms"
    if not wants(key):
        return
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10))
    inputs = torch.randn(64, 3, 32, 32)
    targets = torch.randint(0, 10, (64,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    yield key, train_step_ms(model, inputs, targets, optimizer, iters=20)


GPT_VOCAB, GPT_T, GPT_D, GPT_HEADS, GPT_LAYERS, GPT_BATCH = 256, 128, 256, 4, 4, 16


class DecoderBlock(nn.Module):
    """Pre-norm causal block, the layout of kiln_nn::CausalDecoderBlock."""

    def __init__(self, d, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        t = x.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool).triu(1)  # True = blocked
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=causal, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(GPT_VOCAB, GPT_D)
        self.pos = nn.Embedding(GPT_T, GPT_D)
        self.blocks = nn.Sequential(*(DecoderBlock(GPT_D, GPT_HEADS) for _ in range(GPT_LAYERS)))
        self.ln = nn.LayerNorm(GPT_D)
        self.head = nn.Linear(GPT_D, GPT_VOCAB)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        return self.head(self.ln(self.blocks(x)))


def gpt_train(wants):
    key = "gpt_train_step_ms"
    if not wants(key):
        return
    model = Gpt()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    idx = torch.randint(0, GPT_VOCAB, (GPT_BATCH, GPT_T))
    targets = torch.randint(0, GPT_VOCAB, (GPT_BATCH, GPT_T)).reshape(-1)
    yield key, train_step_ms(model, idx, targets, optimizer, iters=10,
                             logits=lambda i: model(i).reshape(-1, GPT_VOCAB))


def memory(wants):
    """Whole-process peak RSS (MiB), read after the training workloads."""
    key = "peak_rss_mib"
    if wants(key):
        yield key, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def infer(wants):
    key = "mlp_infer_b1_us"
    if not wants(key):
        return
    model = mlp_model()
    with torch.no_grad():
        x = torch.randn(1, 1, 28, 28)
        secs = median_seconds(lambda: model(x), warm=20, iters=200)
    yield key, secs * 1e6


WORKLOADS = {
    "matmul": (matmul, ["matmul_%d_gflops" % n for n in MATMUL]),
    "eager": (eager, ["eager_add16_us_per_op"]),
    "mlp": (mlp_train, ["mlp_train_step_ms"]),
    "cnn": (cnn_train, ["cnn_train_step_ms"]),
    "gpt": (gpt_train, ["gpt_train_step_ms"]),
    "memory": (memory, ["peak_rss_mib"]),  # after the training workloads: the peak covers them
    "infer": (infer, ["mlp_infer_b1_us"]),
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
