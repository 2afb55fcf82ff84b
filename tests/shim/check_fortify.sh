#!/usr/bin/env bash
# check_fortify.sh: proves the two builds of a shim test program differ where
# it matters: the -O2 -D_FORTIFY_SOURCE=2 build must import each fortified
# entry point named (__read_chk, __recv_chk, __poll_chk, ...) — the shim has
# to interpose those too, or a fortified program bypasses it — and the -O0
# build must import none of them, so the plain variant exercises the plain
# entry points.
#
#   check_fortify.sh FORTIFIED_BINARY PLAIN_BINARY SYMBOL...
set -uo pipefail
fortified=$1 plain=$2
shift 2
imports() { nm -D --undefined-only "$1" | awk '{print $NF}' | sed 's/@.*//'; }
status=0
for sym in "$@"; do
  if ! imports "$fortified" | grep -qx -- "$sym"; then
    echo "FAIL: $fortified does not import $sym"
    status=1
  fi
  if imports "$plain" | grep -qx -- "$sym"; then
    echo "FAIL: $plain imports $sym (the plain build should not be fortified)"
    status=1
  fi
done
((status == 0)) && echo "fortified build imports: $*; plain build imports none of them"
exit $status
