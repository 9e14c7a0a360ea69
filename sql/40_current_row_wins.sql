--
-- 40_current_row_wins: without sequence_column the source's current row
-- always wins.  A key whose watermark went backwards (a row restored from a
-- backup, a writer with a slow clock) is applied when a run reads it (here
-- through lookback, or a backfill), although the target holds a newer
-- watermark.  With sequence_column, an incoming row never overwrites a
-- target row with a higher sequence value, whatever the watermarks say.
--
CREATE SCHEMA t40c;
CREATE TABLE t40c.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t40c.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
INSERT INTO t40c.src VALUES (1, 'one', '2024-07-01 12:00:00+00'), (2, 'two', '2024-07-01 12:30:00+00');
SELECT incetl.create_pipeline('wins', 't40c.src', 't40c.tgt', watermark_column => 'updated_at',
							  lookback => '1 hour') > 0 AS created;
CALL incetl.run('wins');
SELECT * FROM regress.cursor('wins');

\echo '-- row 1 is restored to an older version: its watermark goes back 10 minutes'
UPDATE t40c.src SET v = 'one, restored', updated_at = '2024-07-01 11:50:00+00' WHERE id = 1;
SELECT * FROM incetl.preview('wins');
CALL incetl.run('wins');
-- the lookback pass [11:30, 12:30] reads it and applies it
SELECT extracted, inserted, updated, unchanged FROM regress.last_run('wins');
SELECT id, v, updated_at AT TIME ZONE 'UTC' AS updated_at FROM t40c.tgt ORDER BY id;
-- and the cursor did not move back
SELECT * FROM regress.cursor('wins');

\echo '-- further back than lookback: a backfill of its time applies it'
UPDATE t40c.src SET v = 'two, restored', updated_at = '2024-07-01 08:00:00+00' WHERE id = 2;
CALL incetl.run('wins');
SELECT id, v FROM t40c.tgt WHERE id = 2;
CALL incetl.backfill('wins', '2024-07-01 08:00:00+00', '2024-07-01 09:00:00+00');
SELECT kind, extracted, updated FROM regress.last_run('wins');
SELECT id, v, updated_at AT TIME ZONE 'UTC' AS updated_at FROM t40c.tgt ORDER BY id;

\echo '-- a target row edited to a newer watermark is overwritten when its key is read'
UPDATE t40c.tgt SET v = 'edited in target', updated_at = '2030-01-01 00:00:00+00' WHERE id = 1;
UPDATE t40c.src SET updated_at = '2024-07-01 12:40:00+00' WHERE id = 1;
CALL incetl.run('wins');
SELECT id, v, updated_at AT TIME ZONE 'UTC' AS updated_at FROM t40c.tgt WHERE id = 1;

\echo '-- with sequence_column: the sequence decides, not the watermark'
CREATE TABLE t40c.ssrc (id integer PRIMARY KEY, v text, version integer NOT NULL,
						updated_at timestamptz NOT NULL);
CREATE TABLE t40c.stgt (id integer PRIMARY KEY, v text, version integer, updated_at timestamptz);
INSERT INTO t40c.ssrc VALUES (1, 'one v5', 5, '2024-07-01 12:00:00+00'), (2, 'two v5', 5, '2024-07-01 12:00:00+00'),
	(3, 'three v1', 1, '2024-07-01 12:30:00+00');
SELECT incetl.create_pipeline('wins_seq', 't40c.ssrc', 't40c.stgt', watermark_column => 'updated_at',
							  sequence_column => 'version', lookback => '1 hour') > 0 AS created;
CALL incetl.run('wins_seq');
-- key 1: an older watermark with a higher version is applied; key 2: an
-- older watermark with a lower version is not
UPDATE t40c.ssrc SET v = 'one v6', version = 6, updated_at = '2024-07-01 11:45:00+00' WHERE id = 1;
UPDATE t40c.ssrc SET v = 'two v4', version = 4, updated_at = '2024-07-01 11:45:00+00' WHERE id = 2;
CALL incetl.run('wins_seq');
SELECT extracted, inserted, updated, unchanged FROM regress.last_run('wins_seq');
SELECT id, v, version, updated_at AT TIME ZONE 'UTC' AS updated_at FROM t40c.stgt ORDER BY id;

SELECT incetl.drop_pipeline('wins');
SELECT incetl.drop_pipeline('wins_seq');
DROP SCHEMA t40c CASCADE;
