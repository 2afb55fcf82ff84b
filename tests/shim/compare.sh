#!/usr/bin/env bash
# compare.sh: runs one ordinary program plain and under the greenring shim and
# demands the same stdout, byte for byte, and the same exit status. This is the
# shim's contract stated as a test: an unmodified program cannot tell it is
# running on green threads. stderr is not compared (the programs put only
# diagnostics there) but both are shown on failure.
#
#   compare.sh [--shim-only] [--expect LINE]... LAUNCHER PRELOAD WORKERS -- PROG [ARGS...]
#
#   --shim-only    skip the plain run; the shim run must exit 0 (used where the
#                  plain run proves nothing, e.g. 1,000 sleeping OS threads)
#   --expect LINE  the shim run's stdout must contain LINE as a whole line
#
# How the shim is started (launcher; the sanitizer build) is in shim_env.sh.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/shim_env.sh"

shim_only=0
expects=()
while (($#)); do
  case $1 in
    --shim-only) shim_only=1; shift ;;
    --expect) expects+=("$2"); shift 2 ;;
    *) break ;;
  esac
done
if (($# < 5)) || [[ $4 != -- ]]; then
  echo "usage: compare.sh [--shim-only] [--expect LINE]... LAUNCHER PRELOAD WORKERS -- PROG [ARGS...]" >&2
  exit 2
fi
shim_init "$1" "$2"
workers=$3
shift 4

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shimcmp.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

show() {  # label file
  echo "---- $1 ----"
  cat -- "$2"
}

status=0
if ((!shim_only)); then
  timeout -k 5 "$shim_run_timeout" "$@" >"$tmp/plain.out" 2>"$tmp/plain.err"
  plain_rc=$?
fi
shim_run "$workers" "$@" >"$tmp/shim.out" 2>"$tmp/shim.err"
shim_rc=$?

if ((shim_only)); then
  if ((shim_rc != 0)); then
    echo "FAIL: under the shim exit status $shim_rc, want 0"
    status=1
  fi
else
  if ((plain_rc != 0)); then
    echo "FAIL: the plain run itself failed (exit $plain_rc): the program or the machine is at fault, not the shim"
    status=1
  fi
  if ((plain_rc != shim_rc)); then
    echo "FAIL: exit status plain $plain_rc, under the shim $shim_rc"
    status=1
  fi
  if ! cmp -s "$tmp/plain.out" "$tmp/shim.out"; then
    echo "FAIL: stdout differs (plain vs shim):"
    diff -u --label plain --label shim "$tmp/plain.out" "$tmp/shim.out" | head -60
    status=1
  fi
fi
for line in "${expects[@]}"; do
  if ! grep -qxF -- "$line" "$tmp/shim.out"; then
    echo "FAIL: under the shim, stdout lacks the line '$line'"
    status=1
  fi
done
((shim_rc == 124 || shim_rc == 137)) && echo "FAIL: the shim run hit its ${shim_run_timeout}s timeout (hang?)"

if ((status)); then
  echo "command: $(shim_describe "$workers" "$@")"
  ((shim_only)) || { show "plain stdout" "$tmp/plain.out"; show "plain stderr" "$tmp/plain.err"; }
  show "shim stdout" "$tmp/shim.out"
  show "shim stderr" "$tmp/shim.err"
  exit 1
fi
echo "same stdout ($(wc -c <"$tmp/shim.out") bytes) and exit status ($shim_rc)$( ((shim_only)) && echo ' [shim only]')"
exit 0
