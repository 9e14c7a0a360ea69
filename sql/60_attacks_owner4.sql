--
-- 60_attacks_owner4: a non-superuser pipeline owner (t60_mal) attacks the
-- surfaces of bedbf37..b025310: the trigger queue's TRUNCATE at a run's
-- end, keys written into the hash state, collations in the extension
-- owner's tables.
--
--   1. trigger: bob owns and writes the source; mal (SELECT, TRIGGER) owns
--      the pipeline and its target, sets incetl.queue_truncate_min = 0.
--      a. she cannot write, truncate or lock the queue (beyond ACCESS SHARE)
--      b. her target's trigger defers all constraints in the run's last
--         batch, and her deferred constraint trigger records whether the
--         run's backend holds an ACCESS EXCLUSIVE lock on the queue when it
--         fires (if it fired after the TRUNCATE, she could sleep there and
--         block every writer of bob's source)
--      c. bob's change in flight (dblink) while her run ends: not lost
--   2. hash: her key domain over text, with her nondeterministic collation
--      and a CHECK calling her function; a key respelled so the state's
--      upsert writes the key column: the superuser's run; her code runs
--      only as her
--   3. logical: that domain key, read typed through the decode sink, run
--      by the superuser's run_all: her CHECK runs only as her
--   4. trigger: that domain key, captured by the extension owner's
--      trigger, drained and truncated at a superuser's run's end: her
--      CHECK runs only as her
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE EXTENSION IF NOT EXISTS dblink;
SET incetl.late_commit_margin = 0;
CREATE ROLE t60_mal NOLOGIN;
CREATE ROLE t60_bob NOLOGIN;
CREATE SCHEMA t60_m AUTHORIZATION t60_mal;
CREATE SCHEMA t60_b AUTHORIZATION t60_bob;
GRANT USAGE ON SCHEMA t60_m, t60_b TO PUBLIC;

SET ROLE t60_mal;
CREATE TABLE t60_m.log (what text, who name, sup boolean, xlocks integer);
GRANT INSERT ON t60_m.log TO PUBLIC;
CREATE FUNCTION t60_m.xlocks() RETURNS integer LANGUAGE sql AS $$
	SELECT count(*)::integer FROM pg_catalog.pg_locks l
	  JOIN pg_catalog.pg_class c ON c.oid = l.relation
	 WHERE l.pid = pg_catalog.pg_backend_pid() AND l.mode = 'AccessExclusiveLock'
	   AND l.granted AND c.relnamespace = 'incetl'::regnamespace
$$;
CREATE FUNCTION t60_m.evil(what text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO t60_m.log SELECT what, current_user, rolsuper, t60_m.xlocks()
	  FROM pg_catalog.pg_roles WHERE rolname = current_user;
	BEGIN EXECUTE 'ALTER ROLE t60_mal SUPERUSER';
	EXCEPTION WHEN OTHERS THEN NULL; END;
	RETURN true;
END $$;
-- a row trigger of the batch: every constraint deferred from now on
CREATE FUNCTION t60_m.defer_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM t60_m.evil('defer ' || TG_OP);
	SET CONSTRAINTS ALL DEFERRED;
	RETURN NEW;
END $$;
-- what would sleep while holding the queue's lock
CREATE FUNCTION t60_m.spy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM t60_m.evil('deferred ' || TG_OP);
	RETURN NULL;
END $$;
RESET ROLE;

\echo '-- 1. trigger: bob''s source, her pipeline'
SET ROLE t60_bob;
CREATE TABLE t60_b.src (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO t60_b.src SELECT g, 'v' || g FROM generate_series(1, 5) g;
GRANT SELECT, TRIGGER ON t60_b.src TO t60_mal;
SET ROLE t60_mal;
CREATE TABLE t60_m.tgt (id integer PRIMARY KEY, v text NOT NULL);
SELECT incetl.create_pipeline('t60_q', 't60_b.src', 't60_m.tgt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('t60_q');
RESET ROLE;
SELECT c.oid::regclass::text AS queue
  FROM pg_class c
 WHERE c.relnamespace = 'incetl'::regnamespace AND c.relkind = 'r'
   AND c.relname = 'queue_' || (SELECT id FROM incetl.pipelines WHERE name = 't60_q') \gset
SELECT :'queue' <> '' AS have_queue;

\echo '-- 1a. the queue: no writes, no truncate, no lock that stops writers'
SET ROLE t60_mal;
SELECT regexp_replace(regress.try(format('INSERT INTO %s SELECT * FROM %s LIMIT 0', :'queue', :'queue')), 'queue_[0-9]+', 'queue_N') AS try;
SELECT regexp_replace(regress.try(format('DELETE FROM %s', :'queue')), 'queue_[0-9]+', 'queue_N') AS try;
SELECT regexp_replace(regress.try(format('TRUNCATE %s', :'queue')), 'queue_[0-9]+', 'queue_N') AS try;
SELECT regexp_replace(regress.try(format('ALTER TABLE %s REPLICA IDENTITY DEFAULT', :'queue')), 'queue_[0-9]+', 'queue_N') AS try;
SELECT regexp_replace(regress.try(format('LOCK TABLE %s IN SHARE MODE', :'queue')), 'queue_[0-9]+', 'queue_N') AS try;
SELECT regexp_replace(regress.try(format('LOCK TABLE %s IN ROW EXCLUSIVE MODE', :'queue')), 'queue_[0-9]+', 'queue_N') AS try;
SELECT regexp_replace(regress.try(format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', :'queue')), 'queue_[0-9]+', 'queue_N') AS try;
-- nor on what the run writes after its TRUNCATE, before its commit (the
-- state's row, run_log's)
SELECT regress.try('SELECT 1 FROM incetl.state FOR UPDATE');
SELECT regress.try('LOCK TABLE incetl.state IN SHARE MODE');
SELECT regress.try('SELECT 1 FROM incetl.run_log FOR UPDATE');
SELECT regress.try('LOCK TABLE incetl.run_log IN SHARE MODE');
RESET ROLE;
-- nor, from another session, on the run's work table, which it drops after
-- the TRUNCATE: another backend's temporary schema is not hers
CREATE TEMP TABLE t60_tmp (x integer);
GRANT ALL ON t60_tmp TO PUBLIC;
SELECT pg_my_temp_schema()::regnamespace::text AS tmpschema \gset
SELECT dblink_connect('l60', format('host=%s port=%s dbname=%s',
									split_part(current_setting('unix_socket_directories'), ',', 1),
									current_setting('port'), current_database()));
SELECT regexp_replace(r, 'pg_temp_[0-9]+', 'pg_temp_N', 'g') AS lock_other_temp
  FROM dblink('l60', format($q$SET ROLE t60_mal; SELECT regress.try(%L)$q$,
						   format('LOCK TABLE %s.t60_tmp IN ACCESS SHARE MODE', :'tmpschema')))
	   AS t(r text);
SELECT dblink_disconnect('l60');
DROP TABLE t60_tmp;

\echo '-- 1b. her deferred trigger at the run''s end: not under the queue''s lock'
SET ROLE t60_mal;
CREATE TRIGGER defer_all BEFORE INSERT OR UPDATE ON t60_m.tgt
	FOR EACH ROW EXECUTE FUNCTION t60_m.defer_all();
CREATE CONSTRAINT TRIGGER spy AFTER INSERT OR UPDATE ON t60_m.tgt
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION t60_m.spy();
RESET ROLE;
SET ROLE t60_bob;
UPDATE t60_b.src SET v = v || 'x' WHERE id <= 3;
RESET ROLE;
SELECT pg_relation_filenode(:'queue') AS filenode_before \gset
SET ROLE t60_mal;
SET incetl.queue_truncate_min = 0;
CALL incetl.run('t60_q');
RESET ROLE;
SELECT status, updated FROM regress.last_counts('t60_q');
-- the run failed before its end
SELECT pg_relation_filenode(:'queue') <> :filenode_before AS truncated;
-- her code ran as her, never with the queue locked
SELECT what, who, sup, xlocks FROM t60_m.log ORDER BY 1, 4;
SELECT count(*) AS under_queue_lock FROM t60_m.log WHERE xlocks > 0;
SELECT rolsuper FROM pg_roles WHERE rolname = 't60_mal';
SET ROLE t60_mal;
DROP TRIGGER defer_all ON t60_m.tgt;
DROP TRIGGER spy ON t60_m.tgt;
RESET ROLE;
TRUNCATE t60_m.log;
-- without them the run ends by TRUNCATE (the path 1b and 1c go through)
SELECT pg_relation_filenode(:'queue') AS filenode_before \gset
SET ROLE t60_mal;
SET incetl.queue_truncate_min = 0;
CALL incetl.run('t60_q');
RESET ROLE;
SELECT status, updated FROM regress.last_counts('t60_q');
SELECT pg_relation_filenode(:'queue') <> :filenode_before AS truncated;

\echo '-- 1c. bob''s change in flight while her run ends'
SELECT dblink_connect('w60', format('host=%s port=%s dbname=%s',
									split_part(current_setting('unix_socket_directories'), ',', 1),
									current_setting('port'), current_database()));
SELECT dblink_exec('w60', 'BEGIN');
SELECT dblink_exec('w60', 'SET LOCAL ROLE t60_bob');
SELECT dblink_exec('w60', $$UPDATE t60_b.src SET v = 'in flight' WHERE id = 5$$);
SET ROLE t60_bob;
UPDATE t60_b.src SET v = 'committed' WHERE id = 4;
SET ROLE t60_mal;
SET incetl.queue_truncate_min = 0;
SELECT pg_relation_filenode(:'queue') AS filenode_before \gset
CALL incetl.run('t60_q');
RESET ROLE;
-- bob's entry in flight: no TRUNCATE
SELECT pg_relation_filenode(:'queue') <> :filenode_before AS truncated;
SELECT dblink_exec('w60', 'COMMIT');
SELECT dblink_disconnect('w60');
SET ROLE t60_mal;
CALL incetl.run('t60_q');
RESET incetl.queue_truncate_min;
RESET ROLE;
-- nothing of bob's lost
SELECT count(*) AS differ FROM ((TABLE t60_b.src EXCEPT TABLE t60_m.tgt)
  UNION ALL (TABLE t60_m.tgt EXCEPT TABLE t60_b.src)) d;

\echo '-- 2. hash: her domain key, her collation, the state writes the key'
SET ROLE t60_mal;
CREATE COLLATION t60_m.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE DOMAIN t60_m.dk AS text CHECK (t60_m.evil('check'));
CREATE TABLE t60_m.hsrc (id t60_m.dk COLLATE t60_m.ci PRIMARY KEY, v text);
CREATE TABLE t60_m.htgt (id t60_m.dk COLLATE t60_m.ci PRIMARY KEY, v text);
INSERT INTO t60_m.hsrc VALUES ('abc', 'a'), ('def', 'd');
SELECT incetl.create_pipeline('t60_h', 't60_m.hsrc', 't60_m.htgt', strategy => 'hash') > 0 AS created;
RESET ROLE;
TRUNCATE t60_m.log;
CALL incetl.run('t60_h');
SET ROLE t60_mal;
UPDATE t60_m.hsrc SET id = 'ABC' WHERE id = 'abc';
UPDATE t60_m.hsrc SET v = 'd2' WHERE id = 'def';
RESET ROLE;
CALL incetl.run('t60_h');
CALL incetl.reconcile('t60_h');
SELECT status FROM regress.last_counts('t60_h');
SELECT id::text COLLATE "C" AS id, v FROM t60_m.htgt ORDER BY 1;
SELECT DISTINCT who, sup FROM t60_m.log ORDER BY 1;
SELECT rolsuper FROM pg_roles WHERE rolname = 't60_mal';

\echo '-- 3. logical: the same domain key, read typed through the decode sink'
ALTER ROLE t60_mal REPLICATION;
SET ROLE t60_mal;
CREATE TABLE t60_m.lsrc (id t60_m.dk COLLATE t60_m.ci PRIMARY KEY, v text);
CREATE TABLE t60_m.ltgt (id t60_m.dk COLLATE t60_m.ci PRIMARY KEY, v text);
INSERT INTO t60_m.lsrc VALUES ('abc', 'a'), ('def', 'd');
SELECT incetl.create_pipeline('t60_l', 't60_m.lsrc', 't60_m.ltgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('t60_l');
UPDATE t60_m.lsrc SET id = 'ABC' WHERE id = 'abc';
UPDATE t60_m.lsrc SET v = 'd2' WHERE id = 'def';
INSERT INTO t60_m.lsrc VALUES ('ghi', 'g');
RESET ROLE;
TRUNCATE t60_m.log;
CALL incetl.run_all();
SELECT status FROM regress.last_counts('t60_l');
SELECT id::text COLLATE "C" AS id, v FROM t60_m.ltgt ORDER BY 1;
SELECT DISTINCT who, sup FROM t60_m.log ORDER BY 1;
SELECT rolsuper FROM pg_roles WHERE rolname = 't60_mal';
SELECT incetl.drop_pipeline('t60_l');

\echo '-- 4. trigger: the same domain key, from the queue (its base type) to the fill'
SET ROLE t60_mal;
CREATE TABLE t60_m.tsrc (id t60_m.dk COLLATE t60_m.ci PRIMARY KEY, v text);
CREATE TABLE t60_m.ttgt (id t60_m.dk COLLATE t60_m.ci PRIMARY KEY, v text);
INSERT INTO t60_m.tsrc VALUES ('abc', 'a'), ('def', 'd');
SELECT incetl.create_pipeline('t60_t', 't60_m.tsrc', 't60_m.ttgt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('t60_t');
UPDATE t60_m.tsrc SET id = 'ABC' WHERE id = 'abc';
UPDATE t60_m.tsrc SET v = 'd2' WHERE id = 'def';
INSERT INTO t60_m.tsrc VALUES ('ghi', 'g');
RESET ROLE;
TRUNCATE t60_m.log;
SET incetl.queue_truncate_min = 0;
CALL incetl.run('t60_t');
RESET incetl.queue_truncate_min;
SELECT status FROM regress.last_counts('t60_t');
SELECT id::text COLLATE "C" AS id, v FROM t60_m.ttgt ORDER BY 1;
SELECT DISTINCT who, sup FROM t60_m.log ORDER BY 1;
SELECT rolsuper FROM pg_roles WHERE rolname = 't60_mal';
SELECT incetl.drop_pipeline('t60_t');

SELECT incetl.drop_pipeline('t60_h');
SELECT incetl.drop_pipeline('t60_q');
DROP SCHEMA t60_m, t60_b CASCADE;
DROP ROLE t60_mal, t60_bob;
DROP EXTENSION dblink;
