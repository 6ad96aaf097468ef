#!/usr/bin/env bash
# The serving benchmark: `kiln serve` against MLServer + PyTorch (the peer a PyTorch team deploys
# today), same machine, same run — MLP 784-512-512-10 and the digits CNN, HTTP and gRPC,
# concurrency 1, 8 and 32. Writes bench/results/serve-<date>-<cpu>.json (see bench/serve/run.py).
#
#   bench/serve.sh [--seconds S] [--rounds N]      (defaults: 5 s, 3 rounds; about 8 minutes)
#
# Needs wrk (installed from Debian's packages when missing) and the peer's venv
# (bench/serve/setup_peer.sh creates it: mlserver, torch, tritonclient).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || apt-get install -y -q wrk
bash bench/serve/setup_peer.sh
cargo build -q --release -p kiln-cli -p kiln-bench --bins
cpu="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1 | tr 'A-Z' 'a-z' | awk '{print $1"-"$2}')"
out="bench/results/serve-$(date -u +%Y-%m-%dT%H%M)-${cpu}.json"
python3 bench/serve/run.py --kiln target/release/kiln --serve-bench target/release/serve_bench \
  --peer-venv "${KILN_PEER_VENV:-/tmp/kiln-serve-peer-venv}" --out "$out" "$@"
