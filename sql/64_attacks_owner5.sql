--
-- 64_attacks_owner5: a non-superuser pipeline owner (t64_mal, REPLICATION)
-- attacks the surfaces of 9d453f1..7537590 that need no Citus (those are in
-- t/101_citus_stage.pl):
--
--   1. the Citus stage incetl.tstage_<id>: she cannot create a table in
--      schema incetl (a stage made before the pipeline's, under its name)
--   2. 'logical': the decode loop skips other tables' row changes and
--      their TOAST chunks (skip_other_relation), deciding from pg_class.
--      Her other tables and matview, all with TOAST (EXTERNAL storage),
--      settled before the slot's catalog_xmin, then renamed and swapped,
--      truncated, rewritten (VACUUM FULL, CLUSTER, ALTER COLUMN TYPE),
--      refreshed, dropped and re-made, their TOAST options changed, in
--      and between the transactions that change her source (TOASTed
--      inserts, updates and deletes): her pipeline, run by the superuser,
--      loses nothing and neither errors nor crashes
--   3. t64_bob's logical pipeline, run by the superuser, while she does
--      the same in transactions of her own: his target equals his source
--   4. a TOASTed row in each of hundreds of tables of hers: his run reads
--      pg_class once for their TOAST tables' owners, not once a table
--      (quadratic: 6,000 such tables made one read take 9.5 s, not 0.1 s)
--
SET incetl.late_commit_margin = 0;
CREATE ROLE t64_mal NOLOGIN REPLICATION;
CREATE ROLE t64_bob NOLOGIN REPLICATION;
CREATE SCHEMA t64_m AUTHORIZATION t64_mal;
CREATE SCHEMA t64_b AUTHORIZATION t64_bob;
GRANT USAGE ON SCHEMA t64_m, t64_b TO PUBLIC;

\echo '-- 1. no table of hers in schema incetl'
SET ROLE t64_mal;
CREATE TABLE incetl.tstage_999999 (w integer);
CREATE TABLE incetl.tstage_999998 (LIKE pg_catalog.pg_class);
SELECT has_schema_privilege('incetl', 'CREATE') AS may_create;
RESET ROLE;

\echo '-- 2. her logical pipeline, her other tables'
SET ROLE t64_mal;
CREATE TABLE t64_m.src (id integer PRIMARY KEY, v text);
ALTER TABLE t64_m.src ALTER v SET STORAGE EXTERNAL;
CREATE TABLE t64_m.tgt (id integer PRIMARY KEY, v text);
CREATE TABLE t64_m.o1 (id integer PRIMARY KEY, v text);
ALTER TABLE t64_m.o1 ALTER v SET STORAGE EXTERNAL;
CREATE TABLE t64_m.o2 (id integer PRIMARY KEY, v text);
ALTER TABLE t64_m.o2 ALTER v SET STORAGE EXTERNAL;
INSERT INTO t64_m.o1 SELECT g, repeat(md5(g::text), 100) FROM generate_series(1, 5) AS g;
CREATE MATERIALIZED VIEW t64_m.mv AS SELECT id, v FROM t64_m.o1;
CREATE UNIQUE INDEX ON t64_m.mv (id);
CREATE FUNCTION t64_m.big(i integer) RETURNS text LANGUAGE sql IMMUTABLE AS
	$$ SELECT repeat(md5(i::text), 100) $$;
CREATE FUNCTION t64_m.diff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (TABLE t64_m.src EXCEPT TABLE t64_m.tgt) a),
		   (SELECT count(*) FROM (TABLE t64_m.tgt EXCEPT TABLE t64_m.src) b)
$$;
SELECT incetl.create_pipeline('m64', 't64_m.src', 't64_m.tgt', strategy => 'logical') > 0 AS created;
INSERT INTO t64_m.src SELECT g, t64_m.big(g) FROM generate_series(1, 40) AS g;
RESET ROLE;
-- the slot's catalog_xmin past the tables' creation
CALL incetl.run('m64');
CHECKPOINT;
INSERT INTO t64_m.src VALUES (41, 'x');
CALL incetl.run('m64');
CHECKPOINT;
INSERT INTO t64_m.src VALUES (42, 'x');
CALL incetl.run('m64');
SELECT * FROM t64_m.diff();

SET ROLE t64_mal;
-- TOASTed rows of her settled tables around TOASTed source changes
BEGIN;
INSERT INTO t64_m.o1 SELECT g, t64_m.big(g) FROM generate_series(10, 14) AS g;
DELETE FROM t64_m.src WHERE id = 1;
UPDATE t64_m.o2 SET v = t64_m.big(7);
INSERT INTO t64_m.o2 VALUES (1, t64_m.big(1));
UPDATE t64_m.src SET v = t64_m.big(1000) WHERE id = 2;
INSERT INTO t64_m.o1 VALUES (15, t64_m.big(15));
DELETE FROM t64_m.src WHERE id = 3;
COMMIT;
-- her tables' names swapped, then written in one transaction with the source
ALTER TABLE t64_m.o1 RENAME TO tmp;
ALTER TABLE t64_m.o2 RENAME TO o1;
ALTER TABLE t64_m.tmp RENAME TO o2;
BEGIN;
INSERT INTO t64_m.o1 VALUES (2, t64_m.big(2));
DELETE FROM t64_m.src WHERE id = 4;
DELETE FROM t64_m.o2 WHERE id = 10;
UPDATE t64_m.src SET v = t64_m.big(2000) WHERE id = 5;
COMMIT;
-- TRUNCATE and a matview refresh inside the source's transaction
BEGIN;
INSERT INTO t64_m.o2 VALUES (20, t64_m.big(20));
TRUNCATE t64_m.o1;
INSERT INTO t64_m.o1 VALUES (3, t64_m.big(3));
DELETE FROM t64_m.src WHERE id = 6;
REFRESH MATERIALIZED VIEW t64_m.mv;
UPDATE t64_m.src SET v = t64_m.big(3000) WHERE id = 7;
COMMIT;
REFRESH MATERIALIZED VIEW CONCURRENTLY t64_m.mv;
DELETE FROM t64_m.src WHERE id = 8;
RESET ROLE;
CALL incetl.run('m64');
SELECT * FROM t64_m.diff();

SET ROLE t64_mal;
-- rewrites: VACUUM FULL, CLUSTER, ALTER COLUMN TYPE (a transient heap with
-- TOAST chunks of its own in the source's transaction), TOAST options
INSERT INTO t64_m.o2 SELECT g, t64_m.big(g) FROM generate_series(30, 34) AS g;
VACUUM FULL t64_m.o2;
DELETE FROM t64_m.src WHERE id = 9;
CLUSTER t64_m.o2 USING o1_pkey;
INSERT INTO t64_m.o1 SELECT g, t64_m.big(g) FROM generate_series(30, 34) AS g;
BEGIN;
INSERT INTO t64_m.o1 VALUES (35, t64_m.big(35));
DELETE FROM t64_m.src WHERE id = 10;
ALTER TABLE t64_m.o1 ALTER v TYPE varchar;
DELETE FROM t64_m.src WHERE id = 11;
INSERT INTO t64_m.o1 VALUES (36, t64_m.big(36));
UPDATE t64_m.src SET v = t64_m.big(4000) WHERE id = 12;
COMMIT;
BEGIN;
INSERT INTO t64_m.o1 VALUES (37, t64_m.big(37));
ALTER TABLE t64_m.o1 SET (toast.autovacuum_enabled = off);
INSERT INTO t64_m.o1 VALUES (38, t64_m.big(38));
DELETE FROM t64_m.src WHERE id = 13;
COMMIT;
-- dropped and made again under the same name, written with the source
BEGIN;
DROP TABLE t64_m.o1;
CREATE TABLE t64_m.o1 (id integer PRIMARY KEY, v text);
ALTER TABLE t64_m.o1 ALTER v SET STORAGE EXTERNAL;
INSERT INTO t64_m.o1 VALUES (39, t64_m.big(39));
DELETE FROM t64_m.src WHERE id = 14;
COMMIT;
INSERT INTO t64_m.o1 VALUES (40, t64_m.big(40));
DELETE FROM t64_m.src WHERE id = 15;
RESET ROLE;
CALL incetl.run('m64');
SELECT * FROM t64_m.diff();
SELECT count(*) AS src_rows FROM t64_m.src;

\echo '-- 3. bob''s logical pipeline, her transactions around his'
SET ROLE t64_bob;
CREATE TABLE t64_b.src (id integer PRIMARY KEY, v text);
ALTER TABLE t64_b.src ALTER v SET STORAGE EXTERNAL;
CREATE TABLE t64_b.tgt (id integer PRIMARY KEY, v text);
SELECT incetl.create_pipeline('b64', 't64_b.src', 't64_b.tgt', strategy => 'logical') > 0 AS created;
INSERT INTO t64_b.src SELECT g, repeat(md5(g::text), 100) FROM generate_series(1, 20) AS g;
RESET ROLE;
CALL incetl.run('b64');
CHECKPOINT;
SET ROLE t64_mal;
INSERT INTO t64_m.o2 VALUES (50, t64_m.big(50));
SET ROLE t64_bob;
DELETE FROM t64_b.src WHERE id = 1;
SET ROLE t64_mal;
BEGIN;
INSERT INTO t64_m.o2 VALUES (51, t64_m.big(51));
TRUNCATE t64_m.o1;
INSERT INTO t64_m.o1 VALUES (51, t64_m.big(51));
COMMIT;
SET ROLE t64_bob;
UPDATE t64_b.src SET v = repeat(md5('x'), 120) WHERE id = 2;
DELETE FROM t64_b.src WHERE id = 3;
SET ROLE t64_mal;
BEGIN;
INSERT INTO t64_m.o2 VALUES (52, t64_m.big(52));
ALTER TABLE t64_m.o2 RENAME TO o3;
INSERT INTO t64_m.o3 VALUES (53, t64_m.big(53));
-- (her transaction left open with TOAST chunks written: aborted)
ROLLBACK;
SET ROLE t64_bob;
DELETE FROM t64_b.src WHERE id = 4;
RESET ROLE;
CALL incetl.run('b64');
CALL incetl.run('m64');
SELECT (SELECT count(*) FROM (TABLE t64_b.src EXCEPT TABLE t64_b.tgt) a) AS missing,
	   (SELECT count(*) FROM (TABLE t64_b.tgt EXCEPT TABLE t64_b.src) b) AS extra;
SELECT * FROM t64_m.diff();

\echo '-- 4. a TOASTed row in each of 300 tables of hers: one read of pg_class, not one a table'
SET ROLE t64_mal;
DO $$BEGIN
	FOR i IN 1..300 LOOP
		EXECUTE format('CREATE TABLE t64_m.q%s (v text); ALTER TABLE t64_m.q%s ALTER v SET STORAGE EXTERNAL', i, i);
	END LOOP;
END$$;
RESET ROLE;
INSERT INTO t64_b.src VALUES (100, 'a');
CALL incetl.run('b64');
CHECKPOINT;
INSERT INTO t64_b.src VALUES (101, 'a');
CALL incetl.run('b64');
CHECKPOINT;
INSERT INTO t64_b.src VALUES (102, 'a');
CALL incetl.run('b64');
SET ROLE t64_mal;
DO $$BEGIN
	FOR i IN 1..300 LOOP
		EXECUTE format('INSERT INTO t64_m.q%s VALUES (t64_m.big(%s))', i, i);
	END LOOP;
END$$;
RESET ROLE;
INSERT INTO t64_b.src VALUES (103, 'a');
SELECT pg_stat_force_next_flush() IS NOT NULL AS flush_forced;
SELECT seq_scan AS pg_class_scans FROM pg_stat_sys_tables WHERE relname = 'pg_class' \gset
CALL incetl.run('b64');
SELECT pg_stat_force_next_flush() IS NOT NULL AS flush_forced;
SELECT seq_scan - :pg_class_scans < 100 AS pg_class_read_once
  FROM pg_stat_sys_tables WHERE relname = 'pg_class';
SELECT (SELECT count(*) FROM (TABLE t64_b.src EXCEPT TABLE t64_b.tgt) a) AS missing,
	   (SELECT count(*) FROM (TABLE t64_b.tgt EXCEPT TABLE t64_b.src) b) AS extra;

SET client_min_messages = warning;
SELECT incetl.drop_pipeline('b64');
SELECT incetl.drop_pipeline('m64');
DROP SCHEMA t64_m CASCADE;
DROP SCHEMA t64_b CASCADE;
DROP ROLE t64_mal;
DROP ROLE t64_bob;
