--
-- 57_logical_typed: a 'logical' run takes its decoded keys typed.
--
-- A run decodes its slot in its own backend, and incetl's output plugin
-- hands it each change's key datums (no JSON, no casts).  The key here is
-- composite: text with a collation, an integer and a domain over integer.
-- Among the keys, long text values that are compressed in the WAL and
-- stored out of line (TOAST), which the plugin must hand over detoasted:
-- inserted, updated with the key unchanged (the WAL then carries the old
-- key), changed and deleted.  Two runs with key-changing UPDATEs, DELETEs
-- and INSERTs, then a TRUNCATE amid changes; the target equals the source
-- after each run.  Then a key column altered to another type and back
-- while the slot holds changes: decoded with the historic type, those
-- changes are read again as JSON, and nothing is lost.  Last, a source
-- with REPLICA IDENTITY FULL and long keys.
--
CREATE SCHEMA t57;
CREATE DOMAIN t57.code AS integer CHECK (VALUE > 0);
CREATE TABLE t57.src (name text COLLATE "C", n integer, c t57.code, v text,
					  PRIMARY KEY (name, n, c));
CREATE TABLE t57.tgt (name text COLLATE "C", n integer, c t57.code, v text,
					  PRIMARY KEY (name, n, c));
-- 2496 characters of hex: pglz cannot compress it, so it is stored out of line
CREATE FUNCTION t57.big(i integer) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(md5((i * 1000 + g)::text), '') FROM generate_series(1, 78) AS g
$$;
CREATE FUNCTION t57.diff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (TABLE t57.src EXCEPT TABLE t57.tgt) a),
		   (SELECT count(*) FROM (TABLE t57.tgt EXCEPT TABLE t57.src) b)
$$;
INSERT INTO t57.src
SELECT 'k' || (g % 7), g, g % 3 + 1, 'v' || g FROM generate_series(1, 40) AS g;
SELECT incetl.create_pipeline('l57', 't57.src', 't57.tgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('l57');
SELECT * FROM regress.last_counts('l57');
SELECT * FROM t57.diff();

\echo '-- first run: long keys inserted, updated, changed; keys changed, rows deleted'
INSERT INTO t57.src VALUES
	(repeat('compressible ', 400), 1, 1, 'c1'),
	(repeat('compressible ', 400), 2, 1, 'c2'),
	(t57.big(1), 1, 1, 'b1'),
	(t57.big(2), 1, 2, 'b2'),
	(t57.big(3), 1, 3, 'b3');
-- the long keys are in the WAL compressed and out of line
SELECT pg_column_compression(name) IS NOT NULL AS compressed, count(*)
  FROM t57.src WHERE length(name) > 2000 GROUP BY 1 ORDER BY 1;
UPDATE t57.src SET v = 'b1 changed' WHERE name = t57.big(1);
UPDATE t57.src SET n = n + 100 WHERE name = t57.big(2);
UPDATE t57.src SET name = name || 'x' WHERE name = repeat('compressible ', 400) AND n = 2;
DELETE FROM t57.src WHERE name = t57.big(3);
UPDATE t57.src SET v = v || ' changed' WHERE n BETWEEN 1 AND 10;
UPDATE t57.src SET n = n + 1000 WHERE n BETWEEN 11 AND 15;
UPDATE t57.src SET c = c + 10, name = name || '!' WHERE n BETWEEN 16 AND 18;
DELETE FROM t57.src WHERE n BETWEEN 19 AND 22;
INSERT INTO t57.src VALUES ('new', 1, 5, 'n1'), ('new', 2, 5, 'n2');
-- a key changed and back in one transaction, and a row gone and back
BEGIN;
UPDATE t57.src SET n = -n WHERE n = 23;
UPDATE t57.src SET n = -n WHERE n = -23;
DELETE FROM t57.src WHERE n = 24;
INSERT INTO t57.src VALUES ('k3', 24, 1, 'v24 again');
COMMIT;
CALL incetl.run('l57');
SELECT * FROM regress.last_counts('l57');
SELECT * FROM t57.diff();
SELECT count(*) FILTER (WHERE length(name) > 2000) AS long_keys, count(*) AS keys FROM t57.tgt;

\echo '-- second run: a TRUNCATE amid changes'
UPDATE t57.src SET v = 'before truncate' WHERE n BETWEEN 25 AND 30;
DELETE FROM t57.src WHERE n = 31;
TRUNCATE t57.src;
INSERT INTO t57.src VALUES (t57.big(4), 4, 4, 'after'), ('k1', 1, 1, 'after');
UPDATE t57.src SET v = 'after, changed' WHERE n = 4;
CALL incetl.run('l57');
SELECT * FROM regress.last_counts('l57');
SELECT * FROM t57.diff();
SELECT left(name, 10) AS name, n, c, v FROM t57.tgt ORDER BY n;
-- nothing more to do
CALL incetl.run('l57');
SELECT * FROM regress.last_counts('l57');

\echo '-- a key column altered and back while the slot holds its changes'
INSERT INTO t57.src SELECT 'a', g, 1, 'a' || g FROM generate_series(1, 5) AS g;
UPDATE t57.src SET v = 'before' WHERE name = 'a' AND n = 1;
ALTER TABLE t57.src ALTER COLUMN n TYPE bigint;
UPDATE t57.src SET v = 'as bigint' WHERE name = 'a' AND n = 2;
UPDATE t57.src SET n = 30 WHERE name = 'a' AND n = 3;
DELETE FROM t57.src WHERE name = 'a' AND n = 4;
ALTER TABLE t57.src ALTER COLUMN n TYPE integer;
UPDATE t57.src SET v = 'after' WHERE name = 'a' AND n = 5;
CALL incetl.run('l57');
SELECT * FROM regress.last_counts('l57');
SELECT * FROM t57.diff();
SELECT name, n, c, v FROM t57.tgt WHERE name = 'a' ORDER BY n;
UPDATE t57.src SET v = 'typed again' WHERE name = 'a';
CALL incetl.run('l57');
SELECT * FROM regress.last_counts('l57');
SELECT * FROM t57.diff();

SELECT incetl.drop_pipeline('l57');

\echo '-- REPLICA IDENTITY FULL: the old row, long values flattened, is the old key'
CREATE TABLE t57.fsrc (name text, v text);
ALTER TABLE t57.fsrc REPLICA IDENTITY FULL;
CREATE TABLE t57.ftgt (name text PRIMARY KEY, v text);
INSERT INTO t57.fsrc VALUES (t57.big(5), 'f5'), (t57.big(6), 'f6'), ('short', 's');
SELECT incetl.create_pipeline('f57', 't57.fsrc', 't57.ftgt', strategy => 'logical',
							  key_columns => '{name}') > 0 AS created;
CALL incetl.run('f57');
UPDATE t57.fsrc SET v = 'f5 changed' WHERE name = t57.big(5);
UPDATE t57.fsrc SET name = t57.big(7) WHERE name = t57.big(6);
UPDATE t57.fsrc SET name = t57.big(8), v = 'was short' WHERE name = 'short';
INSERT INTO t57.fsrc VALUES (t57.big(9), 'f9');
DELETE FROM t57.fsrc WHERE name = t57.big(9);
CALL incetl.run('f57');
SELECT * FROM regress.last_counts('f57');
SELECT (SELECT count(*) FROM (TABLE t57.fsrc EXCEPT TABLE t57.ftgt) a) AS missing,
	   (SELECT count(*) FROM (TABLE t57.ftgt EXCEPT TABLE t57.fsrc) b) AS extra;
SELECT incetl.drop_pipeline('f57');
DROP SCHEMA t57 CASCADE;
