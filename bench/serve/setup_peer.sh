#!/usr/bin/env bash
# Builds the Python venv that runs the MLServer peer (bench/serve/peer).
# Kept outside the repo so it never lands in a commit and survives `git clean`.
# Idempotent: a venv that already imports everything is left alone.
set -euo pipefail

VENV="${KILN_PEER_VENV:-/tmp/kiln-serve-peer-venv}"
PY="${PYTHON:-python3}"

# Two interpreters: mlserver and tritonclient.grpc both register the protobuf
# package "inference", so importing both in one process fails by design.
if [ -x "$VENV/bin/python" ] &&
   "$VENV/bin/python" -c 'import mlserver, torch, numpy' 2>/dev/null &&
   "$VENV/bin/python" -c 'import tritonclient.http, tritonclient.grpc' 2>/dev/null; then
  echo "peer venv ready: $VENV"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
"${PIP[@]}" --upgrade pip

# The CPU-only wheel avoids ~2 GB of CUDA libraries a CPU peer never uses.
# Where only PyPI is reachable, that index fails and PyPI's (CUDA-bundling) wheel is used.
if ! "${PIP[@]}" --retries 1 --timeout 20 torch --index-url https://download.pytorch.org/whl/cpu 2>/dev/null; then
  echo "CPU wheel index unreachable; installing torch from PyPI" >&2
  "${PIP[@]}" torch
fi
"${PIP[@]}" mlserver numpy 'tritonclient[grpc,http]'

"$VENV/bin/python" -c 'import mlserver, torch; print("mlserver", mlserver.__version__, "torch", torch.__version__)'
echo "peer venv ready: $VENV"
