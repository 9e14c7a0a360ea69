--
-- 31_attacks: a pipeline owner who wants superuser, or wants to change the
-- session of whoever runs its pipeline, and a run that fails with a huge
-- error inside a transaction block.
--
-- atk_mallory is an ordinary role with a schema of its own.  Its pipelines'
-- targets carry a trigger, and one source is a view over its function; both
-- try everything from inside a run or preview started by a superuser:
-- become superuser, change the caller's search_path and work_mem (SET and
-- set_config), plant a temporary table in the caller's session, rename the
-- run's own work table so that it stays behind and shadows a name.  Proves:
--   - the owner's code runs as the owner, never as the caller or the
--     extension owner, whoever calls (runs, previews, alter_pipeline adding
--     target columns of the owner's domain);
--   - it cannot create temporary objects or change the role;
--   - nothing it set survives in the caller's session;
--   - the run's work table is gone afterwards, whatever it was renamed to
--     (renaming it makes the owner's own run fail, nobody else's);
--   - a run, backfill or reconcile that fails with a 300 kB error inside a
--     transaction block reports it, and the server does not restart (a
--     restart after a crash starts a new checkpointer).
--
CREATE ROLE atk_mallory NOLOGIN;
CREATE SCHEMA atk AUTHORIZATION atk_mallory;
SELECT pid AS checkpointer FROM pg_stat_activity WHERE backend_type = 'checkpointer' \gset before_

SET ROLE atk_mallory;
CREATE TABLE atk.seen (n serial, who text, what text);
-- everything a hostile trigger or function would try; records what happened
CREATE FUNCTION atk.attempt(what text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	BEGIN
		EXECUTE what;
		r := 'ok';
	EXCEPTION WHEN OTHERS THEN
		r := SQLERRM;
	END;
	INSERT INTO atk.seen (who, what)
	VALUES (current_user, left(regexp_replace(what, '_work_[0-9]+', '_work_N'), 40) || ': ' || r);
END;
$$;
CREATE FUNCTION atk.everything(rename boolean) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	w text;
BEGIN
	PERFORM atk.attempt('ALTER ROLE atk_mallory SUPERUSER');
	PERFORM atk.attempt('SET search_path = atk, pg_catalog');
	PERFORM atk.attempt('SELECT set_config(''work_mem'', ''77kB'', false)');
	PERFORM atk.attempt('CREATE TEMP TABLE planted (x int)');
	PERFORM atk.attempt('RESET ROLE');
	PERFORM atk.attempt('SET SESSION AUTHORIZATION DEFAULT');
	-- the run's work table (keyed strategies), if any: rename it away
	SELECT c.relname INTO w FROM pg_class c
	 WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'r'
	   AND c.relname LIKE 'incetl_work_%';
	IF rename AND w IS NOT NULL THEN
		PERFORM atk.attempt(format('ALTER TABLE pg_temp.%I RENAME TO shadow', w));
	END IF;
END;
$$;
CREATE FUNCTION atk.trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM atk.everything(true);
	RETURN NEW;
END;
$$;
CREATE FUNCTION atk.peek(id integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	PERFORM atk.everything(false);
	RETURN true;
END;
$$;

CREATE TABLE atk.src (id integer PRIMARY KEY, v text NOT NULL,
					  updated_at timestamptz NOT NULL);
INSERT INTO atk.src VALUES (1, 'a', '2024-01-01 00:00:00+00'), (2, 'b', '2024-01-01 00:01:00+00');
CREATE VIEW atk.src_view AS SELECT * FROM atk.src WHERE atk.peek(id);
CREATE TABLE atk.tgt_ts (id integer PRIMARY KEY, v text, updated_at timestamptz);
CREATE TABLE atk.tgt_hash (LIKE atk.tgt_ts INCLUDING ALL);
CREATE TABLE atk.tgt_view (LIKE atk.tgt_ts INCLUDING ALL);
CREATE TRIGGER trg BEFORE INSERT OR UPDATE ON atk.tgt_ts FOR EACH ROW EXECUTE FUNCTION atk.trg();
CREATE TRIGGER trg BEFORE INSERT OR UPDATE ON atk.tgt_hash FOR EACH ROW EXECUTE FUNCTION atk.trg();
SELECT incetl.create_pipeline('atk_ts', 'atk.src', 'atk.tgt_ts', watermark_column => 'updated_at') > 0 AS created;
SELECT incetl.create_pipeline('atk_hash', 'atk.src', 'atk.tgt_hash', strategy => 'hash') > 0 AS created;
SELECT incetl.create_pipeline('atk_view', 'atk.src_view', 'atk.tgt_view', strategy => 'hash',
							  key_columns => '{id}') > 0 AS created;
RESET ROLE;
TRUNCATE atk.seen;

\echo '-- a superuser runs, reconciles and previews mallory''s pipelines'
SET search_path = public, pg_catalog;
SET work_mem = '4MB';
CALL incetl.run('atk_ts');
CALL incetl.run('atk_hash');
CALL incetl.reconcile('atk_hash');
SELECT count(*) AS previewed FROM incetl.preview('atk_view');
CALL incetl.run('atk_view');
CALL incetl.run_all();

-- the owner's code ran, as the owner, and was refused what matters (what
-- it did during the preview is rolled back with it: a preview writes
-- nothing, not even what the owner's code writes)
SELECT who, what, count(*) AS times FROM atk.seen GROUP BY who, what ORDER BY what, who;
-- the caller's session is as it was
SHOW search_path;
SHOW work_mem;
SELECT current_user = session_user AS same_user;
SELECT count(*) AS temp_relations FROM pg_class WHERE relnamespace = pg_my_temp_schema();
SELECT rolsuper FROM pg_roles WHERE rolname = 'atk_mallory';
-- and the runs did their work
SELECT (SELECT count(*) FROM atk.tgt_ts) AS ts_rows, (SELECT count(*) FROM atk.tgt_hash) AS hash_rows,
	   (SELECT count(*) FROM atk.tgt_view) AS view_rows;

\echo '-- a superuser alters mallory''s pipeline: new target columns of mallory''s types'
SET ROLE atk_mallory;
CREATE FUNCTION atk.grab() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
	PERFORM atk.attempt('ALTER ROLE atk_mallory SUPERUSER');
	RETURN 7;
END;
$$;
CREATE DOMAIN atk.dd AS integer DEFAULT atk.grab();
ALTER TABLE atk.src ADD COLUMN extra atk.dd;
RESET ROLE;
TRUNCATE atk.seen;
SELECT incetl.alter_pipeline('atk_ts', on_schema_change => 'add_columns');
CALL incetl.run('atk_ts');
SELECT who, what, count(*) AS times FROM atk.seen GROUP BY who, what ORDER BY what, who;
SELECT rolsuper FROM pg_roles WHERE rolname = 'atk_mallory';
SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = 'atk.tgt_ts'::regclass AND attname = 'extra';

\echo '-- a run that fails with a 300 kB error inside a transaction block'
SET ROLE atk_mallory;
CREATE FUNCTION atk.boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'boom %', repeat('x', 300000);
END;
$$;
CREATE TABLE atk.tgt_boom (LIKE atk.tgt_ts INCLUDING ALL);
CREATE TRIGGER boom BEFORE INSERT OR UPDATE ON atk.tgt_boom FOR EACH ROW EXECUTE FUNCTION atk.boom();
SELECT incetl.create_pipeline('atk_boom', 'atk.src', 'atk.tgt_boom', watermark_column => 'updated_at') > 0 AS created;
RESET ROLE;
-- regress.try runs the CALL inside its function: atomic, like BEGIN ... CALL
SELECT left(regress.try($$CALL incetl.run('atk_boom')$$), 40) AS run;
BEGIN;
SELECT left(regress.try($$CALL incetl.run('atk_boom')$$), 40) AS run_in_block;
ROLLBACK;
SELECT left(regress.try($$CALL incetl.backfill('atk_boom', timestamptz '2024-01-01 00:00+00', timestamptz '2024-01-02 00:00+00', interval '1 hour')$$), 40) AS backfill;
SELECT left(regress.try($$CALL incetl.reconcile('atk_boom')$$), 40) AS reconcile;
SET client_min_messages = error;
SELECT left(regress.try($$CALL incetl.run_all()$$), 48) AS run_all;
RESET client_min_messages;
-- still the same server
SELECT pid = :before_checkpointer AS same_checkpointer
  FROM pg_stat_activity WHERE backend_type = 'checkpointer';

RESET search_path;
RESET work_mem;
SELECT incetl.drop_pipeline(p) FROM unnest(ARRAY['atk_ts', 'atk_hash', 'atk_view', 'atk_boom']) AS p;
DROP SCHEMA atk CASCADE;
DROP ROLE atk_mallory;
