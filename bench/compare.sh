#!/usr/bin/env bash
# Kiln vs PyTorch on the same machine, back to back: runs `cargo run --release -p kiln-bench`
# and bench/torch_reference.py with the same arguments, then prints a ratio table.
#
# usage: bench/compare.sh [--threads N] [--only KEY[,KEY...]]...
#   Arguments go to both benchmarks (default threads: $KILN_NUM_THREADS, else 2).
#   Python: $PYTHON, else /tmp/ref/bin/python, else python3. Without PyTorch, prints Kiln's
#   JSON only and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x /tmp/ref/bin/python ]]; then PYTHON=/tmp/ref/bin/python; else PYTHON=python3; fi
fi

echo "== building kiln-bench (release)" >&2
cargo build --release -q -p kiln-bench

echo "== kiln" >&2
kiln_json="$(cargo run --release -q -p kiln-bench -- "$@")"
echo "$kiln_json"

if ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
    echo "PyTorch is not available to '$PYTHON' (set PYTHON=/path/to/python with torch);" \
        "skipping the comparison." >&2
    exit 0
fi

echo "== pytorch" >&2
torch_json="$("$PYTHON" bench/torch_reference.py "$@")"
echo "$torch_json"

echo
KILN_JSON="$kiln_json" TORCH_JSON="$torch_json" "$PYTHON" - <<'PY'
import json, os

kiln, torch = json.loads(os.environ["KILN_JSON"]), json.loads(os.environ["TORCH_JSON"])

def higher_is_better(key):
    return key.endswith("_gflops")

rows = [("key", "kiln", "pytorch", "kiln/pytorch", "better", "kiln speed vs pytorch")]
for key in list(kiln) + [k for k in torch if k not in kiln]:
    k, t = kiln.get(key), torch.get(key)
    fmt = lambda v: "-" if v is None else "%.3f" % v
    if k and t:
        ratio = k / t
        speed = ratio if higher_is_better(key) else 1 / ratio
        rel = "%.2fx (%s)" % (speed, "faster" if speed >= 1 else "slower")
        ratio = "%.3f" % ratio
    else:
        ratio, rel = "-", "-"
    rows.append((key, fmt(k), fmt(t), ratio, "higher" if higher_is_better(key) else "lower", rel))

widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
for n, r in enumerate(rows):
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    if n == 0:
        print("  ".join("-" * w for w in widths))
PY
