#!/usr/bin/env bash
# Concurrency sweep with ghz (https://ghz.sh) against a running `sculpt serve`: the method is
# found through server reflection (no proto file needed). For each concurrency it writes ghz's
# JSON report and fails unless every call ended with status OK.
# Usage: sweep.sh [complete|generate] [HOST:PORT] [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
config="$here/${1:-complete}.json"
target=${2:-127.0.0.1:50051}
out_dir=${3:-ghz-results}
mkdir -p "$out_dir"
call=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["call"])' "$config")
data=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["data"]))' "$config")
for concurrency in 1 4 16 64; do
  report="$out_dir/$(basename "$config" .json)-c$concurrency.json"
  total=$((concurrency * 16))
  # Flags only (not --config), so nothing depends on how ghz merges a config with flags.
  ghz --insecure --call "$call" --data "$data" --timeout 120s --format json \
    --concurrency "$concurrency" --total "$total" --output "$report" "$target"
  python3 - "$report" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
codes = report.get("statusCodeDistribution", {})
line = f"{sys.argv[1]}: {report['count']} calls, {report['rps']:.1f} req/s, codes {codes}"
print(line)
if set(codes) != {"OK"}:
    sys.exit(f"non-OK status codes in {sys.argv[1]}: {codes}")
PY
done
