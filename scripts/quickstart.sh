#!/usr/bin/env bash
# Quick start: install what is missing, build in Release and run the main job: a completion and
# an infill with the shipped default model (models/sculpt-code-mini, a small LLaDA trained on the
# Python standard library).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target sculpt
set -x
./build/sculpt generate --prompt "def fibonacci(n):" --gen-length 64 --steps 64 --block-length 32
./build/sculpt generate --remasking threshold --infill $'def is_even(n):\n<|mask:8|>\n'
