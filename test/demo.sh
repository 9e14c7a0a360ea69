#!/bin/bash
# test/demo.sh -- incetl end to end on a million rows
#
#   bash test/demo.sh
#
# Run as root on a machine with postgresql-15 installed: installs the build
# dependencies that are missing, builds and installs incetl, creates a
# throwaway cluster in ./.demo/data on a free port (run by the postgres OS
# user, wal_level=logical), loads app.users with 1,000,000 rows, copies them
# to dw.users with a first run, changes 1% of the source and shows that the
# second run moves only those rows.  The cluster is stopped at the end; its
# data directory stays for a look (the last lines say how to start it), and
# the next run of this script starts from scratch.

set -euo pipefail

cd "$(dirname "$0")/.."
SRC=$(pwd)
. test/lib.sh

export LC_ALL=C.UTF-8 LANG=C.UTF-8
unset PGHOST PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS

DEMO=${INCETL_DEMO_DIR:-$SRC/.demo}
DATA=$DEMO/data
LOG=$DEMO/server.log
T0=$SECONDS

incetl_install_deps build

# --- build and install -----------------------------------------------------
BUILD=$(mktemp -d "${TMPDIR:-/tmp}/incetl-demo-build.XXXXXX")
chmod 755 "$BUILD"
trap 'rm -rf "$BUILD"' EXIT
incetl_snapshot "$SRC" "$BUILD"
incetl_build_install "$BUILD"
rm -rf "$BUILD"

# --- a throwaway cluster ---------------------------------------------------
stop_cluster() {
	if [ -f "$DATA/postmaster.pid" ]; then
		incetl_as_user "$PG_BINDIR/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null || true
	fi
}

# a clean start: stop what a previous run may have left running
stop_cluster
rm -rf "$DATA" "$LOG"
mkdir -p "$DEMO"
if [ "$(id -u)" -eq 0 ]; then
	chown "$INCETL_TEST_USER": "$DEMO"
fi
if ! incetl_as_user test -w "$DEMO"; then
	incetl_err "$INCETL_TEST_USER cannot write to $DEMO (a parent directory closed to it?); set INCETL_DEMO_DIR"
	exit 1
fi

# a port nobody listens on, over TCP or a socket in the usual places
port_free() {
	local p=$1
	[ ! -e "/var/run/postgresql/.s.PGSQL.$p" ] && [ ! -e "/tmp/.s.PGSQL.$p" ] &&
		! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
}
PORT=${INCETL_DEMO_PORT:-}
if [ -z "$PORT" ]; then
	for p in $(seq 54320 54420); do
		if port_free "$p"; then PORT=$p; break; fi
	done
	[ -n "$PORT" ] || { incetl_err "no free port in 54320-54420"; exit 1; }
fi

# the socket goes into the demo directory unless that path is too long for one
SOCK=$DEMO
if [ ${#SOCK} -gt 80 ]; then SOCK=/tmp; fi

incetl_log "initdb $DATA"
incetl_as_user "$PG_BINDIR/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 \
	--locale=C.UTF-8 >/dev/null
cat >>"$DATA/postgresql.conf" <<EOF

# incetl demo
port = $PORT
listen_addresses = 'localhost'
unix_socket_directories = '$SOCK'
wal_level = logical
shared_buffers = 256MB
max_wal_size = 4GB
EOF

trap 'stop_cluster' EXIT
incetl_log "starting the cluster on port $PORT"
incetl_as_user "$PG_BINDIR/pg_ctl" -D "$DATA" -l "$LOG" -w start >/dev/null

psql_demo() {
	incetl_as_user "$PG_BINDIR/psql" -X -h "$SOCK" -p "$PORT" -U postgres -d postgres \
		-v ON_ERROR_STOP=1 --echo-all "$@"
}

# --- the demo ---------------------------------------------------------------
psql_demo <<'SQL'
\pset footer off
CREATE EXTENSION incetl CASCADE;

CREATE SCHEMA app;
CREATE SCHEMA dw;

-- the source: a million users, last touched over the past month
CREATE TABLE app.users (
	id bigint PRIMARY KEY,
	name text NOT NULL,
	email text NOT NULL,
	score numeric NOT NULL,
	updated_at timestamptz NOT NULL
);
INSERT INTO app.users
SELECT i, 'user ' || i, 'user' || i || '@example.com', round((random() * 1000)::numeric, 2),
	   now() - interval '30 days' + i * interval '2 seconds'
  FROM generate_series(1, 1000000) AS i;
CREATE INDEX ON app.users (updated_at, id);
VACUUM ANALYZE app.users;

-- the target: the same columns, plus three that incetl fills
CREATE TABLE dw.users (
	id bigint PRIMARY KEY,
	name text,
	email text,
	score numeric,
	updated_at timestamptz,
	etl_inserted_at timestamptz,
	etl_updated_at timestamptz,
	etl_run_id bigint
);

SELECT incetl.create_pipeline('users', source => 'app.users', target => 'dw.users',
							  watermark_column => 'updated_at');

-- first run: loads everything, 50,000 rows per committed batch
\timing on
CALL incetl.run('users');
\timing off

-- change 1% of the source
UPDATE app.users SET score = score + 1, updated_at = now() WHERE id % 100 = 0;

-- A run reads only rows stamped before now() - incetl.late_commit_margin
-- (1 s by default), so that a writer that stamped rows with now() and has
-- not committed yet cannot be overtaken.  The rows just updated are
-- stamped with now(): wait just over the margin so the next run sees them.
SELECT pg_sleep(1.1);

-- second run: reads only the 10,000 changed rows
\timing on
CALL incetl.run('users');
\timing off

SELECT run_id, kind, status, batches, rows_extracted, rows_inserted, rows_updated,
	   rows_unchanged, watermark_after, finished_at - started_at AS took
  FROM incetl.run_log ORDER BY run_id;

-- the target equals the source
SELECT (SELECT count(*) FROM dw.users) AS target_rows,
	   (SELECT count(*) FROM (SELECT id, name, email, score, updated_at FROM app.users
							  EXCEPT
							  SELECT id, name, email, score, updated_at FROM dw.users) AS d)
		   AS rows_differing;
SQL

stop_cluster
trap - EXIT
echo
incetl_log "demo done in $((SECONDS - T0))s; the cluster is stopped, its data is in $DATA"
AS=
if [ "$(id -u)" -eq 0 ]; then AS="runuser -u $INCETL_TEST_USER -- "; fi
echo "    start it:  $AS$PG_BINDIR/pg_ctl -D $DATA -l $LOG start"
echo "    connect:   psql -h $SOCK -p $PORT -U postgres postgres"
