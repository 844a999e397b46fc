#!/usr/bin/env bash
# CPU benchmark: Sculpt's CPU backend vs the PyTorch reference (bench/torch_reference.py) on the
# same weights and settings, measured in the same run, one after the other with the same number
# of threads. Prints one JSON line per measurement and a ratio table; see bench/RESULTS.md.
#
#   bench/run_cpu_bench.sh [THREADS]
#
# Needs PyTorch for the peer: a venv from tools/requirements.txt at .venv-tools (created when
# missing) or SCULPT_TORCH_PYTHON pointing at a python that has torch, numpy and safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target bench_llada >/dev/null

source bench/torch_python.sh

bench_model=build/bench-models/bench-llada-768
PYTHON="$python" bench/make_bench_model.sh

results=build/bench-results.jsonl
: > "$results"
run_pair() {  # run_pair MODEL ARGS...: ours, then the peer, with the same arguments
  local model=$1
  shift
  ./build/bench/bench_llada --model "$model" --threads "$threads" "$@" | tee -a "$results"
  "$python" bench/torch_reference.py --model "$model" --threads "$threads" "$@" | tee -a "$results"
}

run_pair tests/models/tiny-llada --seq-len 256 --batch 4 --repeat 20
run_pair tests/models/tiny-llada --generate --prompt-len 32 --gen-length 128 --steps 128 \
  --block-length 32 --repeat 5
run_pair "$bench_model" --seq-len 256 --batch 1 --repeat 5
run_pair "$bench_model" --generate --prompt-len 32 --gen-length 64 --steps 64 --block-length 32 \
  --repeat 2

"$python" - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"\n{'model':<18}{'mode':<10}{'sculpt s':>10}{'torch s':>10}{'speed-up':>10}")
for ours, peer in zip(rows[0::2], rows[1::2]):
    name = ours["model"].rstrip("/").split("/")[-1]
    print(f"{name:<18}{ours['mode']:<10}{ours['median_s']:>10.4f}{peer['median_s']:>10.4f}"
          f"{peer['median_s'] / ours['median_s']:>9.2f}x")
    if ours["mode"] == "forward":
        print(f"{'':<28}forward {ours['gflops']:.1f} GFLOP/s = "
              f"{100 * ours['fraction_of_sgemm_peak']:.0f}% of sgemm peak {ours['sgemm_peak_gflops']:.1f}")
PY
