--
-- 23_reconcile: CALL incetl.reconcile(name) compares the whole source with
-- the whole target by row hash and repairs the target.  A target edited by
-- hand (one row changed, one deleted, one extra row added) is put right for
-- a 'timestamp' pipeline, for a 'hash' pipeline (whose next run then writes
-- nothing) and with delete_mode 'soft'; the run is logged with kind
-- 'reconcile'; reconcile leaves the watermark where it was.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t23;

CREATE FUNCTION t23.last_run(p text)
RETURNS TABLE (kind text, status text, extracted bigint, inserted bigint,
			   updated bigint, deleted bigint, unchanged bigint, error text)
LANGUAGE sql AS $$
	SELECT kind, status, rows_extracted, rows_inserted, rows_updated,
		   rows_deleted, rows_unchanged, error
	  FROM incetl.run_log WHERE pipeline = p ORDER BY run_id DESC LIMIT 1
$$;
CREATE FUNCTION t23.cursor(p text) RETURNS TABLE (watermark text, watermark_key text[])
LANGUAGE sql AS $$
	SELECT s.watermark, s.watermark_key FROM incetl.state s
	  JOIN incetl.pipelines pl ON pl.id = s.pipeline_id WHERE pl.name = p
$$;

CREATE TABLE t23.src (id integer PRIMARY KEY, v text, n numeric, updated_at timestamptz NOT NULL);
INSERT INTO t23.src SELECT i, 'v' || i, i * 10, '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 hour'
  FROM generate_series(1, 12) AS i;

--------------------------------------------------------------------------
\echo '-- timestamp pipeline'
CREATE TABLE t23.ts_tgt (id integer PRIMARY KEY, v text, n numeric, updated_at timestamptz,
						 etl_run_id bigint);
SELECT incetl.create_pipeline('rec_ts', 't23.src', 't23.ts_tgt', watermark_column => 'updated_at',
							  batch_size => 4) > 0 AS created;
CALL incetl.run('rec_ts');
SELECT * FROM t23.last_run('rec_ts');
SELECT * FROM t23.cursor('rec_ts');
-- edited by hand: one row changed (only a non-watermark column), one
-- deleted, one extra row
UPDATE t23.ts_tgt SET v = 'edited' WHERE id = 3;
UPDATE t23.ts_tgt SET n = NULL WHERE id = 4;
DELETE FROM t23.ts_tgt WHERE id = 7;
INSERT INTO t23.ts_tgt VALUES (50, 'extra', 0, '2024-01-01 00:00:00+00');
-- an incremental run does not see any of it
CALL incetl.run('rec_ts');
SELECT * FROM t23.last_run('rec_ts');
CREATE TEMP TABLE tx AS SELECT id, xmin::text AS x FROM t23.ts_tgt;
CALL incetl.reconcile('rec_ts');
SELECT * FROM t23.last_run('rec_ts');
SELECT (SELECT count(*) FROM (SELECT id, v, n, updated_at FROM t23.src
							  EXCEPT SELECT id, v, n, updated_at FROM t23.ts_tgt) a) AS missing,
	   (SELECT count(*) FROM (SELECT id, v, n, updated_at FROM t23.ts_tgt
							  EXCEPT SELECT id, v, n, updated_at FROM t23.src) b) AS extra;
-- only the repaired rows were written, by the reconcile
SELECT t.id, t.etl_run_id = (SELECT max(run_id) FROM incetl.run_log WHERE pipeline = 'rec_ts') AS by_reconcile
  FROM t23.ts_tgt t LEFT JOIN tx USING (id)
 WHERE tx.x IS DISTINCT FROM t.xmin::text ORDER BY t.id;
-- the watermark did not move
SELECT * FROM t23.cursor('rec_ts');
SELECT watermark_before = watermark_after AS wm_unchanged_in_log
  FROM incetl.run_log WHERE pipeline = 'rec_ts' ORDER BY run_id DESC LIMIT 1;
-- a second reconcile finds nothing
CALL incetl.reconcile('rec_ts');
SELECT * FROM t23.last_run('rec_ts');
-- and the source rows that changed meanwhile are still for the next run
UPDATE t23.src SET v = 'new', updated_at = '2024-06-01 00:00:00+00' WHERE id = 12;
CALL incetl.run('rec_ts');
SELECT * FROM t23.last_run('rec_ts');
SELECT * FROM t23.cursor('rec_ts');

--------------------------------------------------------------------------
\echo '-- hash pipeline'
CREATE TABLE t23.h_src (id integer PRIMARY KEY, v text, n numeric);
INSERT INTO t23.h_src SELECT i, 'v' || i, i FROM generate_series(1, 8) AS i;
CREATE TABLE t23.h_tgt (id integer PRIMARY KEY, v text, n numeric);
SELECT incetl.create_pipeline('rec_hash', 't23.h_src', 't23.h_tgt', strategy => 'hash',
							  batch_size => 3) > 0 AS created;
CALL incetl.run('rec_hash');
SELECT * FROM t23.last_run('rec_hash');
UPDATE t23.h_tgt SET v = 'edited' WHERE id = 2;
DELETE FROM t23.h_tgt WHERE id = 5;
INSERT INTO t23.h_tgt VALUES (80, 'extra', 80);
-- a source change at the same time: reconcile applies it too
UPDATE t23.h_src SET n = 100 WHERE id = 8;
CALL incetl.reconcile('rec_hash');
SELECT * FROM t23.last_run('rec_hash');
SELECT (SELECT count(*) FROM (TABLE t23.h_src EXCEPT TABLE t23.h_tgt) a) AS missing,
	   (SELECT count(*) FROM (TABLE t23.h_tgt EXCEPT TABLE t23.h_src) b) AS extra;
-- the next hash run has nothing left to do and writes nothing
CREATE TEMP TABLE hx AS SELECT id, xmin::text AS x FROM t23.h_tgt;
SELECT count(*) AS previewed FROM incetl.preview('rec_hash');
CALL incetl.run('rec_hash');
SELECT * FROM t23.last_run('rec_hash');
SELECT count(*) AS rewritten FROM t23.h_tgt t JOIN hx USING (id) WHERE t.xmin::text <> hx.x;
-- and later source changes are still seen
UPDATE t23.h_src SET v = 'later' WHERE id = 1;
CALL incetl.run('rec_hash');
SELECT * FROM t23.last_run('rec_hash');

--------------------------------------------------------------------------
\echo '-- soft delete mode'
CREATE TABLE t23.s_tgt (id integer PRIMARY KEY, v text, n numeric, updated_at timestamptz,
						is_deleted boolean NOT NULL DEFAULT false, deleted_at timestamptz);
SELECT incetl.create_pipeline('rec_soft', 't23.src', 't23.s_tgt', watermark_column => 'updated_at',
							  delete_detection => 'compare', delete_mode => 'soft') > 0 AS created;
CALL incetl.run('rec_soft');
SELECT * FROM t23.last_run('rec_soft');
SELECT * FROM t23.cursor('rec_soft');
UPDATE t23.s_tgt SET v = 'edited' WHERE id = 1;
DELETE FROM t23.s_tgt WHERE id = 2;
INSERT INTO t23.s_tgt (id, v, n, updated_at) VALUES (60, 'extra', 0, '2024-01-01 00:00:00+00');
-- a row soft-deleted earlier whose key is in the source again comes back
UPDATE t23.s_tgt SET is_deleted = true, deleted_at = '2024-01-01 00:00:00+00', v = 'stale' WHERE id = 9;
-- a row soft-deleted earlier whose key is not in the source stays as it is
INSERT INTO t23.s_tgt VALUES (61, 'long gone', 0, '2024-01-01 00:00:00+00', true, '2024-01-02 00:00:00+00');
CALL incetl.reconcile('rec_soft');
SELECT * FROM t23.last_run('rec_soft');
SELECT id, v, is_deleted, deleted_at IS NOT NULL AS has_deleted_at,
	   deleted_at = '2024-01-02 00:00:00+00' AS kept_deleted_at
  FROM t23.s_tgt WHERE id IN (1, 2, 9, 60, 61) ORDER BY id;
SELECT (SELECT count(*) FROM (SELECT id, v, n, updated_at FROM t23.src
							  EXCEPT SELECT id, v, n, updated_at FROM t23.s_tgt WHERE NOT is_deleted) a) AS missing,
	   (SELECT count(*) FROM (SELECT id, v, n, updated_at FROM t23.s_tgt WHERE NOT is_deleted
							  EXCEPT SELECT id, v, n, updated_at FROM t23.src) b) AS extra;
SELECT * FROM t23.cursor('rec_soft');
CALL incetl.reconcile('rec_soft');
SELECT * FROM t23.last_run('rec_soft');

--------------------------------------------------------------------------
\echo '-- the run log: kind reconcile, both in run_log and in status'
SELECT pipeline, kind, count(*) FROM incetl.run_log
 WHERE pipeline IN ('rec_ts', 'rec_hash', 'rec_soft') GROUP BY 1, 2 ORDER BY 1, 2;
SELECT pipeline, last_status FROM incetl.status
 WHERE pipeline IN ('rec_ts', 'rec_hash', 'rec_soft') ORDER BY 1;
-- reconcile of an unknown pipeline is an error
CALL incetl.reconcile('rec_nope');

SELECT incetl.drop_pipeline(n) FROM unnest(ARRAY['rec_ts', 'rec_hash', 'rec_soft']) AS n;
DROP SCHEMA t23 CASCADE;
