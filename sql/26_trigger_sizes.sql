--
-- 26_trigger_sizes: the capture trigger queues the same keys whatever the
-- sizes of the statements a session runs and in whatever order: its plans
-- are kept per size of the transition tables (a plan made for a 1-row
-- statement is not used for a 1,000-row one), statements of a few rows
-- are queued without the set-based statement, and an update that kept its
-- keys queues no old key.  All in one session, which keeps the plans.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t26s;
CREATE TABLE t26s.src (id integer PRIMARY KEY, v text);
CREATE TABLE t26s.tgt (id integer PRIMARY KEY, v text);
INSERT INTO t26s.src SELECT i, 'v' || i FROM generate_series(1, 2000) AS i;
SELECT incetl.create_pipeline('t26s', 't26s.src', 't26s.tgt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('t26s');

-- the queue's entries, by operation, and whether their seqs are distinct
CREATE FUNCTION t26s.queued() RETURNS TABLE (op "char", entries bigint)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format('SELECT op, count(*) FROM incetl.queue_%s GROUP BY op ORDER BY op',
								(SELECT id FROM incetl.pipelines WHERE name = 't26s'));
END;
$$;
CREATE FUNCTION t26s.seqs_distinct() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	r boolean;
BEGIN
	EXECUTE format('SELECT count(*) = count(DISTINCT seq) FROM incetl.queue_%s',
				   (SELECT id FROM incetl.pipelines WHERE name = 't26s')) INTO r;
	RETURN r;
END;
$$;
-- rows in which source and target differ
CREATE FUNCTION t26s.differences() RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(*) FROM ((SELECT * FROM t26s.src EXCEPT SELECT * FROM t26s.tgt)
						  UNION ALL (SELECT * FROM t26s.tgt EXCEPT SELECT * FROM t26s.src)) AS d
$$;

\echo '-- small statements first, then large ones'
UPDATE t26s.src SET v = 'one' WHERE id = 1;
-- a statement that changed no row queues nothing
UPDATE t26s.src SET v = 'none' WHERE id < 0;
SELECT * FROM t26s.queued();
-- a few rows, two keys moved: their old keys too
UPDATE t26s.src SET id = id + 10000 WHERE id IN (2, 3);
UPDATE t26s.src SET v = 'three' WHERE id IN (4, 5, 6);
SELECT * FROM t26s.queued();
-- 1,000 rows after those, keys kept: no old key
UPDATE t26s.src SET v = 'thousand' WHERE id BETWEEN 1001 AND 2000;
SELECT * FROM t26s.queued();
-- 500 rows, every key moved
UPDATE t26s.src SET id = id + 20000 WHERE id BETWEEN 501 AND 1000;
SELECT * FROM t26s.queued();
-- 997 rows, 500 of them moved back
UPDATE t26s.src SET id = CASE WHEN id > 20000 THEN id - 20000 ELSE id END
 WHERE id > 20000 OR id BETWEEN 4 AND 500;
SELECT * FROM t26s.queued();
-- inserts and deletes, small and large
INSERT INTO t26s.src VALUES (5000, 'small');
INSERT INTO t26s.src SELECT i, 'large' FROM generate_series(6000, 6099) AS i;
DELETE FROM t26s.src WHERE id = 5000;
DELETE FROM t26s.src WHERE id BETWEEN 6000 AND 6049;
SELECT * FROM t26s.queued();
SELECT t26s.seqs_distinct();
CALL incetl.run('t26s');
SELECT status, extracted, inserted, updated, deleted FROM regress.last_counts('t26s');
SELECT t26s.differences();

\echo '-- large statements first, then small ones'
UPDATE t26s.src SET v = 'large again' WHERE id BETWEEN 1 AND 1500;
UPDATE t26s.src SET id = id + 30000 WHERE id BETWEEN 1 AND 700;
UPDATE t26s.src SET v = 'small again' WHERE id = 1600;
UPDATE t26s.src SET id = 7 WHERE id = 30007;
DELETE FROM t26s.src WHERE id = 1700;
SELECT * FROM t26s.queued();
SELECT t26s.seqs_distinct();
CALL incetl.run('t26s');
SELECT status, extracted, inserted, updated, deleted FROM regress.last_counts('t26s');
SELECT t26s.differences();

SELECT incetl.drop_pipeline('t26s');
SET client_min_messages = warning;
DROP SCHEMA t26s CASCADE;
RESET client_min_messages;
