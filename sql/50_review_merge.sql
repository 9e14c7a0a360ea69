--
-- 50_review_merge: the MERGE apply counts what it wrote, exactly as the CTE
-- form did, and so does a first load's plain INSERT (rows read 10, written
-- 5, where a trigger cancels the rest); errors inside it (a raising target
-- trigger) leave nothing behind, in and out of a transaction block.
--
CREATE SCHEMA t50;
CREATE TABLE t50.src (id integer PRIMARY KEY, v text, ts timestamptz NOT NULL);
CREATE INDEX ON t50.src (ts, id);
INSERT INTO t50.src SELECT g, 'v' || g, '2024-01-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 10) g;
-- targets whose BEFORE ROW trigger skips the rows of even ids
CREATE FUNCTION t50.skip_even() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN IF NEW.id % 2 = 0 THEN RETURN NULL; END IF; RETURN NEW; END$$;
CREATE TABLE t50.tk (id integer PRIMARY KEY, v text, ts timestamptz);
CREATE TABLE t50.tr (LIKE t50.tk INCLUDING ALL);
CREATE TRIGGER skip BEFORE INSERT OR UPDATE ON t50.tk FOR EACH ROW EXECUTE FUNCTION t50.skip_even();
CREATE TRIGGER skip BEFORE INSERT OR UPDATE ON t50.tr FOR EACH ROW EXECUTE FUNCTION t50.skip_even();
SELECT incetl.create_pipeline('m50_k', 't50.src', 't50.tk', strategy => 'trigger',
							  batch_size => 4) > 0 AS created;
SELECT incetl.create_pipeline('m50_r', 't50.src', 't50.tr', watermark_column => 'ts',
							  batch_size => 4) > 0 AS created;
CALL incetl.run('m50_k');
CALL incetl.run('m50_r');
-- every row changes and moves up: the odd ones update, the even ones are
-- skipped by the trigger again (neither inserted nor updated: unchanged,
-- as the CTE form counted them; MERGE's own insert count had them inserted)
UPDATE t50.src SET v = v || '!', ts = ts + interval '1 day';
INSERT INTO t50.src VALUES (11, 'v11', '2024-02-01'), (12, 'v12', '2024-02-01');
CALL incetl.run('m50_k');
CALL incetl.run('m50_r');
SELECT pipeline, rows_extracted, rows_inserted, rows_updated, rows_deleted, rows_unchanged
  FROM incetl.run_log WHERE pipeline LIKE 'm50_%' ORDER BY pipeline, run_id;
-- what the targets hold: the counts above must add up to it
SELECT 'tk' AS t, count(*) AS n, count(*) FILTER (WHERE v LIKE '%!') AS changed FROM t50.tk
UNION ALL SELECT 'tr', count(*), count(*) FILTER (WHERE v LIKE '%!') FROM t50.tr;
SELECT r.pipeline, sum(r.rows_inserted) AS inserted_total
  FROM incetl.run_log r WHERE r.pipeline LIKE 'm50_%' GROUP BY r.pipeline ORDER BY 1;

-- a target trigger that raises on one row, in a later batch
DROP TRIGGER skip ON t50.tk;
DROP TRIGGER skip ON t50.tr;
CREATE FUNCTION t50.boom() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN IF NEW.v = 'boom' THEN RAISE EXCEPTION 'boom on %', NEW.id; END IF; RETURN NEW; END$$;
CREATE TRIGGER boom BEFORE INSERT OR UPDATE ON t50.tk FOR EACH ROW EXECUTE FUNCTION t50.boom();
CREATE TRIGGER boom BEFORE INSERT OR UPDATE ON t50.tr FOR EACH ROW EXECUTE FUNCTION t50.boom();
UPDATE t50.src SET v = CASE WHEN id = 9 THEN 'boom' ELSE v || '?' END,
  ts = '2024-03-01'::timestamptz + id * interval '1 minute';
\set VERBOSITY terse
CALL incetl.run('m50_k');
CALL incetl.run('m50_r');
BEGIN;
CALL incetl.run('m50_k');
ROLLBACK;
BEGIN;
CALL incetl.run('m50_r');
ROLLBACK;
\set VERBOSITY default
-- the trigger run that failed applied keys 1..8 before it (two batches,
-- committed) but took its queue entries only at its end: the next run
-- applies them again and finds them unchanged
UPDATE t50.src SET v = 'fixed' WHERE id = 9;
CALL incetl.run('m50_k');
BEGIN;
CALL incetl.run('m50_r');
COMMIT;
SELECT count(*) AS k_diff FROM ((SELECT id, v, ts FROM t50.src EXCEPT SELECT id, v, ts FROM t50.tk)
  UNION ALL (SELECT id, v, ts FROM t50.tk EXCEPT SELECT id, v, ts FROM t50.src)) d;
SELECT count(*) AS r_diff FROM ((SELECT id, v, ts FROM t50.src EXCEPT SELECT id, v, ts FROM t50.tr)
  UNION ALL (SELECT id, v, ts FROM t50.tr EXCEPT SELECT id, v, ts FROM t50.src)) d;
SELECT pipeline, status, rows_extracted, rows_inserted, rows_updated, rows_deleted, rows_unchanged
  FROM incetl.run_log WHERE pipeline LIKE 'm50_%' ORDER BY pipeline, run_id;
SELECT incetl.drop_pipeline(name) FROM incetl.pipelines WHERE name LIKE 'm50_%' ORDER BY name;
DROP SCHEMA t50 CASCADE;
