--
-- 99_upgrade_history: pipelines made by incetl 0.2 across the update to
-- the default version, and history tables on them (SPEC 5).  Runs after
-- 99_upgrade and leaves the extension freshly installed, as it found it.
-- Proves:
--   - before ALTER EXTENSION UPDATE, this library runs 0.2's pipelines on
--     0.2's catalog (no history_table, no run_log.history_versions);
--   - the update gives a 'trigger' pipeline's queue changed_at (the
--     writer's transaction start), and both pipelines run on from where
--     they were;
--   - alter_pipeline then gives them a history table; the next reconcile
--     opens a current version for every target row, and the runs after
--     keep it, with each strategy's T.
--
SET client_min_messages = warning;
DROP EXTENSION incetl CASCADE;
CREATE EXTENSION incetl VERSION '0.2' CASCADE;
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE SCHEMA t99h;
CREATE TABLE t99h.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t99h.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
CREATE TABLE t99h.tsrc (id integer PRIMARY KEY, v text);
CREATE TABLE t99h.ttgt (id integer PRIMARY KEY, v text);
INSERT INTO t99h.src SELECT i, 'v' || i, '2024-01-01 00:00+00' FROM generate_series(1, 3) AS i;
INSERT INTO t99h.tsrc SELECT i, 'v' || i FROM generate_series(1, 3) AS i;
SELECT incetl.create_pipeline('u_ts', 't99h.src', 't99h.tgt', watermark_column => 'updated_at') > 0 AS created;
SELECT incetl.create_pipeline('u_trig', 't99h.tsrc', 't99h.ttgt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('u_ts');
CALL incetl.run('u_trig');
UPDATE t99h.src SET v = 'a', updated_at = '2024-01-02 00:00+00' WHERE id = 1;
UPDATE t99h.tsrc SET v = 'a' WHERE id = 1;
CALL incetl.run('u_ts');
CALL incetl.run('u_trig');
SELECT pipeline, status, rows_updated FROM incetl.run_log ORDER BY run_id;
SELECT to_regclass(format('incetl.queue_%s', id)) IS NOT NULL AS has_queue
  FROM incetl.pipelines WHERE name = 'u_trig';

\echo '-- the update'
SET client_min_messages = warning;
ALTER EXTENSION incetl UPDATE;
RESET client_min_messages;
SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid) AS dflt
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = (SELECT format('incetl.queue_%s', id)::regclass FROM incetl.pipelines WHERE name = 'u_trig')
   AND a.attname = 'changed_at';
UPDATE t99h.src SET v = 'b', updated_at = '2024-01-03 00:00+00' WHERE id = 2;
UPDATE t99h.tsrc SET v = 'b' WHERE id = 2;
CALL incetl.run('u_ts');
CALL incetl.run('u_trig');
SELECT pipeline, status, rows_updated, history_versions FROM incetl.run_log ORDER BY run_id DESC LIMIT 2;
SELECT count(*) AS diff FROM ((TABLE t99h.src EXCEPT TABLE t99h.tgt)
							  UNION ALL (TABLE t99h.tgt EXCEPT TABLE t99h.src)) d;
SELECT count(*) AS diff FROM ((TABLE t99h.tsrc EXCEPT TABLE t99h.ttgt)
							  UNION ALL (TABLE t99h.ttgt EXCEPT TABLE t99h.tsrc)) d;

\echo '-- history tables on the old pipelines'
CREATE TABLE t99h.hist (id integer, v text, valid_from timestamptz NOT NULL, valid_to timestamptz,
						UNIQUE (id, valid_from));
CREATE TABLE t99h.thist (id integer, v text, valid_from timestamptz NOT NULL, valid_to timestamptz,
						 UNIQUE (id, valid_from));
SELECT incetl.alter_pipeline('u_ts', history_table => 't99h.hist');
SELECT incetl.alter_pipeline('u_trig', history_table => 't99h.thist');
-- reconcile opens the current versions of the rows already there
CALL incetl.reconcile('u_ts');
CALL incetl.reconcile('u_trig');
SELECT pipeline, kind, history_versions FROM incetl.run_log ORDER BY run_id DESC LIMIT 2;
UPDATE t99h.src SET v = 'c', updated_at = '2024-01-04 00:00+00' WHERE id = 3;
BEGIN;
SELECT now() AS writer \gset
UPDATE t99h.tsrc SET v = 'c' WHERE id = 3;
COMMIT;
CALL incetl.run('u_ts');
CALL incetl.run('u_trig');
SELECT id, v, valid_from, valid_to IS NULL AS current FROM t99h.hist WHERE id = 3 ORDER BY valid_from;
SELECT id, v, valid_from = :'writer' AS at_writer_start, valid_to IS NULL AS current
  FROM t99h.thist WHERE id = 3 ORDER BY valid_from;
SELECT count(*) FILTER (WHERE valid_to IS NULL) AS current_versions, count(*) AS versions FROM t99h.thist;

SELECT incetl.drop_pipeline('u_ts');
SELECT incetl.drop_pipeline('u_trig');
SET client_min_messages = warning;
DROP SCHEMA t99h CASCADE;
DROP EXTENSION incetl CASCADE;
RESET client_min_messages;
CREATE EXTENSION incetl CASCADE;
