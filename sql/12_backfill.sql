--
-- 12_backfill: CALL incetl.backfill(name, start_at, end_at, chunk)
-- reprocesses the source rows whose watermark is in [start_at, end_at),
-- chunk by chunk: rows deleted from the target by hand in that range come
-- back, rows changed in place are updated, rows outside the range are not
-- touched; the watermark does not move; run_log records kind 'backfill';
-- running the same backfill again changes nothing.  Both overloads:
-- timestamptz bounds with an interval chunk, bigint bounds with a bigint
-- chunk.
--
CREATE SCHEMA t12;
CREATE TABLE t12.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t12.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
-- 48 rows, one an hour, 2024-12-01 00:00 to 2024-12-02 23:00 UTC
INSERT INTO t12.src SELECT i, 'v' || i, timestamptz '2024-12-01 00:00:00+00' + i * interval '1 hour'
  FROM generate_series(0, 47) AS i;
SELECT incetl.create_pipeline('bf', 't12.src', 't12.tgt', watermark_column => 'updated_at',
							  batch_size => 3) > 0 AS created;
CALL incetl.run('bf');
SELECT status, extracted, inserted, wm_after FROM regress.last_run('bf')
  AS r(kind, status, batches, extracted, inserted, updated, deleted, unchanged, wm_before, wm_after);
SELECT * FROM regress.cursor('bf');

\echo '-- damage: target rows deleted and source rows changed in place, inside and outside the range'
DELETE FROM t12.tgt WHERE id BETWEEN 6 AND 11;		-- inside [06:00, 18:00)
DELETE FROM t12.tgt WHERE id IN (5, 18, 29);		-- just before, at the end bound, next day
UPDATE t12.src SET v = 'fixed in place' WHERE id IN (14, 20);	-- 14 inside, 20 outside
CREATE TEMP TABLE x0 AS SELECT id, xmin::text AS x, ctid AS c FROM t12.tgt;

\echo '-- backfill [2024-12-01 06:00, 2024-12-01 18:00) in 4-hour chunks'
CALL incetl.backfill('bf', timestamptz '2024-12-01 06:00:00+00', timestamptz '2024-12-01 18:00:00+00',
					 interval '4 hours');
-- 3 chunks of 4 rows, each read in batches of 3 and 1: 12 rows; 6 inserted,
-- 1 updated, 5 unchanged
SELECT * FROM regress.last_run('bf');
-- the ids back in the target, and those still missing
SELECT array_agg(id ORDER BY id) AS back FROM t12.tgt WHERE id NOT IN (SELECT id FROM x0);
SELECT array_agg(id ORDER BY id) AS missing FROM t12.src WHERE id NOT IN (SELECT id FROM t12.tgt);
SELECT id, v FROM t12.tgt WHERE id IN (14, 20) ORDER BY id;
-- rows in the range that were fine were not rewritten, nor any outside it
SELECT array_agg(t.id ORDER BY t.id) AS rewritten FROM t12.tgt t JOIN x0 USING (id)
 WHERE t.xmin::text <> x0.x OR t.ctid <> x0.c;
-- the watermark did not move
SELECT * FROM regress.cursor('bf');
SELECT pipeline, watermark, last_status FROM incetl.status WHERE pipeline = 'bf';

\echo '-- the same backfill again changes nothing'
DROP TABLE x0;
CREATE TEMP TABLE x0 AS SELECT id, xmin::text AS x, ctid AS c FROM t12.tgt;
CALL incetl.backfill('bf', timestamptz '2024-12-01 06:00:00+00', timestamptz '2024-12-01 18:00:00+00',
					 interval '4 hours');
SELECT kind, status, extracted, inserted, updated, unchanged FROM regress.last_run('bf');
SELECT count(*) AS rewritten FROM t12.tgt t JOIN x0 USING (id)
 WHERE t.xmin::text <> x0.x OR t.ctid <> x0.c;

\echo '-- the default chunk (1 day), a range wider than the data, a chunk wider than the range'
CALL incetl.backfill('bf', '2024-11-01 00:00:00+00', '2024-12-04 00:00:00+00');
SELECT kind, status, extracted, inserted, updated, unchanged FROM regress.last_run('bf');
CALL incetl.backfill('bf', timestamptz '2024-12-02 05:00:00+00', timestamptz '2024-12-02 06:00:00+00',
					 interval '1 year');
SELECT kind, status, extracted, inserted, updated, unchanged FROM regress.last_run('bf');
SELECT count(*) AS differences FROM (
	(SELECT * FROM t12.src EXCEPT SELECT * FROM t12.tgt)
	UNION ALL (SELECT * FROM t12.tgt EXCEPT SELECT * FROM t12.src)) d;
SELECT * FROM regress.cursor('bf');

\echo '-- a backfill ahead of the cursor loads rows; the next run reads them as unchanged'
INSERT INTO t12.src VALUES (100, 'v100', '2024-12-03 01:00:00+00');
CALL incetl.backfill('bf', timestamptz '2024-12-03 00:00:00+00', timestamptz '2024-12-04 00:00:00+00');
SELECT kind, extracted, inserted FROM regress.last_run('bf');
SELECT * FROM regress.cursor('bf');
CALL incetl.run('bf');
SELECT kind, extracted, inserted, unchanged, wm_after FROM regress.last_run('bf')
  AS r(kind, status, batches, extracted, inserted, updated, deleted, unchanged, wm_before, wm_after);
SELECT kind, count(*) FROM incetl.run_log WHERE pipeline = 'bf' GROUP BY kind ORDER BY kind;

\echo '-- integer watermark: the bigint overload'
CREATE TABLE t12.isrc (id integer PRIMARY KEY, v text, seq integer NOT NULL);
CREATE TABLE t12.itgt (id integer PRIMARY KEY, v text, seq integer);
INSERT INTO t12.isrc SELECT i, 'v' || i, i * 10 FROM generate_series(1, 20) AS i;
SELECT incetl.create_pipeline('bfi', 't12.isrc', 't12.itgt', watermark_column => 'seq') > 0 AS created;
CALL incetl.run('bfi');
SELECT * FROM regress.cursor('bfi');
DELETE FROM t12.itgt WHERE seq BETWEEN 50 AND 90 OR seq IN (40, 100, 200);
UPDATE t12.isrc SET v = 'fixed in place' WHERE seq IN (60, 150);
CREATE TEMP TABLE i0 AS SELECT id, xmin::text AS x, ctid AS c FROM t12.itgt;
-- [50, 100) in chunks of 20: [50,70) [70,90) [90,100)
CALL incetl.backfill('bfi', 50, 100, 20);
SELECT * FROM regress.last_run('bfi');
SELECT array_agg(seq ORDER BY seq) AS missing FROM t12.isrc WHERE id NOT IN (SELECT id FROM t12.itgt);
SELECT seq, v FROM t12.itgt WHERE seq IN (60, 150) ORDER BY seq;
SELECT count(*) AS rewritten FROM t12.itgt t JOIN i0 USING (id)
 WHERE t.xmin::text <> i0.x OR t.ctid <> i0.c;
SELECT * FROM regress.cursor('bfi');
-- again: nothing changes
DROP TABLE i0;
CREATE TEMP TABLE i0 AS SELECT id, xmin::text AS x, ctid AS c FROM t12.itgt;
CALL incetl.backfill('bfi', 50, 100, 20);
SELECT kind, status, extracted, inserted, updated, unchanged FROM regress.last_run('bfi');
SELECT count(*) AS rewritten FROM t12.itgt t JOIN i0 USING (id)
 WHERE t.xmin::text <> i0.x OR t.ctid <> i0.c;
-- the timestamptz overload does not fit an integer watermark
SELECT regress.try($$CALL incetl.backfill('bfi', timestamptz '2024-01-01', timestamptz '2024-01-02')$$);

SELECT incetl.drop_pipeline('bf');
SELECT incetl.drop_pipeline('bfi');
DROP SCHEMA t12 CASCADE;
