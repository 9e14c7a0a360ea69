--
-- 62_review6_filter: attacks on the skipping of other tables' changes
-- (61_logical_other_tables): subtransactions, DDL and rewrites of the
-- source and of other tables in the transactions that change the source,
-- ON CONFLICT, and another table's TOASTed rows in a transaction that
-- then changes the source.
--
CREATE SCHEMA t62;
SET allow_in_place_tablespaces = on;
CREATE TABLESPACE t62ts LOCATION '';
-- no TOAST table: every column fixed-width
CREATE TABLE t62.src (id integer PRIMARY KEY, v integer);
CREATE TABLE t62.tgt (id integer PRIMARY KEY, v integer, w bigint);
CREATE TABLE t62.other (id integer PRIMARY KEY, t text);
ALTER TABLE t62.other ALTER t SET STORAGE EXTERNAL;
SELECT reltoastrelid = 0 AS src_has_no_toast FROM pg_class WHERE oid = 't62.src'::regclass;
SELECT incetl.create_pipeline('l62', 't62.src', 't62.tgt', strategy => 'logical') > 0 AS created;
CREATE FUNCTION t62.diff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (SELECT id, v FROM t62.src EXCEPT SELECT id, v FROM t62.tgt) a),
		   (SELECT count(*) FROM (SELECT id, v FROM t62.tgt EXCEPT SELECT id, v FROM t62.src) b)
$$;
CREATE FUNCTION t62.big(i integer) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(md5(i::text || g::text), '') FROM generate_series(1, 200) AS g
$$;
INSERT INTO t62.src SELECT g, g FROM generate_series(1, 10) AS g;
INSERT INTO t62.other SELECT g, 'o' FROM generate_series(1, 10) AS g;
CALL incetl.run('l62');
-- the slot's catalog_xmin past the tables' creation: their rows are skipped
CHECKPOINT;
INSERT INTO t62.src VALUES (11, 11);
CALL incetl.run('l62');
CHECKPOINT;
INSERT INTO t62.src VALUES (12, 12);
CALL incetl.run('l62');
SELECT * FROM t62.diff();

\echo '-- savepoints: rolled back and released subtransactions, other rows between'
BEGIN;
INSERT INTO t62.other VALUES (100, 'a');
SAVEPOINT a;
INSERT INTO t62.src VALUES (100, 1);
INSERT INTO t62.other VALUES (101, 'b');
ROLLBACK TO a;
INSERT INTO t62.src VALUES (101, 1);
SAVEPOINT b;
UPDATE t62.other SET t = 'c' WHERE id <= 5;
SAVEPOINT b2;
UPDATE t62.src SET v = 2 WHERE id <= 5;
DELETE FROM t62.other WHERE id = 6;
RELEASE b;
SAVEPOINT c;
DELETE FROM t62.src WHERE id = 7;
UPDATE t62.other SET t = 'd';
ROLLBACK TO c;
DELETE FROM t62.src WHERE id = 8;
COMMIT;
CALL incetl.run('l62');
SELECT * FROM regress.last_counts('l62');
SELECT * FROM t62.diff();

\echo '-- a transaction that starts with another table''s row, then DDL on it and the source'
BEGIN;
INSERT INTO t62.other VALUES (200, 'e');
ALTER TABLE t62.other ADD COLUMN x integer;
INSERT INTO t62.other VALUES (201, 'f', 1);
ALTER TABLE t62.src ADD COLUMN w integer DEFAULT 0;
INSERT INTO t62.src VALUES (200, 200, 1);
CREATE TABLE t62.fresh (id integer);
INSERT INTO t62.fresh VALUES (1);
UPDATE t62.src SET v = 3 WHERE id = 9;
COMMIT;
CALL incetl.run('l62');
SELECT * FROM regress.last_counts('l62');
SELECT * FROM t62.diff();

\echo '-- rewrites of the source and of another table in the transaction that changes both'
BEGIN;
UPDATE t62.src SET v = 4 WHERE id = 1;
INSERT INTO t62.other VALUES (300, 'g');
CLUSTER t62.src USING src_pkey;
UPDATE t62.src SET v = 4 WHERE id = 2;
ALTER TABLE t62.other SET TABLESPACE t62ts;
UPDATE t62.other SET t = 'h' WHERE id = 300;
ALTER TABLE t62.src SET TABLESPACE t62ts;
INSERT INTO t62.src VALUES (300, 300);
TRUNCATE t62.other;
INSERT INTO t62.other VALUES (301, 'i');
ALTER TABLE t62.src ALTER w TYPE integer USING w + 0;
UPDATE t62.src SET v = 4 WHERE id = 3;
COMMIT;
CALL incetl.run('l62');
SELECT * FROM regress.last_counts('l62');
SELECT * FROM t62.diff();

\echo '-- rewrites between a change and the run: the source back, another table moved'
UPDATE t62.src SET v = 5 WHERE id = 4;
INSERT INTO t62.other VALUES (400, 'j');
ALTER TABLE t62.src SET TABLESPACE pg_default;
VACUUM FULL t62.other;
UPDATE t62.other SET t = 'k';
UPDATE t62.src SET v = 5 WHERE id = 5;
VACUUM FULL t62.src;
CALL incetl.run('l62');
SELECT * FROM regress.last_counts('l62');
SELECT * FROM t62.diff();

\echo '-- ON CONFLICT on another table and on the source in one transaction'
CHECKPOINT;
CALL incetl.run('l62');
BEGIN;
INSERT INTO t62.src VALUES (500, 1) ON CONFLICT (id) DO UPDATE SET v = 1;
INSERT INTO t62.other VALUES (301, 'l') ON CONFLICT (id) DO UPDATE SET t = 'l';
INSERT INTO t62.other VALUES (500, 'm') ON CONFLICT (id) DO UPDATE SET t = 'm';
INSERT INTO t62.other VALUES (500, 'n') ON CONFLICT DO NOTHING;
INSERT INTO t62.src VALUES (500, 2) ON CONFLICT (id) DO UPDATE SET v = 2;
INSERT INTO t62.src VALUES (501, 2) ON CONFLICT DO NOTHING;
INSERT INTO t62.other VALUES (502, 'o') ON CONFLICT (id) DO UPDATE SET t = 'o';
COMMIT;
CALL incetl.run('l62');
SELECT * FROM regress.last_counts('l62');
SELECT * FROM t62.diff();

\echo '-- another table''s TOASTed row, then a change to the source (no TOAST table)'
CHECKPOINT;
CALL incetl.run('l62');
CHECKPOINT;
CALL incetl.run('l62');
BEGIN;
INSERT INTO t62.other VALUES (600, t62.big(600));
INSERT INTO t62.src VALUES (600, 600);
COMMIT;
CALL incetl.run('l62');
SELECT * FROM regress.last_counts('l62');
SELECT * FROM t62.diff();
-- and every run after it, until the slot is dropped
INSERT INTO t62.src VALUES (601, 601);
CALL incetl.run('l62');
SELECT * FROM t62.diff();
SELECT incetl.drop_pipeline('l62');
DROP SCHEMA t62 CASCADE;
DROP TABLESPACE t62ts;
