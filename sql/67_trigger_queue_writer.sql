--
-- 67_trigger_queue_writer: the capture writes the queue's entries itself
-- (table_multi_insert, as COPY does), not through an INSERT ... SELECT:
-- the same entries (a statement's seqs numbered in one block of the
-- queue's sequence, the keys as the source holds them, TOASTed ones
-- included, op, changed_at the writing transaction's start) for
-- statements of every size, row triggers included, and for updates that
-- move keys.  A queue that is not exactly of incetl's layout (a check
-- constraint, an index, a trigger on it) is written by the INSERT, whose
-- constraints, indexes and triggers apply.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t65;
CREATE TABLE t65.src (a text, b bigint, v text, PRIMARY KEY (a, b));
CREATE TABLE t65.tgt (a text, b bigint, v text, PRIMARY KEY (a, b));
INSERT INTO t65.src SELECT 'k' || i, i, 'v' || i FROM generate_series(1, 1000) AS i;
-- a key of 2,500 bytes stored out of line (uncompressed: it fits the index)
ALTER TABLE t65.src ALTER a SET STORAGE EXTERNAL;
INSERT INTO t65.src VALUES (repeat('x', 2500), 0, 'long');
SELECT incetl.create_pipeline('t65', 't65.src', 't65.tgt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('t65');
SELECT format('incetl.queue_%s', id) AS queue FROM incetl.pipelines WHERE name = 't65' \gset
SELECT pg_relation_size(reltoastrelid) > 0 AS toasted FROM pg_class WHERE oid = 't65.src'::regclass;

-- rows in which source and target differ
CREATE FUNCTION t65.differences() RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(*) FROM ((SELECT * FROM t65.src EXCEPT SELECT * FROM t65.tgt)
						  UNION ALL (SELECT * FROM t65.tgt EXCEPT SELECT * FROM t65.src)) AS d
$$;

-- run a statement: 'ok', or the SQLSTATE and constraint of its error
CREATE FUNCTION t65.try(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	c text;
	s text;
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS c = CONSTRAINT_NAME, s = RETURNED_SQLSTATE;
	RETURN s || ' ' || c;
END;
$$;

\echo '-- an update of 101 rows, the TOASTed key among them'
BEGIN;
UPDATE t65.src SET v = v || '+' WHERE b BETWEEN 0 AND 100;
-- one block, numbered 1..101, stamped with now()
SELECT count(*) AS entries, count(DISTINCT seq / 16777216) AS blocks,
	   min(seq % 16777216) AS first, max(seq % 16777216) AS last,
	   bool_and(op = 'u') AS updates, bool_and(changed_at = now()) AS stamped
  FROM :queue;
-- the keys updated, byte for byte
SELECT count(*) AS keys FROM :queue AS q JOIN t65.src AS s
	ON q.k1 = s.a AND q.k2 = s.b AND s.b BETWEEN 0 AND 100;
SELECT length(k1) AS long_key FROM :queue WHERE k2 = 0;
COMMIT;

\echo '-- an update moving 50 keys: their new keys, and their old ones'
UPDATE t65.src SET b = b + 10000 WHERE b BETWEEN 101 AND 150;
SELECT op, count(*), min(k2), max(k2), count(DISTINCT seq / 16777216) AS blocks
  FROM :queue WHERE k2 > 100 GROUP BY op ORDER BY op;
-- an update moving one key of 10: all 10, and the old key moved
UPDATE t65.src SET b = CASE WHEN b = 151 THEN 20151 ELSE b END WHERE b BETWEEN 151 AND 160;
SELECT op, count(*), min(k2), max(k2) FROM :queue
 WHERE k2 BETWEEN 151 AND 160 OR k2 = 20151 GROUP BY op ORDER BY op;

\echo '-- inserts and deletes, of 10 rows and of 3'
INSERT INTO t65.src SELECT 'n' || i, i, 'new' FROM generate_series(1, 10) AS i;
INSERT INTO t65.src SELECT 'm' || i, i, 'new' FROM generate_series(1, 3) AS i;
DELETE FROM t65.src WHERE b BETWEEN 161 AND 170;
DELETE FROM t65.src WHERE b BETWEEN 171 AND 173;
SELECT op, count(*) FROM :queue WHERE k1 ~ '^[nm]' OR k2 BETWEEN 161 AND 173
 GROUP BY op ORDER BY op;

\echo '-- row triggers (session_replication_role = replica)'
SET session_replication_role = replica;
UPDATE t65.src SET v = 'replica' WHERE b BETWEEN 181 AND 190;
UPDATE t65.src SET b = 30191 WHERE b = 191;
RESET session_replication_role;
SELECT op, count(*) FROM :queue WHERE k2 BETWEEN 181 AND 191 OR k2 = 30191
 GROUP BY op ORDER BY op;
SELECT count(*) = count(DISTINCT seq) AS seqs_distinct FROM :queue;
CALL incetl.run('t65');
SELECT status, extracted, inserted, updated, deleted FROM regress.last_counts('t65');
SELECT t65.differences();

\echo '-- a queue with a check constraint: the INSERT, which checks it'
ALTER TABLE :queue ADD CONSTRAINT t65_no_update CHECK (op <> 'u');
SELECT t65.try('UPDATE t65.src SET v = ''checked'' WHERE b BETWEEN 201 AND 210');
SELECT t65.try('UPDATE t65.src SET v = ''checked'' WHERE b = 200');
ALTER TABLE :queue DROP CONSTRAINT t65_no_update;

\echo '-- a queue with an index: the INSERT, which maintains it'
CREATE INDEX t65_queue_k2 ON :queue (k2);
UPDATE t65.src SET v = 'indexed' WHERE b BETWEEN 211 AND 220;
UPDATE t65.src SET v = 'indexed' WHERE b = 221;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) AS indexed FROM :queue WHERE k2 BETWEEN 211 AND 221;
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP INDEX incetl.t65_queue_k2;

\echo '-- a queue with a trigger: the INSERT, which fires it'
CREATE FUNCTION t65.queue_written() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE NOTICE 'queue written: %', TG_OP;
	RETURN NULL;
END;
$$;
CREATE TRIGGER t65_queue_written AFTER INSERT ON :queue
	FOR EACH STATEMENT EXECUTE FUNCTION t65.queue_written();
UPDATE t65.src SET v = 'triggered' WHERE b BETWEEN 231 AND 240;
UPDATE t65.src SET v = 'triggered' WHERE b = 241;
DROP TRIGGER t65_queue_written ON :queue;
SELECT count(*) AS triggered FROM :queue WHERE k2 BETWEEN 231 AND 241;

\echo '-- written directly again'
UPDATE t65.src SET v = 'direct' WHERE b BETWEEN 251 AND 260;
SELECT count(*) AS direct, count(DISTINCT seq / 16777216) AS blocks
  FROM :queue WHERE k2 BETWEEN 251 AND 260;
CALL incetl.run('t65');
SELECT status, extracted, inserted, updated, deleted FROM regress.last_counts('t65');
SELECT t65.differences();

SELECT incetl.drop_pipeline('t65');
DROP SCHEMA t65 CASCADE;
