#!/usr/bin/env bash
# KV cache benchmark: Sculpt's threshold decoding with cache none / prefix / dual against the same
# algorithm in plain PyTorch as Fast-dLLM runs it (tools/llada_reference.py: generate() with
# cache="prefix" / "dual", Fast-dLLM's generate_with_prefix_cache / generate_with_dual_cache), on
# the same weights and settings, measured one after the other in the same run. Prompts of 256 and
# 1024 tokens, 256 generated in blocks of 32, confidence threshold 0.9. See bench/RESULTS.md.
#
#   bench/run_cache_bench.sh [THREADS]
#
# The model is random (6 layers, d_model 256, vocab 8192, as the shipped model) with logits spread
# wide enough (--logit-std 12) that confident predictions exist and the threshold commits several
# tokens per step, as with a trained model. Needs PyTorch for the peer (bench/torch_python.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target bench_llada >/dev/null
source bench/torch_python.sh

model=build/bench-models/bench-llada-cache
if [[ ! -f $model/model.safetensors ]]; then
  "$python" tools/make_tiny_model.py --out build/bench-models --variant tiny-llada \
    --name bench-llada-cache --layers 6 --d-model 256 --heads 4 --kv-heads 4 --mlp-hidden 704 \
    --vocab 8192 --max-seq-len 2048 --logit-std 12 >/dev/null
fi
results=build/cache-results.jsonl
: > "$results"
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $threads threads"
for prompt_len in 256 1024; do
  prompt=$(seq -s, 100 $((99 + prompt_len)))
  for cache in none prefix dual; do
    args=(--model "$model" --threads "$threads" --generate --prompt-ids "$prompt" --gen-length 256
      --steps 256 --block-length 32 --remasking threshold --confidence-threshold 0.9
      --cache "$cache" --repeat 1)
    ./build/bench/bench_llada "${args[@]}" | tee -a "$results"
    "$python" bench/torch_reference.py "${args[@]}" | tee -a "$results"
  done
done

"$python" - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
ours = {(r["prompt_len"], r["cache"]): r for r in rows if r["peer"] == "sculpt-cpu"}
torch = {(r["prompt_len"], r["cache"]): r for r in rows if r["peer"] == "torch"}
print(f"\n{'prompt':>6} {'cache':<7}{'steps':>6}{'sculpt tok/s':>14}{'torch tok/s':>13}"
      f"{'vs torch':>10}{'vs sculpt none':>16}  same tokens as torch")
for key in sorted(ours):
    r, t = ours[key], torch[key]
    same = sum(a == b for a, b in zip(r["token_ids"], t["token_ids"]))
    none = ours[(key[0], "none")]
    print(f"{key[0]:>6} {key[1]:<7}{r['steps_run']:>6}{r['tokens_per_s']:>14.1f}"
          f"{t['tokens_per_s']:>13.1f}{r['tokens_per_s'] / t['tokens_per_s']:>9.2f}x"
          f"{r['tokens_per_s'] / none['tokens_per_s']:>15.2f}x  {same}/{len(t['token_ids'])}")
PY
