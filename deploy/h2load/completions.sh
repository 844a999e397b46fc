#!/usr/bin/env bash
# Drives POST /v1/completions with h2load over HTTP/1.1 (the gateway speaks HTTP/1.1; h2load's
# --h1 mode). Usage: completions.sh [HOST:PORT] [REQUESTS] [CLIENTS]
set -euo pipefail
target=${1:-127.0.0.1:8080}
requests=${2:-256}
clients=${3:-16}
body=$(mktemp)
trap 'rm -f "$body"' EXIT
printf '%s' '{"prompt": "def fibonacci(n):", "max_tokens": 64, "steps": 32, "block_length": 32}' \
  > "$body"
h2load --h1 -n "$requests" -c "$clients" -d "$body" -H 'content-type: application/json' \
  "http://$target/v1/completions"
