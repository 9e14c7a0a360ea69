--
-- 39_hostile_review: a hostile review's attacks, as a non-superuser
-- pipeline owner (mallory) against superusers and another owner (bob).
--
-- mallory's function t39_m.evil(what) logs who runs it (current_user and
-- whether that role is a superuser), tries to make her superuser and
-- leaves a search_path behind in the caller's session.  Every attack must
-- end with: no log row of a superuser or of bob, mallory no superuser, the
-- caller's search_path unchanged, bob's writes and runs working.
--
--   1. an inheritance child of her trigger source turned into a view
--      (CREATE RULE "_RETURN"), which incetl would read as the extension
--      owner when it queues the keys of a new member: PostgreSQL refuses to
--      convert a table that has parents
--   2. a new inheritance child with a row-level security policy calling
--      her function (FORCE ROW LEVEL SECURITY): the extension owner reads
--      its keys with row_security off, as a superuser; a read through the
--      parent applies only the parent's policies
--   3. the run's temporary work table, in a superuser's session, reached by
--      her source view's (or policy's) function during the run: she owns
--      it, so she can put a deferred constraint trigger and a rule on it,
--      or rename it to shadow a name in the caller's pg_temp; the rule runs
--      as her, PostgreSQL refuses the deferred trigger in the restricted
--      operation (her run fails), a renamed one fails her run and is still
--      dropped by OID
--   4. her hash state table, which she owns inside schema incetl, renamed to
--      the name of the capture queue of bob's next pipeline (squatting):
--      renaming needs CREATE on the schema
--   5. alter_pipeline pointing her pipeline at bob's tables; his pipeline
--      altered, dropped, run, previewed, its watermark moved by her
--   6. preview and reset_watermark of her pipeline by a superuser
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE ROLE t39_mallory NOLOGIN;
CREATE ROLE t39_bob NOLOGIN;
CREATE ROLE t39_writer NOLOGIN;
CREATE SCHEMA t39_m AUTHORIZATION t39_mallory;
CREATE SCHEMA t39_b AUTHORIZATION t39_bob;
GRANT USAGE ON SCHEMA t39_m, t39_b TO PUBLIC;
SET search_path = public;

SET ROLE t39_mallory;
CREATE TABLE t39_m.log (what text, who name, super boolean);
GRANT INSERT ON t39_m.log TO PUBLIC;
CREATE FUNCTION t39_m.evil(what text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO t39_m.log
	SELECT what, current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user;
	BEGIN
		EXECUTE 'ALTER ROLE t39_mallory SUPERUSER';
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
	PERFORM pg_catalog.set_config('search_path', 't39_m', false);
	RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION t39_m.evil(text) TO PUBLIC;
RESET ROLE;

-- the verdict, after each attack
CREATE FUNCTION t39_verdict(OUT other_roles bigint, OUT mallory_super boolean,
							OUT search_path text)
LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM t39_m.log WHERE super OR who <> 't39_mallory'),
		   (SELECT rolsuper FROM pg_roles WHERE rolname = 't39_mallory'),
		   current_setting('search_path')
$$;

-- regress.try, with pipeline ids (which depend on the files run before) masked
CREATE FUNCTION t39_try(sql text) RETURNS text
LANGUAGE sql AS $$ SELECT regexp_replace(regress.try(sql), '_[0-9]+', '_N', 'g') $$;

\echo '-- 1. an inheritance child turned into a view'
SET ROLE t39_mallory;
CREATE TABLE t39_m.src (id integer PRIMARY KEY, v text);
CREATE TABLE t39_m.tgt (id integer PRIMARY KEY, v text);
INSERT INTO t39_m.src VALUES (1, 'one');
SELECT incetl.create_pipeline('t39_inh', 't39_m.src', 't39_m.tgt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('t39_inh');
CREATE TABLE t39_m.kid () INHERITS (t39_m.src);
SELECT regress.try($$CREATE RULE "_RETURN" AS ON SELECT TO t39_m.kid DO INSTEAD
	SELECT 2 AS id, 'two'::text AS v WHERE t39_m.evil('view child')$$);
SELECT relkind FROM pg_class WHERE oid = 't39_m.kid'::regclass;
RESET ROLE;
CALL incetl.run('t39_inh');
SELECT regress.last_counts('t39_inh');
SELECT * FROM t39_verdict();
SET search_path = public;

\echo '-- 2. a new inheritance child with a policy calling her function'
SET ROLE t39_mallory;
SELECT regress.try('DROP TABLE t39_m.kid');
CREATE TABLE t39_m.kid2 (LIKE t39_m.src);
INSERT INTO t39_m.kid2 VALUES (3, 'three');
ALTER TABLE t39_m.kid2 ENABLE ROW LEVEL SECURITY;
ALTER TABLE t39_m.kid2 FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON t39_m.kid2 USING (t39_m.evil('policy on child'));
ALTER TABLE t39_m.kid2 INHERIT t39_m.src;
RESET ROLE;
CALL incetl.run('t39_inh');
SELECT regress.last_counts('t39_inh');
SELECT * FROM t39_verdict();
SET search_path = public;
-- (a read through the parent applies only the parent's policies, and the
-- extension owner, a superuser, bypasses row-level security when it reads
-- the new child's keys: her policy never ran)
SELECT DISTINCT what, who, super FROM t39_m.log ORDER BY 1;
SELECT * FROM t39_m.tgt ORDER BY id;

\echo '-- 3. the work table, reached from her source view while a superuser runs'
SET ROLE t39_mallory;
CREATE TABLE t39_m.mode (rename boolean);
INSERT INTO t39_m.mode VALUES (false);
GRANT SELECT ON t39_m.mode TO PUBLIC;
CREATE FUNCTION t39_m.tamper() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	w text;
BEGIN
	SELECT 'pg_temp.incetl_work_' || id INTO w FROM incetl.pipelines
	 WHERE pg_catalog.to_regclass('pg_temp.incetl_work_' || id) IS NOT NULL LIMIT 1;
	IF w IS NULL THEN
		RETURN true;
	END IF;
	INSERT INTO t39_m.log VALUES ('tamper sees ' || w, current_user, false);
	BEGIN
		EXECUTE format('CREATE CONSTRAINT TRIGGER t39_late AFTER INSERT OR UPDATE OR DELETE ON %s '
					   'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION t39_m.late()', w);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO t39_m.log VALUES ('constraint trigger: ' || SQLERRM, current_user, false);
	END;
	BEGIN
		EXECUTE format('CREATE RULE t39_rule AS ON INSERT TO %s DO ALSO SELECT t39_m.evil(''rule'')', w);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO t39_m.log VALUES ('rule: ' || SQLERRM, current_user, false);
	END;
	IF (SELECT rename FROM t39_m.mode) THEN
		EXECUTE format('ALTER TABLE %s RENAME TO t39_shadow', w);
	END IF;
	RETURN true;
END $$;
CREATE FUNCTION t39_m.late() RETURNS trigger
LANGUAGE plpgsql AS $$ BEGIN PERFORM t39_m.evil('deferred work trigger'); RETURN NULL; END $$;
CREATE VIEW t39_m.vsrc AS SELECT id, v FROM t39_m.src WHERE t39_m.tamper();
CREATE TABLE t39_m.vtgt (id integer PRIMARY KEY, v text);
SELECT incetl.create_pipeline('t39_view', 't39_m.vsrc', 't39_m.vtgt', strategy => 'hash',
							  key_columns => '{id}', batch_size => 1) > 0 AS created;
TRUNCATE t39_m.log;
RESET ROLE;
CALL incetl.run('t39_view');
SELECT regress.last_counts('t39_view');
SELECT * FROM t39_verdict();
SET search_path = public;
-- no table of hers is left in the superuser's pg_temp
SELECT count(*) AS left_in_pg_temp FROM pg_class
 WHERE relnamespace = pg_my_temp_schema() AND relname IN ('t39_shadow')
	OR relname LIKE 'incetl\_work\_%' AND relnamespace = pg_my_temp_schema();
-- inside a transaction block
UPDATE t39_m.src SET v = 'uno' WHERE id = 1;
BEGIN;
CALL incetl.run('t39_view');
COMMIT;
SELECT regress.last_counts('t39_view');
SELECT * FROM t39_verdict();
SET search_path = public;
SELECT DISTINCT regexp_replace(what, '[0-9]+', 'N', 'g') AS what, who FROM t39_m.log ORDER BY 1;
SELECT * FROM t39_m.vtgt ORDER BY id;
-- renaming the work table (to shadow a name in the caller's pg_temp) only
-- fails her own run, and it is dropped by OID all the same
UPDATE t39_m.mode SET rename = true;
UPDATE t39_m.src SET v = 'one' WHERE id = 1;
SELECT t39_try($$CALL incetl.run('t39_view')$$);
SELECT (regress.last_counts('t39_view')).status;
SELECT count(*) AS left_in_pg_temp FROM pg_class
 WHERE relnamespace = pg_my_temp_schema() AND relname IN ('t39_shadow')
	OR relname LIKE 'incetl\_work\_%' AND relnamespace = pg_my_temp_schema();
SELECT * FROM t39_verdict();
SET search_path = public;
UPDATE t39_m.mode SET rename = false;
-- a trigger pipeline's first run fills the work table from the source (her
-- policy calls tamper) and then from the queue (firing what tamper made)
SET ROLE t39_mallory;
SELECT incetl.drop_pipeline('t39_view');
CREATE TABLE t39_m.psrc (id integer PRIMARY KEY, v text);
CREATE TABLE t39_m.ptgt (id integer PRIMARY KEY, v text);
SELECT incetl.create_pipeline('t39_pol', 't39_m.psrc', 't39_m.ptgt', strategy => 'trigger') > 0 AS created;
INSERT INTO t39_m.psrc VALUES (1, 'one'), (2, 'two');
DELETE FROM t39_m.psrc WHERE id = 2;
ALTER TABLE t39_m.psrc ENABLE ROW LEVEL SECURITY;
ALTER TABLE t39_m.psrc FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON t39_m.psrc USING (t39_m.tamper());
TRUNCATE t39_m.log;
RESET ROLE;
CALL incetl.run('t39_pol');
SELECT regress.last_counts('t39_pol');
SELECT * FROM t39_verdict();
SET search_path = public;
SELECT DISTINCT regexp_replace(what, '[0-9]+', 'N', 'g') AS what, who FROM t39_m.log ORDER BY 1;
SET ROLE t39_mallory;
SELECT incetl.drop_pipeline('t39_pol');
INSERT INTO t39_m.psrc VALUES (2, 'two');
SELECT incetl.create_pipeline('t39_pol', 't39_m.psrc', 't39_m.ptgt', strategy => 'trigger') > 0 AS created;
DELETE FROM t39_m.psrc WHERE id = 2;
TRUNCATE t39_m.log;
RESET ROLE;
BEGIN;
CALL incetl.run('t39_pol');
COMMIT;
SELECT regress.last_counts('t39_pol');
SELECT * FROM t39_verdict();
SET search_path = public;
SELECT DISTINCT regexp_replace(what, '[0-9]+', 'N', 'g') AS what, who FROM t39_m.log ORDER BY 1;
SET ROLE t39_mallory;
SELECT incetl.create_pipeline('t39_view', 't39_m.vsrc', 't39_m.vtgt', strategy => 'hash',
							  key_columns => '{id}', batch_size => 1) > 0 AS created;
RESET ROLE;

\echo '-- 4. her hash state table renamed to the queue of the next pipeline (of bob)'
TRUNCATE t39_m.log;
SET ROLE t39_bob;
CREATE TABLE t39_b.src (id integer PRIMARY KEY, v text);
CREATE TABLE t39_b.tgt (id integer PRIMARY KEY, v text);
GRANT INSERT, UPDATE, DELETE, SELECT ON t39_b.src TO t39_writer;
RESET ROLE;
SET ROLE t39_mallory;
CREATE TABLE t39_m.hs (id integer PRIMARY KEY, v text);
CREATE TABLE t39_m.ht (id integer PRIMARY KEY, v text);
SELECT incetl.create_pipeline('t39_squat', 't39_m.hs', 't39_m.ht', strategy => 'hash') AS squat_id \gset
-- she owns a table in schema incetl, but may not rename it there (that
-- needs CREATE on the schema), nor move it, nor move a table of hers in
SELECT t39_try(format('ALTER TABLE incetl.hash_state_%s RENAME TO queue_%s', :squat_id, :squat_id + 1));
SELECT t39_try(format('ALTER TABLE t39_m.hs SET SCHEMA incetl'));
SELECT t39_try(format('ALTER TABLE incetl.hash_state_%s OWNER TO t39_bob', :squat_id));
-- had it worked, she would fit it to the queue's layout and spy on it
SELECT t39_try(format('ALTER TABLE incetl.queue_%s RENAME k1 TO seq_', :squat_id + 1));
CREATE FUNCTION t39_m.spy() RETURNS trigger
LANGUAGE plpgsql AS $$ BEGIN PERFORM t39_m.evil('squatted queue'); RETURN NULL; END $$;
SELECT t39_try(format('CREATE TRIGGER spy AFTER INSERT ON incetl.queue_%s '
						  'FOR EACH STATEMENT EXECUTE FUNCTION t39_m.spy()', :squat_id + 1));
SELECT incetl.drop_pipeline('t39_squat');
RESET ROLE;
SET ROLE t39_bob;
SELECT regress.try($$SELECT incetl.create_pipeline('t39_bob', 't39_b.src', 't39_b.tgt', strategy => 'trigger')$$);
RESET ROLE;
SET ROLE t39_writer;
SELECT regress.try($$INSERT INTO t39_b.src VALUES (1, 'bob one')$$);
RESET ROLE;
SELECT id = :squat_id + 1 AS bob_got_next_id,
	   pg_get_userbyid(c.relowner) = (SELECT pg_get_userbyid(extowner) FROM pg_extension
									   WHERE extname = 'incetl') AS queue_is_incetls
  FROM incetl.pipelines p
  LEFT JOIN pg_class c ON c.oid = to_regclass(format('incetl.queue_%s', p.id))
 WHERE p.name = 't39_bob';
SELECT what, who FROM t39_m.log ORDER BY 1;
SET ROLE t39_bob;
SELECT regress.try($$CALL incetl.run('t39_bob')$$);
SELECT * FROM t39_b.tgt ORDER BY id;
RESET ROLE;
SELECT * FROM t39_verdict();
SET search_path = public;

\echo '-- 5. alter_pipeline onto the tables of bob, and his pipeline'
SET ROLE t39_mallory;
SELECT regress.try($$SELECT incetl.alter_pipeline('t39_inh', target => 't39_b.tgt')$$);
SELECT regress.try($$SELECT incetl.alter_pipeline('t39_inh', source => 't39_b.src')$$);
SELECT regress.try($$SELECT incetl.alter_pipeline('t39_bob', enabled => false)$$);
SELECT regress.try($$SELECT incetl.drop_pipeline('t39_bob')$$);
SELECT regress.try($$SELECT incetl.set_watermark('t39_bob', NULL)$$);
SELECT regress.try($$CALL incetl.run('t39_bob')$$);
SELECT regress.try($$SELECT * FROM incetl.preview('t39_bob')$$);
SELECT count(*) AS pipelines_she_sees FROM incetl.pipelines WHERE name = 't39_bob';
RESET ROLE;

\echo '-- 6. preview and set_watermark of her pipeline by a superuser'
TRUNCATE t39_m.log;
SELECT count(*) >= 0 AS previewed FROM incetl.preview('t39_view');
SELECT regress.try($$SELECT incetl.reset_watermark('t39_view')$$);
SELECT * FROM t39_verdict();
SET search_path = public;
SELECT DISTINCT regexp_replace(what, '[0-9]+', 'N', 'g') AS what, who FROM t39_m.log ORDER BY 1;

\echo '-- writes to the source of bob still work and are captured'
SET ROLE t39_writer;
SELECT regress.try($$INSERT INTO t39_b.src VALUES (2, 'bob two')$$);
RESET ROLE;
SET ROLE t39_bob;
CALL incetl.run('t39_bob');
SELECT * FROM t39_b.tgt ORDER BY id;
RESET ROLE;

\echo '-- 7. a queue not owned by the extension owner (only a superuser can do this)'
-- bob's queue handed to mallory: a writer's capture refuses to write it as
-- her, and bob's next run replaces it (and compares the whole source)
DO $$
BEGIN
	EXECUTE format('ALTER TABLE incetl.queue_%s OWNER TO t39_mallory',
				   (SELECT id FROM incetl.pipelines WHERE name = 't39_bob'));
END
$$;
SET ROLE t39_writer;
SELECT regexp_replace(regress.try($$INSERT INTO t39_b.src VALUES (3, 'bob three')$$),
					  '(queue_|pipeline )[0-9]+', '\1N', 'g') AS captured_as_mallory;
RESET ROLE;
SET ROLE t39_bob;
CALL incetl.run('t39_bob');
RESET ROLE;
SET ROLE t39_writer;
SELECT regress.try($$INSERT INTO t39_b.src VALUES (3, 'bob three')$$);
RESET ROLE;
SET ROLE t39_bob;
CALL incetl.run('t39_bob');
SELECT * FROM t39_b.tgt ORDER BY id;
RESET ROLE;
SELECT pg_get_userbyid(c.relowner) = (SELECT pg_get_userbyid(extowner) FROM pg_extension
									   WHERE extname = 'incetl') AS queue_is_incetls_again
  FROM incetl.pipelines p JOIN pg_class c ON c.oid = to_regclass(format('incetl.queue_%s', p.id))
 WHERE p.name = 't39_bob';

-- clean up
SELECT incetl.drop_pipeline(name) FROM incetl.pipelines WHERE name LIKE 't39\_%' ORDER BY name;
DROP FUNCTION t39_verdict();
DROP FUNCTION t39_try(text);
DROP SCHEMA t39_m, t39_b CASCADE;
DROP ROLE t39_mallory, t39_bob, t39_writer;
SELECT count(*) AS left_in_incetl FROM pg_class
 WHERE relnamespace = 'incetl'::regnamespace AND relname ~ '^(queue|hash_state)_';
