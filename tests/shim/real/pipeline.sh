#!/usr/bin/env bash
# pipeline.sh: a shell pipeline in which every process runs under the shim
# (bash forks and execs each stage; the preload is inherited): seq | sort |
# gzip | gzip -d | sort | uniq -c | md5sum and a few more coreutils through
# pipes, plus xargs -P fanning out 8 parallel children, and a bash
# coprocess. Output must match the plain run byte for byte.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need bash seq sort gzip uniq md5sum xargs wc tr
cat >pipe.sh <<'SH'
set -o pipefail
seq 1 300000 | sort -r | gzip -c | gzip -dc | sort -n | md5sum
seq 1 200000 | awk '{ print $1 % 97 }' | sort -n | uniq -c | sort -k1,1n -k2,2n | tail -3
seq 1 64 | xargs -P 8 -n 4 sh -c 'for x; do echo $((x * x)); done' sh | sort -n | md5sum
head -c 3000000 /dev/zero | tr '\0' 'a' | gzip -1 | wc -c
coproc SQ { while read -r n; do echo $((n * 2)); done; }
for i in 1 2 3; do echo $i >&"${SQ[1]}"; read -r r <&"${SQ[0]}"; echo "coproc $i -> $r"; done
exec {SQ[1]}>&-
wait
echo "pipeline done"
SH
need awk head
bash pipe.sh >plain.out 2>plain.err; rc_plain=$?
shim_run 2 bash pipe.sh >shim.out 2>shim.err; rc_shim=$?
[[ $(wc -l <plain.out) == 10 && $(tail -1 plain.out) == "pipeline done" ]] || fail "the plain run itself is wrong: $(cat plain.out)"
same_rc "pipeline" $rc_plain $rc_shim
same "pipeline output" plain.out shim.out
show_logs plain.err shim.err
finish
