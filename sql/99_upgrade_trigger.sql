--
-- 99_upgrade_trigger: a 'trigger' pipeline made by incetl 0.1 across the
-- update to the default version.  Runs after 99_upgrade (which leaves the
-- extension freshly installed) and leaves it that way too.
--
-- incetl 0.1 gave the capture queue to the pipeline's owner, with domain
-- key columns and no entry numbers, and put four triggers on the source
-- only, all in the default firing mode.  The pipeline here is set up that
-- way (the library is the new one, so the 0.1 layout is made by hand), with
-- the owner's own trigger on the queue.  Proves:
--   - until the update, a write by a superuser to the owner's source runs
--     the owner's queue trigger as the owner, security-restricted: the
--     writer's search_path and lower() are untouched, the owner stays what
--     it is; a run says the catalog needs the update;
--   - ALTER EXTENSION incetl UPDATE drops the old queue (with whatever its
--     owner attached) and triggers without reading the queue; the next run
--     rebuilds them (queue owned by the extension owner, numbered entries,
--     base-type keys, the five triggers) and compares the whole source, so
--     changes queued before the update and written after it all arrive;
--     the run after that is incremental;
--   - a queue of 0.1 found later (a 0.1 dump restored) is replaced the
--     same way by the next run.
--
SET client_min_messages = warning;
DROP EXTENSION incetl CASCADE;
CREATE EXTENSION incetl VERSION '0.1' CASCADE;
RESET client_min_messages;
CREATE ROLE t99_owner NOLOGIN;
CREATE SCHEMA t99 AUTHORIZATION t99_owner;
GRANT USAGE ON SCHEMA t99 TO PUBLIC;

SET ROLE t99_owner;
CREATE DOMAIN t99.dkey AS integer;
CREATE TABLE t99.src (id t99.dkey PRIMARY KEY, v text);
CREATE TABLE t99.tgt (id integer PRIMARY KEY, v text);
INSERT INTO t99.src SELECT i, 'v' || i FROM generate_series(1, 5) AS i;
GRANT SELECT, INSERT, UPDATE, DELETE ON t99.src TO PUBLIC;
SELECT incetl.create_pipeline('t99_trig', 't99.src', 't99.tgt', strategy => 'trigger') > 0 AS created;
RESET ROLE;
SELECT id AS pid FROM incetl.pipelines WHERE name = 't99_trig' \gset
-- the layout of 0.1
ALTER TABLE incetl.queue_:pid DROP COLUMN seq;
ALTER TABLE incetl.queue_:pid ALTER COLUMN k1 TYPE t99.dkey;
ALTER TABLE incetl.queue_:pid OWNER TO t99_owner;
SELECT format('DROP TRIGGER incetl_capture_%s_row ON t99.src', :'pid') \gexec
SELECT format('ALTER TABLE t99.src ENABLE TRIGGER incetl_capture_%s_truncate', :'pid') \gexec

-- the owner's code on the queue: it plants a search_path and tries to
-- become superuser, in whatever session it runs
SET ROLE t99_owner;
CREATE TABLE t99.log (who name, superuser boolean);
GRANT INSERT ON t99.log TO PUBLIC;
CREATE FUNCTION t99.lower(text) RETURNS text LANGUAGE sql AS $$ SELECT 'pwned' $$;
CREATE FUNCTION t99.on_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO t99.log
	SELECT current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user;
	PERFORM pg_catalog.set_config('search_path', 't99, pg_catalog', false);
	BEGIN
		ALTER ROLE t99_owner SUPERUSER;
	EXCEPTION WHEN OTHERS THEN
		NULL;
	END;
	RETURN NULL;
END $$;
SELECT format('CREATE TRIGGER on_queue AFTER INSERT ON incetl.queue_%s FOR EACH STATEMENT EXECUTE FUNCTION t99.on_queue()',
			  :'pid') \gexec
RESET ROLE;

\echo '-- before the update: a superuser writes the source'
SET search_path = "$user", public;
UPDATE t99.src SET v = 'changed before the update' WHERE id = 1;
DELETE FROM t99.src WHERE id = 2;
SHOW search_path;
SELECT lower('X');
SELECT rolsuper FROM pg_roles WHERE rolname = 't99_owner';
SELECT who, superuser, count(*) FROM t99.log GROUP BY 1, 2;
RESET search_path;
-- a run needs the update first
SET ROLE t99_owner;
SELECT regress.try($$CALL incetl.run('t99_trig')$$);
RESET ROLE;

\echo '-- the update'
SET client_min_messages = warning;
ALTER EXTENSION incetl UPDATE;
RESET client_min_messages;
SELECT to_regclass('incetl.queue_' || :'pid') IS NULL AS old_queue_dropped,
	   (SELECT count(*) FROM pg_trigger WHERE tgrelid = 't99.src'::regclass) AS triggers,
	   (SELECT watermark IS NULL FROM incetl.state WHERE pipeline_id = :pid) AS compares_next;
-- written before the next run: nothing captures it, the compare finds it
INSERT INTO t99.src VALUES (6, 'after the update');
SET ROLE t99_owner;
CALL incetl.run('t99_trig');
RESET ROLE;
SELECT status, inserted, updated, deleted FROM regress.last_counts('t99_trig');
SELECT * FROM t99.tgt ORDER BY id;
-- the new layout
SELECT c.relowner = e.extowner AS owned_by_extension_owner,
	   (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
		  FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0) AS columns
  FROM pg_class c, pg_extension e
 WHERE c.oid = ('incetl.queue_' || :'pid')::regclass AND e.extname = 'incetl';
SELECT substr(tgname, length('incetl_capture_' || :'pid' || '_') + 1) AS kind, tgenabled
  FROM pg_trigger WHERE tgrelid = 't99.src'::regclass ORDER BY 1;
SELECT capture_relations FROM incetl.state WHERE pipeline_id = :pid;
-- and it goes on incrementally
UPDATE t99.src SET v = 'changed after the update' WHERE id = 3;
SET ROLE t99_owner;
CALL incetl.run('t99_trig');
RESET ROLE;
SELECT status, extracted, inserted, updated, deleted FROM regress.last_counts('t99_trig');
SELECT (SELECT count(*) FROM (SELECT id::integer, v FROM t99.src EXCEPT SELECT * FROM t99.tgt) a) AS missing,
	   (SELECT count(*) FROM (SELECT * FROM t99.tgt EXCEPT SELECT id::integer, v FROM t99.src) b) AS extra;

\echo '-- a queue of 0.1 in a 0.2 catalog (a 0.1 dump restored): replaced'
ALTER TABLE incetl.queue_:pid DROP COLUMN seq;
ALTER TABLE incetl.queue_:pid OWNER TO t99_owner;
UPDATE t99.src SET v = 'into the old queue' WHERE id = 4;
SET ROLE t99_owner;
CALL incetl.run('t99_trig');
RESET ROLE;
SELECT status, extracted, inserted, updated, deleted FROM regress.last_counts('t99_trig');
SELECT c.relowner = e.extowner AS owned_by_extension_owner,
	   (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'seq') AS has_seq
  FROM pg_class c, pg_extension e
 WHERE c.oid = ('incetl.queue_' || :'pid')::regclass AND e.extname = 'incetl';
SELECT (SELECT count(*) FROM (SELECT id::integer, v FROM t99.src EXCEPT SELECT * FROM t99.tgt) a) AS missing,
	   (SELECT count(*) FROM (SELECT * FROM t99.tgt EXCEPT SELECT id::integer, v FROM t99.src) b) AS extra;

SELECT incetl.drop_pipeline('t99_trig');
SET client_min_messages = warning;
DROP SCHEMA t99 CASCADE;
DROP OWNED BY t99_owner;
DROP ROLE t99_owner;
-- left as a fresh install of the default version
DROP EXTENSION incetl CASCADE;
CREATE EXTENSION incetl CASCADE;
RESET client_min_messages;
SELECT e.extversion = a.default_version AS at_default_version
  FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
 WHERE e.extname = 'incetl';
