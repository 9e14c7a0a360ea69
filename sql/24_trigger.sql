--
-- 24_trigger: the 'trigger' strategy.  create_pipeline puts capture
-- triggers on the source (three statement-level ones with transition
-- tables, a TRUNCATE one that fires always, a row-level one for
-- session_replication_role = replica; 26_trigger_capture covers those
-- modes and partitions) and creates the queue incetl.queue_<id>; each run
-- drains it.  Covered: the first run loads
-- everything; inserts; updates, including one that leaves the timestamp
-- column alone and one that changes the key; deletes; a key inserted and
-- deleted before any run; TRUNCATE of the source (the next run deletes
-- every target row the source lacks); a writer with no privilege on
-- incetl's objects (only INSERT, UPDATE, DELETE on the source) is
-- captured; the queue is empty after each run; drop_pipeline removes the
-- triggers and the queue.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t24;

CREATE FUNCTION t24.queue(p text) RETURNS regclass LANGUAGE sql AS $$
	SELECT to_regclass('incetl.queue_' || id) FROM incetl.pipelines WHERE name = p
$$;
-- the queue's entries, by operation
CREATE FUNCTION t24.queued(p text) RETURNS TABLE (op "char", entries bigint)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format('SELECT op, count(*) FROM %s GROUP BY op ORDER BY op', t24.queue(p));
END;
$$;
CREATE FUNCTION t24.queue_rows(p text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM %s', t24.queue(p)) INTO n;
	RETURN n;
END;
$$;

CREATE TABLE t24.src (id integer PRIMARY KEY, v text,
					  updated_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00');
CREATE TABLE t24.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz, etl_run_id bigint);
INSERT INTO t24.src (id, v) SELECT i, 'v' || i FROM generate_series(1, 10) AS i;
-- target equals source
CREATE FUNCTION t24.diff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (SELECT id, v, updated_at FROM t24.src
								  EXCEPT SELECT id, v, updated_at FROM t24.tgt) a),
		   (SELECT count(*) FROM (SELECT id, v, updated_at FROM t24.tgt
								  EXCEPT SELECT id, v, updated_at FROM t24.src) b)
$$;

SELECT incetl.create_pipeline('trig', 't24.src', 't24.tgt', strategy => 'trigger',
							  batch_size => 4) > 0 AS created;
-- AFTER triggers: statement-level with transition tables, and one row-level
-- trigger that fires only in replica sessions; and the queue
SELECT replace(t.tgname, (SELECT id::text FROM incetl.pipelines WHERE name = 'trig'), '<id>') AS tgname,
	   t.tgenabled, p.proname,
	   (t.tgtype & 1) = 0 AS for_statement, (t.tgtype & 2) = 0 AS after,
	   t.tgoldtable IS NOT NULL AS old_table, t.tgnewtable IS NOT NULL AS new_table
  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE t.tgrelid = 't24.src'::regclass ORDER BY 1;
SELECT t24.queue('trig') IS NOT NULL AS queue_exists, t24.queue_rows('trig') AS queued;

\echo '-- first run: loads all 10 rows'
CALL incetl.run('trig');
SELECT * FROM regress.last_counts('trig');
SELECT * FROM t24.diff();
SELECT t24.queue_rows('trig') AS queued;
-- a run with nothing queued reads nothing
CALL incetl.run('trig');
SELECT * FROM regress.last_counts('trig');

\echo '-- inserts, updates, deletes'
INSERT INTO t24.src (id, v) VALUES (11, 'v11'), (12, 'v12');
-- an update that changes no timestamp column
UPDATE t24.src SET v = 'changed' WHERE id = 3;
UPDATE t24.src SET v = 'changed too', updated_at = '2024-02-01 00:00:00+00' WHERE id = 4;
-- an update that changes the key: 5 becomes 50
UPDATE t24.src SET id = 50 WHERE id = 5;
DELETE FROM t24.src WHERE id IN (7, 8);
-- a key that comes and goes before any run
INSERT INTO t24.src (id, v) VALUES (13, 'fleeting');
DELETE FROM t24.src WHERE id = 13;
-- the same key changed twice
UPDATE t24.src SET v = 'first' WHERE id = 9;
UPDATE t24.src SET v = 'second' WHERE id = 9;
SELECT * FROM t24.queued('trig');
SELECT op, key FROM incetl.preview('trig') ORDER BY op, (key->>'id')::integer;
CREATE TEMP TABLE x1 AS SELECT id, xmin::text AS x FROM t24.tgt;
CALL incetl.run('trig');
-- 10 distinct keys: 11, 12, 13, 3, 4, 5, 50, 7, 8, 9; nothing for 13
SELECT * FROM regress.last_counts('trig');
SELECT * FROM t24.diff();
SELECT id, v FROM t24.tgt WHERE id IN (3, 4, 5, 7, 8, 9, 11, 12, 13, 50) ORDER BY id;
-- the untouched rows were not rewritten
SELECT count(*) AS untouched_rewritten FROM t24.tgt t JOIN x1 USING (id)
 WHERE t.id NOT IN (3, 4, 9) AND t.xmin::text <> x1.x;
SELECT t24.queue_rows('trig') AS queued;

\echo '-- an update to the same values is queued, read, and changes nothing'
UPDATE t24.src SET v = v WHERE id = 1;
CREATE TEMP TABLE x2 AS SELECT id, xmin::text AS x FROM t24.tgt;
CALL incetl.run('trig');
SELECT * FROM regress.last_counts('trig');
SELECT count(*) AS rewritten FROM t24.tgt t JOIN x2 USING (id) WHERE t.xmin::text <> x2.x;

\echo '-- a rolled-back change leaves nothing behind'
BEGIN;
UPDATE t24.src SET v = 'rolled back' WHERE id = 2;
ROLLBACK;
SELECT t24.queue_rows('trig') AS queued;

\echo '-- TRUNCATE: the next run deletes every target row the source lacks'
TRUNCATE t24.src;
INSERT INTO t24.src (id, v) VALUES (1, 'v1'), (2, 'after truncate'), (100, 'new');
SELECT * FROM t24.queued('trig');
SELECT op, key FROM incetl.preview('trig') ORDER BY op, (key->>'id')::integer;
CALL incetl.run('trig');
SELECT * FROM regress.last_counts('trig');
SELECT * FROM t24.diff();
SELECT id, v FROM t24.tgt ORDER BY id;
SELECT t24.queue_rows('trig') AS queued;
-- the TRUNCATE is handled once: the next run deletes nothing
INSERT INTO t24.tgt (id, v) VALUES (500, 'hand-made');
CALL incetl.run('trig');
SELECT * FROM regress.last_counts('trig');
SELECT count(*) AS hand_made_kept FROM t24.tgt WHERE id = 500;
DELETE FROM t24.tgt WHERE id = 500;

\echo '-- a TRUNCATE in a transaction that rolls back is not captured'
BEGIN;
TRUNCATE t24.src;
ROLLBACK;
SELECT t24.queue_rows('trig') AS queued;

\echo '-- a writer without any privilege on incetl objects'
CREATE ROLE incetl_t24_writer;
GRANT USAGE ON SCHEMA t24 TO incetl_t24_writer;
GRANT INSERT, UPDATE, DELETE ON t24.src TO incetl_t24_writer;
-- the writer can neither read nor write the queue itself
SELECT has_table_privilege('incetl_t24_writer', t24.queue('trig'), 'INSERT') AS can_insert_queue,
	   has_table_privilege('incetl_t24_writer', t24.queue('trig'), 'SELECT') AS can_read_queue,
	   has_function_privilege('incetl_t24_writer', 'incetl._capture()', 'EXECUTE') AS can_execute_capture;
SET ROLE incetl_t24_writer;
INSERT INTO t24.src (id, v) VALUES (200, 'by writer');
-- no WHERE clause: the writer has no SELECT privilege
UPDATE t24.src SET v = 'updated by writer';
RESET ROLE;
SELECT * FROM t24.queued('trig');
CALL incetl.run('trig');
SELECT * FROM regress.last_counts('trig');
SELECT * FROM t24.diff();
SET ROLE incetl_t24_writer;
DELETE FROM t24.src;
RESET ROLE;
CALL incetl.run('trig');
SELECT * FROM regress.last_counts('trig');
SELECT count(*) AS target_rows FROM t24.tgt;
SELECT t24.queue_rows('trig') AS queued;

\echo '-- drop_pipeline removes the triggers and the queue'
CREATE TEMP TABLE q AS SELECT t24.queue('trig')::text AS q;
SELECT incetl.drop_pipeline('trig');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 't24.src'::regclass;
SELECT to_regclass(q) IS NULL AS queue_dropped FROM q;
-- the source works as before, without capture
INSERT INTO t24.src (id, v) VALUES (1, 'after drop');

DROP SCHEMA t24 CASCADE;
DROP ROLE incetl_t24_writer;
