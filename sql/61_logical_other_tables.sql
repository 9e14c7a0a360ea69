--
-- 61_logical_other_tables: a 'logical' run reads every table's changes in
-- the WAL, but keeps only its source's.  The other tables' row changes (a
-- run's own writes to its target among them) are not copied into the
-- decoder's reorder buffer: a transaction of thousands of rows in another
-- table does not spill to disk however small logical_decoding_work_mem is,
-- where one in the source does.  Changes written to the source's old files
-- (before a VACUUM FULL or a CLUSTER between runs) are still
-- the source's, and found.
--
CREATE SCHEMA t61;
CREATE TABLE t61.src (id integer PRIMARY KEY, v text);
CREATE TABLE t61.tgt (id integer PRIMARY KEY, v text);
CREATE TABLE t61.other (id integer PRIMARY KEY, v text);
SELECT incetl.create_pipeline('l61', 't61.src', 't61.tgt', strategy => 'logical') > 0 AS created;
CREATE FUNCTION t61.spills() RETURNS bigint LANGUAGE sql AS $$
	SELECT r.spill_txns
	  FROM pg_stat_replication_slots r
	  JOIN incetl.state s ON s.slot_name = r.slot_name
	  JOIN incetl.pipelines p ON p.id = s.pipeline_id
	 WHERE p.name = 'l61'
$$;
CREATE FUNCTION t61.diff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (TABLE t61.src EXCEPT TABLE t61.tgt) a),
		   (SELECT count(*) FROM (TABLE t61.tgt EXCEPT TABLE t61.src) b)
$$;
INSERT INTO t61.src SELECT g, 'a' FROM generate_series(1, 10) AS g;
CALL incetl.run('l61');
SELECT * FROM t61.diff();
SET logical_decoding_work_mem = '64kB';
SELECT pg_stat_reset_replication_slot(s.slot_name) IS NULL AS reset
  FROM incetl.state s JOIN incetl.pipelines p ON p.id = s.pipeline_id WHERE p.name = 'l61';

\echo '-- 5,000 rows in another table in one transaction, around source changes: no spill'
BEGIN;
INSERT INTO t61.other SELECT g, repeat('x', 100) FROM generate_series(1, 5000) AS g;
UPDATE t61.src SET v = 'b' WHERE id <= 3;
UPDATE t61.other SET v = 'y';
DELETE FROM t61.src WHERE id = 10;
COMMIT;
INSERT INTO t61.src VALUES (11, 'c');
CALL incetl.run('l61');
SELECT * FROM regress.last_counts('l61');
SELECT * FROM t61.diff();
SELECT t61.spills() AS spilled_txns;

\echo '-- the same in the source: the transaction spills, and is applied'
BEGIN;
INSERT INTO t61.src SELECT g, repeat('x', 100) FROM generate_series(100, 5099) AS g;
UPDATE t61.src SET v = 'd' WHERE id >= 100;
COMMIT;
CALL incetl.run('l61');
SELECT * FROM regress.last_counts('l61');
SELECT * FROM t61.diff();
SELECT t61.spills() > 0 AS spilled;
RESET logical_decoding_work_mem;

\echo '-- changes written to the source before a VACUUM FULL and a CLUSTER'
UPDATE t61.src SET v = 'e' WHERE id <= 5;
VACUUM FULL t61.src;
UPDATE t61.src SET v = 'f' WHERE id BETWEEN 100 AND 199;
CLUSTER t61.src USING src_pkey;
DELETE FROM t61.src WHERE id BETWEEN 200 AND 299;
CALL incetl.run('l61');
SELECT * FROM regress.last_counts('l61');
SELECT * FROM t61.diff();
BEGIN;
INSERT INTO t61.other VALUES (0, 'z');
UPDATE t61.src SET v = 'g' WHERE id <= 2;
TRUNCATE t61.other;
INSERT INTO t61.other VALUES (1, 'w');
COMMIT;
CALL incetl.run('l61');
SELECT * FROM regress.last_counts('l61');
SELECT * FROM t61.diff();
SELECT count(*) AS tgt_rows, count(*) FILTER (WHERE v = 'g') AS g_rows FROM t61.tgt;
SELECT incetl.drop_pipeline('l61');
DROP SCHEMA t61 CASCADE;
