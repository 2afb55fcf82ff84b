#!/usr/bin/env bash
# sqlite3.sh: the sqlite3 shell (file I/O with pread/pwrite/fsync, POSIX
# advisory locks, a journal) builds a 100,000-row database from a recursive
# CTE, aggregates and indexes it, plain and under the shim, each in its own
# database file; the query output and the final database dump's checksum must
# match.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need sqlite3 md5sum
cat >script.sql <<'SQL'
PRAGMA journal_mode=DELETE;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO t SELECT i, (i * 7919) % 1000, printf('row-%06d', i) FROM n;
COMMIT;
CREATE INDEX t_k ON t(k);
SELECT count(*), sum(k), min(v), max(v) FROM t;
SELECT k, count(*) FROM t WHERE k < 5 GROUP BY k ORDER BY k;
UPDATE t SET v = upper(v) WHERE id % 1000 = 0;
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
SELECT count(*), count(DISTINCT k), sum(length(v)) FROM t;
PRAGMA integrity_check;
SQL
run() {  # DB: query output on stdout, then the dump's checksum
  sqlite3 -batch "$1" <script.sql && sqlite3 -batch "$1" .dump | md5sum
}
run plain.db >plain.out 2>plain.err; rc_plain=$?
shim_run 2 bash -c "$(declare -f run); run shim.db" >shim.out 2>shim.err; rc_shim=$?
grep -qx ok plain.out || fail "the plain run itself is wrong: $(cat plain.out)"
same_rc "sqlite3" $rc_plain $rc_shim
same "sqlite3 output and dump checksum" plain.out shim.out
show_logs plain.err shim.err
finish
