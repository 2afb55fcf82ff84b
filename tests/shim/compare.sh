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
# GREENRING_BACKEND from the environment is passed on (CI runs the suite again
# with GREENRING_BACKEND=epoll). When PRELOAD was built with ASan (the
# GREENRING_SANITIZE build), the sanitizer runtimes must come first in
# LD_PRELOAD of an unsanitized program, so they are prepended and ASan's
# link-order check and leak checker (which would report the host program's
# own never-freed memory) are turned off for the shim run.
set -uo pipefail

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
launcher=$1 preload=$2 workers=$3
shift 4

run_timeout=${SHIM_RUN_TIMEOUT:-55}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shimcmp.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT

backend_args=()
[[ -n ${GREENRING_BACKEND:-} ]] && backend_args=(--backend "$GREENRING_BACKEND")

# Sanitized preload library: put libasan/libubsan ahead of it.
san_env=()
if readelf -d "$preload" 2>/dev/null | grep -q 'NEEDED.*libasan'; then
  cc=${CC:-cc}
  san_pre=
  for lib in libasan.so libubsan.so; do
    p=$("$cc" -print-file-name=$lib 2>/dev/null)
    [[ -n $p && -e $p ]] && san_pre+="$(readlink -f "$p"):"
  done
  san_env=(ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=0:detect_stack_use_after_return=0:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
           SHIM_SAN_PRELOAD="$san_pre")
fi

run_shim() {
  if ((${#san_env[@]})); then
    # What the launcher does, by hand: it would put the shim alone in
    # LD_PRELOAD, and the sanitizer runtimes must precede it.
    timeout -k 5 "$run_timeout" env "${san_env[@]}" GREENRING_WORKERS="$workers" \
      ${GREENRING_BACKEND:+GREENRING_BACKEND="$GREENRING_BACKEND"} LD_PRELOAD="${san_pre}${preload}" "$@"
  else
    GREENRING_WORKERS="$workers" timeout -k 5 "$run_timeout" \
      "$launcher" run --workers "$workers" "${backend_args[@]}" -- "$@"
  fi
}

show() {  # label file
  echo "---- $1 ----"
  cat -- "$2"
}

status=0
if ((!shim_only)); then
  timeout -k 5 "$run_timeout" "$@" >"$tmp/plain.out" 2>"$tmp/plain.err"
  plain_rc=$?
fi
run_shim "$@" >"$tmp/shim.out" 2>"$tmp/shim.err"
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
((shim_rc == 124 || shim_rc == 137)) && echo "FAIL: the shim run hit its ${run_timeout}s timeout (hang?)"

if ((status)); then
  echo "command: GREENRING_WORKERS=$workers ${GREENRING_BACKEND:+GREENRING_BACKEND=$GREENRING_BACKEND }$launcher run --workers $workers ${backend_args[*]} -- $*"
  ((shim_only)) || { show "plain stdout" "$tmp/plain.out"; show "plain stderr" "$tmp/plain.err"; }
  show "shim stdout" "$tmp/shim.out"
  show "shim stderr" "$tmp/shim.err"
  exit 1
fi
echo "same stdout ($(wc -c <"$tmp/shim.out") bytes) and exit status ($shim_rc)$( ((shim_only)) && echo ' [shim only]')"
exit 0
