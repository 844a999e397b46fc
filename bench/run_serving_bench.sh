#!/usr/bin/env bash
# Serving benchmark (bench/serving_bench.py): the server under 1/4/16/64 closed-loop gRPC
# clients and the engine's offline batch of 16 as the peer, in the same run. Writes
# build/serving-bench.jsonl and prints a table; see bench/RESULTS.md.
#
#   bench/run_serving_bench.sh [THREADS] [MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
model=${2:-models/sculpt-code-mini}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target sculpt bench_offline_batch >/dev/null
python=.venv/bin/python3
[[ -x $python ]] || python=python3
"$python" -W ignore bench/serving_bench.py --sculpt build/sculpt \
  --offline build/bench/bench_offline_batch --model "$model" --threads "$threads"
