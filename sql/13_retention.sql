--
-- incetl.run_log_retention: runs prune finished run_log rows older than it
--
CREATE SCHEMA t13;
CREATE TABLE t13.src (id integer PRIMARY KEY, v text, ts timestamptz NOT NULL);
CREATE TABLE t13.tgt (id integer PRIMARY KEY, v text, ts timestamptz);
INSERT INTO t13.src VALUES (1, 'a', '2024-01-01');
SELECT incetl.create_pipeline('ret', 't13.src', 't13.tgt', watermark_column => 'ts') > 0 AS created;
CALL incetl.run('ret');
CALL incetl.run('ret');
CALL incetl.run('ret');
-- age the first two runs: one finished 40 days ago, one still 'running' from then
UPDATE incetl.run_log SET started_at = now() - interval '40 days',
       finished_at = now() - interval '40 days'
 WHERE run_id = (SELECT min(run_id) FROM incetl.run_log WHERE pipeline = 'ret');
UPDATE incetl.run_log SET started_at = now() - interval '40 days', status = 'running',
       finished_at = NULL
 WHERE run_id = (SELECT min(run_id) + 1 FROM incetl.run_log WHERE pipeline = 'ret');
SELECT count(*) AS runs FROM incetl.run_log WHERE pipeline = 'ret';
-- retention 0 keeps everything
SET incetl.run_log_retention = 0;
CALL incetl.run('ret');
SELECT count(*) AS runs_kept FROM incetl.run_log WHERE pipeline = 'ret';
-- the default, 30 days: both old rows go -- the 'running' one was closed
-- out as interrupted by the previous run (a run holds the pipeline's lock,
-- so that old run cannot be going on), and finished rows are pruned
RESET incetl.run_log_retention;
SHOW incetl.run_log_retention;
CALL incetl.run('ret');
SELECT status, error IS NOT NULL AS has_error, started_at < now() - interval '30 days' AS old
  FROM incetl.run_log WHERE pipeline = 'ret' ORDER BY run_id;
CALL incetl.run('ret');
SELECT count(*) AS runs_left, bool_and(started_at > now() - interval '30 days') AS all_recent
  FROM incetl.run_log WHERE pipeline = 'ret';
-- only a superuser may change it
CREATE ROLE t13_user;
SET ROLE t13_user;
SET incetl.run_log_retention = 0;
RESET ROLE;
DROP ROLE t13_user;
SELECT incetl.drop_pipeline('ret');
DROP SCHEMA t13 CASCADE;
