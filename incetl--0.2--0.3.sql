/* incetl--0.2--0.3.sql: the engine's reshaping (issue 12) and pgcrypto digests */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION incetl UPDATE TO '0.3'" to load this file. \quit

/*
 * incetl.explain(name): the statements the next run would execute and
 * their plans (EXPLAIN, not ANALYZE), writing nothing (SPEC section 1).
 */
CREATE FUNCTION incetl.explain(name text)
RETURNS TABLE (step text, statement text, plan text)
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'incetl_explain';
COMMENT ON FUNCTION incetl.explain IS 'the statements the next run would execute and their plans, writing nothing';
