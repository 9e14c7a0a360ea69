/* incetl--0.2--0.3.sql: the engine's reshaping (issue 12) and pgcrypto digests */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION incetl UPDATE TO '0.3'" to load this file. \quit

/*
 * pgcrypto digests (issue 12).  hash_algorithm takes every digest that
 * pgcrypto's digest() offers, computed by pgcrypto over the canonical bytes
 * of a row, which incetl.row_bytes returns so that anyone can check a
 * stored hash.  Those bytes are the ones 'sha256' has hashed since 0.1: the
 * hashes stored by 'sha256' pipelines stay valid.
 */
ALTER TABLE incetl.pipelines
	DROP CONSTRAINT pipelines_hash_algorithm_check,
	ADD CONSTRAINT pipelines_hash_algorithm_check
		CHECK (hash_algorithm OPERATOR(pg_catalog.=) ANY
			   (ARRAY['hash64', 'md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512']));

CREATE FUNCTION incetl.row_bytes(record)
RETURNS bytea
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'incetl_row_bytes';
COMMENT ON FUNCTION incetl.row_bytes IS 'the canonical bytes of a row that digest hash algorithms hash: digest(incetl.row_bytes(r), alg) is the stored hash';

COMMENT ON FUNCTION incetl._row_sha256 IS 'SHA-256 over incetl.row_bytes, as digest(incetl.row_bytes(r), ''sha256'') (kept for compatibility)';

/*
 * incetl.explain(name): the statements the next run would execute and
 * their plans (EXPLAIN, not ANALYZE), writing nothing (SPEC section 1).
 */
CREATE FUNCTION incetl.explain(name text)
RETURNS TABLE (step text, statement text, plan text)
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'incetl_explain';
COMMENT ON FUNCTION incetl.explain IS 'the statements the next run would execute and their plans, writing nothing';

/*
 * The rows of runs still 'running' (or left so by a session that died):
 * the start of a run looks here, and at the oldest row, to tell whether it
 * has rows to close out or prune before it plans the statement that does.
 */
CREATE INDEX run_log_running_idx ON incetl.run_log (pipeline_id)
	WHERE status OPERATOR(pg_catalog.=) 'running';

/*
 * The options of SPEC sections 5 (history) and 6 (operations), as new
 * trailing arguments of create_pipeline and alter_pipeline (positional
 * calls of 0.2 keep working) and columns of incetl.pipelines.
 */
ALTER TABLE incetl.pipelines
	ADD COLUMN history_table regclass,
	ADD COLUMN history_ignore_columns text[],
	ADD COLUMN max_retained_wal text,
	ADD COLUMN freshness_target interval;

ALTER TABLE incetl.run_log
	ADD COLUMN history_versions bigint NOT NULL DEFAULT 0;

DROP FUNCTION incetl.create_pipeline(text, regclass, regclass, text, text[], text,
									 interval, text, text, text, text, text, text,
									 integer, text, boolean);
DROP FUNCTION incetl.alter_pipeline(text, regclass, regclass, text, text[], text,
									interval, text, text, text, text, text, text,
									integer, text, boolean);

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
	enabled boolean DEFAULT true,
	history_table regclass DEFAULT NULL,
	history_ignore_columns text[] DEFAULT NULL,
	max_retained_wal text DEFAULT NULL,
	freshness_target interval DEFAULT NULL)
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
	enabled boolean DEFAULT NULL,
	history_table regclass DEFAULT NULL,
	history_ignore_columns text[] DEFAULT NULL,
	max_retained_wal text DEFAULT NULL,
	freshness_target interval DEFAULT NULL)
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'incetl_alter_pipeline';
COMMENT ON FUNCTION incetl.alter_pipeline IS 'change the named options of a pipeline; NULL leaves an option as it is';

/*
 * Operations (SPEC section 6, issue 15).
 *
 * incetl.state remembers that a 'logical' pipeline needs a resync (its slot
 * was dropped by max_retained_wal, or found gone or invalidated) until a
 * run that compared the whole source commits, and since when a pipeline
 * with a freshness_target has been stale (NULL: fresh, or not checked):
 * the stale alert is sent when that turns from NULL to a time, once.
 * run_log.rows_estimated is a run's own estimate of the rows it has to
 * read (the keys it found, or the source's size for a first load), from
 * which the status view derives progress and eta.
 */
ALTER TABLE incetl.state
	ADD COLUMN needs_resync boolean NOT NULL DEFAULT false,
	ADD COLUMN stale_since timestamptz;

ALTER TABLE incetl.run_log
	ADD COLUMN rows_estimated bigint;

/*
 * The last successful run and the failures since are looked up per
 * pipeline by run_log_pipeline_idx (pipeline_id, run_id).
 */
CREATE OR REPLACE VIEW incetl.status WITH (security_invoker = true) AS
SELECT p.name AS pipeline,
	   p.strategy,
	   p.enabled,
	   s.watermark,
	   r.run_id AS last_run_id,
	   st.last_status,
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
	   END AS retained_wal_bytes,
	   CASE WHEN p.freshness_target IS NOT NULL
			THEN COALESCE(ok.started_at OPERATOR(pg_catalog.>=)
						  (pg_catalog.now() OPERATOR(pg_catalog.-) p.freshness_target), false)
	   END AS fresh,
	   ok.started_at AS last_success_at,
	   (SELECT pg_catalog.count(*)::integer FROM incetl.run_log f
		 WHERE f.pipeline_id OPERATOR(pg_catalog.=) p.id
		   AND f.run_id OPERATOR(pg_catalog.>) COALESCE(ok.run_id, 0)
		   AND f.status OPERATOR(pg_catalog.=) 'failed') AS consecutive_failures,
	   CASE WHEN p.strategy OPERATOR(pg_catalog.=) 'logical'
			THEN COALESCE(s.needs_resync, false)
				 OR (s.watermark IS NOT NULL
					 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots rs
									 WHERE rs.slot_name OPERATOR(pg_catalog.=) s.slot_name
									   AND rs.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
									   AND rs.wal_status IS DISTINCT FROM 'lost'))
			ELSE false
	   END AS needs_resync,
	   pr.progress,
	   CASE WHEN pr.progress OPERATOR(pg_catalog.>) 0
			THEN (pg_catalog.now() OPERATOR(pg_catalog.-) r.started_at)
				 OPERATOR(pg_catalog.*) ((1 OPERATOR(pg_catalog.-) pr.progress)
										 OPERATOR(pg_catalog./) pr.progress)::pg_catalog.float8
	   END AS eta
  FROM incetl.pipelines p
  LEFT JOIN incetl.state s ON s.pipeline_id OPERATOR(pg_catalog.=) p.id
  LEFT JOIN LATERAL (SELECT rl.* FROM incetl.run_log rl
					 WHERE rl.pipeline_id OPERATOR(pg_catalog.=) p.id
					   AND rl.status OPERATOR(pg_catalog.<>) 'skipped'
					 ORDER BY rl.run_id DESC LIMIT 1) r ON true
  LEFT JOIN LATERAL (SELECT rl.run_id, rl.started_at FROM incetl.run_log rl
					 WHERE rl.pipeline_id OPERATOR(pg_catalog.=) p.id
					   AND rl.status OPERATOR(pg_catalog.=) 'succeeded'
					   AND rl.kind OPERATOR(pg_catalog.<>) 'backfill'
					 ORDER BY rl.run_id DESC LIMIT 1) ok ON true
  CROSS JOIN LATERAL (SELECT
	   CASE WHEN r.status OPERATOR(pg_catalog.=) 'running'
				 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
								 WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
								   AND l.pid OPERATOR(pg_catalog.=) r.pid
								   AND l.classid OPERATOR(pg_catalog.=) p.id::pg_catalog.oid
								   AND l.objid OPERATOR(pg_catalog.=)
									   CASE WHEN r.kind OPERATOR(pg_catalog.=) 'backfill'
											THEN 2 ELSE 1 END::pg_catalog.oid
								   AND l.objsubid OPERATOR(pg_catalog.=) 7879
								   AND l.granted)
			THEN 'interrupted' ELSE r.status END AS last_status) st
  CROSS JOIN LATERAL (SELECT
	   CASE WHEN st.last_status OPERATOR(pg_catalog.=) 'running'
				 AND r.rows_estimated OPERATOR(pg_catalog.>) 0
			THEN pg_catalog.round(LEAST(1::pg_catalog.numeric,
						r.rows_extracted::pg_catalog.numeric OPERATOR(pg_catalog./) r.rows_estimated), 4)
	   END AS progress) pr;

/*
 * CALL incetl.guard(): max_retained_wal for every 'logical' pipeline, and
 * the freshness of every pipeline with a target, without running any
 * (src/guard.c).  Any role may call it: it enforces only each pipeline's
 * own limit, writes only incetl's state and slots, and runs no user code.
 */
CREATE PROCEDURE incetl.guard()
LANGUAGE C
AS 'MODULE_PATHNAME', 'incetl_guard';
COMMENT ON PROCEDURE incetl.guard IS 'drop the slots of logical pipelines over max_retained_wal (marking them for a resync) and alert on stale pipelines, running none';

/*
 * History tables (SPEC 5, issue 14).  A 'trigger' pipeline's history
 * stamps a version with the start of the transaction that wrote it: the
 * capture queue remembers it, in a column whose default is the writer's
 * now() (no code runs but core's).  Queues made before have it added;
 * their entries take the time of this update.
 */
DO $$
DECLARE
	q regclass;
BEGIN
	FOR q IN SELECT c.oid::pg_catalog.regclass
			   FROM incetl.pipelines AS p
			   JOIN pg_catalog.pg_class AS c
				 ON c.relname OPERATOR(pg_catalog.=) ('queue_' OPERATOR(pg_catalog.||) p.id)
				AND c.relnamespace OPERATOR(pg_catalog.=) 'incetl'::pg_catalog.regnamespace
			  WHERE p.strategy OPERATOR(pg_catalog.=) 'trigger'
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE %s ADD COLUMN IF NOT EXISTS changed_at '
								  'pg_catalog.timestamptz DEFAULT pg_catalog.now()', q);
		-- (see below)
		EXECUTE pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL', q);
	END LOOP;
END;
$$;

/*
 * (Above.)  A queue has no key: in a database with a FOR ALL TABLES
 * publication, deleting entries from it failed ("does not have a replica
 * identity and publishes deletes").  Queues are made REPLICA IDENTITY FULL
 * (src/strategy_trigger.c), those made before too, in the loop above.
 */

/*
 * A pipeline's history table cannot be dropped while the pipeline keeps
 * its history there (src/pipeline.c): the DROP fails with 2BP01, as a DROP
 * of a table a view depends on does, and the hint says to stop keeping
 * history (alter_pipeline(name, history_table => 0)) or drop the pipeline
 * first.
 */
CREATE FUNCTION incetl._history_table_dropped()
RETURNS event_trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'incetl_history_table_dropped';
COMMENT ON FUNCTION incetl._history_table_dropped() IS 'refuses to drop a pipeline''s history table (internal)';
REVOKE ALL ON FUNCTION incetl._history_table_dropped() FROM PUBLIC;

CREATE EVENT TRIGGER incetl_history_table_dropped ON sql_drop
	EXECUTE FUNCTION incetl._history_table_dropped();
