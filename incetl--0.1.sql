/* incetl--0.1.sql: the first release of incetl's catalog and SQL interface */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION incetl CASCADE" to load this file. \quit

/*
 * The catalog.  Rows are written only by incetl's functions, which switch to
 * the extension owner for that; users read them (row-level security shows a
 * role only the pipelines it may manage).
 */
CREATE TABLE incetl.pipelines (
	id serial PRIMARY KEY,
	name text NOT NULL UNIQUE,
	source regclass NOT NULL,
	target regclass NOT NULL,
	strategy text NOT NULL DEFAULT 'timestamp'
		CHECK (strategy OPERATOR(pg_catalog.=) ANY (ARRAY['timestamp', 'hash', 'trigger', 'logical'])),
	key_columns text[] NOT NULL,
	watermark_column text,
	lookback interval NOT NULL DEFAULT '0',
	sequence_column text,
	delete_detection text NOT NULL DEFAULT 'none'
		CHECK (delete_detection OPERATOR(pg_catalog.=) ANY (ARRAY['none', 'flag', 'compare'])),
	delete_flag_column text,
	delete_mode text NOT NULL DEFAULT 'hard'
		CHECK (delete_mode OPERATOR(pg_catalog.=) ANY (ARRAY['hard', 'soft'])),
	soft_delete_column text NOT NULL DEFAULT 'is_deleted',
	hash_algorithm text NOT NULL DEFAULT 'hash64'
		CHECK (hash_algorithm OPERATOR(pg_catalog.=) ANY (ARRAY['hash64', 'sha256'])),
	batch_size integer NOT NULL DEFAULT 50000 CHECK (batch_size OPERATOR(pg_catalog.>) 0),
	on_schema_change text NOT NULL DEFAULT 'fail'
		CHECK (on_schema_change OPERATOR(pg_catalog.=) ANY (ARRAY['fail', 'ignore', 'add_columns'])),
	enabled boolean NOT NULL DEFAULT true,
	owner regrole NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE incetl.pipelines IS 'incetl pipeline definitions; change them with incetl.create_pipeline, alter_pipeline and drop_pipeline';

/*
 * Per-pipeline state.  The watermark is kept as canonical text (ISO 8601 in
 * UTC for time types, the type's own output otherwise), written and read
 * by C code that does not depend on DateStyle, TimeZone or float settings.
 */
CREATE TABLE incetl.state (
	pipeline_id integer PRIMARY KEY REFERENCES incetl.pipelines (id) ON DELETE CASCADE,
	watermark text,
	watermark_key text[],
	watermark_type regtype,
	slot_name name,
	applied_lsn pg_lsn,
	source_columns jsonb,
	updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE incetl.state IS 'incetl per-pipeline state: watermark cursor, replication slot';

CREATE TABLE incetl.run_log (
	run_id bigserial PRIMARY KEY,
	pipeline text NOT NULL,
	pipeline_id integer,
	kind text NOT NULL
		CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['run', 'backfill', 'reconcile'])),
	status text NOT NULL
		CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['running', 'succeeded', 'failed', 'skipped'])),
	started_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	finished_at timestamptz,
	batches integer NOT NULL DEFAULT 0,
	rows_extracted bigint NOT NULL DEFAULT 0,
	rows_inserted bigint NOT NULL DEFAULT 0,
	rows_updated bigint NOT NULL DEFAULT 0,
	rows_deleted bigint NOT NULL DEFAULT 0,
	rows_unchanged bigint NOT NULL DEFAULT 0,
	watermark_before text,
	watermark_after text,
	error text,
	run_by name NOT NULL DEFAULT CURRENT_USER,
	pid integer NOT NULL DEFAULT pg_catalog.pg_backend_pid()
);
CREATE INDEX run_log_pipeline_idx ON incetl.run_log (pipeline_id, run_id);
CREATE INDEX run_log_started_at_idx ON incetl.run_log (started_at);
COMMENT ON TABLE incetl.run_log IS 'incetl audit log: one row per run, backfill and reconcile';

SELECT pg_catalog.pg_extension_config_dump('incetl.pipelines', '');
SELECT pg_catalog.pg_extension_config_dump('incetl.pipelines_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('incetl.state', '');
SELECT pg_catalog.pg_extension_config_dump('incetl.run_log', '');
SELECT pg_catalog.pg_extension_config_dump('incetl.run_log_run_id_seq', '');

/* privileges: readable, never writable, by everyone else */
REVOKE ALL ON ALL TABLES IN SCHEMA incetl FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA incetl FROM PUBLIC;
GRANT USAGE ON SCHEMA incetl TO PUBLIC;
GRANT SELECT ON incetl.pipelines, incetl.state, incetl.run_log TO PUBLIC;

ALTER TABLE incetl.pipelines ENABLE ROW LEVEL SECURITY;
CREATE POLICY pipelines_visible ON incetl.pipelines FOR SELECT
	USING (pg_catalog.pg_has_role(owner, 'USAGE'));
ALTER TABLE incetl.state ENABLE ROW LEVEL SECURITY;
CREATE POLICY state_visible ON incetl.state FOR SELECT
	USING (EXISTS (SELECT 1 FROM incetl.pipelines p
				   WHERE p.id OPERATOR(pg_catalog.=) pipeline_id));
ALTER TABLE incetl.run_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY run_log_visible ON incetl.run_log FOR SELECT
	USING (EXISTS (SELECT 1 FROM incetl.pipelines p
				   WHERE p.id OPERATOR(pg_catalog.=) pipeline_id)
		   OR run_by OPERATOR(pg_catalog.=) CURRENT_USER);

/*
 * Pipelines
 */
CREATE FUNCTION incetl.create_pipeline(
	name text,
	source regclass,
	target regclass,
	strategy text DEFAULT 'timestamp',
	key_columns text[] DEFAULT NULL,
	watermark_column text DEFAULT NULL,
	lookback interval DEFAULT '0',
	sequence_column text DEFAULT NULL,
	delete_detection text DEFAULT 'none',
	delete_flag_column text DEFAULT NULL,
	delete_mode text DEFAULT 'hard',
	soft_delete_column text DEFAULT 'is_deleted',
	hash_algorithm text DEFAULT 'hash64',
	batch_size integer DEFAULT 50000,
	on_schema_change text DEFAULT 'fail',
	enabled boolean DEFAULT true)
RETURNS integer
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'incetl_create_pipeline';
COMMENT ON FUNCTION incetl.create_pipeline IS 'define a pipeline that keeps target in step with source';

CREATE FUNCTION incetl.alter_pipeline(
	name text,
	source regclass DEFAULT NULL,
	target regclass DEFAULT NULL,
	strategy text DEFAULT NULL,
	key_columns text[] DEFAULT NULL,
	watermark_column text DEFAULT NULL,
	lookback interval DEFAULT NULL,
	sequence_column text DEFAULT NULL,
	delete_detection text DEFAULT NULL,
	delete_flag_column text DEFAULT NULL,
	delete_mode text DEFAULT NULL,
	soft_delete_column text DEFAULT NULL,
	hash_algorithm text DEFAULT NULL,
	batch_size integer DEFAULT NULL,
	on_schema_change text DEFAULT NULL,
	enabled boolean DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'incetl_alter_pipeline';
COMMENT ON FUNCTION incetl.alter_pipeline IS 'change the named options of a pipeline; NULL leaves an option as it is';

CREATE FUNCTION incetl.drop_pipeline(name text)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'incetl_drop_pipeline';
COMMENT ON FUNCTION incetl.drop_pipeline IS 'remove a pipeline with its state, capture trigger and replication slot';

/*
 * Runs.  Procedures run with the caller's rights and carry no SET clause:
 * either would make them atomic and stop them from committing per batch.
 */
CREATE PROCEDURE incetl.run(name text)
LANGUAGE C
AS 'MODULE_PATHNAME', 'incetl_run';
COMMENT ON PROCEDURE incetl.run IS 'one incremental pass of a pipeline';

CREATE PROCEDURE incetl.run_all()
LANGUAGE C
AS 'MODULE_PATHNAME', 'incetl_run_all';
COMMENT ON PROCEDURE incetl.run_all IS 'run every enabled pipeline, one after another';

CREATE PROCEDURE incetl.backfill(name text, start_at timestamptz, end_at timestamptz,
								 chunk interval DEFAULT '1 day')
LANGUAGE C
AS 'MODULE_PATHNAME', 'incetl_backfill_time';
COMMENT ON PROCEDURE incetl.backfill(text, timestamptz, timestamptz, interval) IS 'reprocess source rows whose watermark is in [start_at, end_at), chunk by chunk';

CREATE PROCEDURE incetl.backfill(name text, start_at bigint, end_at bigint, chunk bigint)
LANGUAGE C
AS 'MODULE_PATHNAME', 'incetl_backfill_int';
COMMENT ON PROCEDURE incetl.backfill(text, bigint, bigint, bigint) IS 'reprocess source rows whose watermark is in [start_at, end_at), chunk by chunk';

CREATE PROCEDURE incetl.reconcile(name text)
LANGUAGE C
AS 'MODULE_PATHNAME', 'incetl_reconcile';
COMMENT ON PROCEDURE incetl.reconcile IS 'compare the whole source and target by row hash and repair the target';

CREATE FUNCTION incetl.preview(name text, max_rows bigint DEFAULT NULL)
RETURNS TABLE (op text, key jsonb)
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'incetl_preview';
COMMENT ON FUNCTION incetl.preview IS 'what the next run would do, writing nothing';

CREATE FUNCTION incetl.set_watermark(name text, value text)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'incetl_set_watermark';
COMMENT ON FUNCTION incetl.set_watermark IS 'move the watermark of a pipeline by hand';

CREATE FUNCTION incetl.reset_watermark(name text)
RETURNS void
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'incetl_reset_watermark';
COMMENT ON FUNCTION incetl.reset_watermark IS 'forget the watermark: the next run loads everything';

CREATE FUNCTION incetl.row_hash(record)
RETURNS bigint
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'incetl_row_hash';
COMMENT ON FUNCTION incetl.row_hash IS 'the 64-bit row hash used by the hash strategy';

CREATE FUNCTION incetl._row_sha256(record)
RETURNS bytea
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'incetl_row_sha256';
COMMENT ON FUNCTION incetl._row_sha256 IS 'SHA-256 row hash of hash_algorithm sha256 (internal)';

CREATE FUNCTION incetl._capture()
RETURNS trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'incetl_capture';
COMMENT ON FUNCTION incetl._capture IS 'capture trigger of the trigger strategy (internal)';
-- only incetl itself (as the extension owner) attaches it to a source
REVOKE ALL ON FUNCTION incetl._capture() FROM PUBLIC;

/*
 * Monitoring
 */
CREATE VIEW incetl.status WITH (security_invoker = true) AS
SELECT p.name AS pipeline,
	   p.strategy,
	   p.enabled,
	   s.watermark,
	   r.run_id AS last_run_id,
	   CASE WHEN r.status OPERATOR(pg_catalog.=) 'running'
				 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
								 WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
								   AND l.pid OPERATOR(pg_catalog.=) r.pid
								   AND l.objid OPERATOR(pg_catalog.=) p.id::pg_catalog.oid
								   AND l.objsubid OPERATOR(pg_catalog.=) 2
								   AND l.granted)
			THEN 'interrupted' ELSE r.status END AS last_status,
	   r.started_at AS last_started_at,
	   r.finished_at AS last_finished_at,
	   r.error AS last_error,
	   CASE WHEN s.watermark_type OPERATOR(pg_catalog.=) ANY
				 (ARRAY['pg_catalog.timestamptz', 'pg_catalog.timestamp', 'pg_catalog.date']::pg_catalog.regtype[])
			THEN pg_catalog.now() OPERATOR(pg_catalog.-) s.watermark::pg_catalog.timestamptz
	   END AS lag,
	   CASE WHEN p.strategy OPERATOR(pg_catalog.=) 'logical'
			THEN (SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), rs.restart_lsn)::bigint
				  FROM pg_catalog.pg_replication_slots rs
				  WHERE rs.slot_name OPERATOR(pg_catalog.=) s.slot_name)
	   END AS retained_wal_bytes
  FROM incetl.pipelines p
  LEFT JOIN incetl.state s ON s.pipeline_id OPERATOR(pg_catalog.=) p.id
  LEFT JOIN LATERAL (SELECT rl.* FROM incetl.run_log rl
					 WHERE rl.pipeline_id OPERATOR(pg_catalog.=) p.id
					   AND rl.status OPERATOR(pg_catalog.<>) 'skipped'
					 ORDER BY rl.run_id DESC LIMIT 1) r ON true;
COMMENT ON VIEW incetl.status IS 'one row per pipeline: watermark, last run, lag, retained WAL';
GRANT SELECT ON incetl.status TO PUBLIC;
