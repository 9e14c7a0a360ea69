--
-- 31_trigger_security: the 'trigger' strategy, attacked.
--
--   - A 'trigger' pipeline needs what CREATE TRIGGER on the source needs:
--     the TRIGGER privilege on the source and on each of its partitions.
--     A role that may only SELECT a table cannot put capture triggers on it
--     (42501, naming the table, with a hint; nothing is written).
--   - Mallory owns a pipeline on a table of hers that others write, among
--     them superusers.  She plants everything a table owner can plant: a
--     domain key whose CHECK calls her function, a trigger on her target,
--     and attempts on her pipeline's queue (a trigger, a CHECK that fails,
--     a rule, a policy, a new owner, a lock that would block writers).  Her
--     function logs who runs it, sets search_path in the caller's session
--     (to a schema with her own lower()), and tries to make her superuser.
--     Whatever superusers write to her table or run of her pipeline: she
--     never becomes superuser, her function never runs as a superuser nor
--     inside incetl's capture, the writer's search_path and lower() are
--     untouched, and writes to the table keep working and being captured.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE ROLE t31_alice NOLOGIN;
CREATE ROLE t31_bob NOLOGIN;
CREATE ROLE t31_mallory NOLOGIN;
CREATE ROLE t31_writer NOLOGIN;
CREATE SCHEMA t31_a AUTHORIZATION t31_alice;
CREATE SCHEMA t31_b AUTHORIZATION t31_bob;
CREATE SCHEMA t31_m AUTHORIZATION t31_mallory;
GRANT USAGE ON SCHEMA t31_a, t31_m TO PUBLIC;
SELECT count(*) AS incetl_rels FROM pg_class
 WHERE relnamespace = 'incetl'::regnamespace \gset before_

\echo '-- a role that may only SELECT a table cannot capture it'
SET ROLE t31_alice;
CREATE TABLE t31_a.src (id integer PRIMARY KEY, v text);
INSERT INTO t31_a.src VALUES (1, 'one');
GRANT SELECT ON t31_a.src TO t31_bob;
CREATE TABLE t31_a.parts (id integer PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE t31_a.parts_1 PARTITION OF t31_a.parts FOR VALUES FROM (0) TO (100);
CREATE TABLE t31_a.parts_2 PARTITION OF t31_a.parts FOR VALUES FROM (100) TO (200);
GRANT SELECT, TRIGGER ON t31_a.parts TO t31_bob;
GRANT TRIGGER ON t31_a.parts_1 TO t31_bob;
RESET ROLE;
SET ROLE t31_bob;
CREATE TABLE t31_b.tgt (id integer PRIMARY KEY, v text);
SELECT regress.try($$SELECT incetl.create_pipeline('t31_bob_capture', 't31_a.src', 't31_b.tgt',
													strategy => 'trigger')$$);
-- on a partitioned table, every partition needs it too
SELECT regress.try($$SELECT incetl.create_pipeline('t31_bob_capture', 't31_a.parts', 't31_b.tgt',
													strategy => 'trigger')$$);
-- (a plain CREATE TRIGGER says the same)
CREATE FUNCTION t31_b.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
SELECT regress.try($$CREATE TRIGGER bob AFTER INSERT ON t31_a.src FOR EACH ROW EXECUTE FUNCTION t31_b.noop()$$);
SELECT regress.try($$CREATE TRIGGER bob AFTER INSERT ON t31_a.parts FOR EACH ROW EXECUTE FUNCTION t31_b.noop()$$);
RESET ROLE;
-- nothing was written: no catalog row, no trigger, no queue
SELECT count(*) AS bob_pipelines FROM incetl.pipelines WHERE name LIKE 't31_bob%';
SELECT count(*) AS triggers FROM pg_trigger
 WHERE tgrelid IN ('t31_a.src'::regclass, 't31_a.parts'::regclass, 't31_a.parts_1'::regclass,
				   't31_a.parts_2'::regclass);
SELECT count(*) - :before_incetl_rels AS new_incetl_rels FROM pg_class
 WHERE relnamespace = 'incetl'::regnamespace;
-- the 'hash' strategy needs only SELECT
SET ROLE t31_bob;
SELECT incetl.create_pipeline('t31_bob_hash', 't31_a.src', 't31_b.tgt', strategy => 'hash') > 0 AS created;
SELECT incetl.drop_pipeline('t31_bob_hash');
RESET ROLE;
-- with TRIGGER on the source (and every partition) it works
GRANT TRIGGER ON t31_a.src, t31_a.parts_2 TO t31_bob;
SET ROLE t31_bob;
SELECT incetl.create_pipeline('t31_bob_capture', 't31_a.src', 't31_b.tgt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('t31_bob_capture');
SELECT * FROM t31_b.tgt;
SELECT incetl.drop_pipeline('t31_bob_capture');
SELECT incetl.create_pipeline('t31_bob_parts', 't31_a.parts', 't31_b.tgt', strategy => 'trigger') > 0 AS created;
SELECT incetl.drop_pipeline('t31_bob_parts');
RESET ROLE;

\echo '-- mallory prepares her attack'
SET ROLE t31_mallory;
CREATE TABLE t31_m.log (what text, who name, superuser boolean, trigger_depth integer);
GRANT INSERT ON t31_m.log TO PUBLIC;
-- her lower(), for callers whose search_path she manages to plant
CREATE FUNCTION t31_m.lower(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO t31_m.log VALUES ('lower()', current_user,
		(SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
		pg_catalog.pg_trigger_depth());
	RETURN 'pwned';
END $$;
CREATE FUNCTION t31_m.attack(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO t31_m.log VALUES (what, current_user,
		(SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
		pg_catalog.pg_trigger_depth());
	PERFORM pg_catalog.set_config('search_path', 't31_m, pg_catalog', false);
	BEGIN
		ALTER ROLE t31_mallory SUPERUSER;
	EXCEPTION WHEN OTHERS THEN
		NULL;
	END;
	RETURN true;
END $$;
CREATE FUNCTION t31_m.attack_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM t31_m.attack(TG_NAME);
	RETURN NULL;
END $$;
-- a key whose type runs her code whenever a value is made one of it
CREATE DOMAIN t31_m.dkey AS integer CHECK (t31_m.attack('domain check'));
CREATE TABLE t31_m.src (id t31_m.dkey PRIMARY KEY, v text);
CREATE TABLE t31_m.tgt (id integer PRIMARY KEY, v text);
CREATE TRIGGER on_target AFTER INSERT OR UPDATE OR DELETE ON t31_m.tgt
	FOR EACH STATEMENT EXECUTE FUNCTION t31_m.attack_trigger();
INSERT INTO t31_m.src SELECT i, 'v' || i FROM generate_series(1, 6) AS i;
-- everyone may write her table
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON t31_m.src TO PUBLIC;
SELECT incetl.create_pipeline('t31_evil', 't31_m.src', 't31_m.tgt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('t31_evil');
RESET ROLE;
SELECT id AS qid FROM incetl.pipelines WHERE name = 't31_evil' \gset
-- the queue belongs to the extension owner; she may only read it
SELECT c.relowner = e.extowner AS owned_by_extension_owner,
	   has_table_privilege('t31_mallory', c.oid, 'SELECT') AS mallory_select,
	   has_table_privilege('t31_mallory', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
		   AS mallory_other,
	   (SELECT string_agg(format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
		  FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0) AS column_types
  FROM pg_class c, pg_extension e
 WHERE c.oid = ('incetl.queue_' || :'qid')::regclass AND e.extname = 'incetl';
TRUNCATE t31_m.log;

\echo '-- her hooks on the queue are all refused'
SET ROLE t31_mallory;
CREATE TEMP TABLE attempts (attempt text, result text);
INSERT INTO attempts
SELECT a, replace(regress.try(format(a, 'incetl.queue_' || :'qid')), 'queue_' || :'qid', 'queue_<id>')
  FROM unnest(ARRAY[
	'CREATE TRIGGER hook AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION t31_m.attack_trigger()',
	'ALTER TABLE %s ADD CHECK (false) NOT VALID',
	'ALTER TABLE %s ADD CHECK (t31_m.attack(''check'')) NOT VALID',
	'CREATE RULE hook AS ON INSERT TO %s DO ALSO SELECT t31_m.attack(''rule'')',
	'ALTER TABLE %s ENABLE ROW LEVEL SECURITY',
	'CREATE POLICY hook ON %s USING (t31_m.attack(''policy''))',
	'ALTER TABLE %s ALTER COLUMN op SET DEFAULT ''x''',
	'ALTER TABLE %s OWNER TO t31_mallory',
	'ALTER TABLE %s RENAME TO hijacked',
	'DROP TABLE %s',
	'LOCK TABLE %s IN ACCESS EXCLUSIVE MODE',
	'LOCK TABLE %s IN SHARE MODE',
	'INSERT INTO %s (op) VALUES (''T'')',
	'DELETE FROM %s',
	'TRUNCATE %s']) AS a;
SELECT attempt, result FROM attempts;
-- reading it is all she may do
SELECT replace(regress.try(format('SELECT count(*) FROM incetl.queue_%s', :'qid')), 'queue_' || :'qid', 'queue_<id>') AS read_queue;
RESET ROLE;

\echo '-- superusers write her table'
SET search_path = "$user", public;
SHOW search_path;
UPDATE t31_m.src SET v = 'by a superuser' WHERE id = 1;
UPDATE t31_m.src SET v = 'by a superuser' WHERE id IN (2, 3);
DELETE FROM t31_m.src WHERE id = 4;
-- as a logical replication apply worker would (row-level capture)
SET session_replication_role = replica;
UPDATE t31_m.src SET v = 'replicated' WHERE id = 5;
DELETE FROM t31_m.src WHERE id = 6;
RESET session_replication_role;
SHOW search_path;
SELECT lower('X');
SELECT rolsuper FROM pg_roles WHERE rolname = 't31_mallory';
-- her code ran nowhere: not in the capture (trigger depth 1), not as a superuser
SELECT what, who, superuser, trigger_depth FROM t31_m.log ORDER BY 1;
-- and everything was captured
CALL incetl.run('t31_evil');
SELECT status, inserted, updated, deleted FROM regress.last_counts('t31_evil');
SELECT (SELECT count(*) FROM (SELECT id::integer, v FROM t31_m.src EXCEPT SELECT * FROM t31_m.tgt) a) AS missing,
	   (SELECT count(*) FROM (SELECT * FROM t31_m.tgt EXCEPT SELECT id::integer, v FROM t31_m.src) b) AS extra;

\echo '-- a superuser runs her pipeline'
TRUNCATE t31_m.log;
SET ROLE t31_writer;
-- (a writer who makes a value of her domain runs her CHECK, as PostgreSQL
-- does for any table with such a column; that is the writer's own rights)
INSERT INTO t31_m.src VALUES (7, 'by the writer');
RESET ROLE;
SET search_path = "$user", public;
CALL incetl.run('t31_evil');
CALL incetl.reconcile('t31_evil');
SELECT op, key FROM incetl.preview('t31_evil');
SHOW search_path;
SELECT lower('X');
SELECT rolsuper FROM pg_roles WHERE rolname = 't31_mallory';
-- her domain check and target trigger ran, as herself or the writer, never
-- as a superuser
SELECT what, who, superuser, count(*) > 0 AS ran FROM t31_m.log GROUP BY 1, 2, 3 ORDER BY 1, 2;
SELECT count(*) AS rows_in_target FROM t31_m.tgt;

\echo '-- writes to her table still work, for everyone'
SET ROLE t31_writer;
DELETE FROM t31_m.src WHERE id = 7;
TRUNCATE t31_m.src;
INSERT INTO t31_m.src VALUES (100, 'after truncate');
RESET ROLE;
SET search_path = "$user", public;
UPDATE t31_m.src SET v = 'superuser again' WHERE id = 100;
SET ROLE t31_mallory;
CALL incetl.run('t31_evil');
SELECT * FROM t31_m.tgt;
SELECT incetl.drop_pipeline('t31_evil');
RESET ROLE;
RESET search_path;

SET client_min_messages = warning;
DROP SCHEMA t31_a, t31_b, t31_m CASCADE;
DROP OWNED BY t31_alice, t31_bob, t31_mallory, t31_writer;
DROP ROLE t31_alice, t31_bob, t31_mallory, t31_writer;
RESET client_min_messages;
