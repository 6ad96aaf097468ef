#!/usr/bin/env bash
# Eager vs compiled, on a quiet machine and beside a busy process, written to
# bench/results/eager-vs-compiled-<UTC date and time>.json:
#   - the train steps of the digits CNN, the MLP and the GPT workload, in alternating eager and
#     compiled rounds inside one process (`eager_vs_compiled suite`), each round's ratio paired;
#   - `kiln train` on the bundled digits (12 epochs), eager and `--compile` runs alternating,
#     the sum of the epoch times of each run paired with the run before it.
# "Contended" starts one CPU-bound process (the example's `--burn` mode) beside the measurement,
# as a CI runner's neighbour or a server's batcher would be; it is stopped after each phase.
#
# usage: bench/eager_vs_compiled.sh [STEP_ROUNDS] [TRAIN_ROUNDS]   (defaults 11 and 7)
set -euo pipefail
cd "$(dirname "$0")/.."
step_rounds="${1:-11}"
train_rounds="${2:-7}"

echo "== building (release)" >&2
cargo build --release -q -p kiln-bench --example eager_vs_compiled
cargo build --release -q -p kiln-cli
evc=target/release/examples/eager_vs_compiled
kiln=target/release/kiln
work="$(mktemp -d)"
burner=""
cleanup() {
    [[ -n "$burner" ]] && kill "$burner" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== train steps ($step_rounds rounds per workload and condition)" >&2
"$evc" suite "$step_rounds" >"$work/steps.json"

# Seconds of training in one `kiln train` run: the sum of its epoch times.
train_seconds() {
    "$kiln" train --epochs 12 --threads 2 --progress plain --out "$work/runs" --name run "$@" \
        2>&1 | sed -n 's/^epoch .*  \([0-9.]*\)s  .*samples\/s$/\1/p' |
        awk '{ s += $1 } END { printf "%.2f", s }'
    rm -rf "$work/runs"
}

for condition in quiet contended; do
    if [[ $condition == contended ]]; then
        "$evc" --burn &
        burner=$!
    fi
    echo "== kiln train, $condition ($train_rounds rounds)" >&2
    for ((r = 1; r <= train_rounds; r++)); do
        e="$(train_seconds)"
        c="$(train_seconds --compile)"
        echo "$condition $e $c" >>"$work/train.txt"
        echo "   round $r: eager ${e}s, compiled ${c}s" >&2
    done
    if [[ -n "$burner" ]]; then
        kill "$burner"
        wait "$burner" 2>/dev/null || true
        burner=""
    fi
done

out="bench/results/eager-vs-compiled-$(date -u +%Y-%m-%dT%H%M).json"
cpu="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
if grep -q avx512f /proc/cpuinfo; then isa="AVX-512"; else isa="AVX2"; fi
python3 - "$work/steps.json" "$work/train.txt" "$out" "$cpu, $(nproc) cores, $isa" <<'EOF'
import json, statistics, subprocess, sys
steps_path, train_path, out_path, machine = sys.argv[1:]
steps = json.load(open(steps_path))
train = {}
for line in open(train_path):
    cond, e, c = line.split()
    train.setdefault(cond, []).append((float(e), float(c)))
def median(v):
    v = sorted(v)
    return v[len(v) // 2]
kiln_train = {
    cond: {
        "eager_s": median([e for e, _ in runs]),
        "compiled_s": median([c for _, c in runs]),
        "compiled_over_eager": round(median([c / e for e, c in runs]), 3),
        "runs": [[e, c] for e, c in runs],
    }
    for cond, runs in train.items()
}
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                        text=True).stdout.strip()
result = {
    "what": "Compiled / eager time, quiet and beside one busy process: train steps (paired "
            "rounds in one process, median of per-round ratios) and kiln train epochs on the "
            "bundled digits (alternating runs, median of paired ratios)",
    "command": "bench/eager_vs_compiled.sh",
    "commit": commit,
    "machine": machine + ", Kiln at 2 threads",
    "train_steps": steps,
    "kiln_train_digits_12_epochs": kiln_train,
}
json.dump(result, open(out_path, "w"), indent=1)
print(out_path)
EOF
