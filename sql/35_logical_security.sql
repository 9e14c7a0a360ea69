--
-- 35_logical_security: a 'logical' pipeline gives its owner nothing.
--
-- lsec_mallory, a LOGIN role with REPLICATION and nothing else, owns a
-- 'logical' pipeline whose key column is a domain with a CHECK calling her
-- own plpgsql function.  Decoded keys are cast to the key type; that cast
-- runs the CHECK, and so her function, which tries ALTER ROLE lsec_mallory
-- SUPERUSER and records current_user.  Proves:
--   - the function runs as lsec_mallory only (first run, a run reading
--     changes, a preview, a run called by a superuser), and she stays a
--     plain role;
--   - the pipeline uses its slot with its owner's REPLICATION attribute,
--     not the extension owner's: a role without it cannot create a
--     'logical' pipeline (42501 with a hint, nothing left behind), and an
--     owner who loses it has runs fail with the same error, whoever calls.
--
CREATE SCHEMA lsec_sys;
CREATE ROLE lsec_mallory LOGIN REPLICATION;
CREATE ROLE lsec_plain LOGIN;
CREATE SCHEMA lsec AUTHORIZATION lsec_mallory;
CREATE SCHEMA lsec_p AUTHORIZATION lsec_plain;
CREATE TEMP TABLE slots_before AS SELECT slot_name FROM pg_replication_slots;

\echo '-- mallory: a domain key whose CHECK is her function'
SET SESSION AUTHORIZATION lsec_mallory;
CREATE TABLE lsec.seen (who name NOT NULL);
CREATE FUNCTION lsec.key_ok(k integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO lsec.seen VALUES (current_user);
	BEGIN
		ALTER ROLE lsec_mallory SUPERUSER;
	EXCEPTION WHEN OTHERS THEN
		NULL;
	END;
	RETURN k > 0;
END
$$;
CREATE DOMAIN lsec.key AS integer CHECK (lsec.key_ok(VALUE));
CREATE TABLE lsec.src (id lsec.key PRIMARY KEY, v text);
CREATE TABLE lsec.tgt (id lsec.key PRIMARY KEY, v text);
INSERT INTO lsec.src SELECT g, 'v' || g FROM generate_series(1, 6) AS g;
SELECT incetl.create_pipeline('lsec_logical', 'lsec.src', 'lsec.tgt',
							  strategy => 'logical') > 0 AS created;
CALL incetl.run('lsec_logical');
SELECT * FROM regress.last_counts('lsec_logical');
-- changes whose keys come back decoded
UPDATE lsec.src SET v = 'changed' WHERE id IN (1, 2);
DELETE FROM lsec.src WHERE id = 3;
INSERT INTO lsec.src VALUES (7, 'v7');
TRUNCATE lsec.seen;
SELECT op, key FROM incetl.preview('lsec_logical') ORDER BY op, key;
CALL incetl.run('lsec_logical');
SELECT * FROM regress.last_counts('lsec_logical');
RESET SESSION AUTHORIZATION;
-- who the key check ran as, compared with the pipeline's owner
CREATE FUNCTION lsec_sys.check_runs(OUT as_owner boolean, OUT called boolean)
RETURNS SETOF record LANGUAGE sql AS $$
	SELECT who = 'lsec_mallory', count(*) > 0 FROM lsec.seen GROUP BY 1 ORDER BY 1
$$;
SELECT * FROM lsec_sys.check_runs();
SELECT rolsuper FROM pg_roles WHERE rolname = 'lsec_mallory';

\echo '-- a superuser previews and runs her pipeline: her code still runs as her'
UPDATE lsec.src SET v = 'by superuser' WHERE id IN (4, 5);
DELETE FROM lsec.src WHERE id = 6;
TRUNCATE lsec.seen;
SELECT op, key FROM incetl.preview('lsec_logical') ORDER BY op, key;
CALL incetl.run('lsec_logical');
SELECT * FROM regress.last_counts('lsec_logical');
SELECT * FROM lsec_sys.check_runs();
SELECT rolsuper FROM pg_roles WHERE rolname = 'lsec_mallory';
SELECT (SELECT count(*) FROM (TABLE lsec.src EXCEPT TABLE lsec.tgt) a) AS missing,
	   (SELECT count(*) FROM (TABLE lsec.tgt EXCEPT TABLE lsec.src) b) AS extra;

\echo '-- the slot is used with the owner''s REPLICATION attribute'
ALTER ROLE lsec_mallory NOREPLICATION;
UPDATE lsec.src SET v = 'later' WHERE id = 1;
\set VERBOSITY default
SET SESSION AUTHORIZATION lsec_mallory;
SELECT regress.try($$CALL incetl.run('lsec_logical')$$);
SELECT regress.try($$SELECT count(*) FROM incetl.preview('lsec_logical')$$);
RESET SESSION AUTHORIZATION;
-- a superuser's own attribute does not stand in for hers
SELECT regress.try($$CALL incetl.run('lsec_logical')$$);
SELECT v FROM lsec.tgt WHERE id = 1;
ALTER ROLE lsec_mallory REPLICATION;
CALL incetl.run('lsec_logical');
SELECT * FROM regress.last_counts('lsec_logical');
SELECT v FROM lsec.tgt WHERE id = 1;

\echo '-- a role without REPLICATION cannot create a logical pipeline'
SET SESSION AUTHORIZATION lsec_plain;
CREATE TABLE lsec_p.src (id integer PRIMARY KEY, v text);
CREATE TABLE lsec_p.tgt (id integer PRIMARY KEY, v text);
SELECT regress.try($$SELECT incetl.create_pipeline('lsec_plain', 'lsec_p.src', 'lsec_p.tgt',
													strategy => 'logical')$$);
-- the other strategies need no such attribute
SELECT incetl.create_pipeline('lsec_plain_hash', 'lsec_p.src', 'lsec_p.tgt',
							  strategy => 'hash') > 0 AS created;
SELECT incetl.drop_pipeline('lsec_plain_hash');
RESET SESSION AUTHORIZATION;
\set VERBOSITY terse
SELECT count(*) AS pipelines FROM incetl.pipelines WHERE name = 'lsec_plain';

\echo '-- drop_pipeline (by its owner) drops the slot'
SELECT count(*) AS new_slots FROM pg_replication_slots
 WHERE slot_name NOT IN (SELECT slot_name FROM slots_before);
SET SESSION AUTHORIZATION lsec_mallory;
SELECT incetl.drop_pipeline('lsec_logical');
RESET SESSION AUTHORIZATION;
SELECT count(*) AS new_slots FROM pg_replication_slots
 WHERE slot_name NOT IN (SELECT slot_name FROM slots_before);

DROP SCHEMA lsec, lsec_p, lsec_sys CASCADE;
DROP ROLE lsec_mallory, lsec_plain;
