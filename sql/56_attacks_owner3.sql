--
-- 56_attacks_owner3: a non-superuser pipeline owner (t56_mal, with
-- REPLICATION) attacks through this round's surfaces.
--
--   1. logical: a table named incetl_slot_changes in her schema (first in
--      the caller's search_path) and in the superuser caller's pg_temp,
--      her domain key whose CHECK tries ALTER ROLE and session settings,
--      run by a superuser through run_all: the fill reads the decoded
--      changes (not her rows), her CHECK runs only as her, the caller's
--      settings are his after
--   2. hash: her target with FORCE ROW LEVEL SECURITY and a policy calling
--      her function (the seed reads the target), a trigger on it, a key of
--      her domain (the direct keyed MERGE casts to it): a superuser's run
--      and CALL incetl.reconcile; her code runs only as her; enable_seqscan,
--      work_mem, search_path of the caller unchanged after
--   3. run_log and its sequence: she cannot take run ids, lock run_log or
--      touch bob's rows; bob's run afterwards is logged as his
--   4. bob's 'logical' pipeline: with REPLICATION she may (PostgreSQL's
--      rule, any slot) advance bob's slot past changes he has not applied,
--      and drop it; bob's next runs must not lose those changes (the run
--      compares the whole source, as after a lost slot)
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE ROLE t56_mal NOLOGIN REPLICATION;
CREATE ROLE t56_bob NOLOGIN;
CREATE SCHEMA t56_m AUTHORIZATION t56_mal;
CREATE SCHEMA t56_b AUTHORIZATION t56_bob;
GRANT USAGE ON SCHEMA t56_m, t56_b TO PUBLIC;
SET search_path = public;

SET ROLE t56_mal;
CREATE TABLE t56_m.log (what text, who name, sup boolean);
GRANT INSERT ON t56_m.log TO PUBLIC;
CREATE FUNCTION t56_m.evil(what text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO t56_m.log SELECT what, current_user, rolsuper FROM pg_catalog.pg_roles
	 WHERE rolname = current_user;
	BEGIN EXECUTE 'ALTER ROLE t56_mal SUPERUSER';
	EXCEPTION WHEN OTHERS THEN NULL; END;
	BEGIN PERFORM pg_catalog.set_config('search_path', 't56_m', false);
	EXCEPTION WHEN OTHERS THEN NULL; END;
	BEGIN PERFORM pg_catalog.set_config('enable_seqscan', 'off', false);
	EXCEPTION WHEN OTHERS THEN NULL; END;
	BEGIN PERFORM pg_catalog.set_config('work_mem', '7MB', false);
	EXCEPTION WHEN OTHERS THEN NULL; END;
	RETURN true;
END $$;
CREATE FUNCTION t56_m.trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM t56_m.evil('trigger ' || TG_OP);
	RETURN NEW;
END $$;
CREATE DOMAIN t56_m.k AS integer CHECK (t56_m.evil('check'));

\echo '-- 1. logical: incetl_slot_changes shadows and her domain key'
CREATE TABLE t56_m.lsrc (id t56_m.k PRIMARY KEY, v text);
CREATE TABLE t56_m.ltgt (id t56_m.k PRIMARY KEY, v text);
CREATE TABLE t56_m.incetl_slot_changes AS SELECT * FROM t56_m.lsrc;
INSERT INTO t56_m.lsrc VALUES (1, 'a'), (2, 'b');
SELECT incetl.create_pipeline('t56_l', 't56_m.lsrc', 't56_m.ltgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('t56_l');
UPDATE t56_m.lsrc SET v = 'a2' WHERE id = 1;
DELETE FROM t56_m.lsrc WHERE id = 2;
INSERT INTO t56_m.lsrc VALUES (3, 'c');
RESET ROLE;
TRUNCATE t56_m.log;
-- a table of that name in the superuser's own pg_temp, too
CREATE TEMP TABLE incetl_slot_changes (x int);
INSERT INTO incetl_slot_changes VALUES (99);
SET search_path = t56_m, public;
SET work_mem = '4MB';
SET enable_seqscan = on;
CALL incetl.run_all();
SELECT status, inserted, updated, deleted FROM regress.last_counts('t56_l');
SELECT * FROM t56_m.ltgt ORDER BY id;
SELECT current_user, current_setting('search_path') AS sp, current_setting('work_mem') AS wm,
	current_setting('enable_seqscan') AS seqscan;
SELECT rolsuper FROM pg_roles WHERE rolname = 't56_mal';
SELECT DISTINCT what, who, sup FROM t56_m.log ORDER BY 1;
SET search_path = public;
DROP TABLE pg_temp.incetl_slot_changes;
TRUNCATE t56_m.log;

\echo '-- 2. hash: RLS policy, trigger and domain key on her target'
SET ROLE t56_mal;
CREATE TABLE t56_m.hsrc (id t56_m.k PRIMARY KEY, v text);
CREATE TABLE t56_m.htgt (id t56_m.k PRIMARY KEY, v text);
INSERT INTO t56_m.hsrc SELECT g, 'v' || g FROM generate_series(1, 5) g;
INSERT INTO t56_m.htgt SELECT g, 'old' FROM generate_series(1, 3) g;
ALTER TABLE t56_m.htgt ENABLE ROW LEVEL SECURITY;
ALTER TABLE t56_m.htgt FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON t56_m.htgt USING (t56_m.evil('policy'));
CREATE TRIGGER evil BEFORE INSERT OR UPDATE OR DELETE ON t56_m.htgt
	FOR EACH ROW EXECUTE FUNCTION t56_m.trg();
SELECT incetl.create_pipeline('t56_h', 't56_m.hsrc', 't56_m.htgt', strategy => 'hash') > 0 AS created;
RESET ROLE;
TRUNCATE t56_m.log;
-- her own statements above ran her function in this session: start clean
SET search_path = public;
SET work_mem = '4MB';
SET enable_seqscan = on;
CALL incetl.run('t56_h');
SELECT status, inserted, updated, deleted, error FROM regress.last_counts('t56_h');
-- the run is logged as the caller's, with a run id of its own
SELECT run_by = current_user AS by_caller, count(DISTINCT run_id) AS ids
  FROM incetl.run_log WHERE pipeline = 't56_h' GROUP BY 1;
SELECT current_user, current_setting('search_path') AS sp, current_setting('work_mem') AS wm,
	current_setting('enable_seqscan') AS seqscan;
SELECT DISTINCT what, who, sup FROM t56_m.log ORDER BY 1;
TRUNCATE t56_m.log;
-- empty the state (a new algorithm), then a reconcile seeds it again
SET ROLE t56_mal;
SELECT incetl.alter_pipeline('t56_h', hash_algorithm => 'sha256') IS NOT NULL AS altered;
UPDATE t56_m.hsrc SET v = 'r' WHERE id = 1;
RESET ROLE;
SET search_path = public;
TRUNCATE t56_m.log;
BEGIN;
SET LOCAL enable_seqscan = on;
CALL incetl.reconcile('t56_h');
SELECT current_setting('search_path') AS sp, current_setting('work_mem') AS wm,
	current_setting('enable_seqscan') AS seqscan;
COMMIT;
CALL incetl.reconcile('t56_h');
SELECT current_user, current_setting('search_path') AS sp, current_setting('work_mem') AS wm,
	current_setting('enable_seqscan') AS seqscan;
SELECT * FROM t56_m.htgt ORDER BY id;
SELECT rolsuper FROM pg_roles WHERE rolname = 't56_mal';
SELECT DISTINCT what, who, sup FROM t56_m.log ORDER BY 1;
TRUNCATE t56_m.log;

\echo '-- 3. run_log and its sequence'
SET ROLE t56_bob;
CREATE TABLE t56_b.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t56_b.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
INSERT INTO t56_b.src VALUES (1, 'x', '2026-01-01 00:00+00');
SELECT incetl.create_pipeline('t56_bp', 't56_b.src', 't56_b.tgt', watermark_column => 'updated_at') > 0 AS created;
CALL incetl.run('t56_bp');
SET ROLE t56_mal;
SELECT regress.try($$SELECT nextval('incetl.run_log_run_id_seq')$$);
SELECT regress.try($$SELECT setval('incetl.run_log_run_id_seq', 1)$$);
SELECT regress.try($$ALTER SEQUENCE incetl.run_log_run_id_seq MAXVALUE 2$$);
SELECT regress.try($$LOCK TABLE incetl.run_log IN ACCESS EXCLUSIVE MODE$$);
SELECT regress.try($$LOCK TABLE incetl.run_log_run_id_seq IN ACCESS EXCLUSIVE MODE$$);
SELECT regress.try($$UPDATE incetl.run_log SET run_by = 't56_mal' WHERE pipeline = 't56_bp'$$);
SELECT regress.try($$DELETE FROM incetl.run_log WHERE pipeline = 't56_bp'$$);
SELECT regress.try($$SELECT 1 FROM incetl.run_log FOR UPDATE$$);
SELECT regress.try($$CALL incetl.run('t56_bp')$$);
RESET ROLE;
SET ROLE t56_bob;
UPDATE t56_b.src SET v = 'y', updated_at = '2026-01-02 00:00+00';
CALL incetl.run('t56_bp');
RESET ROLE;
SELECT status, inserted, updated, error FROM regress.last_counts('t56_bp');
SELECT run_by, count(*) FROM incetl.run_log WHERE pipeline = 't56_bp' GROUP BY 1;

\echo '-- 4. the slot of bob''s logical pipeline, advanced and dropped by her'
-- the notices' details name the slot, whose name holds oids
\set VERBOSITY terse
RESET ROLE;
ALTER ROLE t56_bob REPLICATION;
SET ROLE t56_bob;
CREATE TABLE t56_b.lsrc (id integer PRIMARY KEY, v text);
CREATE TABLE t56_b.ltgt (id integer PRIMARY KEY, v text);
INSERT INTO t56_b.lsrc VALUES (1, 'a'), (2, 'b');
SELECT incetl.create_pipeline('t56_bl', 't56_b.lsrc', 't56_b.ltgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('t56_bl');
UPDATE t56_b.lsrc SET v = 'a2' WHERE id = 1;
INSERT INTO t56_b.lsrc VALUES (3, 'c');
RESET ROLE;
SELECT 'incetl_' || (SELECT oid FROM pg_database WHERE datname = current_database())
	|| '_' || (SELECT id FROM incetl.pipelines WHERE name = 't56_bl') AS bslot \gset
SET ROLE t56_mal;
SELECT count(*) AS advanced FROM pg_replication_slot_advance(:'bslot', pg_current_wal_lsn());
RESET ROLE;
SET ROLE t56_bob;
CALL incetl.run('t56_bl');
SELECT * FROM t56_b.ltgt ORDER BY id;
DELETE FROM t56_b.lsrc WHERE id = 2;
SET ROLE t56_mal;
SELECT pg_drop_replication_slot(:'bslot');
SET ROLE t56_bob;
CALL incetl.run('t56_bl');
SELECT * FROM t56_b.ltgt ORDER BY id;
SELECT incetl.drop_pipeline('t56_bl');
RESET ROLE;
\set VERBOSITY default

-- clean up
RESET work_mem;
RESET enable_seqscan;
SET ROLE t56_mal;
SELECT incetl.drop_pipeline('t56_l');
SELECT incetl.drop_pipeline('t56_h');
SET ROLE t56_bob;
SELECT incetl.drop_pipeline('t56_bp');
RESET ROLE;
DROP SCHEMA t56_m, t56_b CASCADE;
DROP ROLE t56_mal, t56_bob;
