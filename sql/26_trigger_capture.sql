--
-- 26_trigger_capture: what the 'trigger' strategy's capture sees besides
-- plain statements on a plain table.
--   - session_replication_role = replica (a logical replication subscriber,
--     a session that skips ordinary triggers): INSERT, UPDATE (a key too),
--     DELETE and TRUNCATE are captured, each change once; 'local' too;
--   - a partitioned source: INSERT, UPDATE, DELETE and TRUNCATE aimed
--     directly at a partition, at a sub-partition and at the parent; a
--     partition created or attached after create_pipeline (rows written to
--     it before any run, rows it brought along) gets its triggers at the
--     next run and its rows reach the target; a partition detached or
--     dropped takes its rows out of the target; a foreign partition is
--     refused; a source that is a partition (from the start, or attached
--     later) is captured when written through its parent;
--   - capture triggers disabled and enabled again (ALTER TABLE ... DISABLE
--     TRIGGER ALL, as pg_restore --disable-triggers does): the next run
--     puts their firing modes back and compares the whole source; one
--     dropped: the next run puts it back and repairs what it missed;
--   - alter_pipeline(hash_algorithm) keeps what the queue holds.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t26;

-- the capture triggers of a pipeline: table, kind, level, firing mode
CREATE FUNCTION t26.triggers(p text)
RETURNS TABLE (rel text, kind text, level text, enabled "char")
LANGUAGE sql AS $$
	SELECT t.tgrelid::regclass::text,
		   substr(t.tgname, length('incetl_capture_' || pl.id || '_') + 1),
		   CASE WHEN (t.tgtype & 1) = 1 THEN 'row' ELSE 'statement' END,
		   t.tgenabled
	  FROM pg_trigger t JOIN incetl.pipelines pl
		ON t.tgname LIKE 'incetl\_capture\_' || pl.id || '\_%'
	 WHERE pl.name = p
	 ORDER BY 1, 2
$$;
-- the queue's entries, by operation
CREATE FUNCTION t26.queued(p text) RETURNS TABLE (op "char", entries bigint)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format('SELECT op, count(*) FROM incetl.queue_%s GROUP BY op ORDER BY op',
								(SELECT id FROM incetl.pipelines WHERE name = p));
END;
$$;

\echo '-- session_replication_role = replica'
CREATE TABLE t26.src (id integer PRIMARY KEY, v text);
CREATE TABLE t26.tgt (id integer PRIMARY KEY, v text);
INSERT INTO t26.src SELECT i, 'v' || i FROM generate_series(1, 6) AS i;
SELECT incetl.create_pipeline('t26_plain', 't26.src', 't26.tgt', strategy => 'trigger') > 0 AS created;
-- statement triggers for origin and local sessions, a row trigger for
-- replica sessions (an apply worker fires no statement trigger), and the
-- TRUNCATE trigger always
SELECT * FROM t26.triggers('t26_plain');
CALL incetl.run('t26_plain');
SET session_replication_role = replica;
INSERT INTO t26.src VALUES (7, 'replica insert'), (8, 'replica insert');
UPDATE t26.src SET v = 'replica update' WHERE id = 1;
UPDATE t26.src SET id = 20 WHERE id = 2;
DELETE FROM t26.src WHERE id = 3;
RESET session_replication_role;
-- each change queued once: 2 inserts, 2 updates, the old key of the update
-- that moved it, 1 delete
SELECT * FROM t26.queued('t26_plain');
CALL incetl.run('t26_plain');
SELECT * FROM regress.last_counts('t26_plain');
SELECT * FROM t26.tgt ORDER BY id;
-- 'local' fires the same triggers as 'origin'
SET session_replication_role = local;
UPDATE t26.src SET v = 'local update' WHERE id = 4;
RESET session_replication_role;
SELECT * FROM t26.queued('t26_plain');
SET session_replication_role = replica;
TRUNCATE t26.src;
INSERT INTO t26.src VALUES (1, 'after replica truncate');
RESET session_replication_role;
SELECT * FROM t26.queued('t26_plain');
CALL incetl.run('t26_plain');
SELECT * FROM regress.last_counts('t26_plain');
SELECT * FROM t26.tgt ORDER BY id;

\echo '-- capture triggers disabled and enabled again'
ALTER TABLE t26.src DISABLE TRIGGER ALL;
INSERT INTO t26.src VALUES (30, 'written while disabled');
UPDATE t26.src SET v = 'changed while disabled' WHERE id = 1;
ALTER TABLE t26.src ENABLE TRIGGER ALL;
-- ENABLE TRIGGER ALL leaves every trigger 'O'
SELECT * FROM t26.triggers('t26_plain');
SELECT * FROM t26.queued('t26_plain');
-- the run notices, puts the modes back and compares the whole source
CALL incetl.run('t26_plain');
SELECT * FROM regress.last_counts('t26_plain');
SELECT * FROM t26.triggers('t26_plain');
SELECT * FROM t26.tgt ORDER BY id;
-- and the next run is incremental again
UPDATE t26.src SET v = 'back to normal' WHERE id = 30;
CALL incetl.run('t26_plain');
SELECT * FROM regress.last_counts('t26_plain');

\echo '-- a capture trigger dropped by the owner of the table'
DO $$
BEGIN
	EXECUTE format('DROP TRIGGER %I ON t26.src',
				   (SELECT 'incetl_capture_' || id || '_delete' FROM incetl.pipelines
					 WHERE name = 't26_plain'));
END
$$;
DELETE FROM t26.src WHERE id = 30;
INSERT INTO t26.src VALUES (31, 'inserted meanwhile');
-- the next run puts it back, queues the keys of the table's rows and
-- compares the target's keys with the source's
CALL incetl.run('t26_plain');
SELECT * FROM regress.last_counts('t26_plain');
SELECT * FROM t26.tgt ORDER BY id;
SELECT count(*) AS delete_trigger FROM t26.triggers('t26_plain') WHERE kind = 'delete';

\echo '-- alter_pipeline(hash_algorithm) keeps the queued changes'
UPDATE t26.src SET v = 'queued before alter' WHERE id = 1;
SELECT incetl.alter_pipeline('t26_plain', hash_algorithm => 'sha256');
SELECT * FROM t26.queued('t26_plain');
CALL incetl.run('t26_plain');
SELECT * FROM regress.last_counts('t26_plain');
SELECT v FROM t26.tgt WHERE id = 1;
SELECT incetl.drop_pipeline('t26_plain');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 't26.src'::regclass;

\echo '-- a partitioned source'
CREATE TABLE t26.ev (region text NOT NULL, id integer NOT NULL, v text,
					 PRIMARY KEY (region, id)) PARTITION BY LIST (region);
CREATE TABLE t26.ev_eu PARTITION OF t26.ev FOR VALUES IN ('eu');
-- a sub-partitioned one
CREATE TABLE t26.ev_us PARTITION OF t26.ev FOR VALUES IN ('us') PARTITION BY RANGE (id);
CREATE TABLE t26.ev_us_low PARTITION OF t26.ev_us FOR VALUES FROM (0) TO (100);
CREATE TABLE t26.ev_us_high PARTITION OF t26.ev_us FOR VALUES FROM (100) TO (1000);
CREATE TABLE t26.evt (region text, id integer, v text, PRIMARY KEY (region, id));
INSERT INTO t26.ev VALUES ('eu', 1, 'a'), ('eu', 2, 'b'), ('us', 1, 'c'), ('us', 150, 'd');
CREATE FUNCTION t26.diff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (SELECT * FROM t26.ev EXCEPT SELECT * FROM t26.evt) a),
		   (SELECT count(*) FROM (SELECT * FROM t26.evt EXCEPT SELECT * FROM t26.ev) b)
$$;
SELECT incetl.create_pipeline('t26_part', 't26.ev', 't26.evt', strategy => 'trigger',
							  batch_size => 3) > 0 AS created;
-- statement triggers on every level, row triggers on the leaves
SELECT * FROM t26.triggers('t26_part');
CALL incetl.run('t26_part');
SELECT * FROM t26.diff();

\echo '-- statements aimed at a partition, a sub-partition, the parent'
INSERT INTO t26.ev_eu VALUES ('eu', 3, 'into the partition');
UPDATE t26.ev_eu SET v = 'updated in the partition' WHERE id = 1;
DELETE FROM t26.ev_eu WHERE id = 2;
INSERT INTO t26.ev_us_high VALUES ('us', 500, 'into the sub-partition');
UPDATE t26.ev_us SET v = 'updated in the sub-partitioned one' WHERE id = 1;
-- a row moved between sub-partitions by an update of the middle level
UPDATE t26.ev_us SET id = 101 WHERE id = 1;
INSERT INTO t26.ev VALUES ('eu', 4, 'into the parent');
SELECT * FROM t26.queued('t26_part');
CALL incetl.run('t26_part');
SELECT * FROM regress.last_counts('t26_part');
SELECT * FROM t26.diff();

\echo '-- TRUNCATE of one partition'
TRUNCATE t26.ev_us_low;
INSERT INTO t26.ev_us_low VALUES ('us', 5, 'after truncate');
TRUNCATE t26.ev_us_high;
SELECT * FROM t26.queued('t26_part');
CALL incetl.run('t26_part');
SELECT * FROM regress.last_counts('t26_part');
SELECT * FROM t26.diff();
SELECT * FROM t26.evt ORDER BY 1, 2;

\echo '-- a partition created after create_pipeline, written to directly'
CREATE TABLE t26.ev_asia PARTITION OF t26.ev FOR VALUES IN ('asia');
INSERT INTO t26.ev_asia VALUES ('asia', 1, 'before its triggers'), ('asia', 2, 'x');
UPDATE t26.ev_asia SET v = 'updated before its triggers' WHERE id = 2;
-- no trigger yet: nothing queued
SELECT * FROM t26.queued('t26_part');
CALL incetl.run('t26_part');
SELECT * FROM regress.last_counts('t26_part');
SELECT * FROM t26.diff();
SELECT * FROM t26.triggers('t26_part') WHERE rel = 't26.ev_asia';
-- from now on its statements are captured
DELETE FROM t26.ev_asia WHERE id = 1;
SELECT * FROM t26.queued('t26_part');
CALL incetl.run('t26_part');
SELECT * FROM t26.diff();

\echo '-- a table attached with rows of its own'
CREATE TABLE t26.ev_af (region text NOT NULL, id integer NOT NULL, v text);
INSERT INTO t26.ev_af VALUES ('af', 1, 'brought along'), ('af', 2, 'brought along');
ALTER TABLE t26.ev ATTACH PARTITION t26.ev_af FOR VALUES IN ('af');
CALL incetl.run('t26_part');
SELECT * FROM regress.last_counts('t26_part');
SELECT * FROM t26.diff();

\echo '-- a partition detached, then one dropped: their rows leave the target'
ALTER TABLE t26.ev DETACH PARTITION t26.ev_af;
CALL incetl.run('t26_part');
SELECT * FROM regress.last_counts('t26_part');
SELECT * FROM t26.diff();
-- the detached table keeps no capture trigger, and writes to it are not queued
SELECT count(*) AS detached_triggers FROM pg_trigger WHERE tgrelid = 't26.ev_af'::regclass;
INSERT INTO t26.ev_af VALUES ('af', 3, 'not in the source');
SELECT * FROM t26.queued('t26_part');
SELECT count(*) AS asia_in_target FROM t26.evt WHERE region = 'asia';
DROP TABLE t26.ev_asia;
INSERT INTO t26.ev VALUES ('eu', 10, 'with the drop');
CALL incetl.run('t26_part');
SELECT * FROM regress.last_counts('t26_part');
SELECT * FROM t26.diff();
-- a run with nothing to do
CALL incetl.run('t26_part');
SELECT * FROM regress.last_counts('t26_part');
SELECT * FROM t26.queued('t26_part');

\echo '-- drop_pipeline removes the triggers of every partition'
SELECT incetl.drop_pipeline('t26_part');
SELECT count(*) AS triggers_left FROM pg_trigger t
 WHERE t.tgname LIKE 'incetl\_capture\_%'
   AND t.tgrelid IN (SELECT relid FROM pg_partition_tree('t26.ev'));

\echo '-- a source that is a partition, written through its parent'
CREATE TABLE t26.pp (id integer NOT NULL, v text) PARTITION BY RANGE (id);
CREATE TABLE t26.pp_1 PARTITION OF t26.pp FOR VALUES FROM (0) TO (100);
CREATE TABLE t26.pp_2 PARTITION OF t26.pp FOR VALUES FROM (100) TO (200);
ALTER TABLE t26.pp_1 ADD PRIMARY KEY (id);
CREATE TABLE t26.ppt (id integer PRIMARY KEY, v text);
INSERT INTO t26.pp VALUES (1, 'a'), (2, 'b'), (150, 'other partition');
SELECT incetl.create_pipeline('t26_pp', 't26.pp_1', 't26.ppt', strategy => 'trigger') > 0 AS created;
-- row triggers that fire always, no statement-level ones but TRUNCATE
SELECT * FROM t26.triggers('t26_pp');
CALL incetl.run('t26_pp');
INSERT INTO t26.pp VALUES (3, 'through the parent'), (151, 'not ours');
UPDATE t26.pp SET v = 'updated through the parent' WHERE id IN (1, 150);
DELETE FROM t26.pp WHERE id = 2;
-- a row moved out of the source by an update of the parent
UPDATE t26.pp SET id = 160 WHERE id = 3;
INSERT INTO t26.pp_1 VALUES (4, 'into the source itself');
SELECT * FROM t26.queued('t26_pp');
CALL incetl.run('t26_pp');
SELECT (SELECT count(*) FROM (TABLE t26.pp_1 EXCEPT TABLE t26.ppt) a) AS missing,
	   (SELECT count(*) FROM (TABLE t26.ppt EXCEPT TABLE t26.pp_1) b) AS extra;
-- TRUNCATE of the parent truncates the source too
TRUNCATE t26.pp;
INSERT INTO t26.pp VALUES (5, 'after truncate');
CALL incetl.run('t26_pp');
SELECT * FROM t26.ppt;
SELECT incetl.drop_pipeline('t26_pp');
-- a source that becomes a partition after create_pipeline
CREATE TABLE t26.pp_3 (id integer PRIMARY KEY, v text);
INSERT INTO t26.pp_3 VALUES (200, 'x');
SELECT incetl.create_pipeline('t26_pp3', 't26.pp_3', 't26.ppt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('t26_pp3');
ALTER TABLE t26.pp ATTACH PARTITION t26.pp_3 FOR VALUES FROM (200) TO (300);
INSERT INTO t26.pp VALUES (201, 'through the new parent');
-- the run switches it over and compares the whole source
CALL incetl.run('t26_pp3');
SELECT * FROM t26.triggers('t26_pp3');
INSERT INTO t26.pp VALUES (202, 'captured');
CALL incetl.run('t26_pp3');
SELECT * FROM regress.last_counts('t26_pp3');
SELECT * FROM t26.ppt WHERE id >= 200 ORDER BY id;
SELECT incetl.drop_pipeline('t26_pp3');

\echo '-- a foreign partition cannot be captured'
CREATE FOREIGN DATA WRAPPER t26_fdw;
CREATE SERVER t26_srv FOREIGN DATA WRAPPER t26_fdw;
-- (a table with a unique index cannot have foreign partitions: the target
-- provides the key)
CREATE TABLE t26.fp (id integer NOT NULL, v text) PARTITION BY RANGE (id);
CREATE TABLE t26.fp_local PARTITION OF t26.fp FOR VALUES FROM (0) TO (100);
CREATE TABLE t26.fpt (id integer PRIMARY KEY, v text);
CREATE FOREIGN TABLE t26.fp_remote PARTITION OF t26.fp FOR VALUES FROM (100) TO (200) SERVER t26_srv;
SELECT regress.try($$SELECT incetl.create_pipeline('t26_fp', 't26.fp', 't26.fpt', strategy => 'trigger')$$);
ALTER TABLE t26.fp DETACH PARTITION t26.fp_remote;
SELECT incetl.create_pipeline('t26_fp', 't26.fp', 't26.fpt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('t26_fp');
-- attached later: the run refuses, and writes nothing
ALTER TABLE t26.fp ATTACH PARTITION t26.fp_remote FOR VALUES FROM (100) TO (200);
INSERT INTO t26.fp VALUES (1, 'local');
SELECT regress.try($$CALL incetl.run('t26_fp')$$);
SELECT count(*) AS target_rows FROM t26.fpt;
ALTER TABLE t26.fp DETACH PARTITION t26.fp_remote;
CALL incetl.run('t26_fp');
SELECT * FROM t26.fpt;
SELECT incetl.drop_pipeline('t26_fp');

SET client_min_messages = warning;
DROP SCHEMA t26 CASCADE;
DROP SERVER t26_srv;
DROP FOREIGN DATA WRAPPER t26_fdw;
RESET client_min_messages;
