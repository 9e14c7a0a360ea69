--
-- 53_logical_confirm: a 'logical' run decodes its slot once and, after its
-- commit, confirms it with what the decoder proposed on the way: the slot's
-- restart_lsn moves up to the last snapshot the run decoded (not only to
-- the first one after the previous run), and its catalog_xmin moves too.
--
-- A slot whose restart_lsn lags makes every run decode again what earlier
-- runs decoded, and keeps WAL; a catalog_xmin that does not move keeps dead
-- catalog rows from being vacuumed.  A CHECKPOINT writes the running
-- transactions record at which the decoder proposes both; two checkpoints
-- between runs make the difference between the first proposal and the last
-- visible.  The preview, which peeks through the SQL functions, does not
-- move the slot.
--
CREATE SCHEMA t53;
CREATE TABLE t53.src (id integer PRIMARY KEY, v text);
CREATE TABLE t53.tgt (id integer PRIMARY KEY, v text);
SELECT incetl.create_pipeline('c53', 't53.src', 't53.tgt', strategy => 'logical') > 0 AS created;
CREATE FUNCTION t53.slot(OUT restart_lsn pg_lsn, OUT confirmed pg_lsn, OUT catalog_xmin bigint)
LANGUAGE sql AS $$
	SELECT r.restart_lsn, r.confirmed_flush_lsn, r.catalog_xmin::text::bigint
	  FROM pg_replication_slots r
	  JOIN incetl.state s ON s.slot_name = r.slot_name
	  JOIN incetl.pipelines p ON p.id = s.pipeline_id
	 WHERE p.name = 'c53'
$$;
CALL incetl.run('c53');
INSERT INTO t53.src SELECT g, 'a' FROM generate_series(1, 100) AS g;
CALL incetl.run('c53');
SELECT restart_lsn AS r1, confirmed AS c1, catalog_xmin AS x1 FROM t53.slot() \gset

-- two snapshots between the runs, transactions in between and after
CHECKPOINT;
UPDATE t53.src SET v = 'b' WHERE id <= 50;
SELECT pg_current_wal_lsn() AS second \gset
CHECKPOINT;
UPDATE t53.src SET v = 'c' WHERE id > 50;
SELECT * FROM incetl.preview('c53') LIMIT 0;
SELECT restart_lsn = :'r1' AS preview_left_restart, confirmed = :'c1' AS preview_left_confirmed
  FROM t53.slot();
CALL incetl.run('c53');
SELECT restart_lsn >= :'second'::pg_lsn AS restart_at_last_snapshot,
	   restart_lsn <= confirmed AS restart_not_past_confirmed,
	   confirmed > :'c1'::pg_lsn AS confirmed_moved,
	   catalog_xmin > :x1 AS catalog_xmin_moved
  FROM t53.slot();
SELECT count(*) AS differ FROM (TABLE t53.src EXCEPT TABLE t53.tgt) d;

-- a run with nothing to read still confirms the WAL others wrote
SELECT confirmed AS c2 FROM t53.slot() \gset
CREATE TABLE t53.other (x integer);
INSERT INTO t53.other SELECT generate_series(1, 10);
CALL incetl.run('c53');
SELECT confirmed > :'c2'::pg_lsn AS quiet_run_confirmed FROM t53.slot();
SELECT rows_extracted FROM incetl.run_log
 WHERE pipeline_id = (SELECT id FROM incetl.pipelines WHERE name = 'c53')
 ORDER BY run_id DESC LIMIT 1;

SELECT incetl.drop_pipeline('c53');
DROP SCHEMA t53 CASCADE;
