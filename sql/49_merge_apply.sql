--
-- Batches that need nothing back but counts are one MERGE (README, Design
-- decisions): its inserted/updated/deleted counts come from the executor,
-- the rows read from the join under it.  A partitioned target takes MERGE
-- too; a target with rules is refused (no form of the apply can write it).
--
CREATE SCHEMA t49;
CREATE TABLE t49.src (id integer PRIMARY KEY, v text, ts timestamptz NOT NULL);
CREATE INDEX ON t49.src (ts, id);
INSERT INTO t49.src SELECT g, 'v' || g, '2024-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 20) g;
-- plain, partitioned, and with a rule
CREATE TABLE t49.plain (id integer PRIMARY KEY, v text, ts timestamptz);
CREATE TABLE t49.parted (id integer PRIMARY KEY, v text, ts timestamptz) PARTITION BY RANGE (id);
CREATE TABLE t49.parted_lo PARTITION OF t49.parted FOR VALUES FROM (MINVALUE) TO (11);
CREATE TABLE t49.parted_hi PARTITION OF t49.parted FOR VALUES FROM (11) TO (MAXVALUE);
CREATE TABLE t49.ruled (id integer PRIMARY KEY, v text, ts timestamptz);
CREATE TABLE t49.ruled_log (id integer);
CREATE RULE log_upd AS ON UPDATE TO t49.ruled DO ALSO INSERT INTO t49.ruled_log VALUES (NEW.id);
SELECT incetl.create_pipeline('m49_' || t, 't49.src', ('t49.' || t)::regclass, strategy => 'trigger',
							  batch_size => 7) > 0 AS created
  FROM unnest(ARRAY['plain', 'parted']) AS t;
-- a target with rules: no statement incetl writes with could go through them
\set VERBOSITY default
SELECT incetl.create_pipeline('m49_ruled', 't49.src', 't49.ruled', strategy => 'trigger');
CREATE TABLE t49.plain_ts (LIKE t49.plain INCLUDING ALL);
SELECT incetl.create_pipeline('m49_ts', 't49.src', 't49.plain_ts', watermark_column => 'ts',
							  delete_detection => 'compare', batch_size => 7) > 0 AS created;
-- which form each keyed batch takes
SELECT p.name, bool_or(e.plan LIKE 'Merge on%') AS merges
  FROM incetl.pipelines p, incetl.explain(p.name) e
 WHERE p.name LIKE 'm49_%' AND p.strategy = 'trigger' AND e.step = 'apply'
 GROUP BY p.name ORDER BY p.name;
CALL incetl.run('m49_plain');
CALL incetl.run('m49_parted');
CALL incetl.run('m49_ts');
UPDATE t49.src SET v = v || '!', ts = ts + interval '1 day' WHERE id % 3 = 0;
UPDATE t49.src SET v = v WHERE id = 1;        -- queued, unchanged
DELETE FROM t49.src WHERE id IN (2, 11);
INSERT INTO t49.src VALUES (21, 'v21', '2024-02-01'), (22, 'v22', '2024-02-01');
CALL incetl.run('m49_plain');
CALL incetl.run('m49_parted');
CALL incetl.run('m49_ts');
SELECT pipeline, batches, rows_extracted, rows_inserted, rows_updated, rows_deleted, rows_unchanged
  FROM incetl.run_log WHERE pipeline LIKE 'm49_%' ORDER BY pipeline, run_id;
SELECT count(*) AS plain_diff FROM ((SELECT id, v, ts FROM t49.src EXCEPT SELECT id, v, ts FROM t49.plain)
  UNION ALL (SELECT id, v, ts FROM t49.plain EXCEPT SELECT id, v, ts FROM t49.src)) d;
SELECT count(*) AS parted_diff FROM ((SELECT id, v, ts FROM t49.src EXCEPT SELECT id, v, ts FROM t49.parted)
  UNION ALL (SELECT id, v, ts FROM t49.parted EXCEPT SELECT id, v, ts FROM t49.src)) d;
SELECT count(*) AS ts_diff FROM ((SELECT id, v, ts FROM t49.src EXCEPT SELECT id, v, ts FROM t49.plain_ts)
  UNION ALL (SELECT id, v, ts FROM t49.plain_ts EXCEPT SELECT id, v, ts FROM t49.src)) d;
-- re-runs write nothing
CALL incetl.run('m49_plain');
CALL incetl.run('m49_ts');
SELECT pipeline, rows_inserted + rows_updated + rows_deleted AS written
  FROM incetl.run_log WHERE pipeline IN ('m49_plain', 'm49_ts')
   AND run_id IN (SELECT max(run_id) FROM incetl.run_log GROUP BY pipeline) ORDER BY pipeline;
SELECT incetl.drop_pipeline(name) FROM incetl.pipelines WHERE name LIKE 'm49_%' ORDER BY name;
DROP SCHEMA t49 CASCADE;
