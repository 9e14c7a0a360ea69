--
-- 48_operations: SPEC section 6 (issue 15).  Proves:
--   - max_retained_wal is for 'logical' pipelines only and takes a size
--     above zero; freshness_target must not be negative; '' clears
--     max_retained_wal;
--   - incetl.status keeps its columns and adds fresh, last_success_at,
--     consecutive_failures, needs_resync, progress and eta, in that order;
--   - consecutive_failures counts the failures since the last success, and
--     a success resets it; last_success_at is the start of that success;
--   - freshness: fresh is NULL without a target, true within it, false once
--     the last success started longer ago (its start moved back by hand, no
--     clock involved); guard, run_all and a run record the turn to stale
--     once (state.stale_since) and the turn back;
--   - a run's own estimate of what it reads (run_log.rows_estimated): the
--     keys of a keyed run, the source's size for a first load;
--   - CALL incetl.guard() drops a slot over its pipeline's limit (and only
--     that one), marks the pipeline for a resync, and the next run compares
--     everything, loses nothing and clears the mark; a slot dropped by hand
--     shows needs_resync in status before any run;
--   - attack: a role that owns nothing calls guard(): it enforces only each
--     pipeline's own limit, hears nothing of pipelines it may not manage,
--     runs none of their owners' code, and cannot change their limits.
-- The alerts themselves (NOTIFY incetl_alert) are received and parsed in
-- test/t/095_operations.pl: psql prints the sending backend's PID with
-- each notification, which a regression output cannot hold.
--
-- (terse: the notices' details name slots by database oid and pipeline id)
\set VERBOSITY terse
CREATE SCHEMA t48;
CREATE TABLE t48.src (id integer PRIMARY KEY, v text NOT NULL,
					  updated_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00');
CREATE TABLE t48.tgt (id integer PRIMARY KEY, v text CHECK (v <> 'bad'),
					  updated_at timestamptz);
INSERT INTO t48.src (id, v) SELECT g, 'v' || g FROM generate_series(1, 20) g;
ANALYZE t48.src;

\echo '-- option validation'
SELECT regress.try($$SELECT incetl.create_pipeline('t48_ts', 't48.src', 't48.tgt',
	watermark_column => 'updated_at', max_retained_wal => '1GB')$$);
SELECT regress.try($$SELECT incetl.create_pipeline('t48_l', 't48.src', 't48.tgt',
	strategy => 'logical', max_retained_wal => 'lots')$$);
SELECT regress.try($$SELECT incetl.create_pipeline('t48_l', 't48.src', 't48.tgt',
	strategy => 'logical', max_retained_wal => '0')$$);
SELECT regress.try($$SELECT incetl.create_pipeline('t48_l', 't48.src', 't48.tgt',
	strategy => 'logical', max_retained_wal => '-1MB')$$);
SELECT regress.try($$SELECT incetl.create_pipeline('t48_ts', 't48.src', 't48.tgt',
	watermark_column => 'updated_at', freshness_target => '-1 minute')$$);
SELECT incetl.create_pipeline('t48_ts', 't48.src', 't48.tgt',
	watermark_column => 'updated_at', batch_size => 5, freshness_target => '1 hour') > 0 AS created;
SELECT regress.try($$SELECT incetl.alter_pipeline('t48_ts', max_retained_wal => '1GB')$$);
SELECT regress.try($$SELECT incetl.alter_pipeline('t48_ts', freshness_target => '-1 hour')$$);
SELECT name, max_retained_wal, freshness_target FROM incetl.pipelines WHERE name LIKE 't48%';

\echo '-- the status view: the columns of 0.2, then the operations columns'
SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod)
  FROM pg_attribute a
 WHERE a.attrelid = 'incetl.status'::regclass AND a.attnum > 0
 ORDER BY a.attnum;

-- the operations columns of the pipelines of this file
CREATE FUNCTION t48.ops() RETURNS TABLE (pipeline text, last_status text, fresh boolean,
	has_success boolean, consecutive_failures integer, needs_resync boolean,
	progress numeric, eta interval)
LANGUAGE sql AS $$
	SELECT pipeline, last_status, fresh, last_success_at IS NOT NULL, consecutive_failures,
		   needs_resync, progress, eta
	  FROM incetl.status WHERE pipeline LIKE 't48%' ORDER BY 1
$$;
-- incetl.state's marks
CREATE FUNCTION t48.marks() RETURNS TABLE (pipeline text, needs_resync boolean, stale boolean)
LANGUAGE sql AS $$
	SELECT p.name, s.needs_resync, s.stale_since IS NOT NULL
	  FROM incetl.pipelines p JOIN incetl.state s ON s.pipeline_id = p.id
	 WHERE p.name LIKE 't48%' ORDER BY 1
$$;
SELECT * FROM t48.ops();

\echo '-- a first load estimates its rows from the source statistics'
CALL incetl.run('t48_ts');
SELECT status, rows_extracted, rows_estimated FROM incetl.run_log
 WHERE pipeline = 't48_ts' ORDER BY run_id DESC LIMIT 1;
SELECT * FROM t48.ops();
SELECT last_success_at = (SELECT started_at FROM incetl.run_log WHERE pipeline = 't48_ts'
						   AND status = 'succeeded' ORDER BY run_id DESC LIMIT 1) AS is_its_start
  FROM incetl.status WHERE pipeline = 't48_ts';

\echo '-- consecutive failures: counted, then reset by a success'
-- (CALLed at top level: each failure is committed with its run_log row)
UPDATE t48.src SET v = 'bad', updated_at = '2024-01-02 00:00:00+00' WHERE id = 3;
CALL incetl.run('t48_ts');
CALL incetl.run('t48_ts');
SELECT * FROM t48.ops();
-- a backfill does not count as a success (it does not move the pipeline)
UPDATE t48.src SET v = 'good' WHERE id = 3;
CALL incetl.backfill('t48_ts', '2023-12-01'::timestamptz, '2023-12-02'::timestamptz);
SELECT * FROM t48.ops();
CALL incetl.run('t48_ts');
SELECT * FROM t48.ops();

\echo '-- freshness turns false, is recorded once, and turns back'
-- the last success started two hours ago, as far as the log knows
UPDATE incetl.run_log SET started_at = started_at - interval '2 hours'
 WHERE pipeline = 't48_ts';
SELECT pipeline, fresh FROM incetl.status WHERE pipeline = 't48_ts';
SELECT * FROM t48.marks();
CALL incetl.guard();
SELECT * FROM t48.marks();
CREATE TABLE t48.stale_since AS
SELECT stale_since FROM incetl.state WHERE pipeline_id = (SELECT id FROM incetl.pipelines WHERE name = 't48_ts');
-- checked again, by guard and by run_all (which runs no disabled
-- pipeline but checks them all): still stale, the same turn (no new alert)
CALL incetl.guard();
SELECT incetl.alter_pipeline('t48_ts', enabled => false);
CALL incetl.run_all();
SELECT incetl.alter_pipeline('t48_ts', enabled => true);
SELECT s.stale_since = t.stale_since AS same_turn
  FROM incetl.state s, t48.stale_since t
 WHERE s.pipeline_id = (SELECT id FROM incetl.pipelines WHERE name = 't48_ts');
-- a wider target makes it fresh again; the next check records it
SELECT incetl.alter_pipeline('t48_ts', freshness_target => '3 hours');
SELECT pipeline, fresh FROM incetl.status WHERE pipeline = 't48_ts';
CALL incetl.guard();
SELECT * FROM t48.marks();
-- a failed run checks too: stale again
SELECT incetl.alter_pipeline('t48_ts', freshness_target => '1 hour');
UPDATE t48.src SET v = 'bad', updated_at = '2024-01-03 00:00:00+00' WHERE id = 4;
CALL incetl.run('t48_ts');
SELECT * FROM t48.marks();
-- and a successful run makes it fresh
UPDATE t48.src SET v = 'fine' WHERE id = 4;
CALL incetl.run('t48_ts');
SELECT * FROM t48.marks();
SELECT * FROM t48.ops();
-- no target: fresh is NULL, and nothing is recorded
SELECT incetl.alter_pipeline('t48_ts', freshness_target => '0');
SELECT pipeline, fresh FROM incetl.status WHERE pipeline = 't48_ts';

\echo '-- a keyed run estimates its rows: the keys it found'
CREATE TABLE t48.htgt (LIKE t48.src);
ALTER TABLE t48.htgt ADD PRIMARY KEY (id);
SELECT incetl.create_pipeline('t48_hash', 't48.src', 't48.htgt', strategy => 'hash') > 0 AS created;
CALL incetl.run('t48_hash');
UPDATE t48.src SET v = v || '!' WHERE id <= 7;
CALL incetl.run('t48_hash');
SELECT rows_extracted, rows_updated, rows_estimated FROM incetl.run_log
 WHERE pipeline = 't48_hash' ORDER BY run_id;

\echo '-- guard: a slot over its limit is dropped, the pipeline resyncs'
CREATE ROLE t48_repl REPLICATION;
CREATE ROLE t48_nobody;
GRANT USAGE, CREATE ON SCHEMA t48 TO t48_repl;
GRANT SELECT ON t48.src TO t48_repl;
SET ROLE t48_repl;
CREATE TABLE t48.lsrc (id integer PRIMARY KEY, v text);
CREATE TABLE t48.ltgt (id integer PRIMARY KEY, v text);
CREATE TABLE t48.lsrc2 (id integer PRIMARY KEY, v text);
CREATE TABLE t48.ltgt2 (id integer PRIMARY KEY, v text);
INSERT INTO t48.lsrc SELECT g, 'v' || g FROM generate_series(1, 50) g;
INSERT INTO t48.lsrc2 SELECT g, 'v' || g FROM generate_series(1, 50) g;
-- a pipeline whose owner's code would say so if it ran
CREATE FUNCTION t48.owner_code(integer) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'owner code ran as %', current_user;
	RETURN $1;
END;
$$;
CREATE VIEW t48.vsrc AS SELECT t48.owner_code(id) AS id, v, updated_at FROM t48.src;
CREATE TABLE t48.vtgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
SELECT incetl.create_pipeline('t48_view', 't48.vsrc', 't48.vtgt', key_columns => '{id}',
	watermark_column => 'updated_at', freshness_target => '1 hour') > 0 AS created;
SELECT incetl.create_pipeline('t48_small', 't48.lsrc', 't48.ltgt', strategy => 'logical',
	max_retained_wal => '1kB') > 0 AS created;
SELECT incetl.create_pipeline('t48_big', 't48.lsrc2', 't48.ltgt2', strategy => 'logical',
	max_retained_wal => '1GB') > 0 AS created;
CALL incetl.run('t48_small');
CALL incetl.run('t48_big');
RESET ROLE;
SELECT * FROM t48.ops() WHERE pipeline IN ('t48_small', 't48_big');
-- changes the slots hold: far more than 1kB of WAL
UPDATE t48.lsrc SET v = v || ' changed' WHERE id <= 10;
DELETE FROM t48.lsrc WHERE id > 45;
INSERT INTO t48.lsrc SELECT g, 'new' FROM generate_series(100, 2000) g;
UPDATE t48.lsrc2 SET v = 'changed' WHERE id = 1;
SELECT pipeline, retained_wal_bytes > 1024 AS over_1kb FROM incetl.status
 WHERE pipeline IN ('t48_small', 't48_big') ORDER BY 1;

\echo '-- attack: a role that owns nothing calls guard'
SET ROLE t48_nobody;
-- it may not change another role's limit
SELECT regress.try($$SELECT incetl.alter_pipeline('t48_big', max_retained_wal => '1kB')$$);
-- guard enforces t48_small's own limit, says nothing of pipelines it may
-- not see, runs none of the owner's code (no NOTICE from owner_code)
CALL incetl.guard();
RESET ROLE;
SELECT p.name, r.slot_name IS NOT NULL AS has_slot
  FROM incetl.pipelines p JOIN incetl.state s ON s.pipeline_id = p.id
  LEFT JOIN pg_replication_slots r ON r.slot_name = s.slot_name
 WHERE p.strategy = 'logical' AND p.name LIKE 't48%' ORDER BY 1;
SELECT * FROM t48.marks();
SELECT * FROM t48.ops() WHERE pipeline IN ('t48_small', 't48_big', 't48_view');
-- nothing ran: no new run_log rows, the view pipeline's target is empty
SELECT pipeline, count(*) FROM incetl.run_log
 WHERE pipeline IN ('t48_small', 't48_big', 't48_view') GROUP BY 1 ORDER BY 1;
SELECT count(*) AS view_target_rows FROM t48.vtgt;
-- once marked, guard does nothing more
CALL incetl.guard();

\echo '-- the next run resyncs, loses nothing, clears the mark'
SET ROLE t48_repl;
CALL incetl.run('t48_small');
RESET ROLE;
SELECT status, rows_inserted, rows_updated, rows_deleted FROM incetl.run_log
 WHERE pipeline = 't48_small' ORDER BY run_id DESC LIMIT 1;
SELECT (SELECT count(*) FROM (TABLE t48.lsrc EXCEPT TABLE t48.ltgt) a)
	 + (SELECT count(*) FROM (TABLE t48.ltgt EXCEPT TABLE t48.lsrc) b) AS differing;
SELECT * FROM t48.marks();
SELECT * FROM t48.ops() WHERE pipeline = 't48_small';
-- and incremental again (with a limit that the WAL of the resync itself,
-- still held until the slot passes a running-transactions record, cannot
-- trip)
UPDATE t48.lsrc SET v = 'after' WHERE id = 1;
SET ROLE t48_repl;
SELECT incetl.alter_pipeline('t48_small', max_retained_wal => '1GB');
CALL incetl.run('t48_small');
RESET ROLE;
SELECT status, rows_extracted, rows_updated FROM incetl.run_log
 WHERE pipeline = 't48_small' ORDER BY run_id DESC LIMIT 1;

\echo '-- a slot dropped by hand: status says needs_resync before any run'
SELECT pg_drop_replication_slot(s.slot_name)
  FROM incetl.state s JOIN incetl.pipelines p ON p.id = s.pipeline_id
 WHERE p.name = 't48_big';
SELECT * FROM t48.ops() WHERE pipeline = 't48_big';
SELECT * FROM t48.marks() WHERE pipeline = 't48_big';
-- guard remembers it (and alerts once)
CALL incetl.guard();
SELECT * FROM t48.marks() WHERE pipeline = 't48_big';
SET ROLE t48_repl;
CALL incetl.run('t48_big');
RESET ROLE;
SELECT * FROM t48.marks() WHERE pipeline = 't48_big';
SELECT (SELECT count(*) FROM (TABLE t48.lsrc2 EXCEPT TABLE t48.ltgt2) a)
	 + (SELECT count(*) FROM (TABLE t48.ltgt2 EXCEPT TABLE t48.lsrc2) b) AS differing;

\echo '-- a run checks the limit at its start too'
INSERT INTO t48.lsrc SELECT g, 'more' FROM generate_series(3000, 4000) g;
SET ROLE t48_repl;
SELECT incetl.alter_pipeline('t48_small', max_retained_wal => '1kB');
CALL incetl.run('t48_small');
RESET ROLE;
SELECT * FROM t48.marks() WHERE pipeline = 't48_small';
SELECT (SELECT count(*) FROM (TABLE t48.lsrc EXCEPT TABLE t48.ltgt) a)
	 + (SELECT count(*) FROM (TABLE t48.ltgt EXCEPT TABLE t48.lsrc) b) AS differing;

-- clean up
SELECT incetl.drop_pipeline(name) FROM incetl.pipelines WHERE name LIKE 't48%' ORDER BY id;
DROP SCHEMA t48 CASCADE;
DROP ROLE t48_repl;
DROP ROLE t48_nobody;
