--
-- 03_rerun_nochange: a run that finds nothing new writes nothing, and rows
-- read again but equal to the target's are not rewritten (no new tuple
-- version: xmin and ctid stay) and count as rows_unchanged.  Lookback
-- re-reads a window behind the cursor the same way and picks up a row
-- changed there without a new timestamp.
--
CREATE SCHEMA t03;
CREATE TABLE t03.src (
	id integer PRIMARY KEY,
	v text,
	n numeric,
	doc json,					-- no equality operator: compared as text
	tags text[],
	updated_at timestamptz NOT NULL
);
CREATE TABLE t03.tgt (
	id integer PRIMARY KEY,
	v text,
	n numeric(10,2),
	doc json,
	tags text[],
	updated_at timestamptz,
	note text DEFAULT 'target only',	-- not in the source: left alone
	etl_inserted_at timestamptz,
	etl_updated_at timestamptz,
	etl_run_id bigint
);
INSERT INTO t03.src
SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'v' || i END,
	   CASE WHEN i % 4 = 0 THEN NULL ELSE i END,
	   CASE WHEN i % 2 = 0 THEN NULL ELSE json_build_object('i', i) END,
	   CASE WHEN i % 5 = 0 THEN NULL ELSE ARRAY['a', NULL, 'b'] END,
	   timestamptz '2024-01-01 10:00:00+00' + i * interval '10 minutes'
  FROM generate_series(1, 10) AS i;
SELECT incetl.create_pipeline('rerun', 't03.src', 't03.tgt', watermark_column => 'updated_at',
							  batch_size => 4) > 0 AS created;
CALL incetl.run('rerun');
SELECT * FROM regress.last_run('rerun');

CREATE TEMP TABLE v0 AS SELECT id, xmin::text AS x, ctid AS c FROM t03.tgt;

\echo '-- re-run with no change: nothing read, nothing written'
CALL incetl.run('rerun');
SELECT * FROM regress.last_run('rerun');
SELECT count(*) AS rewritten FROM t03.tgt t JOIN v0 USING (id)
 WHERE t.xmin::text <> v0.x OR t.ctid <> v0.c;

\echo '-- everything read again (watermark reset): all unchanged, nothing rewritten'
SELECT incetl.reset_watermark('rerun');
SELECT * FROM regress.cursor('rerun');
CALL incetl.run('rerun');
SELECT * FROM regress.last_run('rerun');
SELECT count(*) AS rewritten FROM t03.tgt t JOIN v0 USING (id)
 WHERE t.xmin::text <> v0.x OR t.ctid <> v0.c;
SELECT count(*) AS rows, count(*) FILTER (WHERE note = 'target only') AS note_kept FROM t03.tgt;

\echo '-- a change in one column of one row rewrites that row only'
UPDATE t03.src SET tags = ARRAY['a', 'b'], updated_at = '2024-01-01 12:00:00+00' WHERE id = 5;
UPDATE t03.src SET doc = '{"i": 7, "new": true}', updated_at = '2024-01-01 12:00:00+00' WHERE id = 7;
UPDATE t03.src SET v = 'v9', updated_at = '2024-01-01 12:00:00+00' WHERE id = 9;	-- NULL to a value
UPDATE t03.src SET updated_at = '2024-01-01 12:00:00+00' WHERE id = 2;		-- timestamp only
SELECT incetl.reset_watermark('rerun');
CALL incetl.run('rerun');
-- updated_at is a column of the target too, so id 2 is a real change
SELECT * FROM regress.last_run('rerun');
SELECT id FROM t03.tgt t JOIN v0 USING (id)
 WHERE t.xmin::text <> v0.x OR t.ctid <> v0.c ORDER BY id;
SELECT count(*) AS differences FROM (
	(SELECT id, v, n, doc::text, tags, updated_at FROM t03.src
	 EXCEPT SELECT id, v, n, doc::text, tags, updated_at FROM t03.tgt)
	UNION ALL
	(SELECT id, v, n, doc::text, tags, updated_at FROM t03.tgt
	 EXCEPT SELECT id, v, n, doc::text, tags, updated_at FROM t03.src)) d;

\echo '-- a change to a target-only column or an etl_* column is not undone'
UPDATE t03.tgt SET note = 'edited', etl_run_id = -1 WHERE id = 1;
DROP TABLE v0;
CREATE TEMP TABLE v0 AS SELECT id, xmin::text AS x, ctid AS c FROM t03.tgt;
SELECT incetl.reset_watermark('rerun');
CALL incetl.run('rerun');
SELECT extracted, inserted, updated, unchanged FROM regress.last_run('rerun');
SELECT count(*) AS rewritten FROM t03.tgt t JOIN v0 USING (id)
 WHERE t.xmin::text <> v0.x OR t.ctid <> v0.c;
SELECT note, etl_run_id FROM t03.tgt WHERE id = 1;

-- Lookback: each run also re-reads [cursor - lookback, cursor].  Rows
-- 10:10 .. 11:40 every 10 minutes; the cursor is (11:40, 10); one hour of
-- lookback re-reads 10:40 .. 11:40, that is ids 4 .. 10.
\echo '-- lookback 1 hour: rows in the window are re-read, found unchanged, not rewritten'
CREATE TABLE t03.lsrc (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t03.ltgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
INSERT INTO t03.lsrc
SELECT i, 'v' || i, timestamptz '2024-01-01 10:00:00+00' + i * interval '10 minutes'
  FROM generate_series(1, 10) AS i;
SELECT incetl.create_pipeline('lookback', 't03.lsrc', 't03.ltgt', watermark_column => 'updated_at',
							  lookback => '1 hour', batch_size => 5) > 0 AS created;
CALL incetl.run('lookback');
-- the first run has no cursor, so no lookback pass
SELECT * FROM regress.last_run('lookback');
SELECT * FROM regress.cursor('lookback');
CREATE TEMP TABLE l0 AS SELECT id, xmin::text AS x, ctid AS c FROM t03.ltgt;
CALL incetl.run('lookback');
-- lookback pass: 7 rows in 2 batches (5 + 2), forward pass: 1 empty batch
SELECT * FROM regress.last_run('lookback');
SELECT * FROM regress.cursor('lookback');
SELECT count(*) AS rewritten FROM t03.ltgt t JOIN l0 USING (id)
 WHERE t.xmin::text <> l0.x OR t.ctid <> l0.c;

\echo '-- rows changed without a new timestamp: picked up inside the window only'
UPDATE t03.lsrc SET v = 'changed in window' WHERE id = 8;
UPDATE t03.lsrc SET v = 'changed before window' WHERE id = 2;
-- preview with lookback lists what the run will do
SELECT * FROM incetl.preview('lookback');
CALL incetl.run('lookback');
SELECT * FROM regress.last_run('lookback');
SELECT id, v FROM t03.ltgt WHERE id IN (2, 8) ORDER BY id;
SELECT id FROM t03.ltgt t JOIN l0 USING (id)
 WHERE t.xmin::text <> l0.x OR t.ctid <> l0.c ORDER BY id;
-- the cursor did not move
SELECT * FROM regress.cursor('lookback');

\echo '-- new rows after the cursor are read by the forward pass as usual'
INSERT INTO t03.lsrc VALUES (11, 'v11', '2024-01-01 11:50:00+00');
CALL incetl.run('lookback');
SELECT * FROM regress.last_run('lookback');
SELECT * FROM regress.cursor('lookback');

\echo '-- after set_watermark the next run still re-reads the lookback window'
-- set_watermark leaves a cursor without a key; the window is then
-- [11:40 - 1 hour, 11:40], ids 4 .. 10 again, and the forward pass reads id 11
SELECT incetl.set_watermark('lookback', '2024-01-01 11:40:00+00');
SELECT * FROM regress.cursor('lookback');
UPDATE t03.lsrc SET v = 'changed after set_watermark' WHERE id = 6;
SELECT * FROM incetl.preview('lookback');
CALL incetl.run('lookback');
SELECT * FROM regress.last_run('lookback');
SELECT id, v FROM t03.ltgt WHERE id = 6;
SELECT * FROM regress.cursor('lookback');

SELECT incetl.drop_pipeline('rerun');
SELECT incetl.drop_pipeline('lookback');
DROP SCHEMA t03 CASCADE;
