#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds the example C program against it twice: through
# pkg-config (fkv.pc) and through find_package(fkv) (fkv-config.cmake). Then checks that the installed
# library exports nothing but fkv_* symbols.
#   install_test.sh BUILD_DIR SOURCE_DIR C_COMPILER
set -euo pipefail
build=$1 src=$2 cc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name 'libfkv.so' | head -1)")

PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --exists fkv
"$cc" -std=c99 -pedantic -Wall -Werror -o "$tmp/with-pc" "$src/tools/examples/simple_chat.c" \
  $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs fkv)

mkdir -p "$tmp/consumer"
cat >"$tmp/consumer/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.22)
project(consumer C)
find_package(fkv 0.1 REQUIRED)
add_executable(with-cmake "$src/tools/examples/simple_chat.c")
target_link_libraries(with-cmake PRIVATE fkv::fkv)
CMAKE
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$tmp/consumer/build" >/dev/null

others=$(nm -D --defined-only "$libdir/libfkv.so" | awk '{print $3}' | grep -v '^fkv_' || true)
if [ -n "$others" ]; then
  echo "libfkv.so exports symbols outside the C API:" >&2
  echo "$others" | head -20 >&2
  exit 1
fi
echo "install test: pkg-config and find_package builds OK; $(nm -D --defined-only "$libdir/libfkv.so" | grep -c ' fkv_') fkv_ symbols exported"
