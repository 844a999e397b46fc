#!/usr/bin/env bash
# Writes the random 12-layer, d_model 768 LLaDA model the CPU benchmarks share (~136 M parameters)
# to build/bench-models/bench-llada-768, unless it is there already. PYTHON picks the interpreter
# (numpy only).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/bench-models/bench-llada-768/model.safetensors ]]; then
  "${PYTHON:-.venv/bin/python3}" tools/make_tiny_model.py --out build/bench-models \
    --variant tiny-llada --name bench-llada-768 --layers 12 --d-model 768 --heads 12 \
    --kv-heads 12 --mlp-hidden 2048 --vocab 32000 --max-seq-len 4096
fi
