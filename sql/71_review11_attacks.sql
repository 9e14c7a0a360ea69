--
-- 71_review11_attacks: a hostile review of a 'logical' run that writes its
-- kept rows into the work table directly (strategy_logical.c WorkWriter,
-- bulkinsert.c) and batches without reading the source when every key has
-- its decoded row (rows only), and of the trigger capture's queue writer
-- on bulkinsert.c.  The attacker is t71_owner, a plain role with
-- REPLICATION that owns its pipelines; each case asserts the safe outcome.
--   A. a source of another role (t71_victim), read under row-level security
--      or after SELECT is revoked: the target only ever gets what the owner
--      may read, whoever calls the run, with row_security on or off
--   B. the work table changed by the owner's code as the run creates it (an
--      event trigger's DDL runs as the owner): a CHECK, NOT NULL, a shorter
--      typmod, another type, a moved column, row-level security, a rule, a
--      partition of a range, an index: each is honoured (the INSERT), never
--      bypassed by the direct write
--      (not asserted: run_log's rows_extracted counts the changed keys the
--      policy hides, as it did before; a count, and the owner's REPLICATION
--      attribute lets it decode the source's changes with any plugin anyway)
--   D. rows only with NULL keys, and a column retyped between decoded
--      changes: nothing but the source's values reaches the target
--   C. the queue writer in a writer's session: many rows, TOASTed keys,
--      flushes by bytes; the writer's role and settings are unchanged, the
--      owner still cannot write the queue
--
SET incetl.late_commit_margin = 0;
CREATE ROLE t71_owner LOGIN REPLICATION;
CREATE ROLE t71_victim LOGIN;
CREATE ROLE t71_writer LOGIN;
CREATE SCHEMA t71;
GRANT USAGE ON SCHEMA t71 TO PUBLIC;
CREATE SCHEMA t71_o AUTHORIZATION t71_owner;
CREATE SCHEMA t71_v AUTHORIZATION t71_victim;
GRANT USAGE ON SCHEMA t71_v TO t71_owner;

\echo '-- A1. a victim''s source under row-level security: the owner sees ids 1..5'
SET SESSION AUTHORIZATION t71_victim;
CREATE TABLE t71_v.src (id integer PRIMARY KEY, v text, secret text);
INSERT INTO t71_v.src SELECT g, 'v' || g, 's' || g FROM generate_series(1, 10) AS g;
ALTER TABLE t71_v.src ENABLE ROW LEVEL SECURITY;
CREATE POLICY few ON t71_v.src FOR SELECT TO t71_owner USING (id <= 5);
GRANT SELECT ON t71_v.src TO t71_owner;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION t71_owner;
CREATE TABLE t71_o.tgt (id integer PRIMARY KEY, v text, secret text);
SELECT incetl.create_pipeline('l71_rls', 't71_v.src', 't71_o.tgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('l71_rls');
SELECT count(*) AS rows, max(id) AS max_id FROM t71_o.tgt;
RESET SESSION AUTHORIZATION;
-- only inserts and updates (each key's last change has its row)
SET SESSION AUTHORIZATION t71_victim;
UPDATE t71_v.src SET v = v || 'u', secret = 'top secret';
INSERT INTO t71_v.src VALUES (11, 'v11', 'hidden'), (12, 'v12', 'hidden');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION t71_owner;
SELECT op, key FROM incetl.preview('l71_rls') ORDER BY 1, 2;
CALL incetl.run('l71_rls');
SELECT * FROM t71_o.tgt ORDER BY id;
RESET SESSION AUTHORIZATION;

\echo '-- A2. a superuser runs it (lends nothing), then with row_security off'
UPDATE t71_v.src SET v = v || 'w';
CALL incetl.run('l71_rls');
SELECT count(*) AS rows, max(id) AS max_id, min(v) AS v FROM t71_o.tgt;
UPDATE t71_v.src SET v = v || 'x';
SET row_security = off;
SELECT left(regress.try($$CALL incetl.run('l71_rls')$$), 5) AS run_row_security_off;
RESET row_security;
SELECT count(*) AS rows, max(id) AS max_id, min(v) AS v FROM t71_o.tgt;
SET SESSION AUTHORIZATION t71_owner;
SET row_security = off;
SELECT left(regress.try($$CALL incetl.run('l71_rls')$$), 5) AS owner_row_security_off;
RESET row_security;
CALL incetl.run('l71_rls');
SELECT count(*) AS rows, max(id) AS max_id, min(v) AS v FROM t71_o.tgt;
RESET SESSION AUTHORIZATION;

\echo '-- A3. rows written while the policy was off, read once it is on again'
SET SESSION AUTHORIZATION t71_victim;
ALTER TABLE t71_v.src DISABLE ROW LEVEL SECURITY;
INSERT INTO t71_v.src SELECT g, 'late', 'late secret' FROM generate_series(20, 22) AS g;
UPDATE t71_v.src SET v = 'y' WHERE id IN (1, 6);
ALTER TABLE t71_v.src ENABLE ROW LEVEL SECURITY;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION t71_owner;
CALL incetl.run('l71_rls');
SELECT id, v FROM t71_o.tgt WHERE id = 1 OR id > 5 ORDER BY id;
RESET SESSION AUTHORIZATION;

\echo '-- A4. SELECT revoked after the changes: no run applies them, whoever calls'
SET SESSION AUTHORIZATION t71_victim;
ALTER TABLE t71_v.src DISABLE ROW LEVEL SECURITY;
UPDATE t71_v.src SET v = 'after revoke', secret = 'after revoke' WHERE id <= 3;
REVOKE SELECT ON t71_v.src FROM t71_owner;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION t71_owner;
SELECT regress.try($$CALL incetl.run('l71_rls')$$) AS owner_run;
RESET SESSION AUTHORIZATION;
SELECT regress.try($$CALL incetl.run('l71_rls')$$) AS superuser_run;
-- column SELECT on (id, v) only: still not the pipeline's columns
SET SESSION AUTHORIZATION t71_victim;
GRANT SELECT (id, v) ON t71_v.src TO t71_owner;
RESET SESSION AUTHORIZATION;
SELECT regress.try($$CALL incetl.run('l71_rls')$$) AS superuser_run_column_grant;
SELECT count(*) AS leaked FROM t71_o.tgt WHERE v = 'after revoke' OR secret LIKE '%after revoke%' OR id > 5;
SELECT count(*) AS rows, max(id) AS max_id FROM t71_o.tgt;
SELECT incetl.drop_pipeline('l71_rls');

\echo '-- B. the owner''s code alters the work table as the run creates it'
CREATE TABLE t71.mode (mode text NOT NULL);
INSERT INTO t71.mode VALUES ('none');
GRANT SELECT, UPDATE ON t71.mode TO t71_owner;
CREATE FUNCTION t71.et() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
	r record;
	m text := (SELECT mode FROM t71.mode);
	w text;
BEGIN
	FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
		IF (SELECT relname FROM pg_class WHERE oid = r.objid) NOT LIKE 'incetl_work_%' THEN
			CONTINUE;
		END IF;
		w := r.objid::regclass::text;
		IF m = 'check' THEN
			EXECUTE format('ALTER TABLE %s ADD CHECK (v3 < 0)', w);
		ELSIF m = 'notnull' THEN
			EXECUTE format('ALTER TABLE %s ALTER qtid SET NOT NULL', w);
		ELSIF m = 'typmod' THEN
			EXECUTE format('ALTER TABLE %s ALTER v2 TYPE varchar(2)', w);
		ELSIF m = 'type' THEN
			EXECUTE format('ALTER TABLE %s ALTER v3 TYPE bigint', w);
		ELSIF m = 'moved' THEN
			EXECUTE format('ALTER TABLE %s DROP hr, ADD hr boolean', w);
		ELSIF m = 'rls' THEN
			EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', w);
			EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', w);
			EXECUTE format('CREATE POLICY p ON %s USING (true) WITH CHECK (false)', w);
		ELSIF m = 'rule' THEN
			EXECUTE format('CREATE RULE r AS ON INSERT TO %s DO INSTEAD NOTHING', w);
		ELSIF m = 'partition' THEN
			EXECUTE format('CREATE TEMPORARY TABLE t71_wparent (LIKE %s) PARTITION BY RANGE (rn)', w);
			EXECUTE format('ALTER TABLE t71_wparent ATTACH PARTITION %s FOR VALUES FROM (0) TO (3)', w);
		ELSIF m = 'index' THEN
			EXECUTE format('CREATE INDEX ON %s (rn)', w);
			EXECUTE format('CREATE INDEX ON %s (k1)', w);
		ELSIF m = 'default' THEN
			EXECUTE format('ALTER TABLE %s ALTER hr SET DEFAULT false', w);
		END IF;
	END LOOP;
END $$;
CREATE EVENT TRIGGER t71_et ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
	EXECUTE FUNCTION t71.et();
SET SESSION AUTHORIZATION t71_owner;
CREATE TABLE t71_o.src2 (id integer PRIMARY KEY, v varchar(10), n integer);
CREATE TABLE t71_o.tgt2 (id integer PRIMARY KEY, v varchar(10), n integer);
INSERT INTO t71_o.src2 SELECT g, 'v' || g, g FROM generate_series(1, 5) AS g;
CREATE FUNCTION t71_o.same() RETURNS boolean LANGUAGE sql AS $$
	SELECT NOT EXISTS (TABLE t71_o.src2 EXCEPT TABLE t71_o.tgt2)
	   AND NOT EXISTS (TABLE t71_o.tgt2 EXCEPT TABLE t71_o.src2)
$$;
-- batch_size 2: several batches read the work table
SELECT incetl.create_pipeline('l71_ev', 't71_o.src2', 't71_o.tgt2', strategy => 'logical',
							  batch_size => 2) > 0 AS created;
CALL incetl.run('l71_ev');
UPDATE t71_o.src2 SET n = n + 1;
CALL incetl.run('l71_ev');
SELECT t71_o.same() AS same_before;
-- each mode: a change of every row, a run with the work table so altered,
-- then a plain run that catches up
CREATE FUNCTION t71_o.change(m text) RETURNS void LANGUAGE sql AS $$
	UPDATE t71.mode SET mode = m;
	UPDATE t71_o.src2 SET v = left(m || id, 10), n = n + 1;
$$;
SELECT t71_o.change('check');
SELECT left(regress.try($$CALL incetl.run('l71_ev')$$), 5) AS check_constraint;
SELECT t71_o.change('notnull');
SELECT left(regress.try($$CALL incetl.run('l71_ev')$$), 5) AS not_null;
SELECT t71_o.change('typmod');
SELECT left(regress.try($$CALL incetl.run('l71_ev')$$), 5) AS shorter_typmod;
SELECT count(*) AS long_values_in_target FROM t71_o.tgt2 WHERE v LIKE 'typmod%';
SELECT t71_o.change('rls');
SELECT left(regress.try($$CALL incetl.run('l71_ev')$$), 5) AS row_security;
SELECT t71_o.change('partition');
SELECT left(regress.try($$CALL incetl.run('l71_ev')$$), 5) AS partition_of_a_range;
UPDATE t71.mode SET mode = 'none';
CALL incetl.run('l71_ev');
SELECT t71_o.same() AS same_after_errors;
-- these succeed through the INSERT, with the right rows
SELECT t71_o.change('type');
CALL incetl.run('l71_ev');
SELECT t71_o.same() AS same_other_type;
SELECT t71_o.change('moved');
CALL incetl.run('l71_ev');
SELECT t71_o.same() AS same_moved_column;
SELECT t71_o.change('index');
CALL incetl.run('l71_ev');
SELECT t71_o.same() AS same_extra_index;
SELECT t71_o.change('default');
CALL incetl.run('l71_ev');
SELECT t71_o.same() AS same_default;
-- a rule that drops the work table's rows: the run fails (XX000, "could not
-- read the changes": the fill's INSERT did nothing), the owner's own doing;
-- the next one catches up
SELECT t71_o.change('rule');
SELECT left(regress.try($$CALL incetl.run('l71_ev')$$), 5) AS rule;
SELECT count(*) AS applied_despite_rule FROM t71_o.tgt2 WHERE v LIKE 'rule%';
UPDATE t71.mode SET mode = 'none';
UPDATE t71_o.src2 SET n = n + 1;
CALL incetl.run('l71_ev');
SELECT t71_o.same() AS same_at_end;
SELECT rolsuper FROM pg_roles WHERE rolname = 't71_owner';
SELECT incetl.drop_pipeline('l71_ev');
RESET SESSION AUTHORIZATION;
DROP EVENT TRIGGER t71_et;

\echo '-- D1. NULL keys (a nullable unique key) among rows-only changes: never inserted'
SET SESSION AUTHORIZATION t71_owner;
CREATE TABLE t71_o.nk (code text UNIQUE, v text);
ALTER TABLE t71_o.nk REPLICA IDENTITY FULL;
CREATE TABLE t71_o.nkt (code text UNIQUE, v text);
INSERT INTO t71_o.nk VALUES ('a', '1'), (NULL, 'n1');
SELECT incetl.create_pipeline('l71_nk', 't71_o.nk', 't71_o.nkt', strategy => 'logical',
							  key_columns => ARRAY['code']) > 0 AS created;
CALL incetl.run('l71_nk');
INSERT INTO t71_o.nk VALUES (NULL, 'n2'), ('b', '2');
UPDATE t71_o.nk SET v = v || 'x';
CALL incetl.run('l71_nk');
UPDATE t71_o.nk SET v = v || 'y';
CALL incetl.run('l71_nk');
SELECT code, v FROM t71_o.nkt ORDER BY code, v;
SELECT incetl.drop_pipeline('l71_nk');

\echo '-- D2. a column retyped (int -> bigint, rewritten) between decoded changes'
CREATE TABLE t71_o.rt (id integer PRIMARY KEY, n integer);
CREATE TABLE t71_o.rtt (id integer PRIMARY KEY, n bigint);
INSERT INTO t71_o.rt SELECT g, g FROM generate_series(1, 5) AS g;
SELECT incetl.create_pipeline('l71_rt', 't71_o.rt', 't71_o.rtt', strategy => 'logical') > 0 AS created;
CALL incetl.run('l71_rt');
UPDATE t71_o.rt SET n = n + 2147483000 WHERE id <= 2;
ALTER TABLE t71_o.rt ALTER n TYPE bigint;
UPDATE t71_o.rt SET n = n * 4 WHERE id = 1;
SELECT left(regress.try($$CALL incetl.run('l71_rt')$$), 5) AS run_after_retype;
-- the target holds source values (old or new), never a misread one
SELECT t.id, t.n AS target_n, s.n AS source_n FROM t71_o.rtt t JOIN t71_o.rt s USING (id) ORDER BY id;
SELECT incetl.alter_pipeline('l71_rt') IS NOT NULL AS altered;
UPDATE t71_o.rt SET n = n + 1 WHERE id = 3;
CALL incetl.run('l71_rt');
SELECT NOT EXISTS (TABLE t71_o.rt EXCEPT TABLE t71_o.rtt) AND
	   NOT EXISTS (TABLE t71_o.rtt EXCEPT TABLE t71_o.rt) AS same;
SELECT incetl.drop_pipeline('l71_rt');
RESET SESSION AUTHORIZATION;

\echo '-- C. the queue writer in a writer''s session: TOASTed keys, flushes by bytes and rows'
SET SESSION AUTHORIZATION t71_owner;
CREATE TABLE t71_o.q (k text PRIMARY KEY, v text);
CREATE TABLE t71_o.qt (k text PRIMARY KEY, v text);
ALTER TABLE t71_o.q ALTER k SET STORAGE EXTERNAL;
GRANT USAGE ON SCHEMA t71_o TO t71_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON t71_o.q TO t71_writer;
SELECT incetl.create_pipeline('q71', 't71_o.q', 't71_o.qt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('q71');
SELECT format('incetl.queue_%s', id) AS qq FROM incetl.pipelines WHERE name = 'q71' \gset
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION t71_writer;
SET search_path = t71_o, public;
-- 40 keys of ~2.5 kB (stored out of line), then 2500 short ones
INSERT INTO t71_o.q SELECT repeat(md5(g::text), 78) || g, 'long' FROM generate_series(1, 40) AS g;
INSERT INTO t71_o.q SELECT 'k' || g, 'short' FROM generate_series(1, 2500) AS g;
UPDATE t71_o.q SET k = k || 'x', v = 'moved' WHERE v = 'long';
DELETE FROM t71_o.q WHERE k IN ('k1', 'k2') OR (v = 'moved' AND k LIKE '%1x');
SELECT current_user, current_setting('search_path') AS search_path;
RESET search_path;
RESET SESSION AUTHORIZATION;
SELECT op, count(*), count(DISTINCT k1) AS keys FROM :qq GROUP BY op ORDER BY op;
SET SESSION AUTHORIZATION t71_owner;
SELECT left(regress.try(format('INSERT INTO %s (seq, k1, op) VALUES (1, %L, %L)', :'qq', 'k9', 'd')), 5) AS owner_writes_queue;
CALL incetl.run('q71');
SELECT (SELECT count(*) FROM t71_o.q) AS src_rows,
	   NOT EXISTS (TABLE t71_o.q EXCEPT TABLE t71_o.qt) AND
	   NOT EXISTS (TABLE t71_o.qt EXCEPT TABLE t71_o.q) AS same;
SELECT incetl.drop_pipeline('q71');
RESET SESSION AUTHORIZATION;

DROP SCHEMA t71_o CASCADE;
DROP SCHEMA t71_v CASCADE;
DROP SCHEMA t71 CASCADE;
DROP OWNED BY t71_owner, t71_victim, t71_writer;
DROP ROLE t71_owner, t71_victim, t71_writer;
