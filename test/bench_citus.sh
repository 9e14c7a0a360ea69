#!/usr/bin/env bash
#
# test/bench_citus.sh: the same incetl runs into distributed and local tables
#
# Usage (as root, from anywhere):
#   make bench-citus                   default N = 100,000 source rows
#   make bench-citus BENCH_N=1000000
#   bash test/bench_citus.sh [N]
#   BENCH_CASES=citus bash test/bench.sh [N]   (the same)
#
# Environment:
#   BENCH_REPS=3        repetitions per case (medians are printed)
#   BENCH_CITUS_CASES=  only these cases (comma-separated): ts1, ts1s32,
#                       hashfirst, hash1 (default: all four)
#   BENCH_INSTALL=0     do not build and install incetl (e.g. with PG_CONFIG
#                       pointing at a relocated copy installed by hand); the
#                       default installs it, taking test/run_all.sh's lock
#   BENCH_KEEP=1        leave the three data directories in .bench-citus/
#   PG_CONFIG           which PostgreSQL (its pkglibdir must hold citus.so)
#
# What it does (issue 16): starts a Citus cluster of a coordinator and two
# workers on this machine (unix sockets in .bench-citus, citus.local_hostname
# = that directory, as t/100_citus.pl does; fsync and synchronous_commit on,
# autovacuum off), generates app.users (N rows, as test/bench.sh) and a
# distributed copy app.dusers (distributed by id), and times each case on
# local tables and on Citus tables in the same run on the same data:
#
#   ts1        a 'timestamp' run after 1% of app.users was updated: into a
#              local target vs into a distributed target (the same source)
#   hashfirst  the first 'hash' run (pipeline created, target empty): local
#              source and target vs distributed source and colocated target
#   hash1      a 'hash' run after 1% of each source was updated (the same
#              keys): local vs distributed
#
# Each timed statement is a CALL incetl.run in a fresh session, after
# VACUUM ANALYZE of the tables involved and a CHECKPOINT on all three nodes;
# local and Citus alternate which goes first.  The counts of every run are
# checked (rows_extracted), and after each case both targets must equal
# their sources.  Prints one line per case: median seconds local and Citus,
# and Citus / local.  Skips (exit 0), saying so, when Citus is not installed.

set -euo pipefail

N=${1:-100000}
REPS=${BENCH_REPS:-3}
CASES=${BENCH_CITUS_CASES:-ts1,ts1s32,hashfirst,hash1}
PG_CONFIG=${PG_CONFIG:-pg_config}

if ! [[ $N =~ ^[0-9]+$ ]] || (( N < 1000 )); then
	echo "usage: $0 [N]   (N >= 1000 source rows, default 100000)" >&2
	exit 2
fi
if (( REPS < 1 )); then
	echo "BENCH_REPS must be at least 1" >&2
	exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "$0: run as root (it installs the extension and starts clusters as postgres)" >&2
	exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/.bench-citus
PGBIN=$("$PG_CONFIG" --bindir)
PKGLIB=$("$PG_CONFIG" --pkglibdir)

say() { echo "bench-citus: $*" >&2; }
want() { [[ ",$CASES," == *",$1,"* ]]; }

if [[ ! -f $PKGLIB/citus.so ]]; then
	say "Citus is not installed ($PKGLIB/citus.so is missing): the Citus benchmark is skipped"
	say "(build it with ../shared/vendor/build-citus.sh, or point PG_CONFIG at a PostgreSQL that has it)"
	exit 0
fi

mkdir -p "$BENCH"
if [[ ${BENCH_INSTALL:-1} != 0 ]]; then
	# one at a time with the test suites and test/bench.sh (the same lock)
	exec 9>/tmp/incetl-run.lock
	say "waiting for other test or benchmark runs on this machine"
	flock 9
	say "building and installing incetl (log: .bench-citus/build.log)"
	if ! make -C "$ROOT" install PG_CONFIG="$PG_CONFIG" >"$BENCH/build.log" 2>&1; then
		tail -30 "$BENCH/build.log" >&2
		echo "bench-citus: make install failed" >&2
		exit 1
	fi
fi

# ---------------------------------------------------------------- cluster

as_pg() { runuser -u postgres -- "$@"; }
NODES=(coord w1 w2)
declare -A PORTS

stop_all() {
	local n
	for n in "${NODES[@]}"; do
		if [[ -f $BENCH/$n/postmaster.pid ]]; then
			as_pg "$PGBIN/pg_ctl" -D "$BENCH/$n" -m fast -w stop >/dev/null 2>&1 || true
		fi
	done
}

cleanup() {
	stop_all
	if [[ -z ${BENCH_KEEP:-} ]]; then
		local n
		for n in "${NODES[@]}"; do rm -rf "${BENCH:?}/$n"; done
	fi
}

stop_all
for n in "${NODES[@]}"; do rm -rf "${BENCH:?}/$n"; done
rm -f "$BENCH"/.s.PGSQL.*
chown postgres: "$BENCH"
trap cleanup EXIT

# three ports nobody listens on
next=55510
for n in "${NODES[@]}"; do
	for p in $(seq "$next" 55599); do
		if [[ -z $(ss -Hltn "sport = :$p" 2>/dev/null) && ! -e /tmp/.s.PGSQL.$p &&
			! -e /var/run/postgresql/.s.PGSQL.$p ]]; then
			PORTS[$n]=$p
			next=$((p + 1))
			break
		fi
	done
	[[ -n ${PORTS[$n]:-} ]] || { echo "bench-citus: no free port" >&2; exit 1; }
done

for n in "${NODES[@]}"; do
	as_pg "$PGBIN/initdb" -D "$BENCH/$n" -U postgres -A trust -E UTF8 --locale=C --no-sync \
		>"$BENCH/initdb-$n.log" 2>&1
	cat >>"$BENCH/$n/postgresql.conf" <<EOF

# test/bench_citus.sh
port = ${PORTS[$n]}
listen_addresses = ''
unix_socket_directories = '$BENCH'
shared_preload_libraries = 'citus'
citus.local_hostname = '$BENCH'
citus.shard_count = 4
citus.shard_replication_factor = 1
shared_buffers = 256MB
max_connections = 80
wal_level = logical
max_wal_size = 4GB
checkpoint_timeout = 30min
synchronous_commit = on
fsync = on
full_page_writes = on
autovacuum = off
log_line_prefix = '%m [%p] '
EOF
	# 9>&-: the servers must not hold the lock's descriptor
	as_pg "$PGBIN/pg_ctl" -D "$BENCH/$n" -l "$BENCH/$n.log" -w start >/dev/null 9>&-
done

# psql_n <node> ...; psql_c ...: on the coordinator
psql_n() {
	local n=$1
	shift
	"$PGBIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$BENCH" -p "${PORTS[$n]}" -U postgres \
		-d postgres "$@"
}
psql_c() { psql_n coord "$@"; }

for n in "${NODES[@]}"; do psql_n "$n" -c 'CREATE EXTENSION citus'; done
psql_c -c "SELECT citus_set_coordinator_host('$BENCH', ${PORTS[coord]})" >/dev/null
psql_c -c "SELECT citus_add_node('$BENCH', ${PORTS[w1]})" >/dev/null
psql_c -c "SELECT citus_add_node('$BENCH', ${PORTS[w2]})" >/dev/null
psql_c -c 'CREATE EXTENSION incetl CASCADE'

# ---------------------------------------------------------------- helpers

#
# measure <sql>: VACUUM ANALYZE (done by the caller), CHECKPOINT on every
# node, then <sql> in a fresh session, timed there.  Sets M_SECS.
#
measure() {
	local out n
	for n in "${NODES[@]}"; do psql_n "$n" -c 'CHECKPOINT'; done
	out=$(psql_c <<EOF
SELECT clock_timestamp() AS bench_t0 \gset
$1
SELECT 'SECS ' || extract(epoch FROM clock_timestamp() - :'bench_t0'::timestamptz);
EOF
)
	M_SECS=$(awk '$1 == "SECS" { print $2 }' <<<"$out")
	if [[ -z $M_SECS ]]; then
		echo "bench-citus: could not measure: $out" >&2
		exit 1
	fi
}

median() {
	printf '%s\n' "$@" | sort -g |
		awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# last_run <pipeline>: extracted inserted updated deleted status
last_run() {
	psql_c -F ' ' -c "SELECT rows_extracted, rows_inserted, rows_updated, rows_deleted, status
		FROM incetl.run_log WHERE pipeline = '$1' ORDER BY run_id DESC LIMIT 1"
}

# expect_run <pipeline> <extracted inserted updated deleted>
expect_run() {
	local got
	got=$(last_run "$1")
	if [[ $got != "$2 succeeded" ]]; then
		echo "bench-citus: last run of $1: $got, expected $2 succeeded" >&2
		exit 1
	fi
}

# a digest of a table's rows that Citus computes on the shards
digest() {
	psql_c -c "SELECT count(*) || '/' || coalesce(sum(hashtext(concat_ws('|', id, name, email,
		score, updated_at))::bigint), 0) FROM $1"
}

check_same() {
	local want got
	want=$(digest "$1")
	got=$(digest "$2")
	if [[ $got != "$want" ]]; then
		echo "bench-citus: $2 differs from $1 ($got vs $want)" >&2
		exit 1
	fi
}

R_CASE=()
R_ROWS=()
R_LOC=()
R_CIT=()

#
# run_pair <local sql> <citus sql> <rep> <tables to VACUUM ANALYZE>: measure
# both, alternating which goes first; appends to L_S and C_S.
#
run_pair() {
	local loc=$1 cit=$2 rep=$3 tables=$4
	psql_c -c "VACUUM ANALYZE $tables"
	if (( rep % 2 == 1 )); then
		measure "$loc"; L_S+=("$M_SECS")
		measure "$cit"; C_S+=("$M_SECS")
	else
		measure "$cit"; C_S+=("$M_SECS")
		measure "$loc"; L_S+=("$M_SECS")
	fi
	say "    rep $rep: local ${L_S[-1]} s, Citus ${C_S[-1]} s"
}

end_case() {
	R_CASE+=("$1")
	R_ROWS+=("$2")
	R_LOC+=("$(median "${L_S[@]}")")
	R_CIT+=("$(median "${C_S[@]}")")
}

# the columns of app.users, for the targets
COLS="id bigint PRIMARY KEY, name text, email text, score numeric(12,2), updated_at timestamptz NOT NULL"

# ---------------------------------------------------------------- data

say "generating app.users and its distributed copy app.dusers ($N rows)"
psql_c >/dev/null <<EOF
CREATE SCHEMA app;
CREATE SCHEMA dw;
CREATE TABLE app.users ($COLS);
INSERT INTO app.users SELECT i, 'user ' || i, 'user' || i || '@example.com',
	round((random() * 100000)::numeric, 2), now() - interval '30 days' + i * interval '1 ms'
	FROM generate_series(1, $N) AS i;
CREATE INDEX ON app.users (updated_at, id);
CREATE TABLE app.dusers (LIKE app.users INCLUDING ALL);
SELECT create_distributed_table('app.dusers', 'id');
INSERT INTO app.dusers SELECT * FROM app.users;
VACUUM ANALYZE app.users;
VACUUM ANALYZE app.dusers;
EOF

{
	echo "incetl on Citus: the same runs into local and distributed tables"
	echo "  date:       $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "  commit:     $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 'incetl--*.sql' 2>/dev/null || echo ' (with uncommitted changes in src/)')"
	echo "  PostgreSQL: $(psql_c -c 'SHOW server_version'), Citus $(psql_c -c "SELECT extversion FROM pg_extension WHERE extname = 'citus'")"
	echo "  cluster:    a coordinator and 2 workers on this machine (unix sockets), 4 shards per table;"
	echo "              fsync on, synchronous_commit on, autovacuum off"
	echo "  machine:    $(nproc) cores, load at start:$(cut -d' ' -f1-3 /proc/loadavg | sed 's/^/ /')"
	echo "  N:          $N source rows, $REPS repetitions per case (medians), each run in a fresh session"
	echo "              after VACUUM ANALYZE and a CHECKPOINT on every node"
	echo
} >"$BENCH/header.txt"
cat "$BENCH/header.txt" >&2

ONE=$((N / 100))

# ---------------------------------------------------------------- ts1

# ts1_case <target> <distribute> <id offset> <label>: a 1% timestamp run
# into dw.ts_loc and into dw.<target>, distributed by <distribute> (SQL)
ts1_case() {
	local tgt=$1 distribute=$2 off=$3 label=$4
	psql_c >/dev/null <<EOF
CREATE TABLE IF NOT EXISTS dw.ts_loc ($COLS);
CREATE TABLE dw.$tgt ($COLS);
$distribute;
SELECT incetl.create_pipeline('ts_loc', 'app.users', 'dw.ts_loc', watermark_column => 'updated_at')
 WHERE NOT EXISTS (SELECT 1 FROM incetl.pipelines WHERE name = 'ts_loc');
SELECT incetl.create_pipeline('$tgt', 'app.users', 'dw.$tgt', watermark_column => 'updated_at');
CALL incetl.run('ts_loc');
CALL incetl.run('$tgt');
EOF
	L_S=()
	C_S=()
	for rep in $(seq 1 "$REPS"); do
		psql_c >/dev/null -c "UPDATE app.users SET score = score + 1, updated_at = now() WHERE id % 100 = $((rep + off))"
		sleep 1.2    # past incetl.late_commit_margin
		run_pair "CALL incetl.run('ts_loc');" "CALL incetl.run('$tgt');" "$rep" \
			"app.users, dw.ts_loc, dw.$tgt"
		expect_run ts_loc "$ONE 0 $ONE 0"
		expect_run "$tgt" "$ONE 0 $ONE 0"
	done
	check_same app.users dw.ts_loc
	check_same app.users "dw.$tgt"
	end_case "$label" "$ONE"
}

if want ts1; then
	say "case: timestamp, 1% into a local vs a distributed target"
	ts1_case ts_dist "SELECT create_distributed_table('dw.ts_dist', 'id')" 0 \
		"timestamp, 1% into a distributed target"
fi

# the same into a target of 32 shards (Citus's default shard_count): a
# batch's rows reach the shards through the pipeline's stage, over one
# connection per worker, not one per shard
if want ts1s32; then
	say "case: timestamp, 1% into a local vs a 32-shard distributed target"
	ts1_case ts_d32 "SELECT create_distributed_table('dw.ts_d32', 'id', shard_count => 32, colocate_with => 'none')" 50 \
		"timestamp, 1% into 32 shards"
fi

# ---------------------------------------------------------------- hash

if want hashfirst || want hash1; then
	psql_c >/dev/null <<EOF
CREATE TABLE dw.h_loc ($COLS);
CREATE TABLE dw.h_dist ($COLS);
SELECT create_distributed_table('dw.h_dist', 'id', colocate_with => 'app.dusers');
EOF
fi

# (re)create both hash pipelines on empty targets
fresh_hash_pipelines() {
	psql_c <<EOF
SELECT incetl.drop_pipeline(name) FROM incetl.pipelines WHERE name IN ('h_loc', 'h_dist');
TRUNCATE dw.h_loc;
TRUNCATE dw.h_dist;
SELECT incetl.create_pipeline('h_loc', 'app.users', 'dw.h_loc', strategy => 'hash');
SELECT incetl.create_pipeline('h_dist', 'app.dusers', 'dw.h_dist', strategy => 'hash');
EOF
}

if want hashfirst; then
	say "case: hash, first run of local vs distributed tables"
	L_S=()
	C_S=()
	for rep in $(seq 1 "$REPS"); do
		fresh_hash_pipelines >/dev/null
		run_pair "CALL incetl.run('h_loc');" "CALL incetl.run('h_dist');" "$rep" \
			"app.users, app.dusers, dw.h_loc, dw.h_dist"
		expect_run h_loc "$N $N 0 0"
		expect_run h_dist "$N $N 0 0"
	done
	check_same app.users dw.h_loc
	check_same app.dusers dw.h_dist
	end_case "hash, first run" "$N"
fi

if want hash1; then
	say "case: hash, 1% changed, local vs distributed tables"
	if ! want hashfirst; then
		fresh_hash_pipelines >/dev/null
		psql_c >/dev/null -c "CALL incetl.run('h_loc')" -c "CALL incetl.run('h_dist')"
	fi
	L_S=()
	C_S=()
	for rep in $(seq 1 "$REPS"); do
		for t in app.users app.dusers; do
			psql_c >/dev/null -c "UPDATE $t SET score = score + 1, email = 'x' || email WHERE id % 100 = 50 + $rep"
		done
		run_pair "CALL incetl.run('h_loc');" "CALL incetl.run('h_dist');" "$rep" \
			"app.users, app.dusers, dw.h_loc, dw.h_dist"
		expect_run h_loc "$ONE 0 $ONE 0"
		expect_run h_dist "$ONE 0 $ONE 0"
	done
	check_same app.users dw.h_loc
	check_same app.dusers dw.h_dist
	end_case "hash, 1% changed" "$ONE"
fi

# ---------------------------------------------------------------- report

{
	cat "$BENCH/header.txt"
	printf '%-42s %8s %9s %9s %7s\n' case rows "local s" "Citus s" "ratio"
	for i in "${!R_CASE[@]}"; do
		awk -v c="${R_CASE[$i]}" -v n="${R_ROWS[$i]}" -v l="${R_LOC[$i]}" -v d="${R_CIT[$i]}" 'BEGIN {
			printf "%-42s %8d %9.3f %9.3f %7.2f\n", c, n, l, d, (l > 0 ? d / l : 0) }'
	done
	echo "(median seconds of CALL incetl.run; ratio = Citus / local; issue 16 asks <= 2 for the 1% runs)"
	echo "total time: $((SECONDS / 60)) min $((SECONDS % 60)) s"
}
