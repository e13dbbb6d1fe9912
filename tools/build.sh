#!/usr/bin/env bash
# Configures and builds fkv (Release, Vulkan on, CUDA when nvcc is found) into ${FKV_BUILD:-build}.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FKV_BUILD:-$root/build}"
jobs="${FKV_JOBS:-$(nproc)}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j "$jobs"
