--
-- 32_commit_errors: deferred constraints and triggers of the target (which
-- would fail only at COMMIT, and would fire as whoever commits).  A run
-- that commits per batch checks them at the end of each batch's statement,
-- as the pipeline's owner: a failing batch is a failed run, recorded with
-- its error, its watermark and counts those of the last batch that did
-- commit, and the next run resumes from there.  Inside a transaction block
-- they cannot be fired as the owner, and the run fails.
--
CREATE SCHEMA t32;
CREATE TABLE t32.src (id integer PRIMARY KEY, v text NOT NULL,
					  updated_at timestamptz NOT NULL);
CREATE TABLE t32.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
CREATE TABLE t32.bad (v text PRIMARY KEY);
-- checked at commit: a target row whose v is listed in t32.bad
CREATE FUNCTION t32.check_v() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM t32.bad WHERE bad.v = NEW.v) THEN
		RAISE EXCEPTION 'deferred check failed for id %', NEW.id;
	END IF;
	RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER check_v AFTER INSERT OR UPDATE ON t32.tgt
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION t32.check_v();
INSERT INTO t32.src SELECT g, 'v' || g, timestamptz '2024-01-01 00:00+00' + g * interval '1 minute'
  FROM generate_series(1, 5) g;
SELECT incetl.create_pipeline('commit_err', 't32.src', 't32.tgt', watermark_column => 'updated_at',
							  batch_size => 2) > 0 AS created;

\echo '-- the third batch (rows 5) fails its deferred check, the last one of the run'
INSERT INTO t32.bad VALUES ('v5');
CALL incetl.run('commit_err');
SELECT * FROM regress.last_counts('commit_err');
SELECT watermark_after FROM incetl.run_log WHERE pipeline = 'commit_err' ORDER BY run_id DESC LIMIT 1;
SELECT * FROM regress.cursor('commit_err');
SELECT id FROM t32.tgt ORDER BY id;
SELECT pipeline, last_status FROM incetl.status WHERE pipeline = 'commit_err';

\echo '-- a batch in the middle fails its deferred check: the run stops there'
UPDATE t32.src SET v = v || 'x', updated_at = updated_at + interval '1 day';
INSERT INTO t32.bad VALUES ('v3x');
CALL incetl.run('commit_err');
SELECT * FROM regress.last_counts('commit_err');
SELECT watermark_after FROM incetl.run_log WHERE pipeline = 'commit_err' ORDER BY run_id DESC LIMIT 1;
SELECT id, v FROM t32.tgt ORDER BY id;

\echo '-- once the cause is gone, the next run resumes and completes'
DELETE FROM t32.bad;
CALL incetl.run('commit_err');
SELECT * FROM regress.last_counts('commit_err');
SELECT (SELECT count(*) FROM (TABLE t32.src EXCEPT TABLE t32.tgt) a) AS missing,
	   (SELECT count(*) FROM (TABLE t32.tgt EXCEPT TABLE t32.src) b) AS extra;
SELECT status, count(*) FROM incetl.run_log WHERE pipeline = 'commit_err' GROUP BY 1 ORDER BY 1;

\echo '-- inside a transaction block, deferred triggers would fire at COMMIT, as the caller'
UPDATE t32.src SET v = v || 'y', updated_at = updated_at + interval '1 day' WHERE id = 1;
BEGIN;
CALL incetl.run('commit_err');
ROLLBACK;
SELECT id, v FROM t32.tgt WHERE id = 1;

SELECT incetl.drop_pipeline('commit_err');
DROP SCHEMA t32 CASCADE;
