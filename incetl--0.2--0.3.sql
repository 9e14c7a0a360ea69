/* incetl--0.2--0.3.sql: the engine's reshaping (issue 12) and pgcrypto digests */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION incetl UPDATE TO '0.3'" to load this file. \quit

/*
 * incetl.row_bytes returns the canonical bytes of a row, the ones 'sha256'
 * has hashed since 0.1, so that anyone can check a stored hash with
 * pgcrypto's digest().
 */
CREATE FUNCTION incetl.row_bytes(record)
RETURNS bytea
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'incetl_row_bytes';
COMMENT ON FUNCTION incetl.row_bytes IS 'the canonical bytes of a row that digest hash algorithms hash: digest(incetl.row_bytes(r), alg) is the stored hash';

COMMENT ON FUNCTION incetl._row_sha256 IS 'SHA-256 over incetl.row_bytes, as digest(incetl.row_bytes(r), ''sha256'') (kept for compatibility)';
