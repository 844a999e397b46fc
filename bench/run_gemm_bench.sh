#!/usr/bin/env bash
# GEMM benchmark at the models' shapes: Sculpt's tiled path vs oneDNN's own best (bench_gemm) vs
# PyTorch's matmul (bench/torch_gemm.py), fp32 and bf16, measured in the same run with the same
# threads. Prints one JSON line per measurement, then a ratio table; see bench/RESULTS.md.
#
#   bench/run_gemm_bench.sh [THREADS] [SHAPES]
#
# Needs PyTorch for the peer: .venv-tools (tools/requirements.txt, created when missing) or
# SCULPT_TORCH_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
# The shipped model (d 256, mlp 704, vocab 8192; 256-token canvas, 32 logit rows), the 136 M
# bench model (d 768), LLaDA-8B (d 4096, mlp 12288, vocab 126464) and a square reference.
shapes=${2:-256x768x256,256x704x256,256x256x704,32x8192x256,256x768x768,256x2048x768,32x32000x768,256x4096x4096,256x12288x4096,256x4096x12288,32x126464x4096,2048x2048x2048}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target bench_gemm >/dev/null

source bench/torch_python.sh

results=build/gemm-bench-results.jsonl
: > "$results"
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $threads threads"
./build/bench/bench_gemm --shapes "$shapes" --threads "$threads" | tee -a "$results"
"$python" bench/torch_gemm.py --shapes "$shapes" --threads "$threads" | tee -a "$results"

"$python" - "$results" <<'PY'
import json, sys
ours, peers = {}, {}
for line in open(sys.argv[1]):
    row = json.loads(line)
    key = (row["m"], row["n"], row["k"], row["dtype"])
    (ours if "sculpt_gflops" in row else peers)[key] = row
print(f"\n{'m x n x k':<20}{'dtype':<6}{'sculpt':>9}{'oneDNN':>9}{'torch':>9}"
      f"{'vs best':>9}  sculpt kernel")
for key, row in ours.items():
    peer = peers.get(key, {}).get("torch_gflops", float("nan"))
    best = max(row["onednn_gflops"], peer)
    print(f"{'x'.join(map(str, key[:3])):<20}{key[3]:<6}{row['sculpt_gflops']:>9.1f}"
          f"{row['onednn_gflops']:>9.1f}{peer:>9.1f}{row['sculpt_gflops'] / best:>8.2f}x"
          f"  {row['sculpt_kernel']}")
print("GFLOP/s; 'vs best' = Sculpt / the faster of oneDNN's whole-matrix matmul and PyTorch")
PY
