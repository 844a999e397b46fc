#!/usr/bin/env bash
# CPU benchmark: Sculpt's CPU backend vs the PyTorch reference (bench/torch_reference.py) on the
# same weights and settings, measured in the same run, one after the other with the same number
# of threads. Prints one JSON line per measurement and a ratio table; see bench/RESULTS.md.
#
#   bench/run_cpu_bench.sh [THREADS]
#
# Each line names the GEMM kernel oneDNN picked; the CPU is printed first.
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
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $threads threads"
run_pair() {  # run_pair MODEL ARGS...: ours, then the peers, with the same arguments
  local model=$1
  shift
  ./build/bench/bench_llada --model "$model" --threads "$threads" "$@" | tee -a "$results"
  "$python" bench/torch_reference.py --model "$model" --threads "$threads" "$@" | tee -a "$results"
  if [[ " $* " == *" --generate "* ]]; then  # LLaDA's published loop as well
    "$python" bench/torch_reference.py --model "$model" --threads "$threads" --loop upstream "$@" |
      tee -a "$results"
  fi
}

# The shipped model (d_model 256, 6 layers, vocab 8192; trained weights, so confident predictions)
# and the 136 M random model, each with fp32 weights against PyTorch fp32 (tokens must agree) and
# bf16 weights against PyTorch bf16. The prompt is fixed so both sides generate from the same ids.
shipped=models/sculpt-code-mini
prompt=$(seq -s, 100 227)  # 128 ids
for dtype in float32 bfloat16; do
  run_pair "$shipped" --dtype "$dtype" --seq-len 256 --batch 4 --repeat 20
  run_pair "$shipped" --dtype "$dtype" --generate --prompt-ids "$prompt" --gen-length 128 \
    --steps 128 --block-length 32 --repeat 3
  run_pair "$bench_model" --dtype "$dtype" --seq-len 256 --batch 1 --repeat 5
  run_pair "$bench_model" --dtype "$dtype" --generate --prompt-ids "$(seq -s, 100 131)" \
    --gen-length 64 --steps 64 --block-length 32 --repeat 2
done

"$python" - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"\n{'model':<20}{'dtype':<10}{'mode':<10}{'sculpt s':>10}{'peer':>22}{'peer s':>10}"
      f"{'speed-up':>10}  same tokens")
ours = None
for row in rows:
    if row["peer"] == "sculpt-cpu":
        ours = row
        continue
    name = ours["model"].rstrip("/").split("/")[-1]
    same = ""
    if ours["mode"] == "generate":
        a, b = ours["token_ids"], row["token_ids"]
        same = f"{sum(x == y for x, y in zip(a, b))}/{len(a)}"
    print(f"{name:<20}{ours['dtype']:<10}{ours['mode']:<10}{ours['median_s']:>10.4f}"
          f"{row['peer']:>22}{row['median_s']:>10.4f}{row['median_s'] / ours['median_s']:>9.2f}x"
          f"  {same}")
    if ours["mode"] == "forward":
        print(f"{'':<40}forward {ours['gflops']:.1f} GFLOP/s = "
              f"{100 * ours['fraction_of_gemm_peak']:.0f}% of the {ours['dtype']} GEMM peak "
              f"{ours['gemm_peak_gflops']:.1f} ({ours['gemm_kernel']})")
PY
