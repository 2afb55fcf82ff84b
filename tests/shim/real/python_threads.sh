#!/usr/bin/env bash
# python_threads.sh: Debian's python3 running py_threads.py (threading +
# socket + queue) plain and under the shim on 1 and 4 workers; stdout and
# exit status must match.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need /usr/bin/python3
py=(/usr/bin/python3 "$here/py_threads.py")
"${py[@]}" >plain.out 2>plain.err; rc_plain=$?
grep -q 'lines verified 1280 of 1280' plain.out || fail "the plain run itself is wrong: $(cat plain.out)"
for w in 1 4; do
  shim_run $w "${py[@]}" >shim$w.out 2>shim$w.err; rc=$?
  same_rc "python3 py_threads.py on $w worker(s)" $rc_plain $rc
  same "python3 py_threads.py on $w worker(s)" plain.out shim$w.out
done
show_logs plain.err shim1.err shim4.err
finish
