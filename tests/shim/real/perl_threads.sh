#!/usr/bin/env bash
# perl_threads.sh: Debian's perl running perl_threads.pl (ithreads,
# IO::Socket::INET, Thread::Queue, select) plain and under the shim on 1 and
# 4 workers; stdout and exit status must match. Perl 5.36 keeps each
# interpreter in a thread-local variable (PL_current_context, which the shim
# keeps per green thread); before that, 4 workers crashed in about 1 run in 8,
# so the 4-worker run is repeated.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need perl
perl -Mthreads -e1 2>/dev/null || { echo "SKIP: this perl has no ithreads"; exit 77; }
pl=(perl "$here/perl_threads.pl")
"${pl[@]}" >plain.out 2>plain.err; rc_plain=$?
grep -q 'lines verified 400 of 400' plain.out || fail "the plain run itself is wrong: $(cat plain.out)"
for w in 1 4 4 4 4 4; do
  shim_run $w "${pl[@]}" >shim$w.out 2>shim$w.err; rc=$?
  same_rc "perl perl_threads.pl on $w worker(s)" $rc_plain $rc
  same "perl perl_threads.pl on $w worker(s)" plain.out shim$w.out
  ((failures)) && break
done
show_logs plain.err shim1.err shim4.err
finish
