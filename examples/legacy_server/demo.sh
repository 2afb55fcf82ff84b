#!/usr/bin/env bash
# examples/legacy_server/demo.sh: the shim's demo. The same unmodified pthread
# server binary, run plain (one OS thread per connection) and then under
# `greenring run --workers 1` (one green thread per connection on one worker),
# each loaded by wrk with 1,000 concurrent keep-alive connections for a few
# seconds: first "hello" requests, then the latency case where every request
# waits 50 ms on a backend. It prints req/s, p99 latency, peak RSS and thread
# counts side by side. Built binaries are expected in $BUILD_DIR (default
# build; scripts/demo.sh builds them). The measuring is bench/run_macro.sh's,
# restricted to the plain and shim rows; its full table is in bench/README.md.
#
#   examples/legacy_server/demo.sh            (DEMO_SECONDS, default 5, per row)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
BUILD_DIR=${BUILD_DIR:-build}
out=$(mktemp)
trap 'rm -f -- "$out"' EXIT

echo "legacy_server demo: plain OS threads vs the same binary under greenring's shim (1 worker)"
if [[ ! -x $BUILD_DIR/shim/greenring || ! -f $BUILD_DIR/shim/libgreenring_preload.so ]]; then
  echo "NOTE: the shim is not built in $BUILD_DIR/shim: only the plain rows can be shown."
fi
BUILD_DIR=$BUILD_DIR DURATION=${DEMO_SECONDS:-5} WARMUP=1 RUNS=1 HELLO_CONNS=1000 LAT_CONNS=1000 \
  SERVERS="plain shim" RESULTS="$out" bench/run_macro.sh >/dev/null
# The table and ratios, without the header comments and the targets (those
# are for the full benchmark's 5,000-connection and ceiling rows).
sed -n '/^case /,/^targets/p' "$out" | sed '$d'
cat <<'TEXT'

What happened: plain, legacy_server starts one OS thread per connection, so
1,000 connections are 1,000 kernel threads, each with a kernel stack (16 KiB,
the "kmem" column), page tables and a scheduler entity, and every blocking
read or backend round trip sleeps and wakes through the kernel scheduler.
Under `greenring run`, the same binary's pthread_create makes a green thread
instead: its blocking read, write and accept suspend only that green thread
while one worker's io_uring ring waits for all of them, so the process runs
one OS thread ("threads" column) whatever the connection count and switches
between connections in user space (compare "cpu us/req"). User-space RSS
stays about the same: this server keeps 16 KiB of buffers on each thread's
stack, and a green stack holds them just as an OS thread's does. No line of
the server changed and it was not recompiled. One worker is one CPU at most,
while 1,000 OS threads take both vCPUs (and a bigger share of a shared
machine), so compare req/s with that in mind. Numbers on a shared 2-vCPU
machine are noisy; bench/run_macro.sh measures the full matrix (50/1,000
hello connections, 100/1,000/5,000 latency connections, the io_uring ceiling
and a 10-thread pool) with medians over repeated runs (bench/README.md).
TEXT
