#!/usr/bin/env bash
# Builds the echo example in build/ and runs its bounded built-in demo load,
# which prints what it measured. Extra arguments go to echo_server.
#
#   scripts/demo.sh [ECHO_SERVER_ARGS...]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ -f build/CMakeCache.txt ]] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' build/CMakeCache.txt; then
  echo "demo.sh: build/ was configured with another generator; removing it"
  rm -rf -- build
fi

cmake -S . -B build -G Ninja
cmake --build build -j"${GREENRING_JOBS:-2}" --target echo_server
exec build/examples/echo_server --demo "$@"
