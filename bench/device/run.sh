#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: runs the pack made by bench/device/pack.sh (the gpu tests, then
# bench/device/device_bench.cc) and writes logs and JSON to $OUT (bench/device/out by default).
# Stays within 8 minutes on one H200: each program has a time limit. Usage, from the repository
# root: bench/device/run.sh   (with .device-pack/ present)
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-bench/device/out}
mkdir -p "$out"
if [ ! -f .device-pack/sculpt-device-pack.tar.xz ]; then
  echo "no .device-pack/sculpt-device-pack.tar.xz: run bench/device/pack.sh first" >&2
  exit 2
fi
pack=/tmp/sculpt-device-pack
rm -rf "$pack" && mkdir -p "$pack" && tar -C "$pack" -xJf .device-pack/sculpt-device-pack.tar.xz
# The packed loader and libraries, then this machine's cuBLAS 13 (CUDA toolkit or the nvidia-cublas
# wheel) and driver.
library_path=$pack/lib
cublas=$(find /usr/local/cuda*/ /usr/lib /opt /usr/local/lib* -name 'libcublasLt.so.13*' 2>/dev/null | head -n 1)
[ -n "$cublas" ] && library_path=$library_path:$(dirname "$cublas")
echo "cuBLAS: ${cublas:-not found}"
for driver_dir in /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/cuda/lib64 \
  /usr/local/cuda/compat; do
  [ -d "$driver_dir" ] && library_path=$library_path:$driver_dir
done
packed() { "$pack/lib/ld-linux-x86-64.so.2" --library-path "$library_path" "$@"; }
export SCULPT_SOURCE_DIR=$PWD

(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true) | tee "$out/gpu.txt"
failed=0
for test in "$pack"/bin/*_test; do
  name=$(basename "$test")
  filter=""
  # Its CPU configurations ran in CI; here only the CUDA ones against the CPU reference.
  [ "$name" = backend_ops_test ] && filter="--gtest_filter=*cuda*"
  echo "== $name"
  timeout 240 bash -c "$(declare -f packed); pack=$pack library_path=$library_path packed $test $filter \
    --gtest_output=json:$out/$name.json" >"$out/$name.log" 2>&1
  status=$?
  grep -E '^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|Failure|agreement' "$out/$name.log" | tail -n 20
  [ $status -eq 0 ] || { echo "$name: exit $status"; failed=1; }
done
echo "== device_bench"
timeout 240 bash -c "$(declare -f packed); pack=$pack library_path=$library_path packed \
  $pack/bin/device_bench --json-out $out/device_bench.json" 2>&1 | tee "$out/device_bench.txt"
exit $failed
