#!/usr/bin/env bash
# Installs what building and testing Sculpt needs on Debian 12, skipping what is already there:
# the apt packages below and a Python venv (.venv) with requirements-dev.txt.
#   --containers  also podman and buildah, with what they need, to build and run the images of
#                 docker/ without a Docker daemon: tests/container then builds the CPU image
set -euo pipefail
cd "$(dirname "$0")/.."

containers=0
for arg in "$@"; do
  case $arg in
    --containers) containers=1 ;;
    *) echo "usage: scripts/install_deps.sh [--containers]" >&2; exit 2 ;;
  esac
done

packages=(
  build-essential cmake pkg-config git
  libabsl-dev libspdlog-dev nlohmann-json3-dev libdnnl-dev libgtest-dev
  libpcre2-dev libutf8proc-dev clang libclang-rt-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc nghttp2-client
  libboost-dev libcpp-httplib-dev libssl-dev openssl chromium
  python3 python3-venv python3-pip
)
if ((containers)); then
  packages+=(podman buildah runc debootstrap uidmap fuse-overlayfs slirp4netns)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

# The venv is rebuilt only when requirements-dev.txt changes.
stamp=.venv/.requirements-dev.sha256
wanted=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [[ ! -x .venv/bin/python3 || ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
  echo "install_deps: preparing .venv from requirements-dev.txt"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$wanted" > "$stamp"
fi
if ! command -v nvcc >/dev/null 2>&1; then
  echo "install_deps: nvcc not found; building without the CUDA code (SCULPT_CUDA=AUTO)"
fi
