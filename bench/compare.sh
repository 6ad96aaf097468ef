#!/usr/bin/env bash
# Kiln vs PyTorch on the same machine, back to back: runs `cargo run --release -p kiln-bench --bin kiln-bench`
# and bench/torch_reference.py with the same arguments, then prints a ratio table.
#
# usage: bench/compare.sh [--rounds R] [--threads N] [--only KEY[,KEY...]]...
#   --rounds R runs the two benchmarks R times, alternating (kiln, pytorch, kiln, ...), and
#   reports each key's median value and the median of the R paired kiln/pytorch ratios: these
#   machines are shared and one run's speed drifts by 30% or more between sittings.
#   Other arguments go to both benchmarks (default threads: $KILN_NUM_THREADS, else 2).
#   Python: $PYTHON, else /tmp/ref/bin/python, else python3. Without PyTorch, prints Kiln's
#   JSON only and exits 0. The table gives each key's direction (lower/higher better), the
#   performance issue's target (a bound on kiln/pytorch, or on Kiln's own value for
#   eager_add16) and whether it is met. With PyTorch, the run is also written to
#   bench/results/compare-<date>-<cpu>.json, which tools/render_performance.py renders.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x /tmp/ref/bin/python ]]; then PYTHON=/tmp/ref/bin/python; else PYTHON=python3; fi
fi

rounds=1
args=()
while [[ $# -gt 0 ]]; do
    if [[ "$1" == "--rounds" ]]; then
        rounds="${2:?--rounds needs a count}"
        shift 2
    else
        args+=("$1")
        shift
    fi
done
if ! [[ "$rounds" =~ ^[1-9][0-9]*$ ]]; then
    echo "compare.sh: --rounds must be a positive integer, got '$rounds'" >&2
    exit 2
fi

echo "== building kiln-bench (release)" >&2
cargo build --release -q -p kiln-bench --bin kiln-bench

have_torch=1
if ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
    echo "PyTorch is not available to '$PYTHON' (set PYTHON=/path/to/python with torch);" \
        "skipping the comparison." >&2
    have_torch=0
fi

kiln_runs=""
torch_runs=""
for ((r = 1; r <= rounds; r++)); do
    echo "== kiln (round $r of $rounds)" >&2
    kiln_json="$(cargo run --release -q -p kiln-bench --bin kiln-bench -- "${args[@]}")"
    echo "$kiln_json"
    kiln_runs+="$(echo "$kiln_json" | tr -d '\n')"$'\n'
    [[ $have_torch == 1 ]] || continue
    echo "== pytorch (round $r of $rounds)" >&2
    torch_json="$("$PYTHON" bench/torch_reference.py "${args[@]}")"
    echo "$torch_json"
    torch_runs+="$(echo "$torch_json" | tr -d '\n')"$'\n'
done
[[ $have_torch == 1 ]] || exit 0

echo
KILN_RUNS="$kiln_runs" TORCH_RUNS="$torch_runs" ROUNDS="$rounds" ARGS="${args[*]:-}" \
    COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$PYTHON" - <<'PY'
import datetime, json, os, platform, re, statistics

kiln_runs = [json.loads(l) for l in os.environ["KILN_RUNS"].splitlines() if l.strip()]
torch_runs = [json.loads(l) for l in os.environ["TORCH_RUNS"].splitlines() if l.strip()]
rounds = int(os.environ["ROUNDS"])


def median_of(runs):
    keys = [k for r in runs for k in r]
    return {k: statistics.median(r[k] for r in runs if k in r) for k in dict.fromkeys(keys)}


kiln, torch = median_of(kiln_runs), median_of(torch_runs)
# Each round's kiln and pytorch runs sat next to each other: the median of those paired
# ratios is steadier than the ratio of the medians.
paired = {}
for key in kiln:
    rs = [k[key] / t[key] for k, t in zip(kiln_runs, torch_runs) if k.get(key) and t.get(key)]
    if rs:
        paired[key] = statistics.median(rs)

# The issue's targets: key -> (kind, bound). "ratio>=" / "ratio<=" bound kiln/pytorch;
# "abs<=" bounds Kiln's own value (in the key's unit).
TARGETS = {
    "matmul_256_gflops": ("ratio>=", 1.05),
    "matmul_1024_gflops": ("ratio>=", 1.0),
    "matmul_2048_gflops": ("ratio>=", 1.0),
    "eager_add16_us_per_op": ("abs<=", 0.10),
    "mlp_train_step_ms": ("ratio<=", 0.65),
    "cnn_train_step_ms": ("ratio<=", 0.5),
    "gpt_train_step_ms": ("ratio<=", 0.75),
    "peak_rss_mib": ("ratio<=", 0.25),
    "mlp_infer_b1_us": ("ratio<=", 0.5),
}


def higher_is_better(key):
    return key.endswith("_gflops")


def target_text(key):
    kind, bound = TARGETS.get(key, (None, None))
    if kind is None:
        return "-"
    if kind == "abs<=":
        return "kiln <= %g %s" % (bound, "us" if "_us" in key else "")
    return "%s %gx" % (kind[-2:], bound)


def status(key, k, ratio):
    kind, bound = TARGETS.get(key, (None, None))
    if kind is None or k is None:
        return "-"
    if kind == "abs<=":
        return "met" if k <= bound else "missed"
    if ratio is None:
        return "-"
    return "met" if (ratio >= bound if kind == "ratio>=" else ratio <= bound) else "missed"


fmt = lambda v: "-" if v is None else "%.3f" % v
rows = [("key", "kiln", "pytorch", "kiln/pytorch", "better", "target", "status",
         "kiln speed vs pytorch")]
for key in list(kiln) + [k for k in torch if k not in kiln]:
    k, t = kiln.get(key), torch.get(key)
    ratio = paired.get(key)
    if ratio is not None:
        speed = ratio if higher_is_better(key) else 1 / ratio
        noun = ("smaller", "larger") if key == "peak_rss_mib" else ("faster", "slower")
        rel = "%.2fx (%s)" % (speed, noun[0] if speed >= 1 else noun[1])
    else:
        rel = "-"
    rows.append((key, fmt(k), fmt(t), fmt(ratio), "higher" if higher_is_better(key) else "lower",
                 target_text(key).strip(), status(key, k, ratio), rel))

widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
for n, r in enumerate(rows):
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    if n == 0:
        print("  ".join("-" * w for w in widths))
met = sum(r[6] == "met" for r in rows[1:])
judged = sum(r[6] in ("met", "missed") for r in rows[1:])
print("\ntargets met: %d of %d (ratio = kiln/pytorch; targets from the performance issue)" % (met, judged))
if rounds > 1:
    print("%d alternating rounds: values are per-key medians, ratios the median of the paired "
          "per-round ratios" % rounds)


def machine():
    """CPU model, cores and the widest vector ISA, from /proc/cpuinfo (Linux)."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or "unknown", os.cpu_count(), "unknown"
    model = re.search(r"model name\s*:\s*(.*)", info)
    found = re.search(r"^flags\s*:\s*(.*)$", info, re.M)
    flags = set(found.group(1).split()) if found else set()
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "baseline"
    return (model.group(1).strip() if model else "unknown"), os.cpu_count(), isa


# The run, for the performance page (tools/render_performance.py renders docs/src/performance.md
# and the README's summary from the newest of these files).
import torch as _torch
cpu, cores, isa = machine()
now = datetime.datetime.now(datetime.timezone.utc)
slug = re.sub(r"[^a-z0-9]+", "-", cpu.lower()).strip("-")[:40]
result = {
    "what": "Kiln eager (kiln-bench) vs PyTorch eager (bench/torch_reference.py): the same "
            "workloads, alternating processes; values are per-key medians over the rounds, "
            "kiln_over_pytorch the median of the paired per-round ratios",
    "command": ("bench/compare.sh --rounds %d %s" % (rounds, os.environ.get("ARGS", ""))).strip(),
    "commit": os.environ.get("COMMIT", "unknown"),
    "date": now.strftime("%Y-%m-%d %H:%M UTC"),
    "machine": {"cpu": cpu, "cores": cores, "isa": isa},
    "pytorch": _torch.__version__,
    "rounds": rounds,
    "keys": {
        key: {
            "kiln": kiln.get(key),
            "pytorch": torch.get(key),
            "kiln_over_pytorch": paired.get(key),
            "higher_is_better": higher_is_better(key),
            "kiln_rounds": [r.get(key) for r in kiln_runs],
            "pytorch_rounds": [r.get(key) for r in torch_runs],
        }
        for key in list(kiln) + [k for k in torch if k not in kiln]
    },
}
path = "bench/results/compare-%s-%s.json" % (now.strftime("%Y-%m-%dT%H%M"), slug)
with open(path + ".tmp", "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")
os.replace(path + ".tmp", path)
print("wrote " + path)
PY
