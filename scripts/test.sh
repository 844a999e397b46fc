#!/usr/bin/env bash
# Builds and runs every test: the Release build with all labels (unit, golden, integration;
# gpu tests skip visibly without a GPU), then the unit, golden and integration tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSCULPT_FATAL_WARNINGS=ON -DSCULPT_BUILD_TESTS=ON \
  -DSCULPT_BUILD_BENCH=ON
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure --no-tests=error -j"$jobs"

# Sanitizers: CPU code only (the CUDA part is proven by the Release build).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSCULPT_SANITIZE=address,undefined \
  -DSCULPT_CUDA=OFF -DSCULPT_BUILD_TESTS=ON -DSCULPT_BUILD_BENCH=OFF
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure --no-tests=error \
  -j"$jobs" -L 'unit|golden|integration'
