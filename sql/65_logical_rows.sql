--
-- 65_logical_rows: a 'logical' run applies a key's row as its last decoded
-- change left it (the isolation spec logical_rows shows that it does), and
-- reads the row from the source by key where the decoded row cannot stand
-- for it:
-- - a delete, a key changed away (no row);
-- - an update that left a TOASTed value unchanged (the WAL record does not
--   carry it);
-- - a change written before the table was rewritten (VACUUM FULL, or a
--   column rewritten in place by ALTER ... TYPE ... USING: the values may
--   differ from the decoded ones);
-- - a change decoded under another column type;
-- - TRUNCATE among the changes;
-- - row-level security that filters what the pipeline's owner reads;
-- - a source column named incetl_..., as the batch names its own columns.
-- After each run the target equals the source (or, under row-level
-- security, what the owner may read of it).
--
CREATE SCHEMA t65;
CREATE DOMAIN t65.pos AS integer CHECK (VALUE > 0);
-- n is no t65.pos: a column of a domain makes a run read every key's row
-- from the source (66_review9_rows), and this file is about decoded rows
CREATE TABLE t65.src (id integer PRIMARY KEY, v text, big text, n integer,
					  c varchar(8) COLLATE "C", x numeric(6,2));
CREATE TABLE t65.tgt (LIKE t65.src);
ALTER TABLE t65.tgt ADD PRIMARY KEY (id);
-- 2496 characters of hex: pglz cannot compress it, so it is stored out of line
CREATE FUNCTION t65.big(i integer) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(md5((i * 1000 + g)::text), '') FROM generate_series(1, 78) AS g
$$;
CREATE FUNCTION t65.diff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (TABLE t65.src EXCEPT TABLE t65.tgt) a),
		   (SELECT count(*) FROM (TABLE t65.tgt EXCEPT TABLE t65.src) b)
$$;
INSERT INTO t65.src SELECT g, 'v' || g, t65.big(g), g, 'c' || g, g / 10.0
  FROM generate_series(1, 20) AS g;
SELECT incetl.create_pipeline('l65', 't65.src', 't65.tgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('l65');
SELECT * FROM t65.diff();

\echo '-- updates, several per key, deletes, key changes, inserts; TOASTed values kept and changed'
UPDATE t65.src SET v = 'once' WHERE id <= 4;
UPDATE t65.src SET v = 'twice', x = x + 1 WHERE id <= 2;
UPDATE t65.src SET big = t65.big(100 + id) WHERE id = 5;
UPDATE t65.src SET v = 'big kept' WHERE id = 6;
DELETE FROM t65.src WHERE id = 7;
UPDATE t65.src SET id = id + 100 WHERE id = 8;
INSERT INTO t65.src VALUES (30, 'new', t65.big(30), 3, 'new', 1.5);
BEGIN;
DELETE FROM t65.src WHERE id = 9;
INSERT INTO t65.src VALUES (9, 'back', NULL, 9, NULL, NULL);
COMMIT;
-- a key deleted after its update: the last change wins
UPDATE t65.src SET v = 'gone later' WHERE id = 10;
DELETE FROM t65.src WHERE id = 10;
CALL incetl.run('l65');
SELECT * FROM regress.last_counts('l65');
SELECT * FROM t65.diff();
SELECT id, v, length(big) AS big FROM t65.tgt WHERE id IN (5, 6, 9, 30, 108) ORDER BY id;

\echo '-- a change before VACUUM FULL, and one before a column rewritten in place'
UPDATE t65.src SET v = 'before vacuum full' WHERE id = 11;
VACUUM FULL t65.src;
CALL incetl.run('l65');
SELECT * FROM t65.diff();
UPDATE t65.src SET x = 1 WHERE id = 12;
-- same type, new values: the table is rewritten, and no change is decoded
ALTER TABLE t65.src ALTER COLUMN x TYPE numeric(6,2) USING x + 1000;
CALL incetl.run('l65');
-- the decoded row (x = 1) does not stand for the source's (x = 1001)
SELECT s.x AS source, t.x AS target FROM t65.src s JOIN t65.tgt t USING (id) WHERE id = 12;
-- the other rows changed without a decoded change: a reconcile brings them
CALL incetl.reconcile('l65');
SELECT * FROM t65.diff();

\echo '-- a change decoded under another column type'
UPDATE t65.src SET c = 'before' WHERE id = 13;
ALTER TABLE t65.src ALTER COLUMN c TYPE varchar(10);
ALTER TABLE t65.tgt ALTER COLUMN c TYPE varchar(10);
SELECT incetl.alter_pipeline('l65') IS NOT NULL AS altered;
UPDATE t65.src SET c = 'after' WHERE id = 14;
CALL incetl.run('l65');
SELECT * FROM t65.diff();

\echo '-- a change decoded before its column was dropped and added again'
UPDATE t65.src SET v = 'old column' WHERE id = 15;
ALTER TABLE t65.src DROP COLUMN v;
ALTER TABLE t65.src ADD COLUMN v text;
ALTER TABLE t65.tgt DROP COLUMN v;
ALTER TABLE t65.tgt ADD COLUMN v text;
SELECT incetl.alter_pipeline('l65') IS NOT NULL AS altered;
UPDATE t65.src SET v = 'new column' WHERE id = 16;
CALL incetl.run('l65');
SELECT * FROM t65.diff();
SELECT id, v FROM t65.tgt WHERE id IN (15, 16) ORDER BY id;
CALL incetl.reconcile('l65');

\echo '-- TRUNCATE after an insert: the inserted row is not applied'
INSERT INTO t65.src (id, v, n) VALUES (40, 'truncated', 4);
TRUNCATE t65.src;
INSERT INTO t65.src (id, v, n) VALUES (41, 'after truncate', 4);
CALL incetl.run('l65');
SELECT * FROM t65.diff();
SELECT id, v FROM t65.tgt ORDER BY id;

\echo '-- keys equal by their type in other bytes, several changes each: the last wins'
CREATE TABLE t65.nk (k numeric PRIMARY KEY, t text COLLATE "C", v text);
CREATE TABLE t65.nk_tgt (LIKE t65.nk INCLUDING ALL);
INSERT INTO t65.nk VALUES (1.0, 'a', 'a'), (2, 'B', 'a'), (3, 'b', 'a');
SELECT incetl.create_pipeline('l65_nk', 't65.nk', 't65.nk_tgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('l65_nk');
UPDATE t65.nk SET k = 1.00, v = 'b' WHERE k = 1;
UPDATE t65.nk SET v = 'c' WHERE k = 1;
DELETE FROM t65.nk WHERE k = 2;
INSERT INTO t65.nk VALUES (2.000, 'A', 'd');
UPDATE t65.nk SET t = 'c', v = 'e' WHERE k = 3;
UPDATE t65.nk SET t = 'C', v = 'f' WHERE k = 3;
CALL incetl.run('l65_nk');
SELECT * FROM regress.last_counts('l65_nk');
SELECT k::text, t, v FROM t65.nk_tgt ORDER BY k;
SELECT (SELECT array_agg(k::text || t || v ORDER BY k) FROM t65.nk) =
	   (SELECT array_agg(k::text || t || v ORDER BY k) FROM t65.nk_tgt) AS same_bytes;
SELECT incetl.drop_pipeline('l65_nk');

\echo '-- a source column named incetl_gone'
CREATE TABLE t65.odd (id integer PRIMARY KEY, incetl_gone boolean, incetl_k1 integer);
CREATE TABLE t65.odd_tgt (LIKE t65.odd INCLUDING ALL);
INSERT INTO t65.odd VALUES (1, true, 1), (2, false, 2);
SELECT incetl.create_pipeline('l65_odd', 't65.odd', 't65.odd_tgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('l65_odd');
UPDATE t65.odd SET incetl_gone = NOT incetl_gone, incetl_k1 = incetl_k1 + 10;
DELETE FROM t65.odd WHERE id = 2;
INSERT INTO t65.odd VALUES (3, NULL, 3);
CALL incetl.run('l65_odd');
SELECT * FROM t65.odd_tgt ORDER BY id;

\echo '-- row-level security: the owner reads only rows id <= 5, decoded rows too'
CREATE ROLE t65_owner LOGIN REPLICATION;
CREATE TABLE t65.rls (id integer PRIMARY KEY, v text);
CREATE TABLE t65.rls_tgt (id integer PRIMARY KEY, v text);
ALTER TABLE t65.rls OWNER TO t65_owner;
ALTER TABLE t65.rls_tgt OWNER TO t65_owner;
GRANT USAGE ON SCHEMA t65 TO t65_owner;
ALTER TABLE t65.rls ENABLE ROW LEVEL SECURITY;
ALTER TABLE t65.rls FORCE ROW LEVEL SECURITY;
CREATE POLICY few ON t65.rls USING (id <= 5);
INSERT INTO t65.rls SELECT g, 'v' || g FROM generate_series(1, 4) AS g;
SET SESSION AUTHORIZATION t65_owner;
SELECT incetl.create_pipeline('l65_rls', 't65.rls', 't65.rls_tgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('l65_rls');
RESET SESSION AUTHORIZATION;
ALTER TABLE t65.rls DISABLE ROW LEVEL SECURITY;
INSERT INTO t65.rls SELECT g, 'v' || g FROM generate_series(5, 8) AS g;
UPDATE t65.rls SET v = 'changed';
ALTER TABLE t65.rls ENABLE ROW LEVEL SECURITY;
SET SESSION AUTHORIZATION t65_owner;
CALL incetl.run('l65_rls');
SELECT id, v FROM t65.rls_tgt ORDER BY id;
SELECT incetl.drop_pipeline('l65_rls');
RESET SESSION AUTHORIZATION;

SELECT incetl.drop_pipeline('l65');
SELECT incetl.drop_pipeline('l65_odd');
DROP SCHEMA t65 CASCADE;
DROP ROLE t65_owner;
