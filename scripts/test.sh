#!/usr/bin/env bash
# Builds and runs every test: the Release build with all labels (unit, golden, model,
# integration; gpu tests skip visibly without a GPU), the tokenizer fuzzer for 60 s, then the
# unit, golden, model and integration tests again under AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSCULPT_FATAL_WARNINGS=ON -DSCULPT_BUILD_TESTS=ON \
  -DSCULPT_BUILD_BENCH=ON
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure --no-tests=error -j"$jobs"

# Fuzzing: the tokenizer's libFuzzer target for a bounded time, from the committed seeds (new
# inputs go to a scratch folder, not into the repository).
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCULPT_FUZZ=ON \
  -DSCULPT_SANITIZE=address,undefined -DSCULPT_CUDA=OFF -DSCULPT_BUILD_TESTS=OFF \
  -DSCULPT_BUILD_BENCH=OFF
cmake --build build-fuzz -j"$jobs" --target tokenizer_fuzz
fuzz_scratch=$(mktemp -d)
trap 'rm -rf "$fuzz_scratch"' EXIT
./build-fuzz/tests/fuzz/tokenizer_fuzz -max_total_time="${SCULPT_FUZZ_SECONDS:-60}" -max_len=4096 \
  -timeout=10 -print_final_stats=1 "$fuzz_scratch" tests/fuzz/corpus/tokenizer 2>&1 | tail -n 12

# Sanitizers: CPU code only (the CUDA part is proven by the Release build).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSCULPT_SANITIZE=address,undefined \
  -DSCULPT_CUDA=OFF -DSCULPT_BUILD_TESTS=ON -DSCULPT_BUILD_BENCH=OFF
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure --no-tests=error \
  -j"$jobs" -L 'unit|golden|model|integration'
