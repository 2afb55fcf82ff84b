#!/usr/bin/env bash
# scripts/demo.sh: builds what the demo needs in build/ and runs it.
#
#   scripts/demo.sh                  the shim demo: examples/legacy_server (an
#                                    unmodified pthread server) plain and under
#                                    `greenring run`, 1,000 keep-alive clients
#                                    (wrk), req/s, p99 and peak RSS side by side
#   scripts/demo.sh --echo [ARGS...] the linked-API demo: echo_server --demo
#                                    (1,000 green-thread clients, every byte
#                                    verified); ARGS go to echo_server
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ -f build/CMakeCache.txt ]] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' build/CMakeCache.txt; then
  echo "demo.sh: build/ was configured with another generator; removing it"
  rm -rf -- build
fi

cmake -S . -B build -G Ninja >/dev/null
jobs=-j"${GREENRING_JOBS:-2}"

if [[ ${1:-} == --echo ]]; then
  shift
  cmake --build build "$jobs" --target echo_server
  exec build/examples/echo_server --demo "$@"
fi

targets=(legacy_server macro_backend)
# The shim's targets exist once its issue has landed; build them when they do.
known=$(cmake --build build --target help)  # Ninja: "<target>: phony" lines
for t in greenring_preload greenring_launcher; do
  if grep -q "^$t:" <<<"$known"; then targets+=("$t"); fi
done
cmake --build build "$jobs" --target "${targets[@]}"
exec examples/legacy_server/demo.sh
