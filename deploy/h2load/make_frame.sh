#!/usr/bin/env bash
# Writes a gRPC request frame for h2load: the 5-byte length prefix (uncompressed flag, 4-byte
# big-endian length) followed by a GenerateRequest encoded by protoc from a text-format file.
# Usage: make_frame.sh [REQUEST.txtpb] [OUT.bin]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
request=${1:-"$root/deploy/h2load/complete.txtpb"}
out=${2:-complete.frame}
body=$(mktemp)
trap 'rm -f "$body"' EXIT
grep -v '^#' "$request" | protoc --encode=sculpt.v1.GenerateRequest -I"$root/proto" \
  "$root/proto/sculpt/v1/text_diffusion.proto" > "$body"
length=$(stat -c %s "$body")
printf '\x00' > "$out"
printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((length >> 24 & 255)) $((length >> 16 & 255)) \
  $((length >> 8 & 255)) $((length & 255)))" >> "$out"
cat "$body" >> "$out"
echo "wrote $out: 5-byte gRPC prefix + $length-byte GenerateRequest"
