--
-- 36_logical_slots: a 'logical' pipeline's replication slot follows the
-- transactions that create and drop the pipeline, and a pipeline whose
-- slot is gone heals itself.
--
-- A slot is not transactional, so incetl creates it in the first run (not
-- in create_pipeline) and drops it when the transaction of drop_pipeline or
-- DROP EXTENSION commits.  Proves:
--   - BEGIN; create_pipeline; ROLLBACK leaves no slot (and no pipeline);
--   - a first run inside a transaction that has already written fails
--     with a clear error and a hint, and leaves no slot;
--   - a first run in a transaction block that rolls back leaves a slot,
--     which the next run uses without a second one, comparing everything;
--   - BEGIN; drop_pipeline; ROLLBACK (also ROLLBACK TO SAVEPOINT, and an
--     error in a PL/pgSQL block) leaves the pipeline and its slot: the next
--     run reads the changes made meanwhile; PREPARE TRANSACTION after a
--     drop is refused;
--   - a slot dropped behind incetl's back: the next run says so, creates a
--     new slot, compares the whole source with the target and loses
--     nothing; the run after that reads nothing;
--   - DROP EXTENSION incetl (and DROP EXTENSION pgcrypto CASCADE, which
--     takes incetl with it) drops incetl's slots when it commits, and
--     leaves them when it rolls back.
--
CREATE SCHEMA t36;
CREATE TABLE t36.slots_before AS SELECT slot_name FROM pg_replication_slots;
CREATE FUNCTION t36.new_slots() RETURNS TABLE (slot_name name, plugin name)
LANGUAGE sql AS $$
	SELECT r.slot_name, r.plugin FROM pg_replication_slots r
	 WHERE r.slot_name NOT IN (SELECT s.slot_name FROM t36.slots_before s)
	 ORDER BY 1
$$;
-- the pipeline's slot as the status view and pg_replication_slots see it
CREATE FUNCTION t36.slot(p text, OUT stored boolean, OUT slot_exists boolean)
LANGUAGE sql AS $$
	SELECT s.slot_name IS NOT NULL,
		   EXISTS (SELECT 1 FROM pg_replication_slots r WHERE r.slot_name = s.slot_name)
	  FROM incetl.pipelines pl JOIN incetl.state s ON s.pipeline_id = pl.id
	 WHERE pl.name = p
$$;
CREATE TABLE t36.src (id integer PRIMARY KEY, v text);
CREATE TABLE t36.tgt (id integer PRIMARY KEY, v text);
INSERT INTO t36.src SELECT g, 'v' || g FROM generate_series(1, 8) AS g;
CREATE FUNCTION t36.diff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (TABLE t36.src EXCEPT TABLE t36.tgt) a),
		   (SELECT count(*) FROM (TABLE t36.tgt EXCEPT TABLE t36.src) b)
$$;

\echo '-- a rolled-back create_pipeline leaves nothing'
BEGIN;
SELECT incetl.create_pipeline('s36', 't36.src', 't36.tgt', strategy => 'logical') > 0 AS created;
ROLLBACK;
SELECT count(*) AS pipelines FROM incetl.pipelines WHERE name = 's36';
SELECT * FROM t36.new_slots();

\echo '-- a first run in a transaction that has written cannot create the slot'
\set VERBOSITY default
BEGIN;
SELECT incetl.create_pipeline('s36', 't36.src', 't36.tgt', strategy => 'logical') > 0 AS created;
SELECT regress.try($$CALL incetl.run('s36')$$);
ROLLBACK;
SELECT * FROM t36.new_slots();
\set VERBOSITY terse

\echo '-- a first run that rolls back leaves a slot, which the next run uses'
SELECT incetl.create_pipeline('s36', 't36.src', 't36.tgt', strategy => 'logical',
							  batch_size => 3) > 0 AS created;
BEGIN;
CALL incetl.run('s36');
ROLLBACK;
SELECT count(*) AS target_rows FROM t36.tgt;
SELECT count(*) AS slots, bool_and(plugin = 'incetl') AS incetl_plugin FROM t36.new_slots();
SELECT slot_name AS left_by_rollback FROM t36.new_slots() \gset
UPDATE t36.src SET v = 'meanwhile' WHERE id = 1;
CALL incetl.run('s36');
SELECT * FROM regress.last_counts('s36');
SELECT * FROM t36.diff();
SELECT slot_name = :'left_by_rollback' AS same_slot FROM t36.new_slots();
SELECT * FROM t36.slot('s36');
UPDATE t36.src SET v = 'incremental' WHERE id = 2;
CALL incetl.run('s36');
SELECT * FROM regress.last_counts('s36');

\echo '-- a rolled-back drop_pipeline keeps the pipeline and its slot'
BEGIN;
SELECT incetl.drop_pipeline('s36');
ROLLBACK;
SELECT * FROM t36.slot('s36');
UPDATE t36.src SET v = 'after rolled-back drop' WHERE id = 3;
DELETE FROM t36.src WHERE id = 4;
CALL incetl.run('s36');
SELECT * FROM regress.last_counts('s36');
SELECT * FROM t36.diff();
-- rolled back to a savepoint
BEGIN;
SAVEPOINT a;
SELECT incetl.drop_pipeline('s36');
ROLLBACK TO SAVEPOINT a;
COMMIT;
SELECT * FROM t36.slot('s36');
-- undone by an error in a PL/pgSQL block
DO $$
BEGIN
	PERFORM incetl.drop_pipeline('s36');
	RAISE EXCEPTION 'changed my mind';
EXCEPTION WHEN raise_exception THEN
	RAISE NOTICE 'drop undone: %', SQLERRM;
END
$$;
SELECT * FROM t36.slot('s36');
-- a savepoint released, then the whole transaction rolled back
BEGIN;
SAVEPOINT a;
SELECT incetl.drop_pipeline('s36');
RELEASE SAVEPOINT a;
ROLLBACK;
SELECT * FROM t36.slot('s36');
-- a prepared transaction could not drop the slot at COMMIT PREPARED
BEGIN;
SELECT incetl.drop_pipeline('s36');
PREPARE TRANSACTION 't36';
SELECT * FROM t36.slot('s36');
UPDATE t36.src SET v = 'still running' WHERE id = 5;
CALL incetl.run('s36');
SELECT * FROM regress.last_counts('s36');
SELECT * FROM t36.diff();

\echo '-- a slot that is gone: the next run makes a new one and compares everything'
SELECT pg_drop_replication_slot(slot_name) FROM t36.new_slots();
SELECT * FROM t36.slot('s36');
-- changes that no slot saw
UPDATE t36.src SET v = 'unseen' WHERE id IN (6, 7);
DELETE FROM t36.src WHERE id = 8;
INSERT INTO t36.src VALUES (9, 'unseen');
SELECT op, key FROM incetl.preview('s36') ORDER BY op, key;
-- inside a transaction block that has written, it cannot be made there
\set VERBOSITY default
BEGIN;
INSERT INTO t36.src VALUES (10, 'in block');
SELECT regress.try($$CALL incetl.run('s36')$$);
ROLLBACK;
\set VERBOSITY terse
CALL incetl.run('s36');
SELECT * FROM regress.last_counts('s36');
SELECT * FROM t36.diff();
SELECT * FROM t36.slot('s36');
SELECT count(*) AS slots FROM t36.new_slots();
CALL incetl.run('s36');
SELECT * FROM regress.last_counts('s36');
UPDATE t36.src SET v = 'after resync' WHERE id = 1;
CALL incetl.run('s36');
SELECT * FROM regress.last_counts('s36');
SELECT * FROM t36.diff();

\echo '-- drop_pipeline that commits drops the slot'
SELECT incetl.drop_pipeline('s36');
SELECT * FROM t36.new_slots();

\echo '-- DROP EXTENSION drops incetl''s slots'
SELECT current_database() AS regress_db \gset
CREATE DATABASE incetl_t36;
\c incetl_t36
SET client_min_messages = warning;
CREATE EXTENSION incetl CASCADE;
RESET client_min_messages;
CREATE TABLE a (id integer PRIMARY KEY, v text);
CREATE TABLE a_tgt (id integer PRIMARY KEY, v text);
CREATE TABLE b (id integer PRIMARY KEY, v text);
CREATE TABLE b_tgt (id integer PRIMARY KEY, v text);
INSERT INTO a VALUES (1, 'a');
INSERT INTO b VALUES (1, 'b');
SELECT incetl.create_pipeline('a', 'a', 'a_tgt', strategy => 'logical') > 0 AS created;
SELECT incetl.create_pipeline('b', 'b', 'b_tgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('a');
CALL incetl.run('b');
-- the slots of this database
CREATE FUNCTION db_slots() RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM pg_replication_slots WHERE database = current_database()
$$;
SELECT db_slots();
BEGIN;
DROP EXTENSION incetl;
ROLLBACK;
SELECT db_slots();
CALL incetl.run('a');
SELECT status FROM incetl.run_log WHERE pipeline = 'a' ORDER BY run_id DESC LIMIT 1;
-- dropping another extension leaves them
DROP EXTENSION IF EXISTS pg_nonexistent_ext;
SELECT db_slots();
DROP EXTENSION incetl;
SELECT db_slots();
-- again, with incetl dropped through the extension it requires
SET client_min_messages = warning;
CREATE EXTENSION incetl CASCADE;
RESET client_min_messages;
SELECT incetl.create_pipeline('a', 'a', 'a_tgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('a');
SELECT db_slots();
SET client_min_messages = warning;
DROP EXTENSION pgcrypto CASCADE;
RESET client_min_messages;
SELECT count(*) AS incetl_installed FROM pg_extension WHERE extname = 'incetl';
SELECT db_slots();
\c :regress_db
DROP DATABASE incetl_t36;

SELECT * FROM t36.new_slots();
DROP SCHEMA t36 CASCADE;
