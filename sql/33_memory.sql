--
-- 33_memory: a run's memory does not grow with its number of batches.
--
-- A statement trigger on the target records the backend's memory (all its
-- memory contexts) at every batch of a run of 600 one-row batches; the
-- growth between batch 100 and the end must stay below 128 kB, what 500
-- batches would leak at 256 bytes each (0.1 leaked about 2 kB a batch).
--
CREATE SCHEMA t33;
CREATE TABLE t33.src (id integer PRIMARY KEY, v text NOT NULL,
					  updated_at timestamptz NOT NULL);
CREATE TABLE t33.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
CREATE TABLE t33.tgt_hash (LIKE t33.tgt INCLUDING ALL);
CREATE TABLE t33.mem (n serial, what text, bytes bigint);
CREATE FUNCTION t33.record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO t33.mem (what, bytes)
	SELECT TG_ARGV[0], sum(total_bytes) FROM pg_backend_memory_contexts;
	RETURN NULL;
END;
$$;
CREATE TRIGGER mem AFTER INSERT ON t33.tgt FOR EACH STATEMENT EXECUTE FUNCTION t33.record('ts');
CREATE TRIGGER mem AFTER INSERT ON t33.tgt_hash FOR EACH STATEMENT EXECUTE FUNCTION t33.record('hash');
INSERT INTO t33.src SELECT g, 'v' || g, timestamptz '2024-01-01 00:00+00' + g * interval '1 second'
  FROM generate_series(1, 600) g;
SELECT incetl.create_pipeline('mem_ts', 't33.src', 't33.tgt', watermark_column => 'updated_at',
							  batch_size => 1) > 0 AS created;
SELECT incetl.create_pipeline('mem_hash', 't33.src', 't33.tgt_hash', strategy => 'hash',
							  batch_size => 1) > 0 AS created;
CALL incetl.run('mem_ts');
CALL incetl.run('mem_hash');
SELECT pipeline, status, batches, rows_inserted FROM incetl.run_log
 WHERE pipeline IN ('mem_ts', 'mem_hash') ORDER BY run_id;

-- the batches' statements (one trigger call each, in order): growth from the
-- 100th to the last
SELECT what, count(*) AS batches,
	   (max(bytes) FILTER (WHERE rn > 500) - max(bytes) FILTER (WHERE rn BETWEEN 50 AND 100))
		   < 128 * 1024 AS flat
  FROM (SELECT what, bytes, row_number() OVER (PARTITION BY what ORDER BY n) AS rn FROM t33.mem) m
 GROUP BY what ORDER BY what;

SELECT incetl.drop_pipeline('mem_ts');
SELECT incetl.drop_pipeline('mem_hash');
DROP SCHEMA t33 CASCADE;
