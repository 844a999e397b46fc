#!/usr/bin/env bash
# Quick start: install what is missing, build in Release and run the main job, a generation on
# the committed tiny LLaDA model (the shipped default model arrives with its own issue).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSCULPT_BUILD_TESTS=OFF
cmake --build build -j"$(nproc)" --target sculpt
set -x
./build/sculpt generate --model tests/models/tiny-llada --prompt-ids 17,42,256,7,99 \
  --gen-length 32 --steps 32 --block-length 8 --json
