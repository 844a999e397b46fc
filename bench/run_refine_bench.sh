#!/usr/bin/env bash
# The cost of editing (bench/refine_bench.py): 16 refine sessions remasking two tokens every 4
# steps against 16 plain generations, on one server, in the same run. Appends to
# build/refine-bench.jsonl and prints a table; see bench/RESULTS.md.
#
#   bench/run_refine_bench.sh [THREADS] [MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
model=${2:-models/sculpt-code-mini}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target sculpt >/dev/null
python=.venv/bin/python3
[[ -x $python ]] || python=python3
"$python" -W ignore bench/refine_bench.py --sculpt build/sculpt --model "$model" \
  --threads "$threads"
