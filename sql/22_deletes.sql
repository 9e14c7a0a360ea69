--
-- 22_deletes: how the 'timestamp' strategy learns of deletes, and what it
-- does with them.  delete_detection 'flag' (a boolean source column) and
-- 'compare' (target keys the source no longer has), each with delete_mode
-- 'hard' (the target row goes) and 'soft' (the target row stays with
-- is_deleted = true and deleted_at set, keeping its data).  Exact counts;
-- a soft-deleted row is not counted again by later runs; a key that comes
-- back is un-deleted (is_deleted false, deleted_at NULL).  And the
-- mistakes create_pipeline refuses.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t22;

-- "ok" or "SQLSTATE: message", with detail and hint
-- when the runs being checked started (deleted_at must fall after it)
CREATE TABLE t22.mark (name text PRIMARY KEY, at timestamptz NOT NULL);
CREATE FUNCTION t22.mark(n text) RETURNS void LANGUAGE sql AS $$
	INSERT INTO t22.mark VALUES (n, clock_timestamp())
	ON CONFLICT (name) DO UPDATE SET at = EXCLUDED.at
$$;

--------------------------------------------------------------------------
\echo '-- flag, hard: a flagged row is deleted from the target'
CREATE TABLE t22.fs (id integer PRIMARY KEY, v text, gone boolean NOT NULL DEFAULT false,
					 updated_at timestamptz NOT NULL);
CREATE TABLE t22.ft (id integer PRIMARY KEY, v text, gone boolean, updated_at timestamptz);
INSERT INTO t22.fs SELECT i, 'v' || i, false, '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, 8) AS i;
-- row 8 is flagged before it ever reached the target
UPDATE t22.fs SET gone = true WHERE id = 8;
SELECT incetl.create_pipeline('del_flag_hard', 't22.fs', 't22.ft', watermark_column => 'updated_at',
							  delete_detection => 'flag', delete_flag_column => 'gone',
							  batch_size => 3) > 0 AS created;
CALL incetl.run('del_flag_hard');
-- 8 read, 7 inserted; the flagged row 8 had nothing to delete
SELECT * FROM regress.last_counts('del_flag_hard');
SELECT count(*) AS target_rows, count(*) FILTER (WHERE id = 8) AS row_8 FROM t22.ft;
UPDATE t22.fs SET gone = true, updated_at = '2024-02-01 00:00:00+00' WHERE id IN (2, 5);
UPDATE t22.fs SET v = 'changed', updated_at = '2024-02-01 00:00:00+00' WHERE id = 3;
SELECT op, key FROM incetl.preview('del_flag_hard') ORDER BY op, key->>'id';
CALL incetl.run('del_flag_hard');
SELECT * FROM regress.last_counts('del_flag_hard');
SELECT id, v, gone FROM t22.ft ORDER BY id;
-- a flagged row read again (its timestamp moved) deletes nothing more
UPDATE t22.fs SET v = 'still gone', updated_at = '2024-02-02 00:00:00+00' WHERE id = 2;
CALL incetl.run('del_flag_hard');
SELECT * FROM regress.last_counts('del_flag_hard');
-- the flag cleared: the key comes back
UPDATE t22.fs SET gone = false, updated_at = '2024-02-03 00:00:00+00' WHERE id = 5;
CALL incetl.run('del_flag_hard');
SELECT * FROM regress.last_counts('del_flag_hard');
SELECT id, v, gone FROM t22.ft ORDER BY id;
SELECT (SELECT count(*) FROM (SELECT id, v, gone, updated_at FROM t22.fs WHERE NOT gone
							  EXCEPT TABLE t22.ft) a) AS missing,
	   (SELECT count(*) FROM (TABLE t22.ft EXCEPT SELECT id, v, gone, updated_at FROM t22.fs
							  WHERE NOT gone) b) AS extra;

--------------------------------------------------------------------------
\echo '-- flag, soft: a flagged row stays, marked deleted, with its data'
CREATE TABLE t22.fst (id integer PRIMARY KEY, v text, gone boolean, updated_at timestamptz,
					  is_deleted boolean NOT NULL DEFAULT false, deleted_at timestamptz);
UPDATE t22.fs SET gone = false, v = 'v' || id, updated_at = '2024-01-01 00:00:00+00'::timestamptz + id * interval '1 minute';
UPDATE t22.fs SET gone = true WHERE id = 8;
SELECT incetl.create_pipeline('del_flag_soft', 't22.fs', 't22.fst', watermark_column => 'updated_at',
							  delete_detection => 'flag', delete_flag_column => 'gone',
							  delete_mode => 'soft', batch_size => 3) > 0 AS created;
SELECT delete_mode, soft_delete_column FROM incetl.pipelines WHERE name = 'del_flag_soft';
CALL incetl.run('del_flag_soft');
SELECT * FROM regress.last_counts('del_flag_soft');
-- inserted rows are not deleted; row 8 was never loaded
SELECT count(*) AS rows, count(*) FILTER (WHERE is_deleted) AS deleted,
	   count(*) FILTER (WHERE deleted_at IS NOT NULL) AS with_deleted_at
  FROM t22.fst;
UPDATE t22.fs SET gone = true, v = 'new value', updated_at = '2024-02-01 00:00:00+00' WHERE id = 2;
UPDATE t22.fs SET gone = true, updated_at = '2024-02-01 00:00:00+00' WHERE id = 5;
SELECT op, key FROM incetl.preview('del_flag_soft') ORDER BY op, key->>'id';
SELECT t22.mark('flag_soft');
CALL incetl.run('del_flag_soft');
SELECT * FROM regress.last_counts('del_flag_soft');
-- rows 2 and 5 keep the data they had; deleted_at is the run's time
SELECT id, v, gone, is_deleted, deleted_at IS NOT NULL AS has_deleted_at,
	   deleted_at BETWEEN (SELECT at FROM t22.mark WHERE name = 'flag_soft') AND clock_timestamp() AS deleted_during_run
  FROM t22.fst ORDER BY id;
CREATE TEMP TABLE fx AS SELECT id, xmin::text AS x, deleted_at FROM t22.fst;
\echo '-- a soft-deleted row read again is not counted or rewritten again'
UPDATE t22.fs SET v = 'newer value', updated_at = '2024-02-02 00:00:00+00' WHERE id = 2;
SELECT count(*) AS previewed FROM incetl.preview('del_flag_soft');
CALL incetl.run('del_flag_soft');
SELECT * FROM regress.last_counts('del_flag_soft');
SELECT count(*) AS rewritten FROM t22.fst t JOIN fx USING (id) WHERE t.xmin::text <> fx.x;
\echo '-- resurrection: the flag cleared un-deletes the row and loads its data'
UPDATE t22.fs SET gone = false, v = 'back', updated_at = '2024-02-03 00:00:00+00' WHERE id = 5;
SELECT op, key FROM incetl.preview('del_flag_soft') ORDER BY op, key->>'id';
CALL incetl.run('del_flag_soft');
SELECT * FROM regress.last_counts('del_flag_soft');
SELECT id, v, gone, is_deleted, t.deleted_at IS NOT NULL AS has_deleted_at,
	   t.deleted_at = fx.deleted_at AS same_deleted_at
  FROM t22.fst t JOIN fx USING (id) WHERE id IN (2, 5) ORDER BY id;
-- flagged again: deleted again, with a new deleted_at
SELECT t22.mark('flag_soft_2');
UPDATE t22.fs SET gone = true, updated_at = '2024-02-04 00:00:00+00' WHERE id = 5;
CALL incetl.run('del_flag_soft');
SELECT * FROM regress.last_counts('del_flag_soft');
SELECT id, v, is_deleted, deleted_at >= (SELECT at FROM t22.mark WHERE name = 'flag_soft_2') AS new_deleted_at
  FROM t22.fst WHERE id = 5;

--------------------------------------------------------------------------
\echo '-- compare, hard: target keys the source no longer has are deleted'
CREATE TABLE t22.cs (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t22.ct (id integer PRIMARY KEY, v text, updated_at timestamptz);
INSERT INTO t22.cs SELECT i, 'v' || i, '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, 10) AS i;
SELECT incetl.create_pipeline('del_cmp_hard', 't22.cs', 't22.ct', watermark_column => 'updated_at',
							  delete_detection => 'compare', batch_size => 2) > 0 AS created;
CALL incetl.run('del_cmp_hard');
SELECT * FROM regress.last_counts('del_cmp_hard');
-- deletes need no timestamp change: the rows are simply gone
DELETE FROM t22.cs WHERE id IN (2, 4, 6);
UPDATE t22.cs SET v = 'changed', updated_at = '2024-02-01 00:00:00+00' WHERE id = 7;
SELECT op, key FROM incetl.preview('del_cmp_hard') ORDER BY op, (key->>'id')::integer;
CALL incetl.run('del_cmp_hard');
-- 1 row read; 3 deletes in batches of at most 2
SELECT * FROM regress.last_counts('del_cmp_hard');
SELECT id, v FROM t22.ct ORDER BY id;
CALL incetl.run('del_cmp_hard');
SELECT * FROM regress.last_counts('del_cmp_hard');
-- a deleted key inserted again (with an old timestamp, below the watermark,
-- so the run does not read it): compare does not bring rows back
INSERT INTO t22.cs VALUES (4, 'v4 again', '2024-01-01 00:04:00+00');
CALL incetl.run('del_cmp_hard');
SELECT * FROM regress.last_counts('del_cmp_hard');
SELECT count(*) AS row_4 FROM t22.ct WHERE id = 4;
-- with a new timestamp it comes back
UPDATE t22.cs SET updated_at = '2024-02-02 00:00:00+00' WHERE id = 4;
CALL incetl.run('del_cmp_hard');
SELECT * FROM regress.last_counts('del_cmp_hard');
SELECT (SELECT count(*) FROM (TABLE t22.cs EXCEPT TABLE t22.ct) a) AS missing,
	   (SELECT count(*) FROM (TABLE t22.ct EXCEPT TABLE t22.cs) b) AS extra;

--------------------------------------------------------------------------
\echo '-- compare, soft'
CREATE TABLE t22.cst (id integer PRIMARY KEY, v text, updated_at timestamptz,
					  is_deleted boolean, deleted_at timestamptz);
-- a target row the source never had is soft-deleted by the first run
INSERT INTO t22.cst VALUES (99, 'stray', '2020-01-01 00:00:00+00', false, NULL);
SELECT incetl.create_pipeline('del_cmp_soft', 't22.cs', 't22.cst', watermark_column => 'updated_at',
							  delete_detection => 'compare', delete_mode => 'soft',
							  batch_size => 2) > 0 AS created;
CALL incetl.run('del_cmp_soft');
SELECT * FROM regress.last_counts('del_cmp_soft');
SELECT id, v, is_deleted, deleted_at IS NOT NULL AS has_deleted_at FROM t22.cst ORDER BY id;
DELETE FROM t22.cs WHERE id IN (1, 3);
SELECT op, key FROM incetl.preview('del_cmp_soft') ORDER BY op, (key->>'id')::integer;
SELECT t22.mark('cmp_soft');
CALL incetl.run('del_cmp_soft');
SELECT * FROM regress.last_counts('del_cmp_soft');
SELECT id, v, is_deleted,
	   deleted_at BETWEEN (SELECT at FROM t22.mark WHERE name = 'cmp_soft') AND clock_timestamp() AS deleted_during_run
  FROM t22.cst WHERE id IN (1, 3, 99) ORDER BY id;
\echo '-- the soft-deleted rows are not counted or rewritten by the next runs'
CREATE TEMP TABLE cx AS SELECT id, xmin::text AS x FROM t22.cst;
SELECT count(*) AS previewed FROM incetl.preview('del_cmp_soft');
CALL incetl.run('del_cmp_soft');
SELECT * FROM regress.last_counts('del_cmp_soft');
CALL incetl.run('del_cmp_soft');
SELECT * FROM regress.last_counts('del_cmp_soft');
SELECT count(*) AS rewritten FROM t22.cst t JOIN cx USING (id) WHERE t.xmin::text <> cx.x;
\echo '-- resurrection: key 3 comes back with new data'
INSERT INTO t22.cs VALUES (3, 'v3 reborn', '2024-03-01 00:00:00+00');
SELECT op, key FROM incetl.preview('del_cmp_soft') ORDER BY op, (key->>'id')::integer;
CALL incetl.run('del_cmp_soft');
SELECT * FROM regress.last_counts('del_cmp_soft');
SELECT id, v, is_deleted, deleted_at IS NOT NULL AS has_deleted_at FROM t22.cst WHERE id IN (1, 3) ORDER BY id;
-- the live rows equal the source
SELECT (SELECT count(*) FROM (TABLE t22.cs EXCEPT SELECT id, v, updated_at FROM t22.cst
							  WHERE NOT is_deleted) a) AS missing,
	   (SELECT count(*) FROM (SELECT id, v, updated_at FROM t22.cst WHERE NOT is_deleted
							  EXCEPT TABLE t22.cs) b) AS extra;

--------------------------------------------------------------------------
\echo '-- mistakes refused at create time, nothing created'
CREATE TABLE t22.bs (id integer PRIMARY KEY, v text, flag text, updated_at timestamptz NOT NULL);
CREATE TABLE t22.bt (id integer PRIMARY KEY, v text, flag text, updated_at timestamptz);
-- 'flag' without delete_flag_column
SELECT regress.try($$SELECT incetl.create_pipeline('del_bad', 't22.bs', 't22.bt', watermark_column => 'updated_at',
												delete_detection => 'flag')$$);
-- a flag column that is not boolean
SELECT regress.try($$SELECT incetl.create_pipeline('del_bad', 't22.bs', 't22.bt', watermark_column => 'updated_at',
												delete_detection => 'flag', delete_flag_column => 'flag')$$);
-- a flag column that does not exist
SELECT regress.try($$SELECT incetl.create_pipeline('del_bad', 't22.bs', 't22.bt', watermark_column => 'updated_at',
												delete_detection => 'flag', delete_flag_column => 'nope')$$);
-- delete_flag_column without 'flag'
SELECT regress.try($$SELECT incetl.create_pipeline('del_bad', 't22.bs', 't22.bt', watermark_column => 'updated_at',
												delete_flag_column => 'flag')$$);
-- 'soft' with a target that lacks the soft delete column
SELECT regress.try($$SELECT incetl.create_pipeline('del_bad', 't22.bs', 't22.bt', watermark_column => 'updated_at',
												delete_detection => 'compare', delete_mode => 'soft')$$);
SELECT regress.try($$SELECT incetl.create_pipeline('del_bad', 't22.cs', 't22.cst', watermark_column => 'updated_at',
												delete_detection => 'compare', delete_mode => 'soft',
												soft_delete_column => 'removed')$$);
-- unknown option values
SELECT regress.try($$SELECT incetl.create_pipeline('del_bad', 't22.bs', 't22.bt', watermark_column => 'updated_at',
												delete_detection => 'guess')$$);
SELECT regress.try($$SELECT incetl.create_pipeline('del_bad', 't22.bs', 't22.bt', watermark_column => 'updated_at',
												delete_mode => 'softly')$$);
SELECT count(*) AS created FROM incetl.pipelines WHERE name = 'del_bad';
-- and alter_pipeline refuses the same, leaving the pipeline as it was
SELECT regress.try($$SELECT incetl.alter_pipeline('del_cmp_hard', delete_mode => 'soft')$$);
SELECT delete_detection, delete_mode FROM incetl.pipelines WHERE name = 'del_cmp_hard';

SELECT incetl.drop_pipeline(n) FROM unnest(ARRAY['del_flag_hard', 'del_flag_soft',
												 'del_cmp_hard', 'del_cmp_soft']) AS n;
DROP SCHEMA t22 CASCADE;
