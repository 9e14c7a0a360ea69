--
-- 20_row_hash: incetl.row_hash(record), the hash the 'hash' strategy keeps
-- per row.  Equal rows hash equal; a difference in any column, a NULL
-- against a value, and where a NULL sits all change it; it works for
-- types with and without hash support (point, json, composites holding
-- them); and it depends on the stored values only, not on the session's
-- DateStyle, TimeZone, extra_float_digits or client_encoding.
--
-- The hash values themselves are not printed (only comparisons), so the
-- file does not pin the hash function.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t20;
SET search_path = t20, public;

CREATE TYPE t20.pair AS (a integer, p point);
CREATE TABLE t20.r (
	id integer PRIMARY KEY,
	t text,
	n numeric,
	ts timestamptz,
	j jsonb,
	arr integer[],
	b bytea,
	c t20.pair,
	pt point,
	js json,
	f float8
);
-- row 1 and row 2 are equal in every column but id; the others differ
-- from row 1 in exactly one column each
INSERT INTO t20.r VALUES
	(1, 'abc', 1.5, '2024-05-01 10:00:00+00', '{"a": 1, "b": [1, 2]}', '{1,2,3}', '\x0102',
	 ROW(1, '(1,2)'), '(1,2)', '{"a": 1}', 1/3.0::float8),
	(2, 'abc', 1.5, '2024-05-01 10:00:00+00', '{"a": 1, "b": [1, 2]}', '{1,2,3}', '\x0102',
	 ROW(1, '(1,2)'), '(1,2)', '{"a": 1}', 1/3.0::float8);
INSERT INTO t20.r SELECT 3, 'abd', n, ts, j, arr, b, c, pt, js, f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 4, t, 1.51, ts, j, arr, b, c, pt, js, f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 5, t, n, ts + interval '1 microsecond', j, arr, b, c, pt, js, f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 6, t, n, ts, '{"a": 1, "b": [2, 1]}', arr, b, c, pt, js, f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 7, t, n, ts, j, '{1,3,2}', b, c, pt, js, f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 8, t, n, ts, j, arr, '\x010200', c, pt, js, f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 9, t, n, ts, j, arr, b, ROW(1, '(1,3)'::point)::t20.pair, pt, js, f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 10, t, n, ts, j, arr, b, c, '(2,1)', js, f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 11, t, n, ts, j, arr, b, c, pt, '{"a": 2}', f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 12, t, n, ts, j, arr, b, c, pt, js, f + 1e-15 FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 13, NULL, n, ts, j, arr, b, c, pt, js, f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 14, '', n, ts, j, arr, b, c, pt, js, f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 15, t, n, ts, j, '{1,2,NULL}', b, c, pt, js, f FROM t20.r WHERE id = 1;
INSERT INTO t20.r SELECT 16, t, n, ts, j, arr, b, ROW(1, NULL::point)::t20.pair, pt, js, f FROM t20.r WHERE id = 1;

-- the hash of the non-key columns, as the 'hash' strategy takes it
CREATE FUNCTION t20.h(x t20.r) RETURNS bigint LANGUAGE sql AS $$
	SELECT incetl.row_hash(ROW(x.t, x.n, x.ts, x.j, x.arr, x.b, x.c, x.pt, x.js, x.f))
$$;

\echo '-- equal rows hash equal; each single-column difference changes the hash'
SELECT r.id, t20.h(r) = (SELECT t20.h(r1) FROM t20.r r1 WHERE r1.id = 1) AS same_as_row_1
  FROM t20.r r ORDER BY r.id;
-- no two of the differing rows collide either
SELECT count(DISTINCT t20.h(r)) AS distinct_hashes, count(*) AS rows
  FROM t20.r r WHERE id <> 2;
-- the same row hashes the same every time (and as a whole-row reference)
SELECT t20.h(r) = t20.h(r) AS stable,
	   incetl.row_hash(r) = incetl.row_hash(r) AS stable_whole_row,
	   incetl.row_hash(r) <> t20.h(r) AS key_included_differs
  FROM t20.r r WHERE id = 1;

\echo '-- NULL against a value, and where the NULL sits'
SELECT incetl.row_hash(ROW(NULL::integer, 1)) = incetl.row_hash(ROW(1, NULL::integer)) AS null_position_ignored,
	   incetl.row_hash(ROW(NULL::integer, 1)) = incetl.row_hash(ROW(NULL::integer, 1)) AS null_row_stable,
	   incetl.row_hash(ROW(NULL::integer, NULL::integer)) = incetl.row_hash(ROW(NULL::integer, 0)) AS null_eq_zero,
	   incetl.row_hash(ROW(NULL::text)) = incetl.row_hash(ROW(''::text)) AS null_eq_empty_text,
	   incetl.row_hash(ROW(NULL::integer, NULL::integer)) = incetl.row_hash(ROW(NULL::integer)) AS arity_ignored,
	   incetl.row_hash(ROW(1, 2)) = incetl.row_hash(ROW(2, 1)) AS order_ignored,
	   incetl.row_hash(ROW('a'::text, 'b'::text)) = incetl.row_hash(ROW('ab'::text, ''::text)) AS boundary_ignored;
-- a row of only NULLs still has a hash (the function is strict on the
-- record, not on its fields)
SELECT incetl.row_hash(ROW(NULL::integer, NULL::text)) IS NOT NULL AS all_null_row_hashed,
	   incetl.row_hash(NULL::t20.r) IS NULL AS null_record_is_null;

\echo '-- numeric: values equal by = hash equal (1.0 = 1.00), unequal ones differ'
SELECT 1.0::numeric = 1.00::numeric AS equal_by_eq,
	   incetl.row_hash(ROW(1.0::numeric)) = incetl.row_hash(ROW(1.00::numeric)) AS same_hash,
	   incetl.row_hash(ROW(1.0::numeric)) = incetl.row_hash(ROW(1.01::numeric)) AS hash_1_0_eq_1_01;
-- jsonb follows its own equality too; json (no hash support, no equality)
-- is hashed as written
SELECT '{"a": 1.0}'::jsonb = '{"a": 1.00}'::jsonb AS jsonb_equal,
	   incetl.row_hash(ROW('{"a": 1.0}'::jsonb)) = incetl.row_hash(ROW('{"a": 1.00}'::jsonb)) AS jsonb_same_hash,
	   incetl.row_hash(ROW('{"b": 1, "a": 2}'::jsonb)) = incetl.row_hash(ROW('{"a": 2, "b": 1}'::jsonb)) AS jsonb_key_order,
	   incetl.row_hash(ROW('{"a":1}'::json)) = incetl.row_hash(ROW('{"a": 1}'::json)) AS json_whitespace;
-- the same instant written in two time zones is one timestamptz
SELECT incetl.row_hash(ROW('2024-05-01 10:00:00+00'::timestamptz))
	 = incetl.row_hash(ROW('2024-05-01 12:00:00+02'::timestamptz)) AS same_instant;

\echo '-- types without hash support: point, json, arrays and composites of them'
SELECT ty.typname,
	   EXISTS (SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
			   WHERE am.amname = 'hash' AND oc.opcintype = ty.oid) AS has_hash_opclass
  FROM pg_type ty WHERE ty.typname IN ('point', 'json') ORDER BY 1;
SELECT incetl.row_hash(ROW('(1,2)'::point)) = incetl.row_hash(ROW('(1,2)'::point)) AS point_equal,
	   incetl.row_hash(ROW('(1,2)'::point)) = incetl.row_hash(ROW('(2,1)'::point)) AS point_swapped,
	   incetl.row_hash(ROW(ARRAY['(1,2)'::point])) = incetl.row_hash(ROW(ARRAY['(1,2)'::point])) AS point_array_equal,
	   incetl.row_hash(ROW(ARRAY['(1,2)'::point])) = incetl.row_hash(ROW(ARRAY['(1,3)'::point])) AS point_array_differs,
	   incetl.row_hash(ROW(ROW(1, '(1,2)')::t20.pair)) = incetl.row_hash(ROW(ROW(1, '(1,2)')::t20.pair)) AS composite_equal,
	   incetl.row_hash(ROW(ROW(1, '(1,2)')::t20.pair)) = incetl.row_hash(ROW(ROW(2, '(1,2)')::t20.pair)) AS composite_differs;

\echo '-- the hash depends on the stored values only, not on session settings'
SET DateStyle = 'ISO, YMD';
SET TimeZone = 'UTC';
SET extra_float_digits = 1;
CREATE TABLE t20.saved AS SELECT id, incetl.row_hash(r) AS h, t20.h(r) AS hv FROM t20.r r;
\c -
SET search_path = t20, public;
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Pacific/Chatham';
SET extra_float_digits = -10;
SET bytea_output = 'escape';
SET IntervalStyle = 'postgres_verbose';
-- the settings do change how the same rows print
SELECT ts::text <> '2024-05-01 10:00:00+00' AS ts_prints_differently,
	   f::text <> '0.3333333333333333' AS float_prints_differently
  FROM t20.r WHERE id = 1;
SELECT count(*) AS rows,
	   count(*) FILTER (WHERE s.h = incetl.row_hash(r)) AS same_whole_row_hash,
	   count(*) FILTER (WHERE s.hv = t20.h(r)) AS same_value_hash
  FROM t20.r r JOIN t20.saved s USING (id);
-- and in a fresh session with default settings again
\c -
SET search_path = t20, public;
SELECT count(*) FILTER (WHERE s.h = incetl.row_hash(r)) AS same_whole_row_hash
  FROM t20.r r JOIN t20.saved s USING (id);


\echo '-- ... nor on client_encoding: json (no hash support) and text with'
\echo '-- characters outside Latin-1, hashed in a LATIN1 session'
CREATE TABLE t20.enc (id integer PRIMARY KEY, js json, t text);
INSERT INTO t20.enc VALUES (1, '{"a": "caf\u00e9"}', U&'caf\00e9'), (2, '{"a": "\u20ac"}', U&'\20ac');
UPDATE t20.enc SET js = json_build_object('a', t);
SELECT id, octet_length(t) AS utf8_bytes FROM t20.enc ORDER BY id;
CREATE TABLE t20.enc_saved AS SELECT id, incetl.row_hash(e) AS h FROM t20.enc e;
SET client_encoding = 'LATIN1';
-- representable in LATIN1: the same hash
SELECT s.h = incetl.row_hash(e) AS same_hash FROM t20.enc e JOIN t20.enc_saved s USING (id)
 WHERE id = 1;
-- not representable in LATIN1: still the same hash, and no error
SELECT s.h = incetl.row_hash(e) AS same_hash FROM t20.enc e JOIN t20.enc_saved s USING (id)
 WHERE id = 2;
RESET client_encoding;

RESET search_path;
DROP SCHEMA t20 CASCADE;
