#!/usr/bin/env bash
# Drives sculpt.v1.TextDiffusion/Complete with h2load (Debian: nghttp2-client) over cleartext
# HTTP/2, as a gRPC client would: POST, content-type application/grpc, te: trailers.
# Usage: run.sh [HOST:PORT] [REQUESTS] [CLIENTS]
# h2load counts HTTP status 200 as success; a gRPC error also answers 200 with grpc-status in
# the trailers, so check the server's log (one "request finished" line per request) or use ghz
# for per-status counts.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target=${1:-127.0.0.1:50051}
requests=${2:-256}
clients=${3:-16}
frame=$(mktemp)
trap 'rm -f "$frame"' EXIT
"$here/make_frame.sh" "$here/complete.txtpb" "$frame" >&2
h2load -n "$requests" -c "$clients" -m 1 -d "$frame" \
  -H 'content-type: application/grpc' -H 'te: trailers' \
  "http://$target/sculpt.v1.TextDiffusion/Complete"
