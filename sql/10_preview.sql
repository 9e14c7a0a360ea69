--
-- 10_preview: incetl.preview(name, max_rows) lists exactly the inserts and
-- updates the next run will do, as (op, key jsonb), honours max_rows, and
-- writes nothing: not the target, not the watermark, not run_log.
--
CREATE SCHEMA t10;
CREATE TABLE t10.src (a integer, b text, v text, updated_at timestamptz NOT NULL, PRIMARY KEY (a, b));
-- the target has no updated_at: a row whose timestamp alone moved is equal
CREATE TABLE t10.tgt (a integer, b text, v text, PRIMARY KEY (a, b));
INSERT INTO t10.src SELECT i, 'k' || i, 'v' || i, timestamptz '2024-10-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 6) AS i;
SELECT incetl.create_pipeline('pv', 't10.src', 't10.tgt', watermark_column => 'updated_at',
							  on_schema_change => 'ignore', batch_size => 4) > 0 AS created;

\echo '-- before the first run: every row is an insert'
SELECT * FROM incetl.preview('pv') ORDER BY key->>'a';
SELECT count(*) FROM incetl.preview('pv', NULL);
SELECT count(*) FROM incetl.preview('pv', 4);
SELECT count(*) FROM incetl.preview('pv', 0);
SELECT count(*) FROM incetl.preview('pv', 100);
-- nothing was written
SELECT count(*) AS target_rows FROM t10.tgt;
SELECT * FROM regress.cursor('pv');
SELECT count(*) AS log_rows FROM incetl.run_log WHERE pipeline = 'pv';
CALL incetl.run('pv');
SELECT status, inserted FROM regress.last_run('pv') AS r(kind, status, batches, extracted, inserted);

\echo '-- 2 updates, 2 inserts, 1 row whose timestamp alone moved, 1 untouched'
UPDATE t10.src SET v = 'changed', updated_at = '2024-10-02 00:00:00+00' WHERE a IN (2, 5);
UPDATE t10.src SET updated_at = '2024-10-02 00:00:00+00' WHERE a = 3;
INSERT INTO t10.src VALUES (7, 'k7', 'v7', '2024-10-02 00:00:00+00'), (0, 'k0', 'v0', '2024-10-02 00:00:01+00');
CREATE TEMP TABLE t0 AS SELECT a, b, xmin::text AS x, ctid AS c FROM t10.tgt;
CREATE TEMP TABLE s0 AS SELECT s.*, s.xmin::text AS x FROM incetl.state s
  JOIN incetl.pipelines p ON p.id = s.pipeline_id WHERE p.name = 'pv';
CREATE TEMP TABLE l0 AS SELECT count(*) AS n, max(run_id) AS last FROM incetl.run_log;

CREATE TEMP TABLE pv AS SELECT * FROM incetl.preview('pv');
SELECT * FROM pv ORDER BY op, key->>'a';
SELECT count(*) AS one_of_them FROM incetl.preview('pv', 1) AS p WHERE (p.op, p.key) IN (SELECT op, key FROM pv);
SELECT count(*) FROM incetl.preview('pv', 3);

\echo '-- preview wrote nothing'
SELECT count(*) AS target_rows_rewritten FROM t10.tgt t JOIN t0 USING (a, b)
 WHERE t.xmin::text <> t0.x OR t.ctid <> t0.c;
SELECT count(*) AS state_changed FROM incetl.state s JOIN s0 ON s0.pipeline_id = s.pipeline_id
 WHERE s.xmin::text <> s0.x OR s.watermark IS DISTINCT FROM s0.watermark;
SELECT (SELECT count(*) FROM incetl.run_log) = l0.n AS run_log_unchanged FROM l0;

\echo '-- the run does exactly what preview said'
CALL incetl.run('pv');
SELECT extracted, inserted, updated, unchanged FROM regress.last_run('pv');
-- rows the run inserted or rewrote, as preview would name them
CREATE TEMP TABLE done AS
SELECT CASE WHEN t0.a IS NULL THEN 'insert' ELSE 'update' END AS op,
	   jsonb_build_object('a', t.a, 'b', t.b) AS key
  FROM t10.tgt t LEFT JOIN t0 USING (a, b)
 WHERE t0.a IS NULL OR t.xmin::text <> t0.x;
SELECT count(*) AS previewed_not_done FROM (SELECT * FROM pv EXCEPT SELECT * FROM done) d;
SELECT count(*) AS done_not_previewed FROM (SELECT * FROM done EXCEPT SELECT * FROM pv) d;
-- and after the run there is nothing left to do
SELECT count(*) FROM incetl.preview('pv');

\echo '-- several versions of a key and a lower sequence: listed as the run will apply them'
CREATE TABLE t10.log (id integer NOT NULL, v text, seq integer, updated_at timestamptz NOT NULL);
CREATE TABLE t10.latest (id integer PRIMARY KEY, v text, seq integer, updated_at timestamptz);
INSERT INTO t10.latest VALUES (1, 'v1 seq 5', 5, '2024-10-01 00:00:00+00');
INSERT INTO t10.log VALUES
	(1, 'stale', 4, '2024-10-01 00:00:01+00'),		-- lower seq than the target: nothing to do
	(2, 'a', 1, '2024-10-01 00:00:02+00'),
	(2, 'b', 2, '2024-10-01 00:00:03+00'),			-- two versions, one insert
	(3, 'same', 1, '2024-10-01 00:00:04+00');
INSERT INTO t10.latest VALUES (3, 'same', 1, '2024-10-01 00:00:04+00');	-- equal: nothing to do
SELECT incetl.create_pipeline('pv_log', 't10.log', 't10.latest', watermark_column => 'updated_at',
							  sequence_column => 'seq') > 0 AS created;
SELECT * FROM incetl.preview('pv_log');
CALL incetl.run('pv_log');
SELECT extracted, inserted, updated, unchanged FROM regress.last_run('pv_log');
SELECT * FROM t10.latest ORDER BY id;

SELECT incetl.drop_pipeline('pv');
SELECT incetl.drop_pipeline('pv_log');
DROP SCHEMA t10 CASCADE;
