/* incetl--0.2--0.3.sql: the engine's reshaping (issue 12) and pgcrypto digests */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION incetl UPDATE TO '0.3'" to load this file. \quit
