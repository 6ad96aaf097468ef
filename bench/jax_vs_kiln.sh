#!/usr/bin/env bash
# Kiln's compiled MLP train step against JAX `jit`'s (both with SGD, 784-512-512-10, batch
# 128) in alternating runs of the two processes, quiet, on the same machine; writes each
# round's times and the median of the paired kiln/jax ratios to
# bench/results/jax-vs-kiln-<UTC date and time>.json.
#
# usage: bench/jax_vs_kiln.sh [ROUNDS]   (default 7; Python with jax: $PYTHON, else
# /tmp/ref/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-7}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x /tmp/ref/bin/python ]]; then PYTHON=/tmp/ref/bin/python; else PYTHON=python3; fi
fi
cargo build --release -q -p kiln-bench --example eager_vs_compiled
evc=target/release/examples/eager_vs_compiled
pairs=""
for ((r = 1; r <= rounds; r++)); do
    kiln="$("$evc" mlp-sgd 3 | sed -n 's/.*compiled \([0-9.]*\) ms,.*/\1/p')"
    jax="$("$PYTHON" bench/jax_mlp_step.py)"
    echo "round $r: kiln compiled ${kiln} ms, jax jit ${jax} ms" >&2
    pairs+="$kiln $jax"$'\n'
done
out="bench/results/jax-vs-kiln-$(date -u +%Y-%m-%dT%H%M).json"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
if grep -q avx512f /proc/cpuinfo; then isa="AVX-512"; else isa="AVX2"; fi
jax_version="$("$PYTHON" -c 'import jax; print(jax.__version__)')"
printf '%s' "$pairs" | python3 -c '
import json, subprocess, sys
out, machine, jax_version = sys.argv[1:]
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
med = lambda v: sorted(v)[len(v) // 2]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                        text=True).stdout.strip()
json.dump({
    "what": "MLP 784-512-512-10 train step with SGD, batch 128: Kiln compile vs JAX jit, "
            "alternating processes (median of paired ratios)",
    "command": "bench/jax_vs_kiln.sh",
    "commit": commit,
    "machine": machine + ", Kiln at 2 threads",
    "jax": jax_version,
    "kiln_compiled_mlp_sgd_step_ms": med([k for k, _ in rows]),
    "jax_jit_mlp_sgd_step_ms": med([j for _, j in rows]),
    "kiln_over_jax": round(med([k / j for k, j in rows]), 3),
    "rounds": [[k, j] for k, j in rows],
}, open(out, "w"), indent=1)
print(out)' "$out" "$cpu, $(nproc) cores, $isa" "$jax_version"
