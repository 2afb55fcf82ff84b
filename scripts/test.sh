#!/usr/bin/env bash
# Configures, builds and runs the greenring test suite.
#
#   scripts/test.sh                      build/ (default build type), run ctest
#   scripts/test.sh --sanitize           build-asan/ with ASan + UBSan
#   scripts/test.sh [--sanitize] -- ARGS extra ARGS go to ctest (e.g. -R sync -V)
#
# Environment: GREENRING_BACKEND=epoll (and the other GREENRING_* variables) are
# passed through to the tests unchanged. GREENRING_JOBS overrides -j2.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

sanitize=0
ctest_args=()
while (($#)); do
  case $1 in
    --sanitize) sanitize=1; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "test.sh: unknown argument '$1' (ctest arguments go after --)" >&2; exit 2 ;;
  esac
done

jobs=${GREENRING_JOBS:-2}
if ((sanitize)); then
  dir=build-asan
  san=ON
  # detect_stack_use_after_return=0: Debian's Boost.Context is the fcontext
  # build, which has no sanitizer stack-switch annotations (that needs the
  # ucontext build with BOOST_USE_ASAN). ASan's fake stacks would then be
  # attributed to the wrong stack after a green-thread switch and produce bogus
  # reports, so use-after-return detection stays off.
  # User-supplied options come last and therefore win.
  export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=0:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
else
  dir=build
  san=OFF
fi

# A build dir configured with another generator cannot be reused with -G Ninja.
if [[ -f $dir/CMakeCache.txt ]] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "$dir/CMakeCache.txt"; then
  echo "test.sh: $dir/ was configured with another generator; removing it"
  rm -rf -- "$dir"
fi

cmake -S . -B "$dir" -G Ninja -DGREENRING_SANITIZE="$san"
cmake --build "$dir" -j"$jobs"
# --no-tests=error: a suite that registered nothing must not pass.
ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 600 --no-tests=error "${ctest_args[@]}"
