--
-- 44_explain: incetl.explain(name) lists the statements the next run
-- would execute, each with its plan, for every strategy, and writes
-- nothing: no run is logged, the target, the watermark, the hash state,
-- the trigger queue and the slot's position stay as they were, and no work
-- table is left behind.  The statements are the run's own (a run after the
-- explain applies exactly what the statements say), their plans come from
-- EXPLAIN with the parameters of the first batch, as the pipeline's owner;
-- only the owner (or a superuser) may explain a pipeline.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t44;
CREATE ROLE t44_owner;
CREATE ROLE t44_other;
GRANT USAGE, CREATE ON SCHEMA t44 TO t44_owner;
SET ROLE t44_owner;

CREATE TABLE t44.src (id integer PRIMARY KEY, v text,
					  updated_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00');
INSERT INTO t44.src (id, v) SELECT i, 'v' || i FROM generate_series(1, 20) AS i;
CREATE TABLE t44.tgt_ts (LIKE t44.src INCLUDING ALL);
CREATE TABLE t44.tgt_hash (LIKE t44.src INCLUDING ALL);
CREATE TABLE t44.tgt_trg (LIKE t44.src INCLUDING ALL);

-- the plan of each step, reduced to what does not depend on costs
CREATE FUNCTION t44.steps(p text) RETURNS TABLE (step text, kind text, planned boolean)
LANGUAGE sql AS $$
	SELECT e.step, split_part(e.statement, ' ', 1), e.plan LIKE '%(cost=%'
	FROM incetl.explain(p) AS e
$$;
-- what a run leaves behind: its log, the watermark, the hashes, the queue,
-- the target, and the session's work tables
CREATE FUNCTION t44.state(p text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	id integer := (SELECT pl.id FROM incetl.pipelines pl WHERE pl.name = p);
	hashes text;
	queued bigint;
BEGIN
	IF to_regclass('incetl.hash_state_' || id) IS NOT NULL THEN
		EXECUTE format('SELECT string_agg(k1 || '':'' || h, '','' ORDER BY k1) FROM incetl.hash_state_%s', id)
			INTO hashes;
	END IF;
	IF to_regclass('incetl.queue_' || id) IS NOT NULL THEN
		EXECUTE format('SELECT count(*) FROM incetl.queue_%s', id) INTO queued;
	END IF;
	RETURN concat_ws(' | ',
		(SELECT count(*) FROM incetl.run_log WHERE pipeline = p),
		(SELECT watermark FROM incetl.status WHERE pipeline = p),
		hashes, queued,
		(SELECT count(*) FROM pg_class WHERE relname LIKE 'incetl_work_%'
			AND relnamespace = pg_my_temp_schema()));
END;
$$;
CREATE FUNCTION t44.target(p text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	EXECUTE format('SELECT string_agg(t::text, '','' ORDER BY t.id) FROM %s t',
				   (SELECT target FROM incetl.pipelines WHERE name = p)) INTO r;
	RETURN r;
END;
$$;
CREATE TABLE t44.before (p text, s text, t text);

SELECT incetl.create_pipeline('t44 ts', 't44.src', 't44.tgt_ts',
							  watermark_column => 'updated_at', lookback => '1 hour',
							  delete_detection => 'compare') > 0 AS created;
SELECT incetl.create_pipeline('t44 hash', 't44.src', 't44.tgt_hash',
							  strategy => 'hash') > 0 AS created;
RESET ROLE;
GRANT TRIGGER ON t44.src TO t44_owner;
SET ROLE t44_owner;
SELECT incetl.create_pipeline('t44 trg', 't44.src', 't44.tgt_trg',
							  strategy => 'trigger') > 0 AS created;

-- first runs: everything is loaded
INSERT INTO t44.before SELECT name, t44.state(name), t44.target(name)
FROM incetl.pipelines WHERE name LIKE 't44%';
SELECT * FROM t44.steps('t44 ts');
SELECT * FROM t44.steps('t44 hash');
SELECT * FROM t44.steps('t44 trg');
SELECT p, t44.state(p) IS NOT DISTINCT FROM s AS state_unchanged,
	   t44.target(p) IS NOT DISTINCT FROM t AS target_unchanged
FROM t44.before ORDER BY p;

CALL incetl.run('t44 ts');
CALL incetl.run('t44 hash');
CALL incetl.run('t44 trg');
UPDATE t44.src SET v = 'w', updated_at = '2024-01-02 00:00:00+00' WHERE id <= 3;
DELETE FROM t44.src WHERE id = 20;

-- later runs: lookback and forward passes, then the compare; hashes; the queue
DELETE FROM t44.before;
INSERT INTO t44.before SELECT name, t44.state(name), t44.target(name)
FROM incetl.pipelines WHERE name LIKE 't44%';
SELECT * FROM t44.steps('t44 ts');
SELECT * FROM t44.steps('t44 hash');
SELECT * FROM t44.steps('t44 trg');
SELECT p, t44.state(p) IS NOT DISTINCT FROM s AS state_unchanged,
	   t44.target(p) IS NOT DISTINCT FROM t AS target_unchanged
FROM t44.before ORDER BY p;
SELECT op, count(*) FROM incetl.preview('t44 trg') GROUP BY op ORDER BY op;

-- the runs still find every change explain left in place
CALL incetl.run('t44 ts');
CALL incetl.run('t44 hash');
CALL incetl.run('t44 trg');
SELECT pipeline, rows_inserted, rows_updated, rows_deleted
FROM incetl.run_log WHERE pipeline LIKE 't44%' AND run_id IN
	(SELECT max(run_id) FROM incetl.run_log GROUP BY pipeline) ORDER BY pipeline;

-- another role may not; a superuser may, as the owner
SET ROLE t44_other;
SELECT * FROM incetl.explain('t44 ts');
RESET ROLE;
SELECT count(*) > 0 AS explained FROM incetl.explain('t44 hash');
SELECT * FROM incetl.explain('t44 nothing');
SELECT * FROM incetl.explain(NULL);

SELECT incetl.drop_pipeline(name) FROM incetl.pipelines WHERE name LIKE 't44%';
DROP SCHEMA t44 CASCADE;
DROP ROLE t44_owner;
DROP ROLE t44_other;
