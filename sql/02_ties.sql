--
-- 02_ties: rows that share one watermark value.  The cursor is the pair
-- (watermark, key), so batch edges that fall inside a group of equal
-- timestamps neither lose nor repeat a row.  Also what the cursor does with
-- rows that arrive later with the cursor's own timestamp, and the upper
-- bound (now() minus incetl.late_commit_margin) that a run never reads past.
--
CREATE SCHEMA t02;
CREATE TABLE t02.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t02.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
-- 10 rows, one timestamp; keys 10, 20, ... 100 leave room below and between
INSERT INTO t02.src SELECT i * 10, 'v' || i, '2024-03-01 12:00:00+00' FROM generate_series(1, 10) AS i;
SELECT incetl.create_pipeline('ties', 't02.src', 't02.tgt', watermark_column => 'updated_at',
							  batch_size => 3) > 0 AS created;

\echo '-- batch_size 3: batches of 3, 3, 3 and 1 rows, every row once'
CALL incetl.run('ties');
SELECT * FROM regress.last_run('ties');
SELECT * FROM regress.cursor('ties');
SELECT count(*), count(DISTINCT id) FROM t02.tgt;
SELECT id FROM t02.src EXCEPT SELECT id FROM t02.tgt;

\echo '-- exactly batch_size rows left: 3 rows read by one full batch, then an empty one'
INSERT INTO t02.src VALUES (110, 'x', '2024-03-01 12:00:01+00'), (120, 'x', '2024-03-01 12:00:01+00'),
	(130, 'x', '2024-03-01 12:00:01+00');
CALL incetl.run('ties');
SELECT * FROM regress.last_run('ties');

\echo '-- two timestamps interleaved with a batch edge inside each group'
INSERT INTO t02.src SELECT 200 + i, 'y', '2024-03-01 12:00:02+00' FROM generate_series(1, 4) AS i;
INSERT INTO t02.src SELECT 300 + i, 'y', '2024-03-01 12:00:03+00' FROM generate_series(1, 4) AS i;
CALL incetl.run('ties');
-- 8 rows extracted, 8 inserted, none read twice (a repeat would count as unchanged)
SELECT * FROM regress.last_run('ties');
SELECT count(*) FROM t02.tgt;

-- Rows that share the saved cursor's timestamp and arrive after the run
-- that saved it.  The cursor is (2024-03-01 12:00:03+00, 304): a row with
-- that timestamp and a higher key is above the cursor and is read; one with
-- a lower key is below it and is not.  In normal operation this cannot
-- happen to a row stamped with now() by a writer: a run reads only rows
-- stamped below the start of the oldest transaction still open (and below
-- now() - incetl.late_commit_margin), so every transaction that could still
-- write a row at or below the cursor had already ended when the cursor was
-- saved.  The rows below are inserted with an explicit past timestamp,
-- which no bound can foresee: the one with the lower key is skipped by
-- incremental runs and needs a backfill (or a lookback) to arrive.
\echo '-- same timestamp as the cursor: higher key read, lower key not'
INSERT INTO t02.src VALUES (305, 'higher key', '2024-03-01 12:00:03+00'),
	(299, 'lower key', '2024-03-01 12:00:03+00');
SELECT * FROM incetl.preview('ties') ORDER BY key->>'id';
CALL incetl.run('ties');
SELECT * FROM regress.last_run('ties');
SELECT * FROM regress.cursor('ties');
SELECT id, v FROM t02.tgt WHERE id IN (299, 305) ORDER BY id;
-- and the next run does not pick it up either
CALL incetl.run('ties');
SELECT batches, extracted FROM regress.last_run('ties');
SELECT count(*) AS has_299 FROM t02.tgt WHERE id = 299;
-- a backfill of that instant brings it; the cursor stays where it was
CALL incetl.backfill('ties', '2024-03-01 12:00:03+00', '2024-03-01 12:00:04+00');
SELECT kind, status, extracted, inserted, updated, unchanged FROM regress.last_run('ties');
SELECT id, v FROM t02.tgt WHERE id = 299;
SELECT * FROM regress.cursor('ties');

-- The upper bound: a run never reads rows stamped at or after its start
-- (minus incetl.late_commit_margin), so the cursor never passes a time at
-- which a transaction may still be writing.
\echo '-- a row stamped in the future waits; so does one inside the margin'
INSERT INTO t02.src VALUES (400, 'future', now() + interval '1 hour');
INSERT INTO t02.src VALUES (401, 'recent', now() - interval '30 minutes');
SET incetl.late_commit_margin = '1h';
SELECT * FROM incetl.preview('ties');
CALL incetl.run('ties');
SELECT batches, extracted, inserted, wm_after FROM regress.last_run('ties');
SELECT count(*) AS read_400_401 FROM t02.tgt WHERE id IN (400, 401);
RESET incetl.late_commit_margin;
SHOW incetl.late_commit_margin;
-- with the margin back at 0 (regress.conf), the recent row is read and the
-- future one still waits
SELECT * FROM incetl.preview('ties');
CALL incetl.run('ties');
SELECT batches, extracted, inserted FROM regress.last_run('ties');
SELECT id, v FROM t02.tgt WHERE id IN (400, 401) ORDER BY id;
SELECT (SELECT watermark FROM regress.cursor('ties'))::timestamptz < now() AS cursor_below_now;

\echo '-- composite key (integer, text) with one timestamp, batch_size 2'
CREATE TABLE t02.src2 (a integer, b text, v text, updated_at timestamptz NOT NULL, PRIMARY KEY (a, b));
CREATE TABLE t02.tgt2 (a integer, b text, v text, updated_at timestamptz, PRIMARY KEY (a, b));
INSERT INTO t02.src2 SELECT i % 3, chr(ascii('a') + i), 'v', '2024-03-01 00:00:00+00'
  FROM generate_series(0, 6) AS i;
SELECT incetl.create_pipeline('ties2', 't02.src2', 't02.tgt2', watermark_column => 'updated_at',
							  batch_size => 2) > 0 AS created;
CALL incetl.run('ties2');
SELECT * FROM regress.last_run('ties2');
SELECT * FROM regress.cursor('ties2');
SELECT count(*) FROM (SELECT a, b FROM t02.src2 EXCEPT SELECT a, b FROM t02.tgt2) d;
-- (2, 'z') is above the cursor (2, 'f') and is read; (2, 'a') is below it
INSERT INTO t02.src2 VALUES (2, 'z', 'v', '2024-03-01 00:00:00+00'), (2, 'a', 'v', '2024-03-01 00:00:00+00');
CALL incetl.run('ties2');
SELECT batches, extracted, inserted FROM regress.last_run('ties2');
SELECT a, b FROM t02.tgt2 WHERE a = 2 ORDER BY b;

SELECT incetl.drop_pipeline('ties');
SELECT incetl.drop_pipeline('ties2');
DROP SCHEMA t02 CASCADE;
