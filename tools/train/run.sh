#!/usr/bin/env bash
# Reproduces sculpt-code-mini from scratch, or continues an interrupted run: prepares the corpus
# and tokenizer unless they exist, trains (resuming from the last checkpoint if there is one) and
# exports models/sculpt-code-mini/. Run from anywhere; PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}

if [[ ! -f build/train-data/train.bin || ! -f build/train-data/tokenizer/tokenizer.json ]]; then
  "$PYTHON" tools/train/prepare_data.py
fi
resume=()
if [[ -f build/train-run/checkpoint.pt ]]; then
  resume=(--resume)
fi
"$PYTHON" tools/train/train.py "${resume[@]}"
"$PYTHON" tools/train/export.py
