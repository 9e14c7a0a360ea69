--
-- 01_basic: the 'timestamp' strategy end to end.  A first run loads
-- everything; a second run after 3 updates and 2 inserts moves exactly those
-- 5 rows; the target equals the source; the etl_* columns are filled; the
-- catalog, run_log and status show what happened.
--
CREATE SCHEMA t01;
CREATE TABLE t01.src (
	id integer PRIMARY KEY,
	name text NOT NULL,
	amount numeric(10,2),
	updated_at timestamptz NOT NULL
);
CREATE TABLE t01.tgt (
	id integer PRIMARY KEY,
	name text,
	amount numeric(10,2),
	updated_at timestamptz,
	etl_inserted_at timestamptz,
	etl_updated_at timestamptz,
	etl_run_id bigint
);
INSERT INTO t01.src
SELECT i, 'name ' || i, i * 1.5, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 20) AS i;

SELECT incetl.create_pipeline('basic', source => 't01.src', target => 't01.tgt',
							  watermark_column => 'updated_at') > 0 AS created;

-- the catalog row: defaults of the contract, the key from the source's
-- primary key, the creator as owner
SELECT name, source, target, strategy, key_columns, watermark_column, lookback,
	   sequence_column, delete_detection, delete_flag_column, delete_mode,
	   soft_delete_column, hash_algorithm, batch_size, on_schema_change, enabled,
	   owner::text = current_user AS owner_is_me, created_at IS NOT NULL AS has_created_at
  FROM incetl.pipelines WHERE name = 'basic';
-- nothing read yet
SELECT * FROM regress.cursor('basic');
SELECT pipeline, strategy, enabled, watermark, last_run_id, last_status, last_error,
	   lag, retained_wal_bytes
  FROM incetl.status WHERE pipeline = 'basic';

\echo '-- first run: loads all 20 rows in one batch'
CALL incetl.run('basic');
SELECT * FROM regress.last_run('basic');
SELECT * FROM regress.cursor('basic');
SELECT count(*) FROM t01.tgt;
-- target equals source, both ways
SELECT 'missing' AS side, * FROM (SELECT id, name, amount, updated_at FROM t01.src
								  EXCEPT SELECT id, name, amount, updated_at FROM t01.tgt) a
UNION ALL
SELECT 'extra', * FROM (SELECT id, name, amount, updated_at FROM t01.tgt
						EXCEPT SELECT id, name, amount, updated_at FROM t01.src) b;
-- etl_* columns: set on insert, the run that wrote the row
SELECT count(*) AS rows,
	   count(*) FILTER (WHERE etl_inserted_at IS NOT NULL) AS with_inserted_at,
	   count(*) FILTER (WHERE etl_updated_at = etl_inserted_at) AS updated_eq_inserted,
	   count(*) FILTER (WHERE etl_run_id = (SELECT max(run_id) FROM incetl.run_log
											WHERE pipeline = 'basic')) AS with_run_id
  FROM t01.tgt;
-- the run_log row: the caller, finished after it started
SELECT run_by = current_user AS run_by_me, pid = pg_backend_pid() AS my_pid,
	   finished_at >= started_at AS finished_after_start,
	   pipeline_id = (SELECT id FROM incetl.pipelines WHERE name = 'basic') AS pipeline_id_ok
  FROM incetl.run_log WHERE pipeline = 'basic';

CREATE TEMP TABLE before1 AS
SELECT id, etl_inserted_at, etl_updated_at, etl_run_id FROM t01.tgt;

\echo '-- 3 updates and 2 inserts: the second run moves exactly those 5 rows'
UPDATE t01.src SET name = name || ' (changed)', updated_at = timestamptz '2024-01-02 00:00:00+00' + id * interval '1 second'
 WHERE id IN (3, 7, 11);
INSERT INTO t01.src VALUES
	(21, 'name 21', 31.5, '2024-01-02 00:01:00+00'),
	(22, 'name 22', 33, '2024-01-02 00:01:00+00');
CALL incetl.run('basic');
SELECT * FROM regress.last_run('basic');
-- the cursor is the last row read: (timestamp, key)
SELECT * FROM regress.cursor('basic');
SELECT count(*) FROM t01.tgt;
SELECT 'missing' AS side, * FROM (SELECT id, name, amount, updated_at FROM t01.src
								  EXCEPT SELECT id, name, amount, updated_at FROM t01.tgt) a
UNION ALL
SELECT 'extra', * FROM (SELECT id, name, amount, updated_at FROM t01.tgt
						EXCEPT SELECT id, name, amount, updated_at FROM t01.src) b;

-- the rows the second run wrote carry its run id and a newer etl_updated_at;
-- updated rows keep their etl_inserted_at; untouched rows keep everything
SELECT t.id,
	   t.etl_run_id = (SELECT max(run_id) FROM incetl.run_log WHERE pipeline = 'basic') AS by_second_run,
	   b.id IS NULL AS new_row,
	   t.etl_inserted_at = b.etl_inserted_at AS kept_inserted_at,
	   t.etl_updated_at > b.etl_updated_at AS newer_updated_at,
	   t.etl_updated_at = t.etl_inserted_at AS updated_eq_inserted
  FROM t01.tgt t LEFT JOIN before1 b USING (id)
 WHERE t.id IN (3, 7, 11, 21, 22)
 ORDER BY t.id;
SELECT count(*) AS untouched_rows_unchanged
  FROM t01.tgt t JOIN before1 b USING (id)
 WHERE t.id NOT IN (3, 7, 11)
   AND t.etl_inserted_at = b.etl_inserted_at
   AND t.etl_updated_at = b.etl_updated_at
   AND t.etl_run_id = b.etl_run_id;

-- two runs logged, both succeeded
SELECT kind, status, batches, rows_extracted, rows_inserted, rows_updated,
	   rows_deleted, rows_unchanged
  FROM incetl.run_log WHERE pipeline = 'basic' ORDER BY run_id;

-- status: the last run, its watermark, the lag behind now()
SELECT pipeline, strategy, enabled, watermark,
	   last_run_id = (SELECT max(run_id) FROM incetl.run_log WHERE pipeline = 'basic') AS last_run_id_ok,
	   last_status, last_started_at IS NOT NULL AS has_started_at,
	   last_finished_at >= last_started_at AS finished_after_start,
	   last_error, lag = now() - timestamptz '2024-01-02 00:01:00+00' AS lag_ok,
	   retained_wal_bytes
  FROM incetl.status WHERE pipeline = 'basic';

\echo '-- a NULL watermark is never read (documented limitation: use reconcile)'
CREATE TABLE t01.src_null (id integer PRIMARY KEY, v text, updated_at timestamptz);
CREATE TABLE t01.tgt_null (id integer PRIMARY KEY, v text, updated_at timestamptz);
INSERT INTO t01.src_null VALUES (1, 'a', '2024-01-01 00:00:00+00'), (2, 'b', NULL);
SELECT incetl.create_pipeline('basic_null', 't01.src_null', 't01.tgt_null',
							  watermark_column => 'updated_at') > 0 AS created;
CALL incetl.run('basic_null');
SELECT id, v FROM t01.tgt_null ORDER BY id;
SELECT status, extracted, inserted FROM regress.last_run('basic_null') AS r(kind, status, batches, extracted, inserted);
SELECT incetl.drop_pipeline('basic_null');

\echo '-- drop_pipeline removes the catalog row and the state, keeps run_log'
SELECT incetl.drop_pipeline('basic');
SELECT count(*) AS pipelines FROM incetl.pipelines WHERE name LIKE 'basic%';
SELECT count(*) AS states FROM incetl.state s
 WHERE NOT EXISTS (SELECT 1 FROM incetl.pipelines p WHERE p.id = s.pipeline_id);
SELECT count(*) AS log_rows FROM incetl.run_log WHERE pipeline LIKE 'basic%';
SELECT count(*) AS status_rows FROM incetl.status WHERE pipeline LIKE 'basic%';
-- the target is left alone
SELECT count(*) FROM t01.tgt;
DROP SCHEMA t01 CASCADE;
