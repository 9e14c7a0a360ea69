--
-- 11_run_all: CALL incetl.run_all() runs every enabled pipeline, one
-- after another.  A failing pipeline is a WARNING naming it; the others
-- still run; the call then ends with an ERROR naming every failed one (so
-- pg_cron records the job as failed).  Disabled pipelines are skipped.
--
CREATE SCHEMA t11;
-- the earlier files dropped their pipelines: run_all sees only these
SELECT count(*) AS pipelines_before FROM incetl.pipelines;
CREATE TABLE t11.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
INSERT INTO t11.src SELECT i, 'v' || i, timestamptz '2024-11-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 4) AS i;
CREATE TABLE t11.tgt_a (id integer PRIMARY KEY, v text, updated_at timestamptz);
CREATE TABLE t11.tgt_b (id integer PRIMARY KEY, v text CHECK (v <> 'v3'), updated_at timestamptz);
CREATE TABLE t11.tgt_c (id integer PRIMARY KEY, v text, updated_at timestamptz);
CREATE TABLE t11.tgt_d (id integer PRIMARY KEY, v text, updated_at timestamptz);
SELECT incetl.create_pipeline('ra_a', 't11.src', 't11.tgt_a', watermark_column => 'updated_at') > 0 AS a,
	   incetl.create_pipeline('ra_b', 't11.src', 't11.tgt_b', watermark_column => 'updated_at', batch_size => 2) > 0 AS b,
	   incetl.create_pipeline('ra_c', 't11.src', 't11.tgt_c', watermark_column => 'updated_at') > 0 AS c,
	   incetl.create_pipeline('ra_d', 't11.src', 't11.tgt_d', watermark_column => 'updated_at', enabled => false) > 0 AS d;

\echo '-- ra_b fails in its second batch; ra_a and ra_c load; ra_d is skipped'
CALL incetl.run_all();
SELECT pipeline, status, batches, rows_extracted, rows_inserted, error
  FROM incetl.run_log WHERE pipeline LIKE 'ra\_%' ORDER BY run_id;
SELECT (SELECT count(*) FROM t11.tgt_a) AS a, (SELECT count(*) FROM t11.tgt_b) AS b,
	   (SELECT count(*) FROM t11.tgt_c) AS c, (SELECT count(*) FROM t11.tgt_d) AS d;
SELECT pipeline, enabled, watermark, last_status FROM incetl.status WHERE pipeline LIKE 'ra\_%' ORDER BY pipeline;
-- the SQLSTATE of the final error
SELECT regress.try('CALL incetl.run_all()');

\echo '-- two failures: both named, in the order they ran'
ALTER TABLE t11.tgt_c ADD CONSTRAINT c_no_5 CHECK (id <> 5);
INSERT INTO t11.src VALUES (5, 'v5', '2024-11-02 00:00:00+00');
CALL incetl.run_all();
SELECT pipeline, status, rows_extracted, rows_inserted
  FROM incetl.run_log WHERE pipeline LIKE 'ra\_%' AND run_id > (SELECT max(run_id) - 3 FROM incetl.run_log)
 ORDER BY run_id;
SELECT count(*) AS a_has_5 FROM t11.tgt_a WHERE id = 5;

\echo '-- everything fixed: run_all succeeds quietly'
ALTER TABLE t11.tgt_b DROP CONSTRAINT tgt_b_v_check;
ALTER TABLE t11.tgt_c DROP CONSTRAINT c_no_5;
CALL incetl.run_all();
SELECT pipeline, last_status FROM incetl.status WHERE pipeline LIKE 'ra\_%' ORDER BY pipeline;
SELECT (SELECT count(*) FROM t11.tgt_a) AS a, (SELECT count(*) FROM t11.tgt_b) AS b,
	   (SELECT count(*) FROM t11.tgt_c) AS c, (SELECT count(*) FROM t11.tgt_d) AS d;

\echo '-- inside a transaction block, one failure rolls back the whole call'
INSERT INTO t11.src VALUES (6, 'v6', '2024-11-03 00:00:00+00');
ALTER TABLE t11.tgt_c ADD CONSTRAINT c_no_6 CHECK (id <> 6);
BEGIN;
CALL incetl.run_all();
ROLLBACK;
SELECT (SELECT count(*) FROM t11.tgt_a WHERE id = 6) AS a_has_6,
	   (SELECT count(*) FROM t11.tgt_b WHERE id = 6) AS b_has_6;
ALTER TABLE t11.tgt_c DROP CONSTRAINT c_no_6;

\echo '-- no enabled pipeline: nothing to do'
SELECT incetl.alter_pipeline(name, enabled => false) FROM incetl.pipelines WHERE name LIKE 'ra\_%' ORDER BY name;
SELECT count(*) AS log_before FROM incetl.run_log \gset
CALL incetl.run_all();
SELECT count(*) - :log_before AS new_log_rows FROM incetl.run_log;

SELECT incetl.drop_pipeline(name) FROM incetl.pipelines WHERE name LIKE 'ra\_%' ORDER BY name;
DROP SCHEMA t11 CASCADE;
