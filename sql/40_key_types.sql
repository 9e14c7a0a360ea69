--
-- 40_key_types: key columns whose type has a typmod (char(n), bit(n),
-- varchar(n), numeric(p,s)) or whose operators live outside pg_catalog
-- (citext, ltree, isn and cube from contrib, installed in a schema that is
-- not on the search_path), with every strategy.  incetl spells a key's type
-- in the objects and statements it generates (work table, hash state,
-- capture queue, casts of decoded keys) and its operators (cursor, joins,
-- hash state): with the typmod dropped, char(2) becomes char(1) and every
-- write to a 'trigger' source fails; with pg_catalog's operators assumed,
-- an extension's type has no equality.  Each pipeline loads, applies an
-- update, a delete and an insert, previews, reconciles, and its target
-- ends equal to its source.
--
CREATE SCHEMA t40;
-- the contrib types and their operators live here, off the search_path
CREATE SCHEMA t40x;
CREATE EXTENSION citext SCHEMA t40x;
CREATE EXTENSION ltree SCHEMA t40x;
CREATE EXTENSION isn SCHEMA t40x;
CREATE EXTENSION cube SCHEMA t40x;
SHOW search_path;

-- a key type and three keys of it: k1 is updated, k2 deleted, k3 inserted
CREATE TABLE t40.cases (n integer PRIMARY KEY, typ text, k1 text, k2 text, k3 text);
INSERT INTO t40.cases VALUES
	(1, 'character(2)', 'ab', 'a', 'cd'),
	(2, 'bit(3)', '101', '011', '111'),
	(3, 'character varying(3)', 'abc', 'ab', 'xyz'),
	(4, 'numeric(6,2)', '1.50', '2', '3.25'),
	(5, 't40x.citext', 'Ab', 'cD', 'EF'),
	(6, 't40x.ltree', 'a.b', 'a.c', 'x'),
	(7, 't40x.isbn13', '978-0-306-40615-7', '978-0-13-110362-7', '978-0-262-03384-8'),
	(8, 't40x.cube', '(1,2)', '(3,4)', '(5)');
CREATE TABLE t40.strategies (s text PRIMARY KEY);
INSERT INTO t40.strategies VALUES ('timestamp'), ('hash'), ('trigger'), ('logical');
CREATE VIEW t40.pl AS
SELECT c.*, st.s, format('k40_%s_%s', c.n, st.s) AS name,
	   format('t40.%I', 's' || c.n || '_' || st.s) AS src,
	   format('t40.%I', 't' || c.n || '_' || st.s) AS tgt
  FROM t40.cases c CROSS JOIN t40.strategies st;

-- rows of source and target that differ
CREATE FUNCTION t40.differences(src text, tgt text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM ((SELECT k, v FROM %s EXCEPT SELECT k, v FROM %s) '
				   'UNION ALL (SELECT k, v FROM %s EXCEPT SELECT k, v FROM %s)) d',
				   src, tgt, tgt, src) INTO n;
	RETURN n;
END;
$$;

-- the statements \gexec runs are not echoed; their errors show
\set ECHO none
SELECT format('CREATE TABLE %s (k %s PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now())',
			  src, typ),
	   format('CREATE TABLE %s (k %s PRIMARY KEY, v text, updated_at timestamptz)', tgt, typ)
  FROM t40.pl ORDER BY n, s \gexec
\set ECHO all
-- one transaction each: a 'logical' pipeline cannot be created in a
-- transaction that has written
CREATE PROCEDURE t40.create_pipelines() LANGUAGE plpgsql AS $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT * FROM t40.pl ORDER BY n, s LOOP
		PERFORM incetl.create_pipeline(r.name, r.src::regclass, r.tgt::regclass, strategy => r.s,
									   watermark_column => CASE WHEN r.s = 'timestamp' THEN 'updated_at' END,
									   delete_detection => CASE WHEN r.s = 'timestamp' THEN 'compare' ELSE 'none' END);
		COMMIT;
	END LOOP;
END;
$$;
CALL t40.create_pipelines();
SELECT s, count(*) AS pipelines FROM t40.pl JOIN incetl.pipelines USING (name) GROUP BY s ORDER BY s;

\echo '-- the key columns of the objects incetl made keep their typmod'
SELECT pl.typ, CASE pl.s WHEN 'hash' THEN 'hash state' ELSE 'queue' END AS object,
	   format_type(a.atttypid, a.atttypmod) AS k1
  FROM t40.pl JOIN incetl.pipelines p USING (name)
  JOIN pg_attribute a
	ON a.attrelid = format('incetl.%s_%s', CASE pl.s WHEN 'hash' THEN 'hash_state' ELSE 'queue' END, p.id)::regclass
   AND a.attname = 'k1'
 WHERE pl.s IN ('hash', 'trigger') AND pl.n IN (1, 2)
 ORDER BY pl.n, pl.s;

\echo '-- writes to the sources (a trigger source captures them)'
DO $$
DECLARE
	r record;
BEGIN
	-- the writers see the contrib types' operators (incetl never needs to)
	PERFORM set_config('search_path', 'public, t40x', true);
	FOR r IN SELECT * FROM t40.pl ORDER BY n, s LOOP
		EXECUTE format('INSERT INTO %s (k, v) VALUES (%L::%s, %L), (%L::%s, %L)',
					   r.src, r.k1, r.typ, 'one', r.k2, r.typ, 'two');
	END LOOP;
END;
$$;
\set ECHO none
SELECT format('CALL incetl.run(%L)', name) FROM t40.pl ORDER BY n, s \gexec
\set ECHO all
SELECT typ, s, l.status, l.inserted, l.error, t40.differences(src, tgt) AS differences
  FROM t40.pl, regress.last_counts(name) l ORDER BY n, s;

\echo '-- an update, a delete and an insert: preview, then a run'
DO $$
DECLARE
	r record;
BEGIN
	-- the writers see the contrib types' operators (incetl never needs to)
	PERFORM set_config('search_path', 'public, t40x', true);
	FOR r IN SELECT * FROM t40.pl ORDER BY n, s LOOP
		EXECUTE format('UPDATE %s SET v = %L, updated_at = now() WHERE k = %L::%s',
					   r.src, 'one, changed', r.k1, r.typ);
		EXECUTE format('DELETE FROM %s WHERE k = %L::%s', r.src, r.k2, r.typ);
		EXECUTE format('INSERT INTO %s (k, v) VALUES (%L::%s, %L)', r.src, r.k3, r.typ, 'three');
	END LOOP;
END;
$$;
SELECT typ, s, string_agg(op, ',' ORDER BY op) AS preview
  FROM t40.pl LEFT JOIN LATERAL incetl.preview(name) ON true
 GROUP BY n, typ, s ORDER BY n, s;
\set ECHO none
SELECT format('CALL incetl.run(%L)', name) FROM t40.pl ORDER BY n, s \gexec
\set ECHO all
SELECT typ, s, l.status, l.inserted, l.updated, l.deleted, l.error,
	   t40.differences(src, tgt) AS differences
  FROM t40.pl, regress.last_counts(name) l ORDER BY n, s;

\echo '-- reconcile repairs a damaged target'
DO $$
DECLARE
	r record;
BEGIN
	-- the writers see the contrib types' operators (incetl never needs to)
	PERFORM set_config('search_path', 'public, t40x', true);
	FOR r IN SELECT * FROM t40.pl ORDER BY n, s LOOP
		EXECUTE format('UPDATE %s SET v = %L WHERE k = %L::%s', r.tgt, 'damaged', r.k1, r.typ);
		EXECUTE format('DELETE FROM %s WHERE k = %L::%s', r.tgt, r.k3, r.typ);
		EXECUTE format('INSERT INTO %s (k, v) VALUES (%L::%s, %L)', r.tgt, r.k2, r.typ, 'gone');
	END LOOP;
END;
$$;
\set ECHO none
SELECT format('CALL incetl.reconcile(%L)', name) FROM t40.pl ORDER BY n, s \gexec
\set ECHO all
SELECT typ, s, l.status, l.inserted, l.updated, l.deleted, l.error,
	   t40.differences(src, tgt) AS differences
  FROM t40.pl, regress.last_counts(name) l ORDER BY n, s;

\echo '-- a re-run writes nothing'
\set ECHO none
SELECT format('CALL incetl.run(%L)', name) FROM t40.pl ORDER BY n, s \gexec
\set ECHO all
SELECT s, count(*) FILTER (WHERE l.status = 'succeeded' AND l.inserted + l.updated + l.deleted = 0)
		  AS idle_runs
  FROM t40.pl, regress.last_counts(name) l GROUP BY s ORDER BY s;

SELECT count(incetl.drop_pipeline(name)) AS dropped FROM t40.pl;
SET client_min_messages = warning;
DROP SCHEMA t40 CASCADE;
DROP SCHEMA t40x CASCADE;
RESET client_min_messages;
