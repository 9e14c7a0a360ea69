--
-- The first load into an empty target is a plain INSERT per batch; a key
-- met twice in that run (its row moved up while the run read) falls back
-- to the comparing statement, and nothing is lost or doubled.
--
CREATE SCHEMA t14;
CREATE TABLE t14.src (id integer PRIMARY KEY, v text, ts timestamptz NOT NULL);
CREATE INDEX ON t14.src (ts, id);
CREATE TABLE t14.tgt (id integer PRIMARY KEY, v text, ts timestamptz,
					  etl_inserted_at timestamptz, etl_run_id bigint);
INSERT INTO t14.src SELECT g, 'v' || g, '2024-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 10) g;
-- a writer that moves row 1 past the cursor while the first batch is written
CREATE TABLE t14.fired (n integer);
CREATE FUNCTION t14.move_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM t14.fired) THEN
    INSERT INTO t14.fired VALUES (1);
    UPDATE t14.src SET v = 'moved', ts = '2024-01-02' WHERE id = 1;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER move_row AFTER INSERT ON t14.tgt FOR EACH STATEMENT EXECUTE FUNCTION t14.move_row();
SELECT incetl.create_pipeline('first', 't14.src', 't14.tgt', watermark_column => 'ts',
							  batch_size => 3) > 0 AS created;
CALL incetl.run('first');
SELECT status, batches, rows_extracted, rows_inserted, rows_updated, rows_unchanged
  FROM incetl.run_log WHERE pipeline = 'first' ORDER BY run_id;
-- the target has every row once, row 1 in its moved version
SELECT count(*) AS rows, count(DISTINCT id) AS keys FROM t14.tgt;
SELECT id, v, ts FROM t14.tgt WHERE id = 1;
SELECT count(*) AS differing FROM ((SELECT id, v, ts FROM t14.src EXCEPT SELECT id, v, ts FROM t14.tgt)
  UNION ALL (SELECT id, v, ts FROM t14.tgt EXCEPT SELECT id, v, ts FROM t14.src)) d;
-- every row was written by this run
SELECT count(*) FILTER (WHERE etl_run_id = (SELECT max(run_id) FROM incetl.run_log WHERE pipeline = 'first')) AS by_this_run
  FROM t14.tgt;
-- a second run has nothing to do
CALL incetl.run('first');
SELECT status, batches, rows_extracted, rows_inserted, rows_updated, rows_unchanged
  FROM incetl.run_log WHERE pipeline = 'first' ORDER BY run_id DESC LIMIT 1;
SELECT incetl.drop_pipeline('first');
DROP SCHEMA t14 CASCADE;
