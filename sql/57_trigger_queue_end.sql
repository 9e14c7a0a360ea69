--
-- 57_trigger_queue_end: a 'trigger' run takes the queue entries it copied
-- at its end: by TRUNCATE when at least incetl.queue_truncate_min are left,
-- the queue holds only those and the run is not inside a transaction block
-- (whose caller would hold the queue's lock against every writer until it
-- ends), else by deleting them; and every 4 batches, those they applied.
-- A run that fails leaves the entries of the batches since.
--
SET incetl.queue_truncate_min = 1;
CREATE SCHEMA t57;
CREATE TABLE t57.src (id integer PRIMARY KEY, v text NOT NULL);
CREATE TABLE t57.tgt (id integer PRIMARY KEY, v text NOT NULL);
SELECT incetl.create_pipeline('q57', 't57.src', 't57.tgt', strategy => 'trigger',
							  batch_size => 3) > 0 AS created;
CALL incetl.run('q57');
CREATE FUNCTION t57.queue() RETURNS regclass LANGUAGE sql AS
$$SELECT pg_catalog.format('incetl.queue_%s', id)::regclass FROM incetl.pipelines WHERE name = 'q57'$$;
CREATE FUNCTION t57.queued() RETURNS bigint LANGUAGE plpgsql AS
$$DECLARE n bigint; BEGIN EXECUTE 'SELECT count(*) FROM ' || t57.queue() INTO n; RETURN n; END$$;
CREATE TABLE t57.file AS SELECT pg_catalog.pg_relation_filenode(t57.queue()) AS f;
CREATE FUNCTION t57.new_file() RETURNS boolean LANGUAGE sql AS
$$UPDATE t57.file SET f = pg_catalog.pg_relation_filenode(t57.queue())
  WHERE f IS DISTINCT FROM pg_catalog.pg_relation_filenode(t57.queue()) RETURNING true$$;

-- inside a transaction block: deleted, the queue keeps its file
INSERT INTO t57.src SELECT g, 'v' || g FROM generate_series(1, 10) g;
SELECT t57.queued() AS queued;
BEGIN;
CALL incetl.run('q57');
COMMIT;
SELECT t57.queued() AS queued, coalesce(t57.new_file(), false) AS truncated;

-- on its own: truncated
UPDATE t57.src SET v = v || '!' WHERE id <= 7;
CALL incetl.run('q57');
SELECT t57.queued() AS queued, coalesce(t57.new_file(), false) AS truncated;

-- a run that fails in its last batch leaves every entry (the batches
-- before it committed, fewer than 4), and the next run applies them again
CREATE FUNCTION t57.boom() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN IF NEW.v = 'boom' THEN RAISE EXCEPTION 'boom on %', NEW.id; END IF; RETURN NEW; END$$;
CREATE TRIGGER boom BEFORE INSERT OR UPDATE ON t57.tgt FOR EACH ROW EXECUTE FUNCTION t57.boom();
UPDATE t57.src SET v = CASE id WHEN 10 THEN 'boom' ELSE v || '?' END;
\set VERBOSITY terse
CALL incetl.run('q57');
\set VERBOSITY default
SELECT t57.queued() AS queued, coalesce(t57.new_file(), false) AS truncated;
UPDATE t57.src SET v = 'fixed' WHERE id = 10;
CALL incetl.run('q57');
SELECT t57.queued() AS queued, coalesce(t57.new_file(), false) AS truncated;
SELECT status, batches, rows_extracted, rows_updated, rows_unchanged
  FROM incetl.run_log WHERE pipeline = 'q57' ORDER BY run_id;
SELECT count(*) AS differ FROM ((TABLE t57.src EXCEPT TABLE t57.tgt)
  UNION ALL (TABLE t57.tgt EXCEPT TABLE t57.src)) d;


-- fewer entries than incetl.queue_truncate_min: deleted
RESET incetl.queue_truncate_min;
UPDATE t57.src SET v = v || '.' WHERE id <= 3;
CALL incetl.run('q57');
SELECT t57.queued() AS queued, coalesce(t57.new_file(), false) AS truncated;

-- 7 batches failing in the last: the entries of the first 4 went with the
-- 4th; the next run applies the 9 keys of batches 5 to 7 again
SET incetl.queue_truncate_min = 1;
INSERT INTO t57.src SELECT g, 'v' || g FROM generate_series(11, 21) g;
CALL incetl.run('q57');
UPDATE t57.src SET v = CASE id WHEN 21 THEN 'boom' ELSE v || '+' END;
\set VERBOSITY terse
CALL incetl.run('q57');
\set VERBOSITY default
SELECT t57.queued() AS queued;
UPDATE t57.src SET v = 'fixed again' WHERE id = 21;
CALL incetl.run('q57');
SELECT t57.queued() AS queued, coalesce(t57.new_file(), false) AS truncated;
SELECT status, batches, rows_extracted, rows_updated, rows_unchanged
  FROM incetl.run_log WHERE pipeline = 'q57' ORDER BY run_id DESC LIMIT 2;
SELECT count(*) AS differ FROM ((TABLE t57.src EXCEPT TABLE t57.tgt)
  UNION ALL (TABLE t57.tgt EXCEPT TABLE t57.src)) d;

SELECT incetl.drop_pipeline('q57');
DROP SCHEMA t57 CASCADE;
