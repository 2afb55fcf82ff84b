#!/usr/bin/env bash
# bench/run_micro.sh: builds and runs greenring's micro-benchmarks, each figure
# next to its baseline in the same process run.
#
# Usage: bench/run_micro.sh [extra Google Benchmark flags...]
#   BUILD_DIR  build directory (default: build)
#   REPS       repetitions per benchmark (default: 5); medians are what bench/README.md quotes
#   SKIP_BUILD=1  use the binaries already in $BUILD_DIR
#   MICRO_BINARIES  space-separated subset of the binaries to build and run
#   RESULTS_TAG     output name prefix (default: micro), so a subset run does
#                   not overwrite the day's full run
#   GREENRING_REV  commit to record in the header when the tree is not a git
#                  checkout (e.g. a `git archive` snapshot)
#
# Output (bench/results/, one set per day; a rerun the same day overwrites it):
#   <tag>-<date>.txt               console output of every binary, with a header
#                                  (machine, kernel, commit, load average)
#   <tag>-<date>-<binary>.json     Google Benchmark JSON of each binary
#
# Repetitions are randomly interleaved (--benchmark_enable_random_interleaving)
# so that noise from a shared machine falls on greenring and its baselines alike.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
REPS=${REPS:-5}
read -ra BINARIES <<<"${MICRO_BINARIES:-micro_sched micro_io micro_memory interop_bench tls_bench}"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DGREENRING_BENCH=ON >/dev/null
  cmake --build "$BUILD_DIR" -j2 --target "${BINARIES[@]}"
fi

mkdir -p bench/results
day=$(date +%Y-%m-%d)
tag=${RESULTS_TAG:-micro}
out=bench/results/$tag-$day.txt
{
  echo "# greenring micro-benchmarks, $(date -Is)"
  echo "# command: bench/run_micro.sh $*  (BUILD_DIR=$BUILD_DIR REPS=$REPS MICRO_BINARIES='${BINARIES[*]}' RESULTS_TAG=$tag)"
  if git rev-parse --git-dir >/dev/null 2>&1; then
    echo "# commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- runtime || echo ' (runtime/ has uncommitted changes)')"
  else
    echo "# commit: ${GREENRING_REV:-unknown} (not a git checkout)"
  fi
  echo "# host: $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
  echo "# vm.max_map_count: $(cat /proc/sys/vm/max_map_count)"
  echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out"

for b in "${BINARIES[@]}"; do
  echo "## $b" | tee -a "$out"
  "$BUILD_DIR/bench/$b" \
    --benchmark_repetitions="$REPS" \
    --benchmark_report_aggregates_only=true \
    --benchmark_enable_random_interleaving=true \
    --benchmark_out="bench/results/$tag-$day-$b.json" \
    --benchmark_out_format=json \
    "$@" 2>&1 | tee -a "$out"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
echo "results: $out"
