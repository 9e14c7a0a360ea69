--
-- 46_attacks_owner: a non-superuser pipeline owner (mallory) attacks the
-- superuser who explains, previews or runs her pipelines, another owner
-- (bob), and the writers of her trigger source.
--
-- Her function t46_m.evil(what) says, in a NOTICE (which no rollback takes
-- back), as whom it runs; it logs a row, tries to make her superuser and
-- leaves a search_path behind.  Every attack must end with: no NOTICE of a
-- superuser or of bob, mallory no superuser, the caller's search_path,
-- role and pg_temp unchanged, nothing written by explain or preview.
--
--   1. explain of her keyed pipeline by a superuser: her immutable
--      function in the source view is folded while the statements are
--      planned (as her, restricted); explain's work table is rolled back;
--      her log row is rolled back
--   2. the same failing inside a transaction block (her function errors
--      while planned): after ROLLBACK TO SAVEPOINT the superuser's role,
--      search_path and pg_temp are his
--   3. a table of the work table's name in the superuser's own pg_temp:
--      explain refuses and leaves it alone
--   4. preview with on_schema_change 'add_columns' by a superuser: the new
--      column is of her domain with a volatile DEFAULT calling her function
--      (the ALTER TABLE runs as her); the target has no new column after
--      the preview
--   5. her code in a superuser's preview leaving a prepared statement or a
--      session-level advisory lock behind (PostgreSQL's security-restricted
--      operations allow both; neither is undone by a rollback)
--   6. a type named "char" in a schema that a caller's search_path lists
--      before pg_catalog: bob's run (and a superuser's explain of hers)
--      must not cast to it (generated SQL writes pg_catalog."char")
--   7. an index named like the ones incetl reads directly
--      (run_log_running_idx, pipelines_name_key) made by her in schema
--      incetl, on the hash state table she owns there
--   8. the capture trigger in a writer's session: a key of her domain whose
--      CHECK calls her function, a composite key type of hers, small (at
--      most 4 rows, the row trigger's prepared INSERT) and large
--      statements, key changes; her function runs only as the writer (the
--      writer's own statement checks its values), never as the queue's
--      owner
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE ROLE t46_mallory NOLOGIN;
CREATE ROLE t46_bob NOLOGIN;
CREATE ROLE t46_writer NOLOGIN;
CREATE SCHEMA t46_m AUTHORIZATION t46_mallory;
CREATE SCHEMA t46_b AUTHORIZATION t46_bob;
GRANT USAGE ON SCHEMA t46_m, t46_b TO PUBLIC;
SET search_path = public;

SET ROLE t46_mallory;
CREATE TABLE t46_m.log (what text, who name);
GRANT INSERT ON t46_m.log TO PUBLIC;
CREATE FUNCTION t46_m.evil(what text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	sup boolean;
BEGIN
	SELECT rolsuper INTO sup FROM pg_catalog.pg_roles WHERE rolname = current_user;
	RAISE NOTICE 'evil(%) as %, superuser %', what,
		CASE WHEN current_user::text LIKE 't46\_%' THEN current_user::text
			 ELSE 'another role' END, sup;
	INSERT INTO t46_m.log VALUES (what, current_user);
	BEGIN
		EXECUTE 'ALTER ROLE t46_mallory SUPERUSER';
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
	PERFORM pg_catalog.set_config('search_path', 't46_m', false);
	RETURN true;
END $$;
-- called with a constant, it is folded when a statement is planned
CREATE FUNCTION t46_m.folded(what text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	IF what LIKE 'fail%' THEN
		PERFORM t46_m.evil(what);
		RAISE EXCEPTION 'mallory fails the plan';
	END IF;
	RETURN t46_m.evil(what);
END $$;
-- what a rollback does not undo
CREATE FUNCTION t46_m.sticky() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		EXECUTE 'PREPARE t46_left AS SELECT t46_m.evil(''prepared'')';
	EXCEPTION WHEN OTHERS THEN
		RAISE NOTICE 'PREPARE: %', SQLERRM;
	END;
	BEGIN
		PERFORM pg_catalog.pg_advisory_lock(4646);
	EXCEPTION WHEN OTHERS THEN
		RAISE NOTICE 'advisory lock: %', SQLERRM;
	END;
	RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION t46_m.evil(text), t46_m.folded(text), t46_m.sticky() TO PUBLIC;
RESET ROLE;

-- the verdict, after each attack
CREATE FUNCTION t46_verdict(OUT mallory_super boolean, OUT search_path text,
							OUT who text, OUT in_pg_temp bigint, OUT logged bigint)
LANGUAGE sql AS $$
	SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = 't46_mallory'),
		   current_setting('search_path'),
		   CASE WHEN current_user::text LIKE 't46\_%' THEN current_user::text
				ELSE 'the superuser' END,
		   (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()),
		   (SELECT count(*) FROM t46_m.log)
$$;

-- regress.try, with pipeline ids (which depend on the files run before) masked
CREATE FUNCTION t46_try(sql text) RETURNS text
LANGUAGE sql AS $$ SELECT regexp_replace(regress.try(sql), '_[0-9]+', '_N', 'g') $$;

\echo '-- 1. explain by a superuser, her function folded while planning'
SET ROLE t46_mallory;
CREATE TABLE t46_m.src (id integer PRIMARY KEY, v text);
CREATE TABLE t46_m.tgt (id integer PRIMARY KEY, v text);
INSERT INTO t46_m.src VALUES (1, 'one'), (2, 'two');
CREATE TABLE t46_m.mode (fail boolean);
INSERT INTO t46_m.mode VALUES (false);
GRANT SELECT ON t46_m.mode TO PUBLIC;
CREATE VIEW t46_m.vsrc AS SELECT id, v FROM t46_m.src WHERE t46_m.folded('explain plan');
SELECT incetl.create_pipeline('t46_view', 't46_m.vsrc', 't46_m.tgt', strategy => 'hash',
							  key_columns => '{id}') > 0 AS created;
RESET ROLE;
SELECT * FROM t46_verdict();
SELECT step FROM incetl.explain('t46_view') ORDER BY 1;
SELECT * FROM t46_verdict();
SET search_path = public;

\echo '-- 2. explain failing inside a transaction block'
SET ROLE t46_mallory;
CREATE OR REPLACE VIEW t46_m.vsrc AS SELECT id, v FROM t46_m.src WHERE t46_m.folded('fail explain');
RESET ROLE;
BEGIN;
SAVEPOINT s;
\set VERBOSITY terse
SELECT step FROM incetl.explain('t46_view');
\set VERBOSITY default
ROLLBACK TO SAVEPOINT s;
SELECT * FROM t46_verdict();
-- and once more, the error caught in the same (sub)transaction
SELECT t46_try($$SELECT * FROM incetl.explain('t46_view')$$);
SELECT * FROM t46_verdict();
COMMIT;
SELECT * FROM t46_verdict();
SET search_path = public;
SET ROLE t46_mallory;
CREATE OR REPLACE VIEW t46_m.vsrc AS SELECT id, v FROM t46_m.src WHERE t46_m.folded('explain plan');
RESET ROLE;

\echo '-- 3. a table of the work table''s name in the superuser''s pg_temp'
SELECT 'incetl_work_' || id AS work FROM incetl.pipelines WHERE name = 't46_view' \gset
CREATE TEMP TABLE t46_mine (x integer);
ALTER TABLE t46_mine RENAME TO :"work";
SELECT t46_try($$SELECT * FROM incetl.explain('t46_view')$$);
SELECT t46_try($$CALL incetl.run('t46_view')$$);
-- still there, still the superuser's
SELECT count(*) AS kept FROM pg_class
 WHERE relnamespace = pg_my_temp_schema() AND relname LIKE 'incetl\_work\_%'
   AND relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user);
DROP TABLE pg_temp.:"work";
SELECT * FROM t46_verdict();
SET search_path = public;

\echo '-- 4. preview adding a column of her domain with a volatile default'
CALL incetl.run('t46_view');
SET ROLE t46_mallory;
CREATE DOMAIN t46_m.dflt AS text DEFAULT (t46_m.evil('domain default')::text);
SELECT incetl.alter_pipeline('t46_view', on_schema_change => 'add_columns');
ALTER TABLE t46_m.src ADD COLUMN w t46_m.dflt;
SET search_path = public;  -- (her own statement ran her function in her session)
CREATE OR REPLACE VIEW t46_m.vsrc AS SELECT id, v, w FROM t46_m.src WHERE t46_m.folded('preview plan');
TRUNCATE t46_m.log;
RESET ROLE;
SELECT * FROM incetl.preview('t46_view') ORDER BY key::text;
SELECT * FROM t46_verdict();
SET search_path = public;
-- the target got no column from the preview
SELECT attname FROM pg_attribute WHERE attrelid = 't46_m.tgt'::regclass AND attnum > 0
 ORDER BY attnum;
-- and failing inside a transaction block
SET ROLE t46_mallory;
CREATE OR REPLACE VIEW t46_m.vsrc AS SELECT id, v, w FROM t46_m.src WHERE t46_m.folded('fail preview');
RESET ROLE;
BEGIN;
SELECT t46_try($$SELECT * FROM incetl.preview('t46_view')$$);
SELECT * FROM t46_verdict();
SELECT attname FROM pg_attribute WHERE attrelid = 't46_m.tgt'::regclass AND attnum > 0
 ORDER BY attnum;
COMMIT;
SET search_path = public;

\echo '-- 5. a prepared statement or an advisory lock left in the caller''s session'
SET ROLE t46_mallory;
CREATE OR REPLACE VIEW t46_m.vsrc AS SELECT id, v, w FROM t46_m.src WHERE t46_m.sticky();
RESET ROLE;
SELECT count(*) AS previewed FROM incetl.preview('t46_view');
SELECT count(*) AS prepared_left FROM pg_prepared_statements WHERE name = 't46_left';
-- KNOWN, NOT FIXED: a session-level advisory lock taken by her code stays
-- in the caller's session (PostgreSQL allows pg_advisory_lock() in a
-- security-restricted operation, and no rollback releases it; REFRESH
-- MATERIALIZED VIEW has the same gap).  She could hold the same key in a
-- session of her own; incetl's own locks are in a key space SQL cannot
-- reach (src/lock.c).  The safe outcome would be advisory_left = 0.
SELECT count(*) AS advisory_left FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND objid = 4646;
SELECT * FROM t46_verdict();
DEALLOCATE ALL;
SELECT pg_advisory_unlock_all();

\echo '-- 6. a type named "char" before pg_catalog in the caller''s search_path'
SET ROLE t46_mallory;
CREATE DOMAIN t46_m."char" AS pg_catalog."char" CHECK (t46_m.evil('char domain'));
CREATE OR REPLACE VIEW t46_m.vsrc AS SELECT id, v, w FROM t46_m.src;
TRUNCATE t46_m.log;
SET ROLE t46_bob;
CREATE TABLE t46_b.src (id integer PRIMARY KEY, v text);
CREATE TABLE t46_b.tgt (id integer PRIMARY KEY, v text);
INSERT INTO t46_b.src VALUES (1, 'one');
SELECT incetl.create_pipeline('t46_bob', 't46_b.src', 't46_b.tgt', strategy => 'hash') > 0 AS created;
SET search_path = t46_m, pg_catalog;
CALL incetl.run('t46_bob');
SELECT status, inserted FROM regress.last_counts('t46_bob');
UPDATE t46_b.src SET v = 'uno';
CALL incetl.reconcile('t46_bob');
SET search_path = public;
SELECT * FROM t46_b.tgt ORDER BY id;
RESET ROLE;
SET search_path = t46_m, pg_catalog;
SELECT count(*) > 0 AS explained FROM incetl.explain('t46_view');
CALL incetl.run('t46_view');
SELECT * FROM public.t46_verdict();
SET search_path = public;

\echo '-- 7. indexes named like the ones incetl reads directly'
SET ROLE t46_mallory;
SELECT 'incetl.hash_state_' || id AS hs FROM incetl.pipelines WHERE name = 't46_view' \gset
SELECT t46_try(format('CREATE INDEX run_log_running_idx ON %s (h)', :'hs'));
SELECT t46_try(format('CREATE UNIQUE INDEX pipelines_name_key ON %s (h)', :'hs'));
SELECT t46_try(format('ALTER TABLE %s ADD CONSTRAINT run_log_started_at_idx UNIQUE (h)', :'hs'));
SELECT t46_try(format('ALTER INDEX %s_pkey RENAME TO state_pkey', :'hs'));
SELECT count(*) AS her_indexes_in_incetl FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
 WHERE c.relnamespace = 'incetl'::regnamespace AND c.relkind = 'i' AND r.rolname = 't46_mallory'
   AND c.relname NOT LIKE 'hash\_state\_%';
RESET ROLE;
-- runs still read the right rows
UPDATE t46_m.src SET v = 'uno' WHERE id = 1;
CALL incetl.run('t46_view');
SELECT status, updated FROM regress.last_counts('t46_view');

\echo '-- 8. the capture trigger in a writer''s session'
SET ROLE t46_mallory;
CREATE DOMAIN t46_m.kdom AS integer CHECK (t46_m.evil('key domain'));
CREATE TYPE t46_m.pair AS (a integer, b t46_m.kdom);
CREATE TABLE t46_m.tsrc (id t46_m.kdom PRIMARY KEY, v text);
CREATE TABLE t46_m.ttgt (id t46_m.kdom PRIMARY KEY, v text);
CREATE TABLE t46_m.csrc (id t46_m.pair PRIMARY KEY, v text);
CREATE TABLE t46_m.ctgt (id t46_m.pair PRIMARY KEY, v text);
GRANT INSERT, UPDATE, DELETE, SELECT ON t46_m.tsrc, t46_m.csrc TO t46_writer;
SELECT incetl.create_pipeline('t46_trig', 't46_m.tsrc', 't46_m.ttgt', strategy => 'trigger') > 0 AS created;
SELECT incetl.create_pipeline('t46_comp', 't46_m.csrc', 't46_m.ctgt', strategy => 'trigger') > 0 AS created;
TRUNCATE t46_m.log;
RESET ROLE;
SET ROLE t46_writer;
-- small statements: one row, then four
INSERT INTO t46_m.tsrc VALUES (1, 'one');
INSERT INTO t46_m.tsrc SELECT g, 'x' FROM generate_series(2, 5) g;
-- a large one
INSERT INTO t46_m.tsrc SELECT g, 'x' FROM generate_series(6, 12) g;
-- key changes, small and large
UPDATE t46_m.tsrc SET id = id + 100 WHERE id <= 2;
UPDATE t46_m.tsrc SET id = id + 100 WHERE id BETWEEN 3 AND 12;
DELETE FROM t46_m.tsrc WHERE id > 110;
-- composite keys with a domain inside
INSERT INTO t46_m.csrc VALUES (ROW(1, 1), 'one');
INSERT INTO t46_m.csrc SELECT ROW(g, g)::t46_m.pair, 'x' FROM generate_series(2, 9) g;
UPDATE t46_m.csrc SET id = ROW((id).a, (id).b + 100)::t46_m.pair WHERE (id).a <= 3;
UPDATE t46_m.csrc SET id = ROW((id).a, (id).b + 100)::t46_m.pair WHERE (id).a > 3;
RESET ROLE;
SET search_path = public;
SELECT * FROM t46_verdict();
SELECT DISTINCT what, who FROM t46_m.log ORDER BY 1, 2;
-- her domain's CHECK never ran as anyone but the writer and, in runs, her
SET ROLE t46_mallory;
TRUNCATE t46_m.log;
RESET ROLE;
CALL incetl.run('t46_trig');
CALL incetl.run('t46_comp');
SET search_path = public;
SELECT status, inserted, updated, deleted FROM regress.last_counts('t46_trig');
SELECT status, inserted, updated, deleted FROM regress.last_counts('t46_comp');
SELECT count(*) AS ttgt, min(id), max(id) FROM t46_m.ttgt;
SELECT count(*) AS ctgt FROM t46_m.ctgt;
SELECT DISTINCT what, who FROM t46_m.log ORDER BY 1, 2;
-- a domain CHECK that every stored key fails does not break the writer: the queue holds
-- the base type
SET ROLE t46_mallory;
ALTER DOMAIN t46_m.kdom DROP CONSTRAINT kdom_check;
ALTER DOMAIN t46_m.kdom ADD CONSTRAINT never CHECK (VALUE > 1000) NOT VALID;
RESET ROLE;
SET ROLE t46_writer;
SELECT regress.try($$UPDATE t46_m.tsrc SET v = 'y' WHERE id = 101$$);
RESET ROLE;
SELECT * FROM t46_verdict();
SET search_path = public;

-- clean up
SET ROLE t46_mallory;
SELECT incetl.drop_pipeline(n) FROM unnest(ARRAY['t46_view', 't46_trig', 't46_comp']) n;
SET ROLE t46_bob;
SELECT incetl.drop_pipeline('t46_bob');
RESET ROLE;
DROP SCHEMA t46_m, t46_b CASCADE;
DROP FUNCTION t46_verdict(), t46_try(text);
DROP ROLE t46_mallory, t46_bob, t46_writer;
