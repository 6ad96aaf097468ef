#!/usr/bin/env bash
# Kiln against onnxruntime on the same models (the MLP 784-512-512-10 and a BERT-like
# encoder, batch 1 and 8, sequence 128), 2 threads each, same machine, same run; writes
# bench/results/onnx-<date>-<cpu>.json (see bench/onnx/run.py). About 2 minutes.
#
#   bench/onnx.sh [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${TMPDIR:-/tmp}/kiln-onnx-venv"
if ! "$venv/bin/python" -c 'import onnxruntime, numpy' 2>/dev/null; then
  python3 -m venv --clear "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check onnx onnxruntime numpy
fi
cargo build -q --release -p kiln-bench --bin onnx_bench
cpu="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1 | tr 'A-Z' 'a-z' | awk '{print $1"-"$2}')"
out="bench/results/onnx-$(date -u +%Y-%m-%dT%H%M)-${cpu}.json"
"$venv/bin/python" bench/onnx/run.py --onnx-bench target/release/onnx_bench --out "$out" "$@"
