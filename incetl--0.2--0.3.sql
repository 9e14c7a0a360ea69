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
