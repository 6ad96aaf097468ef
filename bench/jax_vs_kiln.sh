#!/usr/bin/env bash
# Kiln's compiled MLP train step against JAX `jit`'s (both with SGD, 784-512-512-10, batch
# 128) in alternating runs of the two processes, quiet, on the same machine; prints each
# round's times and the median of the paired kiln/jax ratios as JSON.
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
printf '%s' "$pairs" | python3 -c '
import json, sys
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
med = lambda v: sorted(v)[len(v) // 2]
print(json.dumps({
    "kiln_compiled_mlp_sgd_step_ms": med([k for k, _ in rows]),
    "jax_jit_mlp_sgd_step_ms": med([j for _, j in rows]),
    "kiln_over_jax": round(med([k / j for k, j in rows]), 3),
    "rounds": [[k, j] for k, j in rows],
}, indent=1))'
