#!/usr/bin/env bash
# Tokenizer benchmark: Sculpt's encoder vs HF tokenizers (bench/hf_tokenizer_bench.py), one
# thread each, same tokenizer and inputs, in the same run. See bench/RESULTS.md.
#
#   bench/run_tokenizer_bench.sh
#
# The peer needs the `tokenizers` package: the test venv (.venv, from requirements-dev.txt) has it.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target bench_tokenizer >/dev/null
python=${SCULPT_TOKENIZERS_PYTHON:-.venv/bin/python3}
for style in llada-style qwen2-style gpt2-style; do
  taskset -c 0 ./build/bench/bench_tokenizer --tokenizer "tests/tokenizers/$style"
  taskset -c 0 "$python" bench/hf_tokenizer_bench.py --tokenizer "tests/tokenizers/$style"
done
