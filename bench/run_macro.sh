#!/usr/bin/env bash
# bench/run_macro.sh: the macro benchmark. One unmodified pthread server
# (examples/legacy_server) run plain on OS threads, under greenring's
# LD_PRELOAD shim with one worker, and as a thread pool, next to a hand-written
# io_uring server (the ceiling), all loaded by wrk with keep-alive connections
# in the same script run. It builds nothing: it expects the binaries in
# $BUILD_DIR (`cmake --build build -j2 --target macro greenring_preload greenring_launcher`).
#
# Usage: bench/run_macro.sh
#   BUILD_DIR    build directory (default: build)
#   DURATION     seconds measured per row (default: 10); WARMUP seconds of load before it (default: 1)
#   RUNS         times each row is measured, rows interleaved; the table shows per-column medians (default: 1)
#   DELAY_MS     backend answer delay for the latency case (default: 50)
#   HELLO_CONNS  connection counts for the hello case (default: "50 1000")
#   LAT_CONNS    connection counts for the latency case (default: "100 1000 5000")
#   CASES        which cases to run: "hello latency" (default: both)
#   SERVERS      which servers to run: "plain shim ceiling pool10" (default: all four)
#   WORKERS      shim workers (default: 1)
#   WRK_TIMEOUT  wrk --timeout (default: 10s). wrk drops a response slower than
#                this from its latency histogram and counts a timeout instead,
#                so a short timeout would cap p99 exactly where it matters.
#   RESULTS      file the table is appended to (default: bench/results/macro-<date>.txt)
#
# Rows:
#   hello:   legacy_server plain | legacy_server under the shim | uring_http_server (ceiling)
#   latency: legacy_server --backend plain | under the shim | --pool 10 plain;
#            bench/macro/backend answers each backend request after DELAY_MS.
#
# Per row: wrk's req/s and p99 (--latency), socket errors (connect/read/write/timeout)
# and non-2xx answers; the server's CPU time per request = (utime+stime of the
# server process, all threads, /proc/PID/stat) over the measured window ÷ the
# requests wrk completed in it; peak RSS (VmHWM); the peak thread count and
# page-table size (VmPTE) sampled every 0.2 s during the window; CPUs = the
# server's CPU time ÷ the window (how much of the machine it got); runq = the
# time its threads spent runnable but waiting for a CPU ÷ the window (how much
# more it wanted: a 1-thread server starved by other load shows ~1); kernel memory
# = peak threads × 16 KiB kernel stack (THREAD_SIZE on x86-64 and arm64) +
# VmPTE; mem = VmHWM + kernel memory. Socket buffers are not counted (they
# depend on the connections, not the server's threading, and are the same for
# every row at a given connection count). The server's CPU includes what the
# kernel spends on its sockets; wrk and the backend run on the same 2 vCPUs
# and are not counted. Nothing is pinned.
#
# Warm-up: WARMUP seconds of the same load before the window, then a wait until
# the server has closed every warm-up connection (drain()); the window's
# connections are new, so thread-per-connection rows start their threads again
# in it (from glibc's stack cache). The pool row warms up with 10 connections
# (see measure()).
#
# Targets (issue 5, 1 worker) are printed PASS/MISS; they are informational
# and do not change the exit status.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
RUNS=${RUNS:-1}
DELAY_MS=${DELAY_MS:-50}
HELLO_CONNS=${HELLO_CONNS:-"50 1000"}
LAT_CONNS=${LAT_CONNS:-"100 1000 5000"}
CASES=${CASES:-"hello latency"}
SERVERS=${SERVERS:-"plain shim ceiling pool10"}
WORKERS=${WORKERS:-1}
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
KSTACK_KIB=16
day=$(date +%Y-%m-%d)
RESULTS=${RESULTS:-bench/results/macro-$day.txt}

legacy=$BUILD_DIR/examples/legacy_server
ceiling=$BUILD_DIR/bench/uring_http_server
backend=$BUILD_DIR/bench/macro_backend
launcher=$BUILD_DIR/shim/greenring
preload=$BUILD_DIR/shim/libgreenring_preload.so

for b in "$legacy" "$ceiling" "$backend"; do
  [[ -x $b ]] || { echo "run_macro: $b missing; build with: cmake --build $BUILD_DIR -j2 --target macro" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "run_macro: wrk not installed (scripts/setup.sh)" >&2; exit 1; }
shim=1
if [[ ! -x $launcher || ! -f $preload ]]; then
  shim=0
  echo "run_macro: shim not built ($launcher, $preload): shim rows are skipped"
fi

ulimit -n "$(ulimit -Hn)"
clk_tck=$(getconf CLK_TCK)
tmp=$(mktemp -d)
declare -a pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf -- "$tmp"
}
trap cleanup EXIT

# start_proc NAME CMD...: starts CMD with stdout in $tmp/NAME.out, waits for
# "listening on <port>"; sets START_PID and START_PORT.
start_proc() {
  local name=$1
  shift
  : >"$tmp/$name.out"
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  START_PID=$!
  pids+=("$START_PID")
  local i
  for ((i = 0; i < 200; i++)); do
    if grep -q '^listening on ' "$tmp/$name.out"; then
      START_PORT=$(awk '/^listening on /{print $3; exit}' "$tmp/$name.out")
      # The launcher execs, so the PID is the server's; if some launcher forks
      # instead, follow it to its only child.
      if [[ $(readlink "/proc/$START_PID/exe" 2>/dev/null) != *legacy_server* && $* == *legacy_server* ]]; then
        local child
        child=$(pgrep -P "$START_PID" | head -1 || true)
        [[ -n $child ]] && START_PID=$child
      fi
      return 0
    fi
    kill -0 "$START_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "run_macro: $name did not start: $(cat "$tmp/$name.err")" >&2
  return 1
}

stop_proc() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# Nanoseconds the server's live threads have spent runnable but waiting for a
# CPU (/proc/PID/task/*/schedstat, field 2; needs CONFIG_SCHEDSTATS' task
# accounting, on in Debian's kernels). Threads that exit in between are lost,
# which only matters for rows whose threads come and go.
runq_wait_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ w += $2 } END { printf "%.0f", w }'; }

cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }  # fields 14, 15: utime, stime
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# sample PID FILE: peak Threads and VmPTE every 0.2 s until killed.
sample() {
  local pid=$1 out=$2 th=0 pte=0 t p
  while [[ -r /proc/$pid/status ]]; do
    t=$(status_kib "$pid" Threads 2>/dev/null || echo 0)
    p=$(status_kib "$pid" VmPTE 2>/dev/null || echo 0)
    ((${t:-0} > th)) && th=$t
    ((${p:-0} > pte)) && pte=$p
    echo "$th $pte" >"$out.tmp" && mv -f "$out.tmp" "$out"  # never a half-written file for the reader
    sleep 0.2
  done
}

fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# drain PID FDS0: wait (at most 60 s) until the server has closed the warm-up's
# connections, i.e. is back to FDS0 (+4 for fds a runtime opens lazily).
# wrk closes its connections with requests still pending; a server that is
# still answering them (each owes a backend round trip in the latency case)
# would otherwise spend the measured window on the warm-up's leftovers.
drain() {
  local pid=$1 fds0=$2 i
  for ((i = 0; i < 600; i++)); do
    (($(fd_count "$pid") <= fds0 + 4)) && return 0
    sleep 0.1
  done
  echo "run_macro: server $pid still holds $(fd_count "$pid") fds 60 s after the warm-up (had $fds0)" >&2
}

to_ms() {  # wrk latency "12.34ms" / "560.00us" / "1.20s" -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}

declare -A M=()  # "key metric" -> space-separated values over runs

# measure KEY CONNS SERVER_CMD...: one row.
measure() {
  local key=$1 conns=$2
  shift 2
  local threads=1
  ((conns > 1000)) && threads=2
  local extra_pid=
  if [[ $key == latency/* ]]; then
    start_proc backend "$backend" --delay-ms "$DELAY_MS" || return 1
    extra_pid=$START_PID
    local bport=$START_PORT
    set -- "$@" --backend "127.0.0.1:$bport"
  fi
  start_proc server "$@" || { [[ -n $extra_pid ]] && stop_proc "$extra_pid"; return 1; }
  local pid=$START_PID port=$START_PORT url
  url=http://127.0.0.1:$port/
  # The pool serves a connection until the client closes it, and wrk's closed
  # warm-up connections would sit in its queue, each still costing a backend
  # round trip: warm the pool with as many connections as it has threads.
  local warm=$conns
  [[ $key == */pool10/* ]] && warm=10
  local fds0
  fds0=$(fd_count "$pid")
  wrk -t"$threads" -c"$warm" -d"${WARMUP}s" "$url" >/dev/null 2>&1 || true
  drain "$pid" "$fds0"
  local c0 c1
  local w0 w1
  w0=$(runq_wait_ns "$pid")
  c0=$(cpu_ticks "$pid")
  echo "$(status_kib "$pid" Threads) $(status_kib "$pid" VmPTE)" >"$tmp/sample"
  sample "$pid" "$tmp/sample" &
  local spid=$!
  wrk -t"$threads" -c"$conns" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency "$url" >"$tmp/wrk.out" 2>&1 || true
  c1=$(cpu_ticks "$pid")
  w1=$(runq_wait_ns "$pid")
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  local hwm th pte
  hwm=$(status_kib "$pid" VmHWM)
  read -r th pte <"$tmp/sample"
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "run_macro: $key: server died: $(tail -3 "$tmp/server.err")" >&2
  fi
  stop_proc "$pid"
  [[ -n $extra_pid ]] && stop_proc "$extra_pid"

  local rps reqs p99 errs non2xx
  rps=$(awk '/^Requests\/sec:/{print $2}' "$tmp/wrk.out")
  reqs=$(awk '/requests in/{print $1}' "$tmp/wrk.out")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$tmp/wrk.out")")
  errs=$(awk '/Socket errors:/{gsub(",", ""); print $4 + $6 + $8 + $10}' "$tmp/wrk.out")
  non2xx=$(awk '/Non-2xx/{print $NF}' "$tmp/wrk.out")
  errs=$((${errs:-0} + ${non2xx:-0}))
  [[ -n $rps && -n $reqs ]] || { echo "run_macro: $key: wrk failed: $(tail -3 "$tmp/wrk.out")" >&2; return 1; }
  local cpu_us kmem mem
  cpu_us=$(awk -v d="$((c1 - c0))" -v hz="$clk_tck" -v n="$reqs" 'BEGIN { printf "%.2f", (n > 0 ? d / hz * 1e6 / n : 0) }')
  kmem=$(awk -v t="$th" -v p="$pte" -v k="$KSTACK_KIB" 'BEGIN { printf "%.1f", (t * k + p) / 1024 }')
  mem=$(awk -v h="$hwm" -v km="$kmem" 'BEGIN { printf "%.1f", h / 1024 + km }')
  local m v
  local util
  util=$(awk -v d="$((c1 - c0))" -v hz="$clk_tck" -v t="$DURATION" 'BEGIN { printf "%.2f", d / hz / t }')
  local waitq
  waitq=$(awk -v a="$w0" -v b="$w1" -v t="$DURATION" 'BEGIN { w = (b - a) / 1e9 / t; printf "%.2f", (w < 0 ? 0 : w) }')
  for m in rps p99 errs cpu util waitq th hwm kmem mem; do
    [[ $m == p99 && $reqs == 0 ]] && continue  # no completed request: no latency to report
    case $m in
      rps) v=$rps ;; p99) v=$p99 ;; errs) v=$errs ;; cpu) v=$cpu_us ;; util) v=$util ;; waitq) v=$waitq ;; th) v=$th ;;
      hwm) v=$(awk -v h="$hwm" 'BEGIN { printf "%.1f", h / 1024 }') ;; kmem) v=$kmem ;; mem) v=$mem ;;
    esac
    M["$key $m"]+="$v "
  done
  printf '  %-28s run %d: %10s req/s  p99 %8s ms  %7s us/req  threads %5s  mem %7s MiB  errors %s\n' \
    "$key" "$run" "$rps" "$p99" "$cpu_us" "$th" "$mem" "$errs"
}

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR] = $1} END { if (NR == 0) print ""; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
get() { median "${M["$1 $2"]:-}"; }

shim_cmd=("$launcher" run --workers "$WORKERS" --)
rows=()
for c in $CASES; do
  if [[ $c == hello ]]; then
    for n in $HELLO_CONNS; do rows+=("hello/plain/$n" "hello/shim/$n" "hello/ceiling/$n"); done
  elif [[ $c == latency ]]; then
    for n in $LAT_CONNS; do rows+=("latency/plain/$n" "latency/shim/$n" "latency/pool10/$n"); done
  fi
done

echo "run_macro: ${#rows[@]} rows x $RUNS run(s), ${DURATION}s each (+${WARMUP}s warm-up); ulimit -n $(ulimit -n)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((run = 1; run <= RUNS; run++)); do
  for key in "${rows[@]}"; do
    IFS=/ read -r case server conns <<<"$key"
    [[ " $SERVERS " == *" $server "* ]] || continue
    case $server in
      plain | pool10 | shim)
        cmd=("$legacy")
        [[ $server == pool10 ]] && cmd+=(--pool 10)
        if [[ $server == shim ]]; then
          ((shim)) || continue
          cmd=("${shim_cmd[@]}" "$legacy")
        fi
        ;;
      ceiling) cmd=("$ceiling") ;;
    esac
    measure "$key" "$conns" "${cmd[@]}" || echo "  $key run $run: failed" >&2
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
verdict() {  # verdict VALUE OP BOUND
  awk -v v="$1" -v op="$2" -v b="$3" 'BEGIN { if (v == "n/a" || v == "") { print "n/a"; exit }
    ok = (op == "<=" ? v <= b : op == "<" ? v < b : op == ">=" ? v >= b : v > b); print (ok ? "PASS" : "MISS") }'
}

{
  echo
  echo "# greenring macro benchmark (legacy_server), $(date -Is)"
  echo "# command: BUILD_DIR=$BUILD_DIR DURATION=$DURATION WARMUP=$WARMUP RUNS=$RUNS DELAY_MS=$DELAY_MS WORKERS=$WORKERS WRK_TIMEOUT=$WRK_TIMEOUT CASES=\"$CASES\" SERVERS=\"$SERVERS\" bench/run_macro.sh"
  if git rev-parse --git-dir >/dev/null 2>&1; then
    echo "# commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/results' || echo ' (uncommitted changes)')"
  fi
  echo "# host: $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')"
  echo "# load average before: $load_before, after: $load_after"
  ((shim)) || echo "# shim not built: shim rows and their ratios are missing"
  echo "# medians of $RUNS run(s) per column; cpu = server utime+stime per request; kmem = peak threads x ${KSTACK_KIB} KiB + VmPTE;"
  echo "# mem = VmHWM + kmem (socket buffers not counted); errors = wrk socket errors + non-2xx;"
  echo "# CPUs = server CPU time / window; runq = time its threads were runnable but waiting for a CPU / window"
  echo "# (on a shared machine a 1-thread server gets a smaller share than a 1,000-thread one: compare cpu us/req)"
  printf '%-8s %-8s %6s %11s %9s %7s %10s %5s %5s %8s %9s %9s %9s\n' case server conns "req/s" "p99 ms" errors "cpu us/req" CPUs "runq" threads "RSS MiB" "kmem MiB" "mem MiB"
  for key in "${rows[@]}"; do
    IFS=/ read -r case server conns <<<"$key"
    [[ " $SERVERS " == *" $server "* ]] || continue
    if [[ -z $(get "$key" rps) ]]; then
      printf '%-8s %-8s %6s %s\n' "$case" "$server" "$conns" "$([[ $server == shim && $shim == 0 ]] && echo 'shim not built' || echo 'failed')"
      continue
    fi
    printf '%-8s %-8s %6s %11.0f %9s %7s %10s %5s %5s %8s %9s %9s %9s\n' "$case" "$server" "$conns" "$(get "$key" rps)" \
      "$(get "$key" p99)" "$(get "$key" errs)" "$(get "$key" cpu)" "$(get "$key" util)" "$(get "$key" waitq)" "$(get "$key" th)" "$(get "$key" hwm)" \
      "$(get "$key" kmem)" "$(get "$key" mem)"
  done
  echo
  echo "ratios (medians):"
  for n in $HELLO_CONNS; do
    [[ " $CASES " == *" hello "* ]] || break
    echo "  hello $n conns: shim cpu/req / ceiling = $(ratio "$(get hello/shim/"$n" cpu)" "$(get hello/ceiling/"$n" cpu)"),"\
      "shim / plain = $(ratio "$(get hello/shim/"$n" cpu)" "$(get hello/plain/"$n" cpu)");"\
      "req/s shim / plain = $(ratio "$(get hello/shim/"$n" rps)" "$(get hello/plain/"$n" rps)")"
  done
  for n in $LAT_CONNS; do
    [[ " $CASES " == *" latency "* ]] || break
    echo "  latency $n conns: req/s shim / plain = $(ratio "$(get latency/shim/"$n" rps)" "$(get latency/plain/"$n" rps)"),"\
      "shim / pool10 = $(ratio "$(get latency/shim/"$n" rps)" "$(get latency/pool10/"$n" rps)");"\
      "mem shim / plain = $(ratio "$(get latency/shim/"$n" mem)" "$(get latency/plain/"$n" mem)");"\
      "cpu/req shim / plain = $(ratio "$(get latency/shim/"$n" cpu)" "$(get latency/plain/"$n" cpu)")"
  done
  echo
  echo "targets ($WORKERS shim worker(s))$( ((shim)) || echo ': shim not built, so none can be judged'):"
  if [[ " $HELLO_CONNS " == *" 1000 "* && " $CASES " == *" hello "* ]]; then
    r=$(ratio "$(get hello/shim/1000 cpu)" "$(get hello/ceiling/1000 cpu)")
    echo "  hello 1000: shim cpu/req <= 1.4x ceiling's: $r -> $(verdict "$r" '<=' 1.4)"
    r=$(ratio "$(get hello/shim/1000 cpu)" "$(get hello/plain/1000 cpu)")
    echo "  hello 1000: shim cpu/req below plain threads': $r -> $(verdict "$r" '<' 1)"
  fi
  if [[ " $LAT_CONNS " == *" 5000 "* && " $CASES " == *" latency "* ]]; then
    r=$(ratio "$(get latency/shim/5000 rps)" "$(get latency/plain/5000 rps)")
    echo "  latency 5000: shim req/s >= plain threads': $r -> $(verdict "$r" '>=' 1)"
    p=$(get latency/shim/5000 p99)
    echo "  latency 5000: shim p99 < 500 ms: ${p:-n/a} ms -> $(verdict "${p:-n/a}" '<' 500)"
    r=$(ratio "$(get latency/shim/5000 mem)" "$(get latency/plain/5000 mem)")
    echo "  latency 5000: shim mem < 1/4 of plain threads': $r -> $(verdict "$r" '<' 0.25)"
    r=$(ratio "$(get latency/shim/5000 rps)" "$(get latency/pool10/5000 rps)")
    echo "  latency 5000: shim req/s >= 10x pool's: $r -> $(verdict "$r" '>=' 10)"
  fi
} | tee -a "$RESULTS"
echo "results appended to $RESULTS"
