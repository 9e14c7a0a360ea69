--
-- 51_review_merge_owner: the MERGE apply, run by a superuser, of a pipeline
-- owned by a plain role whose target has a trigger of hers and row-level
-- security forced on her.  Her trigger runs as her, restricted; whatever
-- it SETs stays out of the caller's session.  An UPDATE policy that hides
-- some rows from her: the CTE form skipped their updates silently (counted
-- unchanged, the target left behind the source); MERGE raises (PostgreSQL
-- applies MERGE's UPDATE USING policies as checks).  A change of behaviour
-- (louder, not less exact), recorded here.
--
CREATE ROLE t51_owner NOLOGIN;
CREATE SCHEMA t51 AUTHORIZATION t51_owner;
SET search_path = public;
SET ROLE t51_owner;
CREATE TABLE t51.src (id integer PRIMARY KEY, v text, ts timestamptz NOT NULL);
CREATE INDEX ON t51.src (ts, id);
INSERT INTO t51.src SELECT g, 'v' || g, '2024-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 6) g;
CREATE TABLE t51.tgt (id integer PRIMARY KEY, v text, ts timestamptz);
CREATE FUNCTION t51.who() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id = 1 THEN
		RAISE NOTICE 'trigger as %', current_user;
		PERFORM pg_catalog.set_config('search_path', 't51', false);
		PERFORM pg_catalog.set_config('work_mem', '1234kB', false);
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER who BEFORE INSERT OR UPDATE ON t51.tgt FOR EACH ROW EXECUTE FUNCTION t51.who();
SELECT incetl.create_pipeline('m51', 't51.src', 't51.tgt', strategy => 'trigger',
							  batch_size => 4) > 0 AS created;
RESET ROLE;
CALL incetl.run('m51');
UPDATE t51.src SET v = v || '!';
SET work_mem = '4MB';
CALL incetl.run('m51');
SHOW search_path;
SHOW work_mem;
SELECT current_user = session_user AS caller_is_himself;
SELECT rows_extracted, rows_inserted, rows_updated, rows_unchanged
  FROM incetl.run_log WHERE pipeline = 'm51' ORDER BY run_id;

-- row-level security forced on her: she may not update rows of even ids
SET ROLE t51_owner;
ALTER TABLE t51.tgt ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY sel ON t51.tgt FOR SELECT USING (true);
CREATE POLICY ins ON t51.tgt FOR INSERT WITH CHECK (true);
CREATE POLICY del ON t51.tgt FOR DELETE USING (true);
CREATE POLICY upd ON t51.tgt FOR UPDATE USING (id % 2 = 1);
RESET ROLE;
UPDATE t51.src SET v = v || '?';
\set VERBOSITY terse
CALL incetl.run('m51');
\set VERBOSITY default
SELECT status, rows_extracted, rows_inserted, rows_updated, rows_unchanged
  FROM incetl.run_log WHERE pipeline = 'm51' ORDER BY run_id DESC LIMIT 1;
SELECT incetl.drop_pipeline('m51');
DROP SCHEMA t51 CASCADE;
DROP ROLE t51_owner;
