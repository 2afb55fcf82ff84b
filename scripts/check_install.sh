#!/usr/bin/env bash
# Checks that an installed greenring is consumable:
#   1. builds build/ (if needed) and installs it into a temporary prefix,
#   2. builds and runs a consumer via find_package(greenring CONFIG REQUIRED),
#   3. builds and runs the same program via pkg-config.
# Exits non-zero on any failure. KEEP_TMP=1 keeps the temporary directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/greenring-install.XXXXXX")
cleanup() {
  if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "check_install: kept $tmp"; else rm -rf -- "$tmp"; fi
}
trap cleanup EXIT
prefix=$tmp/prefix
consumer=$tmp/consumer

echo "== check_install: build and install into $prefix"
cmake -S . -B build -G Ninja
cmake --build build -j"${GREENRING_JOBS:-2}"
cmake --install build --prefix "$prefix"

mkdir -p "$consumer"
cat >"$consumer/main.cpp" <<'CPP'
#include <greenring/greenring.hpp>

int main() {
  // greenring::tls pulls libssl/libcrypto onto the link line (private
  // dependencies that a static libgreenring passes on).
  greenring::tls::context tls_ctx(greenring::tls::role::client);
  if (!tls_ctx.native_handle()) return 1;
  int got = greenring::run([] { return 42; });
  return got == 42 ? 0 : 1;
}
CPP
cat >"$consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(greenring_consumer LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
find_package(greenring CONFIG REQUIRED)
add_executable(app main.cpp)
target_link_libraries(app greenring::greenring)
CMAKE

echo "== check_install: CMake consumer (find_package)"
cmake -S "$consumer" -B "$consumer/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
cmake --build "$consumer/build"
"$consumer/build/app"
echo "cmake consumer: ok"

echo "== check_install: pkg-config consumer"
pc=$(find "$prefix" -name greenring.pc -print -quit)
if [[ -z $pc ]]; then
  echo "check_install: greenring.pc was not installed under $prefix" >&2
  exit 1
fi
pcdir=$(dirname "$pc")
libdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=libdir greenring)
read -ra pcflags <<<"$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs greenring)"
echo "pkg-config --cflags --libs greenring: ${pcflags[*]}"
g++ -std=c++20 -O2 "$consumer/main.cpp" -o "$consumer/app-pc" "${pcflags[@]}" -Wl,-rpath,"$libdir"
"$consumer/app-pc"
echo "pkg-config consumer: ok"

echo "== check_install: passed"
