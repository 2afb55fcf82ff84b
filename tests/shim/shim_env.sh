# shim_env.sh: sourced by compare.sh and the real-program tests; one place that
# knows how to start a command under the shim.
#
#   shim_init LAUNCHER PRELOAD    once
#   shim_run WORKERS CMD...       runs CMD under the shim (with `timeout`)
#   shim_exec WORKERS CMD...      the same, replacing the calling (sub)shell,
#                                 so `( shim_exec ... ) &` gives a pid that a
#                                 kill reaches (timeout passes it on)
#
# Normally this is the launcher (`greenring run --workers N [--backend B] --`),
# exactly as a user would run it. GREENRING_BACKEND from the environment is
# passed on (CI runs the suite a second time with GREENRING_BACKEND=epoll).
#
# The GREENRING_SANITIZE build makes the preload library itself ASan+UBSan
# instrumented. Loaded into an unsanitized host program, the sanitizer
# runtimes must come first in LD_PRELOAD, which the launcher (shim alone in
# LD_PRELOAD) does not do; so for that build the launcher's job is done by
# hand here: LD_PRELOAD=libasan:libubsan:shim plus GREENRING_WORKERS/BACKEND.
# ASan's link-order check is off (the host program does not link libasan) and
# so is its leak checker, which would report the host programs' own memory
# that they never free at exit (python, curl).

shim_launcher= shim_preload= shim_san_preload= shim_run_timeout=${SHIM_RUN_TIMEOUT:-55}

shim_init() {
  shim_launcher=$1 shim_preload=$2
  if readelf -d "$shim_preload" 2>/dev/null | grep -q 'NEEDED.*libasan'; then
    local cc=${CC:-cc} lib p
    for lib in libasan.so libubsan.so; do
      p=$("$cc" -print-file-name=$lib 2>/dev/null)
      [[ -n $p && -e $p ]] && shim_san_preload+="$(readlink -f "$p"):"
    done
  fi
}

shim_sanitized() { [[ -n $shim_san_preload ]]; }

shim_run() { (shim_exec "$@"); }

shim_exec() {
  local workers=$1
  shift
  if shim_sanitized; then
    exec timeout -k 5 "$shim_run_timeout" env \
      ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=0:detect_stack_use_after_return=0:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
      GREENRING_WORKERS="$workers" ${GREENRING_BACKEND:+GREENRING_BACKEND="$GREENRING_BACKEND"} \
      LD_PRELOAD="${shim_san_preload}${shim_preload}" "$@"
  else
    local backend=()
    [[ -n ${GREENRING_BACKEND:-} ]] && backend=(--backend "$GREENRING_BACKEND")
    exec timeout -k 5 "$shim_run_timeout" "$shim_launcher" run --workers "$workers" "${backend[@]}" -- "$@"
  fi
}

# The command line a person would type to reproduce a shim run.
shim_describe() {
  local workers=$1
  shift
  if shim_sanitized; then
    echo "GREENRING_WORKERS=$workers ${GREENRING_BACKEND:+GREENRING_BACKEND=$GREENRING_BACKEND }LD_PRELOAD=${shim_san_preload}${shim_preload} $*"
  else
    echo "$shim_launcher run --workers $workers ${GREENRING_BACKEND:+--backend $GREENRING_BACKEND }-- $*"
  fi
}
