--
-- 45_review: findings of the hostile review of the engine restructuring
-- (issue 12).
--
-- 1. on_schema_change 'add_columns' in a run: a source column added after
--    the pipeline exists is added to the target by the run (as the owner,
--    in a restricted operation) and filled.
-- 2. incetl.preview shows what the next run would do (SPEC section 1),
--    also when the run will add a column: a 'hash' run then updates every
--    row to fill the new column, and the preview lists those updates.  The
--    preview adds the column in a subtransaction that it rolls back: the
--    target keeps its columns until the run.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t45;
CREATE ROLE t45_owner;
GRANT USAGE, CREATE ON SCHEMA t45 TO t45_owner;
SET ROLE t45_owner;

CREATE TABLE t45.src (id integer PRIMARY KEY, v text,
					  updated_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00');
INSERT INTO t45.src (id, v) SELECT i, 'v' || i FROM generate_series(1, 5) AS i;
CREATE TABLE t45.tgt_ts (id integer PRIMARY KEY, v text, updated_at timestamptz);
CREATE TABLE t45.tgt_hash (id integer PRIMARY KEY, v text, updated_at timestamptz);
SELECT incetl.create_pipeline('t45_ts', 't45.src', 't45.tgt_ts', watermark_column => 'updated_at',
							  on_schema_change => 'add_columns') > 0 AS created;
SELECT incetl.create_pipeline('t45_hash', 't45.src', 't45.tgt_hash', strategy => 'hash',
							  on_schema_change => 'add_columns') > 0 AS created;
CALL incetl.run('t45_ts');
CALL incetl.run('t45_hash');

\echo '-- a column added to the source after the pipeline exists'
ALTER TABLE t45.src ADD COLUMN extra integer DEFAULT 7;
UPDATE t45.src SET v = v || 'x', updated_at = updated_at + interval '1 day' WHERE id = 1;

\echo '-- preview: what the next run does (the hash run updates all 5 rows)'
SELECT op, count(*) FROM incetl.preview('t45_hash') GROUP BY op ORDER BY op;
SELECT op, key FROM incetl.preview('t45_ts') ORDER BY key::text;
-- the preview added nothing
SELECT count(*) AS extra_in_targets FROM pg_attribute
 WHERE attrelid IN ('t45.tgt_ts'::regclass, 't45.tgt_hash'::regclass) AND attname = 'extra';

\echo '-- the runs add the column and fill it'
CALL incetl.run('t45_ts');
CALL incetl.run('t45_hash');
SELECT pipeline, status, rows_inserted, rows_updated, rows_deleted, rows_unchanged
  FROM incetl.run_log WHERE pipeline IN ('t45_ts', 't45_hash') AND run_id IN
	   (SELECT max(run_id) FROM incetl.run_log GROUP BY pipeline)
 ORDER BY pipeline;
SELECT id, v, extra FROM t45.tgt_ts ORDER BY id;
SELECT (SELECT count(*) FROM (TABLE t45.src EXCEPT TABLE t45.tgt_hash) a) AS missing,
	   (SELECT count(*) FROM (TABLE t45.tgt_hash EXCEPT TABLE t45.src) b) AS extra;

SELECT incetl.drop_pipeline('t45_ts');
SELECT incetl.drop_pipeline('t45_hash');
RESET ROLE;
DROP SCHEMA t45 CASCADE;
DROP ROLE t45_owner;
