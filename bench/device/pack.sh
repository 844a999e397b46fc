#!/usr/bin/env bash
# Builds the gpu tests, the backend op-parity harness and the device benchmark HERE (no GPU needed) and packs them into
# .device-pack/sculpt-device-pack.tar.xz with every shared library they load except the NVIDIA
# driver and cuBLAS, the dynamic loader included (xz keeps the pack and the tree under the 64 MiB
# a device call carries): the GPU machine has the driver and CUDA but none of our Debian build dependencies, so
# the device's minutes go to running, not to installing and compiling. bench/device/run.sh runs
# the pack there. Usage: bench/device/pack.sh  (BUILD_DIR=build by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD_DIR:-build}
pack=$build/device-pack

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSCULPT_FATAL_WARNINGS=ON -DSCULPT_CUDA=ON \
  -DSCULPT_BUILD_TESTS=ON -DSCULPT_BUILD_BENCH=ON >/dev/null
# The CUDA kernels' own tests, and the backend op-parity harness (run there for its cuda_* cases).
gpu_tests="$(ls tests/gpu/*_test.cc | xargs -n1 basename | sed 's/\.cc$//') backend_ops_test"
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $gpu_tests device_bench

rm -rf "$pack"
mkdir -p "$pack/bin" "$pack/lib"
binaries=()
for name in $gpu_tests; do binaries+=("$build/tests/$name"); done
binaries+=("$build/bench/device_bench")
for binary in "${binaries[@]}"; do
  strip -o "$pack/bin/$(basename "$binary")" "$binary"
  # Every resolved library but the driver's (libcuda/libnvidia-*), which must be the machine's,
  # and cuBLAS (600 MB; the machine's CUDA 13 has it; run.sh finds it).
  ldd "$binary" | awk '/=> \// {print $3} $1 ~ /ld-linux/ {print $1}' |
    grep -Ev '/lib(cuda|nvidia-|cublas)[^/]*$' | while read -r library; do
      [ -e "$pack/lib/$(basename "$library")" ] || cp -L "$library" "$pack/lib/"
    done
done
strip --strip-unneeded "$pack"/lib/*.so* 2>/dev/null || true
mkdir -p .device-pack
tar -C "$pack" -cJf .device-pack/sculpt-device-pack.tar.xz .
echo ".device-pack/sculpt-device-pack.tar.xz: $(du -h .device-pack/sculpt-device-pack.tar.xz | cut -f1)" \
  "($(ls "$pack/bin" | wc -l) programs, $(ls "$pack/lib" | wc -l) libraries)"
