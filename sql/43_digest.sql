--
-- 43_digest: hash_algorithm takes every digest pgcrypto's digest() offers
-- ('md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512'), computed by
-- pgcrypto over incetl.row_bytes(record), the canonical bytes of a row:
--   - row_bytes is the byte stream 'sha256' has hashed since 0.1, so
--     digest(row_bytes(r), 'sha256') = incetl._row_sha256(r) and hashes
--     stored before 0.3 stay valid;
--   - a 'hash' pipeline of every digest loads, then applies exactly the
--     inserted, updated and deleted keys, and the hashes it stores are
--     digest(incetl.row_bytes(ROW(non-key columns)), alg) as a user
--     computes them;
--   - an unknown algorithm is refused (by the functions and by the
--     catalog's CHECK);
--   - alter_pipeline moves between every pair of algorithms, starting the
--     stored hashes afresh with the right type;
--   - row_bytes depends on no session setting (DateStyle, TimeZone,
--     extra_float_digits, bytea_output);
--   - the generated SQL finds pgcrypto in whatever schema it lives in,
--     whatever the search_path.
--
-- No digest or byte stream is printed (the stream holds lengths in the
-- server's byte order), only comparisons and lengths.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t43;

-- the digests, and pgcrypto's digest() in its schema, whatever that is
CREATE TABLE t43.algs (alg text PRIMARY KEY, bytes integer);
INSERT INTO t43.algs VALUES ('md5', 16), ('sha1', 20), ('sha224', 28), ('sha256', 32),
	('sha384', 48), ('sha512', 64);
CREATE FUNCTION t43.digest(b bytea, alg text) RETURNS bytea
LANGUAGE plpgsql AS $$
DECLARE
	r bytea;
BEGIN
	EXECUTE format('SELECT %I.digest($1, $2)',
				   (SELECT n.nspname FROM pg_extension e
					  JOIN pg_namespace n ON n.oid = e.extnamespace
					 WHERE e.extname = 'pgcrypto'))
		INTO r USING b, alg;
	RETURN r;
END;
$$;

\echo '-- row_bytes is declared like row_hash'
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel, p.prorettype::regtype,
	   p.proargtypes::regtype[] AS args
  FROM pg_proc p
 WHERE p.pronamespace = 'incetl'::regnamespace
   AND p.proname IN ('row_hash', 'row_bytes', '_row_sha256')
 ORDER BY 1;

\echo '-- the layout: per column an 8-byte length and the stored bytes, or an'
\echo '-- 8-byte NULL marker'
SELECT incetl.row_bytes(ROW(NULL::integer)) AS null_marker,
	   octet_length(incetl.row_bytes(ROW(NULL::integer, NULL::text))) AS two_nulls,
	   octet_length(incetl.row_bytes(ROW('ab'::text))) AS text_ab,
	   substring(incetl.row_bytes(ROW('ab'::text)) FROM 9) AS text_ab_value,
	   substring(incetl.row_bytes(ROW('ab'::text, NULL::integer, ''::text)) FROM 9 FOR 2) AS first_value,
	   octet_length(incetl.row_bytes(ROW(''::text))) AS empty_text,
	   octet_length(incetl.row_bytes(ROW(1::integer))) AS int4_datum,
	   incetl.row_bytes(NULL::record) IS NULL AS strict;
-- no two of these rows share their bytes: a NULL is not an empty value,
-- where a value ends is part of the stream, the arity counts
SELECT count(DISTINCT b) AS distinct_streams, count(*) AS rows FROM (VALUES
	(incetl.row_bytes(ROW(NULL::text))),
	(incetl.row_bytes(ROW(''::text))),
	(incetl.row_bytes(ROW('a'::text, 'b'::text))),
	(incetl.row_bytes(ROW('ab'::text, ''::text))),
	(incetl.row_bytes(ROW(''::text, 'ab'::text))),
	(incetl.row_bytes(ROW(NULL::integer, 1))),
	(incetl.row_bytes(ROW(1, NULL::integer))),
	(incetl.row_bytes(ROW(NULL::integer, NULL::integer))),
	(incetl.row_bytes(ROW(1.0::numeric))),
	(incetl.row_bytes(ROW(1.00::numeric)))) AS v(b);

\echo '-- row_bytes is what sha256 has hashed since 0.1: digest(row_bytes) ='
\echo '-- _row_sha256, for every kind of column (by value, fixed length, varlena,'
\echo '-- cstring, toasted and compressed, composite, NULLs)'
CREATE TYPE t43.pair AS (a integer, p point);
CREATE TABLE t43.r (id integer PRIMARY KEY, t text, n numeric, ts timestamptz, f float8,
					arr integer[], b bytea, c t43.pair, pt point, js json, u uuid,
					nm name, big text);
INSERT INTO t43.r VALUES
	(1, 'abc', 1.5, '2024-05-01 10:00:00+00', 1/3.0::float8, '{1,2,3}', '\x0102',
	 ROW(1, '(1,2)'), '(1,2)', '{"a": 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'nm', NULL),
	(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(3, '', 0, '-infinity', 'NaN', '{}', '\x', ROW(NULL, NULL), '(0,0)', '[]',
	 '00000000-0000-0000-0000-000000000000', '', ''),
	(4, U&'caf\00e9 \20ac', -1e-30, '1999-12-31 23:59:59.999999+14', -0.0, '{{1,2},{3,4}}',
	 '\xff', ROW(-1, NULL), NULL, '{"b": [1, 2]}', NULL, 'x', repeat('compressible ', 10000)),
	(5, 'x', 1, now(), 1e308, '[0:1]={5,6}', decode(repeat('ab', 5000), 'hex'), NULL, NULL, NULL,
	 NULL, NULL, (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 1000) AS i));
-- the long values are stored compressed (row 4) and out of line (row 5)
SELECT id, pg_column_size(big) < octet_length(big) AS compressed
  FROM t43.r WHERE id IN (4, 5) ORDER BY id;
SELECT r.id,
	   t43.digest(incetl.row_bytes(ROW(r.t, r.n, r.ts, r.f, r.arr, r.b, r.c, r.pt, r.js, r.u, r.nm, r.big)), 'sha256')
	   = incetl._row_sha256(ROW(r.t, r.n, r.ts, r.f, r.arr, r.b, r.c, r.pt, r.js, r.u, r.nm, r.big)) AS columns,
	   t43.digest(incetl.row_bytes(r), 'sha256') = incetl._row_sha256(r) AS whole_row
  FROM t43.r r ORDER BY r.id;
-- a value read from the table (toasted) and the same value built in memory
SELECT incetl.row_bytes(ROW(r.big)) = incetl.row_bytes(ROW(repeat('compressible ', 10000))) AS detoasted
  FROM t43.r r WHERE r.id = 4;

\echo '-- row_bytes depends on no session setting'
SET DateStyle = 'ISO, YMD';
SET TimeZone = 'UTC';
SET extra_float_digits = 1;
CREATE TABLE t43.saved AS SELECT id, incetl.row_bytes(r) AS b FROM t43.r r;
\c -
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Pacific/Chatham';
SET extra_float_digits = -10;
SET bytea_output = 'escape';
SET IntervalStyle = 'postgres_verbose';
-- the settings do change how the rows print
SELECT ts::text <> '2024-05-01 10:00:00+00' AS ts_prints_differently,
	   f::text <> '0.3333333333333333' AS float_prints_differently
  FROM t43.r WHERE id = 1;
SELECT count(*) AS rows, count(*) FILTER (WHERE s.b = incetl.row_bytes(r)) AS same_bytes
  FROM t43.r r JOIN t43.saved s USING (id);
\c -

\echo '-- a pipeline per digest: the first run loads, the stored hashes are'
\echo '-- digest(row_bytes(ROW(non-key columns)), alg)'
CREATE TABLE t43.src (id integer PRIMARY KEY, name text, amount numeric(10,2),
					  ts timestamptz, f float8);
INSERT INTO t43.src
SELECT i, 'n' || i, i * 1.25, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour', i / 7.0
  FROM generate_series(1, 10) AS i;
UPDATE t43.src SET name = NULL WHERE id = 5;
SELECT format('CREATE TABLE t43.%I (id integer PRIMARY KEY, name text, amount numeric(10,2), '
			  'ts timestamptz, f float8)', 'tgt_' || alg)
  FROM t43.algs ORDER BY alg \gexec
SELECT alg, incetl.create_pipeline('t43_' || alg, 't43.src', format('t43.%I', 'tgt_' || alg),
								   strategy => 'hash', hash_algorithm => alg, batch_size => 4) > 0 AS created
  FROM t43.algs ORDER BY alg;

-- the state of pipeline p: its type, rows, the hashes of rows that are not
-- digest(row_bytes) of the source's current row, and their lengths
CREATE FUNCTION t43.state(p text)
RETURNS TABLE (hash_type text, state_rows bigint, not_current bigint, lengths text)
LANGUAGE plpgsql AS $$
DECLARE
	tbl regclass;
	alg text;
BEGIN
	SELECT to_regclass('incetl.hash_state_' || id), hash_algorithm INTO tbl, alg
	  FROM incetl.pipelines WHERE name = p;
	SELECT format_type(a.atttypid, a.atttypmod) INTO hash_type
	  FROM pg_attribute a WHERE a.attrelid = tbl AND a.attname = 'h';
	IF hash_type = 'bytea' THEN
		EXECUTE format('SELECT count(*), '
					   'count(*) FILTER (WHERE s.id IS NULL OR st.h IS DISTINCT FROM '
					   't43.digest(incetl.row_bytes(ROW(s.name, s.amount, s.ts, s.f)), %L)), '
					   'string_agg(DISTINCT octet_length(st.h)::text, %L) '
					   'FROM %s AS st LEFT JOIN t43.src s ON s.id = st.k1', alg, ',', tbl)
			INTO state_rows, not_current, lengths;
	ELSE
		EXECUTE format('SELECT count(*), '
					   'count(*) FILTER (WHERE s.id IS NULL OR st.h IS DISTINCT FROM '
					   'incetl.row_hash(ROW(s.name, s.amount, s.ts, s.f))), NULL '
					   'FROM %s AS st LEFT JOIN t43.src s ON s.id = st.k1', tbl)
			INTO state_rows, not_current, lengths;
	END IF;
	RETURN NEXT;
END;
$$;
-- the rows by which target t and the source differ
CREATE FUNCTION t43.diff(t text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM ((SELECT id, name, amount, ts, f FROM t43.src '
				   'EXCEPT SELECT id, name, amount, ts, f FROM t43.%1$I) UNION ALL '
				   '(SELECT id, name, amount, ts, f FROM t43.%1$I '
				   'EXCEPT SELECT id, name, amount, ts, f FROM t43.src)) d', t) INTO n;
	RETURN n;
END;
$$;
-- every digest pipeline, its last run and its state
CREATE VIEW t43.report AS
SELECT a.alg, r.status, r.rows_inserted AS ins, r.rows_updated AS upd,
	   r.rows_deleted AS del, r.rows_unchanged AS unch, st.hash_type,
	   st.state_rows, st.not_current, st.lengths::integer = a.bytes AS digest_length,
	   t43.diff('tgt_' || a.alg) AS diff
  FROM t43.algs a
  CROSS JOIN LATERAL t43.state('t43_' || a.alg) st
  LEFT JOIN LATERAL (SELECT * FROM incetl.run_log l WHERE l.pipeline = 't43_' || a.alg
					 ORDER BY l.run_id DESC LIMIT 1) r ON true;

-- the state tables are empty, of type bytea
SELECT alg, hash_type, state_rows FROM t43.report ORDER BY alg;
SELECT format('CALL incetl.run(%L)', 't43_' || alg) FROM t43.algs ORDER BY alg \gexec
SELECT * FROM t43.report ORDER BY alg;

\echo '-- a run with no change writes nothing'
SELECT format('CALL incetl.run(%L)', 't43_' || alg) FROM t43.algs ORDER BY alg \gexec
SELECT alg, status, ins, upd, del, not_current, diff FROM t43.report ORDER BY alg;

\echo '-- 2 inserts, 3 updates (a float in its last bit, a timestamptz by a'
\echo '-- microsecond, a NULL to a value), 2 deletes, 1 update to the same values'
INSERT INTO t43.src VALUES (11, 'n11', 1, '2024-02-01 00:00:00+00', 0.5), (12, NULL, NULL, NULL, NULL);
UPDATE t43.src SET f = f + 1e-16 WHERE id = 2;
UPDATE t43.src SET ts = ts + interval '1 microsecond' WHERE id = 3;
UPDATE t43.src SET name = 'n5' WHERE id = 5;
DELETE FROM t43.src WHERE id IN (7, 9);
UPDATE t43.src SET name = name WHERE id = 8;
SELECT f <> 2 / 7.0 AS float_changed FROM t43.src WHERE id = 2;
-- preview of one of them: exactly those keys
SELECT op, key FROM incetl.preview('t43_sha384') ORDER BY op, (key->>'id')::integer;
SELECT format('CALL incetl.run(%L)', 't43_' || alg) FROM t43.algs ORDER BY alg \gexec
SELECT * FROM t43.report ORDER BY alg;

-- the hashes of the 'sha256' pipeline are those _row_sha256 stored before 0.3
CREATE FUNCTION t43.sha256_as_before(OUT rows bigint, OUT as_before bigint)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format($q$SELECT count(*),
		count(*) FILTER (WHERE st.h = incetl._row_sha256(ROW(s.name, s.amount, s.ts, s.f)))
		FROM incetl.hash_state_%s st JOIN t43.src s ON s.id = st.k1$q$,
		(SELECT id FROM incetl.pipelines WHERE name = 't43_sha256'))
		INTO rows, as_before;
END;
$$;
SELECT * FROM t43.sha256_as_before();

\echo '-- reconcile with a digest repairs a target row changed behind its back'
UPDATE t43.tgt_sha1 SET amount = amount + 1 WHERE id = 4;
CALL incetl.reconcile('t43_sha1');
SELECT status, rows_updated FROM incetl.run_log WHERE pipeline = 't43_sha1'
 ORDER BY run_id DESC LIMIT 1;
SELECT t43.diff('tgt_sha1') AS diff;

\echo '-- unknown algorithms are refused, with the valid ones'
SELECT regress.try($$SELECT incetl.create_pipeline('t43_bad', 't43.src', 't43.tgt_md5',
	strategy => 'hash', hash_algorithm => 'sha3-256')$$);
SELECT regress.try($$SELECT incetl.alter_pipeline('t43_md5', hash_algorithm => 'SHA256')$$);
SELECT regress.try($$SELECT incetl.alter_pipeline('t43_md5', hash_algorithm => '')$$);
SELECT hash_algorithm FROM incetl.pipelines WHERE name = 't43_md5';
-- the catalog holds the same list
SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
 WHERE c.conrelid = 'incetl.pipelines'::regclass AND c.conname = 'pipelines_hash_algorithm_check';

\echo '-- alter_pipeline between algorithms: the stored hashes start afresh, in'
\echo '-- the new type, and the next run re-reads every row and writes none'
CREATE FUNCTION t43.step(p text, alg text)
RETURNS TABLE (algorithm text, hash_type text, rows_after_alter bigint)
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM incetl.alter_pipeline(p, hash_algorithm => alg);
	algorithm := alg;
	SELECT s.hash_type, s.state_rows INTO hash_type, rows_after_alter FROM t43.state(p) s;
	RETURN NEXT;
END;
$$;
-- sha256 -> md5 (both bytea) -> hash64 -> sha512 -> sha1 -> hash64 ->
-- sha224 -> sha384 -> sha256
CREATE TABLE t43.steps (n integer PRIMARY KEY, alg text);
INSERT INTO t43.steps VALUES (1, 'md5'), (2, 'hash64'), (3, 'sha512'), (4, 'sha1'),
	(5, 'hash64'), (6, 'sha224'), (7, 'sha384'), (8, 'sha256');
SELECT format('SELECT * FROM t43.step(%L, %L)', 't43_sha256', alg),
	   'CALL incetl.run(''t43_sha256'')',
	   $q$SELECT r.rows_inserted AS ins, r.rows_updated AS upd, r.rows_deleted AS del,
	   r.rows_unchanged AS unch, s.hash_type, s.state_rows, s.not_current, s.lengths,
	   t43.diff('tgt_sha256') AS diff
  FROM t43.state('t43_sha256') s,
	   (SELECT * FROM incetl.run_log WHERE pipeline = 't43_sha256' ORDER BY run_id DESC LIMIT 1) r$q$
  FROM t43.steps ORDER BY n \gexec
-- altering to the algorithm it has keeps the stored hashes
SELECT incetl.alter_pipeline('t43_sha256', hash_algorithm => 'sha256') IS NOT NULL AS altered;
SELECT state_rows, not_current FROM t43.state('t43_sha256');

\echo '-- pgcrypto in a schema of its own (a name that needs quoting), out of'
\echo '-- the search_path'
CREATE SCHEMA "t43 Crypto";
ALTER EXTENSION pgcrypto SET SCHEMA "t43 Crypto";
SET search_path = pg_catalog;
SELECT to_regproc('digest') IS NULL AS digest_not_in_path;
INSERT INTO t43.src VALUES (13, 'n13', 13, NULL, 13);
UPDATE t43.src SET amount = 0 WHERE id = 1;
DELETE FROM t43.src WHERE id = 12;
SELECT count(*) AS previewed FROM incetl.preview('t43_sha512');
CALL incetl.run('t43_sha512');
CALL incetl.run('t43_md5');
SELECT alg, status, ins, upd, del, not_current, digest_length, diff
  FROM t43.report WHERE alg IN ('md5', 'sha512') ORDER BY alg;
-- the stored hashes, as the user computes them with the schema named
CREATE FUNCTION t43.md5_current(OUT rows bigint, OUT current bigint)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format($q$SELECT count(*),
		count(*) FILTER (WHERE st.h = "t43 Crypto".digest(incetl.row_bytes(ROW(s.name, s.amount, s.ts, s.f)), 'md5'))
		FROM incetl.hash_state_%s st JOIN t43.src s ON s.id = st.k1$q$,
		(SELECT id FROM incetl.pipelines WHERE name = 't43_md5'))
		INTO rows, current;
END;
$$;
SELECT * FROM t43.md5_current();
RESET search_path;
ALTER EXTENSION pgcrypto SET SCHEMA public;
DROP SCHEMA "t43 Crypto";

SELECT incetl.drop_pipeline('t43_' || alg) FROM t43.algs ORDER BY alg;
DROP SCHEMA t43 CASCADE;
