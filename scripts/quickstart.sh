#!/usr/bin/env bash
# Quick start: install what is missing, build in Release, show the main job on the shipped
# default model (models/sculpt-code-mini, a small LLaDA trained on the Python standard library):
# a completion and an infill, then serve it over gRPC (port 50051) and HTTP (port 8080, with the
# playground at http://127.0.0.1:8080/) until Ctrl-C. `--no-serve` stops after the examples.
set -euo pipefail
cd "$(dirname "$0")/.."
serve=1
[[ ${1:-} == --no-serve ]] && serve=0
./scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target sculpt
set -x
./build/sculpt generate --prompt "def fibonacci(n):" --gen-length 64 --steps 64 --block-length 32
./build/sculpt generate --remasking threshold \
  --infill $'def first(items):\n    if not items:\n<|mask:4|>\n    return items[0]\n'
if ((serve)); then
  exec ./build/sculpt serve --grpc-port 50051 --http-port 8080
fi
