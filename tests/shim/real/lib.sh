# lib.sh: sourced by the real-program tests (real/*.sh). Each test gets the
# launcher and preload paths as $1 $2, runs a Debian program plain and under
# the shim, and compares what they produced.
#
# Exit codes: 0 pass, 1 fail, 77 skip (a program is not installed; CI installs
# them all through scripts/setup.sh, so a skip there is a setup bug).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../shim_env.sh"
shim_init "$1" "$2"

work=$(mktemp -d "${TMPDIR:-/tmp}/shimreal.XXXXXX")
bg_pids=()
cleanup() {
  local p
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf -- "$work"
}
trap cleanup EXIT
cd "$work" || exit 1

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

need() {
  local c
  for c in "$@"; do
    if ! command -v "$c" >/dev/null 2>&1; then
      echo "SKIP: $c is not installed (scripts/setup.sh installs it)"
      exit 77
    fi
  done
}

# The GREENRING_SANITIZE build preloads the ASan/UBSan runtimes with the shim
# (shim_env.sh). Some programs cannot take a preloaded ASan runtime at all —
# Debian's curl deadlocks in setlocale() with only libasan preloaded, no shim
# involved — so such a test first runs this control: CMD with just the
# sanitizer runtimes, which must exit with WANT_RC within 10 s; it returns 1
# (after saying why) when it does not, and the caller skips that part.
san_control() {  # WANT_RC CMD...
  shim_sanitized || return 0
  local want=$1 rc
  shift
  timeout -k 2 10 env ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=0" LD_PRELOAD="$shim_san_preload" \
    "$@" >/dev/null 2>&1
  rc=$?
  if [[ $rc != "$want" ]]; then
    echo "SKIP: sanitizer build: '$*' with only the ASan/UBSan runtimes preloaded (no shim) exits $rc, want $want;"
    echo "      this program cannot host a preloaded ASan runtime, so the sanitized shim cannot be tested in it"
    return 1
  fi
}

# A TCP port nobody listens on right now (the kernel's choice).
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to 20 s for a listener on 127.0.0.1:$1.
wait_port() {
  local i
  for ((i = 0; i < 200; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "nothing listens on port $1 after 20 s"
  return 1
}

# Starts a background command (plain, or under the shim with WORKERS); its
# pid is recorded for cleanup.
start_bg() {
  "$@" &
  bg_pids+=($!)
}
start_bg_shim() {
  (shim_exec "$@") &
  bg_pids+=($!)
}

# same LABEL FILE_A FILE_B: byte-identical or a failure with a diff.
same() {
  if cmp -s -- "$2" "$3"; then
    echo "ok: $1 ($(wc -c <"$2") bytes identical)"
  else
    fail "$1: $2 and $3 differ"
    diff -u -- "$2" "$3" | head -40
  fi
}

# same_rc LABEL RC_PLAIN RC_SHIM
same_rc() {
  if [[ $2 == "$3" ]]; then
    echo "ok: $1 exit status $2 both"
  else
    fail "$1: exit status plain $2, under the shim $3"
  fi
}

# Shows a log file (stderr of a run) when something failed.
show_logs() {
  local f
  ((failures)) || return 0
  for f in "$@"; do
    [[ -s $f ]] && { echo "---- $f ----"; tail -40 -- "$f"; }
  done
}

finish() {
  if ((failures)); then
    echo "$failures failure(s)"
    exit 1
  fi
  echo "all checks passed"
  exit 0
}
