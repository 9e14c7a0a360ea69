--
-- 40_batch_ties: rows whose (watermark, key) is not unique in the source
-- (an append-only log with several versions of a key told apart by
-- sequence_column, a view, a foreign table) at a batch edge.  The next
-- batch starts above the last (watermark, key) of a batch, so a batch takes
-- every row tied with its last one (locally FETCH FIRST ... WITH TIES; over
-- postgres_fdw the first batch_size rows, shipped with their LIMIT, plus a
-- probe for the ties): with batch_size 1, two versions of key 1 written in
-- one transaction both reach the batch and the newer one wins.
--
CREATE SCHEMA t40t;
CREATE TABLE t40t.log (id integer NOT NULL, version integer NOT NULL, v text,
					   updated_at timestamptz NOT NULL);
CREATE INDEX ON t40t.log (updated_at, id);
CREATE TABLE t40t.latest (id integer PRIMARY KEY, version integer, v text, updated_at timestamptz);
SELECT incetl.create_pipeline('ties_log', 't40t.log', 't40t.latest', key_columns => '{id}',
							  watermark_column => 'updated_at', sequence_column => 'version',
							  batch_size => 1) > 0 AS created;

\echo '-- one transaction: three versions of key 1 and one of key 2, one timestamp'
INSERT INTO t40t.log VALUES
	(1, 1, 'one v1', '2024-06-01 10:00:00+00'),
	(1, 2, 'one v2', '2024-06-01 10:00:00+00'),
	(1, 3, 'one v3', '2024-06-01 10:00:00+00'),
	(2, 1, 'two v1', '2024-06-01 10:00:00+00');
CALL incetl.run('ties_log');
-- all 4 rows read: the batch of key 1 took its 3 tied rows; 2 versions of
-- key 1 were superseded
SELECT * FROM regress.last_run('ties_log');
SELECT * FROM t40t.latest ORDER BY id;

\echo '-- later versions of key 1 tied with a version of key 2 at one timestamp'
INSERT INTO t40t.log VALUES
	(1, 4, 'one v4', '2024-06-01 11:00:00+00'),
	(2, 2, 'two v2', '2024-06-01 11:00:00+00'),
	(1, 5, 'one v5', '2024-06-01 11:00:00+00'),
	(2, 3, 'two v3', '2024-06-01 11:00:00+00');
CALL incetl.run('ties_log');
SELECT * FROM regress.last_run('ties_log');
SELECT * FROM t40t.latest ORDER BY id;
-- a re-run reads nothing
CALL incetl.run('ties_log');
SELECT batches, extracted FROM regress.last_run('ties_log');

\echo '-- a view as source: never assumed unique'
CREATE VIEW t40t.log_v AS SELECT id, version, v, updated_at FROM t40t.log;
CREATE TABLE t40t.latest_v (LIKE t40t.latest INCLUDING ALL);
SELECT incetl.create_pipeline('ties_view', 't40t.log_v', 't40t.latest_v', key_columns => '{id}',
							  watermark_column => 'updated_at', sequence_column => 'version',
							  batch_size => 2) > 0 AS created;
CALL incetl.run('ties_view');
SELECT * FROM regress.last_run('ties_view');
SELECT * FROM t40t.latest_v ORDER BY id;

\echo '-- a backfill and a lookback pass read ties the same way'
DELETE FROM t40t.latest_v;
CALL incetl.backfill('ties_view', '2024-06-01 00:00:00+00', '2024-06-02 00:00:00+00');
SELECT kind, batches, extracted, inserted, updated, unchanged FROM regress.last_run('ties_view');
SELECT * FROM t40t.latest_v ORDER BY id;
SELECT incetl.alter_pipeline('ties_view', lookback => '2 hours', batch_size => 1);
UPDATE t40t.latest_v SET v = 'damaged';
CALL incetl.run('ties_view');
SELECT batches, extracted, inserted, updated, unchanged FROM regress.last_run('ties_view');
SELECT * FROM t40t.latest_v ORDER BY id;

\echo '-- a foreign table (postgres_fdw, loopback): batch_size rows plus the ties'
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
DO $$
BEGIN
	EXECUTE format('CREATE SERVER t40t_loopback FOREIGN DATA WRAPPER postgres_fdw '
				   'OPTIONS (host %L, port %L, dbname %L)',
				   split_part(current_setting('unix_socket_directories'), ',', 1),
				   current_setting('port'), current_database());
END;
$$;
CREATE USER MAPPING FOR CURRENT_USER SERVER t40t_loopback;
CREATE FOREIGN TABLE t40t.log_ft (id integer NOT NULL, version integer NOT NULL, v text,
								  updated_at timestamptz NOT NULL)
	SERVER t40t_loopback OPTIONS (schema_name 't40t', table_name 'log');
CREATE TABLE t40t.latest_ft (LIKE t40t.latest INCLUDING ALL);
SELECT incetl.create_pipeline('ties_ft', 't40t.log_ft', 't40t.latest_ft', key_columns => '{id}',
							  watermark_column => 'updated_at', sequence_column => 'version',
							  batch_size => 1) > 0 AS created;
CALL incetl.run('ties_ft');
SELECT * FROM regress.last_run('ties_ft');
SELECT * FROM t40t.latest_ft ORDER BY id;
INSERT INTO t40t.log VALUES
	(1, 6, 'one v6', '2024-06-01 12:00:00+00'),
	(1, 7, 'one v7', '2024-06-01 12:00:00+00'),
	(3, 1, 'three v1', '2024-06-01 12:00:00+00');
CALL incetl.run('ties_ft');
SELECT * FROM regress.last_run('ties_ft');
SELECT * FROM t40t.latest_ft ORDER BY id;

SELECT incetl.drop_pipeline('ties_log');
SELECT incetl.drop_pipeline('ties_view');
SELECT incetl.drop_pipeline('ties_ft');
SET client_min_messages = warning;
DROP SCHEMA t40t CASCADE;
DROP SERVER t40t_loopback CASCADE;
RESET client_min_messages;
