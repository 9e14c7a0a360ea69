--
-- 21_hash_strategy: the 'hash' strategy, for sources without a timestamp.
-- Each run hashes every source row and compares with the hashes stored at
-- the last run (incetl.hash_state_<id>): the first run loads everything;
-- later runs apply exactly the inserted, updated and deleted keys; a run
-- with no change extracts nothing and writes nothing (target xmin
-- unchanged); a row updated to the same values is not even read.  The
-- state holds one row per source row after every run.  Same with
-- hash_algorithm 'sha256' and a two-column key.  preview lists the
-- exact operations the next run performs.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t21;

-- the last run_log row of a pipeline, without what varies between runs
CREATE FUNCTION t21.last_run(p text)
RETURNS TABLE (kind text, status text, batches integer, extracted bigint,
			   inserted bigint, updated bigint, deleted bigint, unchanged bigint,
			   error text)
LANGUAGE sql AS $$
	SELECT kind, status, batches, rows_extracted, rows_inserted, rows_updated,
		   rows_deleted, rows_unchanged, error
	  FROM incetl.run_log WHERE pipeline = p ORDER BY run_id DESC LIMIT 1
$$;
-- the hash state table of a pipeline
CREATE FUNCTION t21.state_table(p text) RETURNS regclass
LANGUAGE sql AS $$
	SELECT to_regclass('incetl.hash_state_' || id) FROM incetl.pipelines WHERE name = p
$$;
-- its rows, as jsonb {"k1": .., "h": ..}
CREATE FUNCTION t21.state(p text) RETURNS TABLE (j jsonb)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format('SELECT to_jsonb(s) FROM %s AS s', t21.state_table(p));
END;
$$;
CREATE FUNCTION t21.state_rows(p text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM %s', t21.state_table(p)) INTO n;
	RETURN n;
END;
$$;

-- no timestamp column anywhere
CREATE TABLE t21.src (id integer PRIMARY KEY, name text, amount numeric(10,2), tags text[]);
CREATE TABLE t21.tgt (id integer PRIMARY KEY, name text, amount numeric(10,2), tags text[],
					  etl_run_id bigint);
INSERT INTO t21.src SELECT i, 'n' || i, i * 1.25, ARRAY['t' || i] FROM generate_series(1, 10) AS i;
UPDATE t21.src SET name = NULL WHERE id = 5;

SELECT incetl.create_pipeline('hash1', 't21.src', 't21.tgt', strategy => 'hash',
							  batch_size => 3) > 0 AS created;
SELECT strategy, watermark_column, hash_algorithm, batch_size FROM incetl.pipelines WHERE name = 'hash1';
-- the state table exists, empty, with the key and a bigint hash
SELECT t21.state_rows('hash1') AS state_rows;
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a WHERE a.attrelid = t21.state_table('hash1') AND a.attnum > 0 ORDER BY a.attnum;

\echo '-- preview before the first run: every row is an insert'
SELECT op, key FROM incetl.preview('hash1') ORDER BY (key->>'id')::integer;

\echo '-- first run: loads all 10 rows in batches of 3 (4 batches)'
CALL incetl.run('hash1');
SELECT * FROM t21.last_run('hash1');
SELECT t21.state_rows('hash1') AS state_rows, (SELECT count(*) FROM t21.src) AS source_rows;
SELECT (SELECT count(*) FROM (SELECT id, name, amount, tags FROM t21.src
							  EXCEPT SELECT id, name, amount, tags FROM t21.tgt) a) AS missing,
	   (SELECT count(*) FROM (SELECT id, name, amount, tags FROM t21.tgt
							  EXCEPT SELECT id, name, amount, tags FROM t21.src) b) AS extra;
-- the hash strategy keeps no watermark
SELECT s.watermark FROM incetl.state s JOIN incetl.pipelines p ON p.id = s.pipeline_id
 WHERE p.name = 'hash1';
-- the stored hash of every row is incetl.row_hash over its non-key columns
SELECT count(*) AS current_hashes
  FROM t21.src s JOIN t21.state('hash1') st ON (st.j->>'k1')::integer = s.id
 WHERE (st.j->>'h')::bigint = incetl.row_hash(ROW(s.name, s.amount, s.tags));

\echo '-- a second run with no change extracts nothing and writes nothing'
CREATE TEMP TABLE x1 AS SELECT id, xmin::text AS x FROM t21.tgt;
CALL incetl.run('hash1');
SELECT * FROM t21.last_run('hash1');
SELECT count(*) AS rewritten FROM t21.tgt t JOIN x1 USING (id) WHERE t.xmin::text <> x1.x;

\echo '-- changes: 2 inserts, 3 updates (one to NULL, one from NULL, one array'
\echo '-- changed twice), 2 deletes, 1 update to the same values'
INSERT INTO t21.src VALUES (11, 'n11', 1, '{a}'), (12, NULL, NULL, NULL);
UPDATE t21.src SET amount = NULL WHERE id = 2;
UPDATE t21.src SET name = 'n5' WHERE id = 5;
UPDATE t21.src SET tags = ARRAY['t7', 'x'] WHERE id = 7;
UPDATE t21.src SET tags = ARRAY['x', 't7'] WHERE id = 7;
DELETE FROM t21.src WHERE id IN (3, 9);
UPDATE t21.src SET name = name, amount = amount WHERE id = 8;
SELECT op, key FROM incetl.preview('hash1') ORDER BY op, (key->>'id')::integer;
-- preview wrote nothing
SELECT t21.state_rows('hash1') AS state_rows, (SELECT count(*) FROM t21.tgt) AS target_rows;
CALL incetl.run('hash1');
-- 7 keys read, in 3 batches of up to 3
SELECT * FROM t21.last_run('hash1');
SELECT t21.state_rows('hash1') AS state_rows, (SELECT count(*) FROM t21.src) AS source_rows;
SELECT (SELECT count(*) FROM (SELECT id, name, amount, tags FROM t21.src
							  EXCEPT SELECT id, name, amount, tags FROM t21.tgt) a) AS missing,
	   (SELECT count(*) FROM (SELECT id, name, amount, tags FROM t21.tgt
							  EXCEPT SELECT id, name, amount, tags FROM t21.src) b) AS extra;
-- only the changed rows were written (by this run), row 8 was not
SELECT t.id, t.xmin::text <> x1.x AS rewritten
  FROM t21.tgt t JOIN x1 USING (id) WHERE t.xmin::text <> x1.x OR t.id = 8 ORDER BY t.id;
SELECT id FROM t21.tgt
 WHERE etl_run_id = (SELECT max(run_id) FROM incetl.run_log WHERE pipeline = 'hash1')
 ORDER BY id;
-- the state follows the source: no stale key, every hash current
SELECT count(*) AS stale_state
  FROM t21.state('hash1') st
 WHERE NOT EXISTS (SELECT 1 FROM t21.src s WHERE s.id = (st.j->>'k1')::integer
				   AND incetl.row_hash(ROW(s.name, s.amount, s.tags)) = (st.j->>'h')::bigint);

\echo '-- nothing left to do: extracts 0, rewrites nothing'
CREATE TEMP TABLE x2 AS SELECT id, xmin::text AS x FROM t21.tgt;
SELECT count(*) AS previewed FROM incetl.preview('hash1');
CALL incetl.run('hash1');
SELECT * FROM t21.last_run('hash1');
SELECT count(*) AS rewritten FROM t21.tgt t JOIN x2 USING (id) WHERE t.xmin::text <> x2.x;

\echo '-- a key that changes is a delete of the old key and an insert of the new'
UPDATE t21.src SET id = 100 WHERE id = 1;
SELECT op, key FROM incetl.preview('hash1') ORDER BY op;
CALL incetl.run('hash1');
SELECT * FROM t21.last_run('hash1');
SELECT id, name FROM t21.tgt WHERE id IN (1, 100);
SELECT t21.state_rows('hash1') AS state_rows, (SELECT count(*) FROM t21.src) AS source_rows;

\echo '-- the stored hashes do not depend on session settings: no change seen'
\c -
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Asia/Kathmandu';
SET extra_float_digits = -5;
CALL incetl.run('hash1');
SELECT * FROM t21.last_run('hash1');
\c -

\echo '-- a run in a transaction block that rolls back leaves target and state alone'
UPDATE t21.src SET name = 'rolled back' WHERE id = 2;
BEGIN;
CALL incetl.run('hash1');
SELECT name FROM t21.tgt WHERE id = 2;
ROLLBACK;
SELECT name FROM t21.tgt WHERE id = 2;
CALL incetl.run('hash1');
SELECT * FROM t21.last_run('hash1');
SELECT name FROM t21.tgt WHERE id = 2;

\echo '-- sha256, with a two-column key'
CREATE TABLE t21.src2 (region text, n integer, v text, f double precision,
					   PRIMARY KEY (region, n));
CREATE TABLE t21.tgt2 (region text, n integer, v text, f double precision,
					   PRIMARY KEY (region, n));
INSERT INTO t21.src2 SELECT r, i, 'v' || i, i / 3.0 FROM unnest(ARRAY['eu', 'us']) AS r,
	generate_series(1, 4) AS i;
SELECT incetl.create_pipeline('hash2', 't21.src2', 't21.tgt2', strategy => 'hash',
							  hash_algorithm => 'sha256', batch_size => 2) > 0 AS created;
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a WHERE a.attrelid = t21.state_table('hash2') AND a.attnum > 0 ORDER BY a.attnum;
CALL incetl.run('hash2');
SELECT * FROM t21.last_run('hash2');
SELECT t21.state_rows('hash2') AS state_rows, (SELECT count(*) FROM t21.src2) AS source_rows;
-- the stored hash is the 32-byte SHA-256 of the non-key columns
SELECT length(decode(substr(j->>'h', 3), 'hex')) AS hash_bytes, count(*)
  FROM t21.state('hash2') GROUP BY 1;
UPDATE t21.src2 SET v = 'changed' WHERE region = 'eu' AND n = 2;
UPDATE t21.src2 SET f = f + 1e-12 WHERE region = 'us' AND n = 3;
UPDATE t21.src2 SET v = v WHERE region = 'us' AND n = 4;
DELETE FROM t21.src2 WHERE region = 'us' AND n = 1;
INSERT INTO t21.src2 VALUES ('eu', 5, 'v5', 0), ('asia', 1, NULL, NULL);
SELECT op, key FROM incetl.preview('hash2') ORDER BY op, key->>'region', (key->>'n')::integer;
CREATE TEMP TABLE x3 AS SELECT region, n, xmin::text AS x FROM t21.tgt2;
CALL incetl.run('hash2');
SELECT * FROM t21.last_run('hash2');
SELECT t21.state_rows('hash2') AS state_rows, (SELECT count(*) FROM t21.src2) AS source_rows;
SELECT (SELECT count(*) FROM (TABLE t21.src2 EXCEPT TABLE t21.tgt2) a) AS missing,
	   (SELECT count(*) FROM (TABLE t21.tgt2 EXCEPT TABLE t21.src2) b) AS extra;
SELECT region, n FROM t21.tgt2 t JOIN x3 USING (region, n) WHERE t.xmin::text <> x3.x ORDER BY 1, 2;
-- the state holds exactly the source's keys
SELECT (SELECT count(*) FROM (SELECT region, n FROM t21.src2
							  EXCEPT SELECT j->>'k1', (j->>'k2')::integer FROM t21.state('hash2')) a) AS keys_missing,
	   (SELECT count(*) FROM (SELECT j->>'k1', (j->>'k2')::integer FROM t21.state('hash2')
							  EXCEPT SELECT region, n FROM t21.src2) b) AS keys_extra;
CREATE TEMP TABLE x4 AS SELECT region, n, xmin::text AS x FROM t21.tgt2;
CALL incetl.run('hash2');
SELECT * FROM t21.last_run('hash2');
SELECT count(*) AS rewritten FROM t21.tgt2 t JOIN x4 USING (region, n) WHERE t.xmin::text <> x4.x;

\echo '-- the sha256 hashes do not depend on client_encoding'
UPDATE t21.src2 SET v = U&'caf\00e9' WHERE region = 'eu' AND n = 1;
UPDATE t21.src2 SET v = U&'\20ac' WHERE region = 'eu' AND n = 3;
CALL incetl.run('hash2');
SELECT * FROM t21.last_run('hash2');
SET client_encoding = 'LATIN1';
-- nothing changed since: nothing to read, and no error for the euro sign
CALL incetl.run('hash2');
RESET client_encoding;
SELECT * FROM t21.last_run('hash2');

\echo '-- drop_pipeline drops the state table'
CREATE TEMP TABLE state_tables AS
SELECT t21.state_table('hash1')::text AS t UNION ALL SELECT t21.state_table('hash2')::text;
SELECT count(*) AS state_tables FROM state_tables WHERE to_regclass(t) IS NOT NULL;
SELECT incetl.drop_pipeline('hash1');
SELECT incetl.drop_pipeline('hash2');
SELECT count(*) AS state_tables FROM state_tables WHERE to_regclass(t) IS NOT NULL;
-- the targets are left alone
SELECT (SELECT count(*) FROM t21.tgt) AS tgt_rows, (SELECT count(*) FROM t21.tgt2) AS tgt2_rows;
DROP SCHEMA t21 CASCADE;
