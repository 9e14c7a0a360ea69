--
-- Schema drift between runs: on_schema_change for new source columns, and
-- dropped or retyped source columns, which fail whatever the setting.
--
CREATE SCHEMA t15;
CREATE TABLE t15.src (id integer PRIMARY KEY, a text, b integer, ts timestamptz NOT NULL);
CREATE TABLE t15.tgt (id integer PRIMARY KEY, a text, b integer, ts timestamptz);
INSERT INTO t15.src VALUES (1, 'x', 1, '2024-01-01'), (2, 'y', 2, '2024-01-02');
SELECT incetl.create_pipeline('drift', 't15.src', 't15.tgt', watermark_column => 'ts') > 0 AS created;
CALL incetl.run('drift');
\set VERBOSITY default
\set SHOW_CONTEXT never
-- a new source column: 'fail' (the default) writes nothing
ALTER TABLE t15.src ADD COLUMN c text DEFAULT 'new';
UPDATE t15.src SET a = 'x2', ts = '2024-01-03' WHERE id = 1;
CALL incetl.run('drift');
SELECT a FROM t15.tgt WHERE id = 1;
SELECT status, rows_extracted, error FROM incetl.run_log WHERE pipeline = 'drift' ORDER BY run_id DESC LIMIT 1;
-- 'ignore' loads the common columns
SELECT incetl.alter_pipeline('drift', on_schema_change => 'ignore');
CALL incetl.run('drift');
SELECT id, a FROM t15.tgt ORDER BY id;
-- 'add_columns' adds the column to the target (with the source's type), then loads
SELECT incetl.alter_pipeline('drift', on_schema_change => 'add_columns');
UPDATE t15.src SET c = 'changed', ts = '2024-01-04' WHERE id = 2;
CALL incetl.run('drift');
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_schema = 't15' AND table_name = 'tgt' AND column_name = 'c';
-- rows changed since get the new column; older rows get it from reconcile
SELECT id, c FROM t15.tgt ORDER BY id;
CALL incetl.reconcile('drift');
SELECT id, c FROM t15.tgt ORDER BY id;
-- a dropped source column fails every run, whatever on_schema_change says
ALTER TABLE t15.src DROP COLUMN b;
UPDATE t15.src SET a = 'x3', ts = '2024-01-05' WHERE id = 1;
CALL incetl.run('drift');
SELECT a FROM t15.tgt WHERE id = 1;
SELECT incetl.alter_pipeline('drift', on_schema_change => 'ignore');
-- accepting the new shape (alter_pipeline) lets runs go on
CALL incetl.run('drift');
SELECT a FROM t15.tgt WHERE id = 1;
-- a retyped source column fails too
ALTER TABLE t15.src ALTER COLUMN a TYPE varchar(20);
UPDATE t15.src SET a = 'x4', ts = '2024-01-06' WHERE id = 1;
CALL incetl.run('drift');
SELECT a FROM t15.tgt WHERE id = 1;
SELECT incetl.alter_pipeline('drift');
CALL incetl.run('drift');
SELECT a FROM t15.tgt WHERE id = 1;
SELECT status, error FROM incetl.run_log WHERE pipeline = 'drift' ORDER BY run_id;
SELECT incetl.drop_pipeline('drift');
DROP SCHEMA t15 CASCADE;
