--
-- 06_failure: a run that fails in its third batch keeps the two batches it
-- committed, leaves the watermark exactly at the last of them, records the
-- failure in run_log and status, and raises the error to the caller.  After
-- the bad row is fixed the next run resumes from there and completes.
--
CREATE SCHEMA t06;
CREATE TABLE t06.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t06.tgt (id integer PRIMARY KEY, v text CHECK (v <> 'bad'), updated_at timestamptz);
INSERT INTO t06.src SELECT i, CASE WHEN i = 6 THEN 'bad' ELSE 'v' || i END,
	   timestamptz '2024-07-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 9) AS i;
SELECT incetl.create_pipeline('fail', 't06.src', 't06.tgt', watermark_column => 'updated_at',
							  batch_size => 2) > 0 AS created;

\echo '-- batches [1,2] and [3,4] commit, [5,6] breaks the CHECK constraint'
CALL incetl.run('fail');
SELECT id, v FROM t06.tgt ORDER BY id;
-- the watermark is exactly at the last row of the last committed batch
SELECT * FROM regress.cursor('fail');
SELECT * FROM regress.last_run('fail');
SELECT pipeline, watermark, last_status, last_error, last_finished_at IS NOT NULL AS finished
  FROM incetl.status WHERE pipeline = 'fail';

\echo '-- running again without a fix fails the same way and writes nothing more'
CALL incetl.run('fail');
SELECT count(*) FROM t06.tgt;
SELECT * FROM regress.cursor('fail');
SELECT status, batches, extracted, inserted, wm_before, wm_after FROM regress.last_run('fail')
  AS r(kind, status, batches, extracted, inserted, updated, deleted, unchanged, wm_before, wm_after);

\echo '-- the row is fixed in place (same timestamp): the next run resumes and completes'
UPDATE t06.src SET v = 'fixed' WHERE id = 6;
CALL incetl.run('fail');
-- rows 5 .. 9 only: nothing committed before is read again
SELECT * FROM regress.last_run('fail');
SELECT * FROM regress.cursor('fail');
SELECT count(*) AS differences FROM (
	(SELECT * FROM t06.src EXCEPT SELECT * FROM t06.tgt)
	UNION ALL (SELECT * FROM t06.tgt EXCEPT SELECT * FROM t06.src)) d;
SELECT pipeline, watermark, last_status, last_error FROM incetl.status WHERE pipeline = 'fail';
SELECT status, batches, rows_extracted, rows_inserted, error IS NOT NULL AS has_error
  FROM incetl.run_log WHERE pipeline = 'fail' ORDER BY run_id;

\echo '-- a failure in the first batch of a first run leaves no watermark'
CREATE TABLE t06.tgt2 (LIKE t06.tgt INCLUDING ALL);
ALTER TABLE t06.tgt2 ADD CHECK (id > 1);
SELECT incetl.create_pipeline('fail_first', 't06.src', 't06.tgt2', watermark_column => 'updated_at',
							  batch_size => 2) > 0 AS created;
CALL incetl.run('fail_first');
SELECT count(*) FROM t06.tgt2;
SELECT * FROM regress.cursor('fail_first');
SELECT status, batches, extracted, wm_after, error FROM regress.last_run('fail_first')
  AS r(kind, status, batches, extracted, inserted, updated, deleted, unchanged, wm_before, wm_after, error);

\echo '-- a unique violation (another key in the target holds the value)'
CREATE TABLE t06.usrc (id integer PRIMARY KEY, code text, updated_at timestamptz NOT NULL);
CREATE TABLE t06.utgt (id integer PRIMARY KEY, code text UNIQUE, updated_at timestamptz);
INSERT INTO t06.usrc VALUES (1, 'a', '2024-07-01 00:00:00+00'), (2, 'b', '2024-07-01 00:00:01+00');
INSERT INTO t06.utgt VALUES (99, 'b', NULL);
SELECT incetl.create_pipeline('fail_unique', 't06.usrc', 't06.utgt', watermark_column => 'updated_at',
							  batch_size => 1) > 0 AS created;
CALL incetl.run('fail_unique');
SELECT id, code FROM t06.utgt ORDER BY id;
SELECT * FROM regress.cursor('fail_unique');
SELECT status, batches, extracted, inserted FROM regress.last_run('fail_unique');

\echo '-- the target changes under the pipeline: the run fails before writing'
INSERT INTO t06.src VALUES (10, 'v10', '2024-07-01 01:00:00+00');
ALTER TABLE t06.tgt DROP COLUMN v;
CALL incetl.run('fail');
SELECT count(*) AS has_10 FROM t06.tgt WHERE id = 10;
SELECT watermark FROM regress.cursor('fail');
SELECT status, batches, extracted, error FROM regress.last_run('fail')
  AS r(kind, status, batches, extracted, inserted, updated, deleted, unchanged, wm_before, wm_after, error);
SELECT last_status FROM incetl.status WHERE pipeline = 'fail';

SELECT incetl.drop_pipeline('fail');
SELECT incetl.drop_pipeline('fail_first');
SELECT incetl.drop_pipeline('fail_unique');
DROP SCHEMA t06 CASCADE;
