#!/usr/bin/env bash
# Steps and wall time per remasking policy for the same gen_length, on the tiny model and the
# 12-layer bench model, each measured in the same run as LLaDA's low_confidence (the peer the
# ratios are taken against). See bench/RESULTS.md.
#
#   bench/run_policy_bench.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target bench_llada >/dev/null
python=${SCULPT_TEST_PYTHON:-.venv/bin/python3}
bench_model=build/bench-models/bench-llada-768
PYTHON="$python" bench/make_bench_model.sh
results=build/policy-results.jsonl
: > "$results"
run() {  # run MODEL REPEAT GEN_LENGTH BLOCK_LENGTH
  for policy in low_confidence random threshold factor origin maskgit_plus topk_margin entropy; do
    ./build/bench/bench_llada --model "$1" --threads "$threads" --generate --repeat "$2" \
      --prompt-len 32 --gen-length "$3" --steps "$3" --block-length "$4" --remasking "$policy" \
      | tee -a "$results"
  done
}
run tests/models/tiny-llada 5 128 32
run "$bench_model" 1 64 32
"$python" - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"\n{'model':<18}{'policy':<16}{'steps':>6}{'time s':>9}{'vs low_confidence':>19}")
base = {}
for r in rows:
    name = r["model"].rstrip("/").split("/")[-1]
    if r["remasking"] == "low_confidence":
        base[name] = r["median_s"]
    print(f"{name:<18}{r['remasking']:<16}{r['steps_run']:>6}{r['median_s']:>9.3f}"
          f"{base[name] / r['median_s']:>18.2f}x")
PY
