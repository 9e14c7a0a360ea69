--
-- 42_hash_exact: a hash pipeline, its preview and reconcile see exactly
-- what differs.
--  * With no stored hashes (the first run, or after alter_pipeline(
--    hash_algorithm => ...) empties them) a run deletes the target rows the
--    source lacks, preview says so, and afterwards every source row has its
--    stored hash (the next run reads nothing).
--  * With a TRUNCATE pending (trigger strategy) preview lists each key
--    once, with the op the run performs.
--  * Arrays that differ only in shape (dimensions, lower bounds) are an
--    update for hash64, in the hash strategy, preview and reconcile, also
--    nested in domains, composites and ranges; other values hash as before.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t42;
SET search_path = t42, public;

-- the stored hashes of a pipeline: how many, and whether each matches the
-- source row of its key
CREATE FUNCTION t42.state_check(p text, src text) RETURNS TABLE (state_rows bigint, wrong bigint)
LANGUAGE plpgsql AS $$
DECLARE
	st text;
	alg text;
BEGIN
	SELECT 'incetl.hash_state_' || id, hash_algorithm INTO st, alg FROM incetl.pipelines WHERE name = p;
	RETURN QUERY EXECUTE format(
		'SELECT (SELECT count(*) FROM %s), (SELECT count(*) FROM %s st LEFT JOIN %s s ON s.id = st.k1 '
		'WHERE s.id IS NULL OR st.h IS DISTINCT FROM %s(ROW(s.v)))',
		st, st, src, CASE alg WHEN 'sha256' THEN 'incetl._row_sha256' ELSE 'incetl.row_hash' END);
END;
$$;

\echo '-- 1. first run of a hash pipeline: target rows the source lacks go'
CREATE TABLE s1 (id int PRIMARY KEY, v text);
CREATE TABLE t1 (id int PRIMARY KEY, v text);
INSERT INTO t1 VALUES (1, 'stale'), (2, 'b'), (3, 'old');
INSERT INTO s1 VALUES (2, 'b'), (3, 'c'), (4, 'd');
SELECT incetl.create_pipeline('p42a', 't42.s1', 't42.t1', strategy => 'hash') IS NOT NULL AS created;
SELECT * FROM incetl.preview('p42a') ORDER BY 1, 2::text;
CALL incetl.run('p42a');
SELECT * FROM t1 ORDER BY id;
SELECT extracted, inserted, updated, deleted, unchanged FROM regress.last_counts('p42a');
SELECT * FROM t42.state_check('p42a', 't42.s1');
-- every stored hash is there: the next run reads nothing
CALL incetl.run('p42a');
SELECT extracted, inserted, updated, deleted, unchanged FROM regress.last_counts('p42a');
SELECT * FROM incetl.preview('p42a');

\echo '-- after alter_pipeline(hash_algorithm) empties the stored hashes'
INSERT INTO t1 VALUES (9, 'stray');
UPDATE t1 SET v = 'drift' WHERE id = 2;
SELECT incetl.alter_pipeline('p42a', hash_algorithm => 'sha256');
SELECT * FROM t42.state_check('p42a', 't42.s1');
SELECT * FROM incetl.preview('p42a') ORDER BY 1, 2::text;
CALL incetl.run('p42a');
SELECT * FROM t1 ORDER BY id;
SELECT extracted, inserted, updated, deleted, unchanged FROM regress.last_counts('p42a');
SELECT * FROM t42.state_check('p42a', 't42.s1');
CALL incetl.run('p42a');
SELECT extracted, inserted, updated, deleted, unchanged FROM regress.last_counts('p42a');
-- with a soft-delete target the row is flagged, once
CREATE TABLE t1f (id int PRIMARY KEY, v text, is_deleted boolean NOT NULL DEFAULT false);
INSERT INTO t1f VALUES (1, 'stale', false), (5, 'gone', true), (2, 'b', false);
SELECT incetl.create_pipeline('p42f', 't42.s1', 't42.t1f', strategy => 'hash',
							  delete_mode => 'soft') IS NOT NULL AS created;
SELECT * FROM incetl.preview('p42f') ORDER BY 1, 2::text;
CALL incetl.run('p42f');
SELECT * FROM t1f ORDER BY id;
CALL incetl.run('p42f');
SELECT extracted, inserted, updated, deleted, unchanged FROM regress.last_counts('p42f');

\echo '-- 2. preview with a TRUNCATE pending lists each key once'
CREATE TABLE s2 (id int PRIMARY KEY, v text);
CREATE TABLE t2 (id int PRIMARY KEY, v text);
INSERT INTO s2 VALUES (1, 'a'), (2, 'b'), (3, 'c');
SELECT incetl.create_pipeline('p42b', 't42.s2', 't42.t2', strategy => 'trigger') IS NOT NULL AS created;
CALL incetl.run('p42b');
DELETE FROM s2 WHERE id = 1;
UPDATE s2 SET v = 'x' WHERE id = 2;
TRUNCATE s2;
INSERT INTO s2 VALUES (3, 'c'), (4, 'd');
SELECT * FROM incetl.preview('p42b') ORDER BY 1, 2::text;
CALL incetl.run('p42b');
SELECT * FROM t2 ORDER BY id;
SELECT inserted, updated, deleted FROM regress.last_counts('p42b');

\echo '-- 3. arrays that differ only in shape'
SELECT '[0:1]={5,6}'::int[] = '{5,6}'::int[] AS lb_equal,
	   '{{1,2},{3,4}}'::int[] = '{1,2,3,4}'::int[] AS dims_equal;
SELECT incetl.row_hash(ROW('{5,6}'::int[])) = incetl.row_hash(ROW('[0:1]={5,6}'::int[])) AS lb_same_hash,
	   incetl.row_hash(ROW('{1,2,3,4}'::int[])) = incetl.row_hash(ROW('{{1,2},{3,4}}'::int[])) AS dims_same_hash,
	   incetl.row_hash(ROW('[2:3]={5,6}'::int[])) = incetl.row_hash(ROW('[0:1]={5,6}'::int[])) AS lb2_same_hash;
-- other values keep the hash they had (the 0.1 hashes)
SELECT incetl.row_hash(ROW(1, 'a'::text)) AS plain,
	   incetl.row_hash(ROW('{5,6}'::int[])) AS plain_array,
	   incetl.row_hash(ROW('{}'::int[], NULL::int[])) AS empty_array;
CREATE TABLE s5 (id int PRIMARY KEY, a integer[]);
CREATE TABLE t5 (id int PRIMARY KEY, a integer[]);
INSERT INTO s5 VALUES (1, '{1,2,3,4}'), (2, '{5,6}'), (3, '{7}');
SELECT incetl.create_pipeline('p42c', 't42.s5', 't42.t5', strategy => 'hash') IS NOT NULL AS created;
CALL incetl.run('p42c');
UPDATE s5 SET a = '{{1,2},{3,4}}' WHERE id = 1;
UPDATE s5 SET a = '[0:1]={5,6}' WHERE id = 2;
SELECT * FROM incetl.preview('p42c') ORDER BY 1, 2::text;
CALL incetl.run('p42c');
SELECT inserted, updated, deleted, unchanged FROM regress.last_counts('p42c');
SELECT id, a, array_lower(a, 1) AS lb FROM t5 ORDER BY id;
-- reconcile (hash64 on both sides) repairs a target that differs in shape only
UPDATE t5 SET a = '[5:5]={7}' WHERE id = 3;
UPDATE t5 SET a = '{1,2,3,4}' WHERE id = 1;
CALL incetl.reconcile('p42c');
SELECT inserted, updated, deleted, unchanged FROM regress.last_counts('p42c');
SELECT id, a, array_lower(a, 1) AS lb FROM t5 ORDER BY id;
SELECT count(*) AS differing FROM (SELECT id, a::text FROM s5 EXCEPT SELECT id, a::text FROM t5) x;
CALL incetl.run('p42c');
SELECT extracted, inserted, updated, deleted, unchanged FROM regress.last_counts('p42c');

-- nested: a domain over an array, a composite holding an array, a range of arrays
CREATE DOMAIN t42.ints AS int[];
CREATE TYPE t42.pair AS (n int, a int[]);
CREATE TYPE t42.arange AS RANGE (subtype = int[]);
CREATE TABLE s6 (id int PRIMARY KEY, d t42.ints, c t42.pair, r t42.arange, ca t42.pair[]);
CREATE TABLE t6 (id int PRIMARY KEY, d t42.ints, c t42.pair, r t42.arange, ca t42.pair[]);
INSERT INTO s6 VALUES (1, '{1,2}', ROW(1, '{1,2}'), '["{1}","{2}"]', ARRAY[ROW(1, '{1,2}')::t42.pair]);
INSERT INTO s6 SELECT 2, d, c, r, ca FROM s6;
INSERT INTO s6 SELECT 3, d, c, r, ca FROM s6 WHERE id = 1;
INSERT INTO s6 SELECT 4, d, c, r, ca FROM s6 WHERE id = 1;
SELECT incetl.create_pipeline('p42d', 't42.s6', 't42.t6', strategy => 'hash') IS NOT NULL AS created;
CALL incetl.run('p42d');
UPDATE s6 SET d = '[0:1]={1,2}' WHERE id = 1;
UPDATE s6 SET c = ROW(1, '[0:1]={1,2}') WHERE id = 2;
UPDATE s6 SET r = '["[0:0]={1}","{2}"]' WHERE id = 3;
UPDATE s6 SET ca = ARRAY[ROW(1, '[0:1]={1,2}')::t42.pair] WHERE id = 4;
SELECT * FROM incetl.preview('p42d') ORDER BY 1, 2::text;
CALL incetl.run('p42d');
SELECT inserted, updated, deleted, unchanged FROM regress.last_counts('p42d');
SELECT count(*) AS differing FROM (SELECT id, d::text, c::text, r::text, ca::text FROM s6
	EXCEPT SELECT id, d::text, c::text, r::text, ca::text FROM t6) x;

SELECT incetl.drop_pipeline(name) FROM incetl.pipelines WHERE name LIKE 'p42_' ORDER BY name;
RESET search_path;
DROP SCHEMA t42 CASCADE;
