--
-- 07_bad_input: every argument of create_pipeline with bad input gives a
-- clear error with its own SQLSTATE, and nothing is written (the pipeline
-- and state counts stay as they were).  Then the other entry points on a
-- missing pipeline, bad arguments, and a disabled pipeline.
--
CREATE SCHEMA t07;
CREATE TABLE t07.src (
	id integer PRIMARY KEY,
	name text,
	amount integer,
	doc jsonb,
	seq integer,
	gone boolean,
	updated_at timestamptz NOT NULL
);
CREATE TABLE t07.tgt (
	id integer PRIMARY KEY,
	name text,
	amount integer,
	doc jsonb,
	seq integer,
	gone boolean,
	updated_at timestamptz
);
CREATE TABLE t07.tgt_nokey (LIKE t07.tgt);				-- no unique index
CREATE TABLE t07.tgt_nonunique (LIKE t07.tgt);
CREATE INDEX ON t07.tgt_nonunique (id);					-- an index, not unique
CREATE TABLE t07.tgt_partial (LIKE t07.tgt);
CREATE UNIQUE INDEX ON t07.tgt_partial (id) WHERE id > 0;	-- partial: does not count
CREATE TABLE t07.tgt_narrow (id integer PRIMARY KEY, name text, updated_at timestamptz);
CREATE TABLE t07.tgt_badtype (LIKE t07.tgt INCLUDING ALL);
ALTER TABLE t07.tgt_badtype ALTER COLUMN doc TYPE point USING NULL;	-- jsonb cannot become point
CREATE TABLE t07.src_json_seq (id integer PRIMARY KEY, seq json, updated_at timestamptz);
CREATE TABLE t07.tgt_json_seq (id integer PRIMARY KEY, seq json, updated_at timestamptz);
CREATE SEQUENCE t07.a_sequence;
CREATE VIEW t07.a_view AS SELECT * FROM t07.tgt;
INSERT INTO t07.src VALUES (1, 'one', 10, '{"a": 1}', 1, false, '2024-08-01 00:00:00+00');

-- attempt(sql): the error (or 'ok') and how many pipelines and states exist after it
CREATE FUNCTION t07.attempt(sql text, OUT result text, OUT pipelines bigint, OUT states bigint)
LANGUAGE plpgsql AS $$
BEGIN
	result := regress.try(sql);
	pipelines := (SELECT count(*) FROM incetl.pipelines);
	states := (SELECT count(*) FROM incetl.state);
END;
$$;
SELECT count(*) AS pipelines_before FROM incetl.pipelines;

\echo '-- relations'
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.nope', 't07.tgt', watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.nope', watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', NULL, 't07.tgt', watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', NULL, watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.src', watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.a_sequence', 't07.tgt', watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.a_view', watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt_nokey', watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt_nonunique', watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt_partial', watermark_column => 'updated_at')$$);

\echo '-- name'
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline(NULL, 't07.src', 't07.tgt', watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('', 't07.src', 't07.tgt', watermark_column => 'updated_at')$$);

\echo '-- columns'
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'nope')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'Updated_At')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'name')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'gone')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'id')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', key_columns => '{nope}')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', key_columns => '{id,id}')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', key_columns => '{id,NULL}')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', key_columns => '{name}')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', sequence_column => 'nope')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src_json_seq', 't07.tgt_json_seq', watermark_column => 'updated_at', sequence_column => 'seq')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', delete_detection => 'flag')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', delete_detection => 'flag', delete_flag_column => 'nope')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', delete_detection => 'flag', delete_flag_column => 'name')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', delete_mode => 'soft', soft_delete_column => 'nope')$$);

\echo '-- option values'
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', strategy => 'magic')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', strategy => 'Timestamp')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', delete_detection => 'guess')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', delete_mode => 'shred')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', on_schema_change => 'panic')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', hash_algorithm => 'crc32')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', batch_size => 0)$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', batch_size => -5)$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'updated_at', lookback => '-1 hour')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt', watermark_column => 'amount', lookback => '1 hour')$$);

\echo '-- schema differences'
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt_narrow', watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('p', 't07.src', 't07.tgt_badtype', watermark_column => 'updated_at')$$);
-- 'ignore' loads the common columns
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('narrow', 't07.src', 't07.tgt_narrow', watermark_column => 'updated_at', on_schema_change => 'ignore')$$);
CALL incetl.run('narrow');
SELECT * FROM t07.tgt_narrow;
SELECT status, inserted FROM regress.last_run('narrow') AS r(kind, status, batches, extracted, inserted);
SELECT incetl.drop_pipeline('narrow');
-- 'add_columns' adds the missing columns to the target, with the source's types
CREATE TABLE t07.tgt_grow (id integer PRIMARY KEY, updated_at timestamptz);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('grow', 't07.src', 't07.tgt_grow', watermark_column => 'updated_at', on_schema_change => 'add_columns')$$);
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 't07.tgt_grow'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
CALL incetl.run('grow');
SELECT * FROM t07.tgt_grow;
SELECT incetl.drop_pipeline('grow');

\echo '-- a duplicate name'
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('dup', 't07.src', 't07.tgt', watermark_column => 'updated_at')$$);
SELECT * FROM t07.attempt($$SELECT incetl.create_pipeline('dup', 't07.src', 't07.tgt', watermark_column => 'updated_at')$$);

\echo '-- alter_pipeline with bad input changes nothing'
CREATE TEMP TABLE dup_before AS SELECT * FROM incetl.pipelines WHERE name = 'dup';
SELECT * FROM t07.attempt($$SELECT incetl.alter_pipeline('dup', batch_size => 0)$$);
SELECT * FROM t07.attempt($$SELECT incetl.alter_pipeline('dup', watermark_column => 'nope')$$);
SELECT * FROM t07.attempt($$SELECT incetl.alter_pipeline('dup', target => 't07.tgt_nokey')$$);
SELECT * FROM t07.attempt($$SELECT incetl.alter_pipeline('dup', strategy => 'magic')$$);
SELECT * FROM t07.attempt($$SELECT incetl.alter_pipeline('dup', lookback => '-1 second')$$);
SELECT * FROM t07.attempt($$SELECT incetl.alter_pipeline('dup', on_schema_change => 'panic')$$);
SELECT * FROM t07.attempt($$SELECT incetl.alter_pipeline(NULL, batch_size => 10)$$);
SELECT count(*) AS changed FROM (SELECT * FROM incetl.pipelines WHERE name = 'dup'
								 EXCEPT SELECT * FROM dup_before) d;

\echo '-- the other entry points on a missing pipeline'
SELECT * FROM t07.attempt($$SELECT incetl.alter_pipeline('missing', batch_size => 10)$$);
SELECT * FROM t07.attempt($$SELECT incetl.drop_pipeline('missing')$$);
SELECT * FROM t07.attempt($$SELECT incetl.set_watermark('missing', '2024-01-01')$$);
SELECT * FROM t07.attempt($$SELECT incetl.reset_watermark('missing')$$);
SELECT * FROM t07.attempt($$SELECT * FROM incetl.preview('missing')$$);
SELECT * FROM t07.attempt($$CALL incetl.run('missing')$$);
SELECT * FROM t07.attempt($$CALL incetl.run(NULL)$$);
SELECT * FROM t07.attempt($$CALL incetl.backfill('missing', timestamptz '2024-01-01', timestamptz '2024-01-02')$$);
-- a run of a missing pipeline leaves a 'failed' run_log row or none, never a 'succeeded' one
SELECT count(*) AS succeeded_rows FROM incetl.run_log WHERE pipeline = 'missing' AND status = 'succeeded';

\echo '-- bad arguments of the other entry points'
SELECT * FROM t07.attempt($$SELECT incetl.set_watermark('dup', 'not a time')$$);
SELECT * FROM t07.attempt($$SELECT * FROM incetl.preview('dup', -1)$$);
SELECT * FROM t07.attempt($$CALL incetl.backfill('dup', timestamptz '2024-01-02', timestamptz '2024-01-01')$$);
SELECT * FROM t07.attempt($$CALL incetl.backfill('dup', timestamptz '2024-01-01', timestamptz '2024-01-02', interval '0')$$);
SELECT * FROM t07.attempt($$CALL incetl.backfill('dup', timestamptz '2024-01-01', timestamptz '2024-01-02', interval '-1 day')$$);
SELECT * FROM t07.attempt($$CALL incetl.backfill('dup', timestamptz '2024-01-01', NULL)$$);
SELECT * FROM t07.attempt($$CALL incetl.backfill('dup', 1, 10, 5)$$);
SELECT * FROM regress.cursor('dup');

\echo '-- the source dropped under a pipeline: run, preview and set_watermark fail clearly; drop works'
CREATE TABLE t07.src_gone (LIKE t07.src INCLUDING ALL);
SELECT incetl.create_pipeline('gone', 't07.src_gone', 't07.tgt', watermark_column => 'updated_at') > 0 AS created;
DROP TABLE t07.src_gone;
CALL incetl.run('gone');
SELECT * FROM t07.attempt($$SELECT * FROM incetl.preview('gone')$$);
SELECT * FROM t07.attempt($$SELECT incetl.set_watermark('gone', '2024-01-01')$$);
SELECT pipeline, last_status, last_error FROM incetl.status WHERE pipeline = 'gone';
SELECT * FROM t07.attempt($$SELECT incetl.drop_pipeline('gone')$$);

\echo '-- a disabled pipeline: run refuses it, run_all skips it'
SELECT incetl.alter_pipeline('dup', enabled => false);
SELECT * FROM t07.attempt($$CALL incetl.run('dup')$$);
SELECT count(*) AS dup_rows FROM t07.tgt;
CALL incetl.run_all();
SELECT count(*) AS dup_rows FROM t07.tgt;
SELECT count(*) AS succeeded_runs FROM incetl.run_log WHERE pipeline = 'dup' AND status = 'succeeded';
SELECT pipeline, enabled, watermark, last_status FROM incetl.status WHERE pipeline = 'dup';
-- enabled again, it runs
SELECT incetl.alter_pipeline('dup', enabled => true);
CALL incetl.run('dup');
SELECT count(*) AS dup_rows FROM t07.tgt;

SELECT incetl.drop_pipeline('dup');
SELECT count(*) AS pipelines_after FROM incetl.pipelines;
DROP SCHEMA t07 CASCADE;
