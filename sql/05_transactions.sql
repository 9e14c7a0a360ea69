--
-- 05_transactions: CALL incetl.run outside a transaction block commits
-- after every batch; inside one it does all its work in the caller's
-- transaction, so ROLLBACK undoes it all (target, watermark, run_log).
-- REPEATABLE READ and SERIALIZABLE transactions are refused.
--
CREATE SCHEMA t05;
CREATE TABLE t05.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t05.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
INSERT INTO t05.src SELECT i, 'v' || i, timestamptz '2024-06-01 00:00:00+00' + i * interval '1 second'
  FROM generate_series(1, 5) AS i;
SELECT incetl.create_pipeline('tx', 't05.src', 't05.tgt', watermark_column => 'updated_at',
							  batch_size => 2) > 0 AS created;

\echo '-- BEGIN; CALL run; ROLLBACK: target, watermark and run_log as they were'
BEGIN;
CALL incetl.run('tx');
SELECT count(*) AS rows_inside FROM t05.tgt;
SELECT status, batches, extracted, inserted, wm_after FROM regress.last_run('tx');
ROLLBACK;
SELECT count(*) AS rows_after_rollback FROM t05.tgt;
SELECT * FROM regress.cursor('tx');
SELECT count(*) AS log_rows FROM incetl.run_log WHERE pipeline = 'tx';
SELECT watermark, last_run_id, last_status FROM incetl.status WHERE pipeline = 'tx';

\echo '-- inside a transaction block the whole run is one transaction'
BEGIN;
SELECT pg_current_xact_id()::text AS xid_before \gset
CALL incetl.run('tx');
-- still the same transaction: the run did not commit (its batches are
-- subtransactions of this one, which is why ROLLBACK above undid them)
SELECT pg_current_xact_id()::text = :'xid_before' AS same_transaction;
SELECT count(*) AS rows FROM t05.tgt;
SELECT status, batches, extracted, inserted, wm_after FROM regress.last_run('tx');
COMMIT;
SELECT * FROM regress.cursor('tx');

\echo '-- outside a transaction block every batch commits on its own'
SELECT incetl.reset_watermark('tx');
TRUNCATE t05.tgt;
CALL incetl.run('tx');
-- 5 rows in batches of 2, 2 and 1: three transactions wrote them
SELECT status, batches, extracted, inserted FROM regress.last_run('tx');
SELECT count(*) AS rows, count(DISTINCT xmin::text) AS writers FROM t05.tgt;
SELECT count(*) AS rows_per_writer FROM t05.tgt GROUP BY xmin ORDER BY 1 DESC;

\echo '-- a READ COMMITTED transaction block is accepted'
INSERT INTO t05.src VALUES (6, 'v6', '2024-06-01 00:01:00+00');
BEGIN ISOLATION LEVEL READ COMMITTED;
CALL incetl.run('tx');
COMMIT;
SELECT status, extracted, inserted FROM regress.last_run('tx');

\echo '-- REPEATABLE READ and SERIALIZABLE are refused, nothing is written'
INSERT INTO t05.src VALUES (7, 'v7', '2024-06-01 00:02:00+00');
BEGIN ISOLATION LEVEL REPEATABLE READ;
CALL incetl.run('tx');
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT regress.try($$CALL incetl.run('tx')$$);
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT regress.try($$CALL incetl.backfill('tx', '2024-01-01', '2025-01-01')$$);
ROLLBACK;
SELECT count(*) AS has_7 FROM t05.tgt WHERE id = 7;
SELECT * FROM regress.cursor('tx');
SELECT status, extracted, inserted FROM regress.last_run('tx');

\echo '-- default_transaction_isolation repeatable read, CALL outside a block: works'
SET default_transaction_isolation = 'repeatable read';
CALL incetl.run('tx');
RESET default_transaction_isolation;
SELECT status, extracted, inserted FROM regress.last_run('tx');
SELECT count(*) AS has_7 FROM t05.tgt WHERE id = 7;

\echo '-- a CALL from inside a function (an atomic context) runs all its batches'
INSERT INTO t05.src VALUES (8, 'v8', '2024-06-01 00:03:00+00'), (9, 'v9', '2024-06-01 00:03:00+00'),
	(10, 'v10', '2024-06-01 00:03:00+00');
SELECT regress.try($$CALL incetl.run('tx')$$);
SELECT status, batches, extracted, inserted FROM regress.last_run('tx');
SELECT count(*) AS rows_8_to_10 FROM t05.tgt WHERE id >= 8;

\echo '-- a failure inside a transaction block aborts the caller''s transaction'
INSERT INTO t05.src VALUES (11, 'v11', '2024-06-01 00:04:00+00');
ALTER TABLE t05.tgt ADD CONSTRAINT no_11 CHECK (id <> 11);
BEGIN;
CALL incetl.run('tx');
SELECT 1;
ROLLBACK;
-- its run_log row went with the transaction: the last one is still the
-- previous, successful run
SELECT status, extracted, inserted FROM regress.last_run('tx');
SELECT * FROM regress.cursor('tx');
ALTER TABLE t05.tgt DROP CONSTRAINT no_11;
CALL incetl.run('tx');
SELECT status, extracted, inserted FROM regress.last_run('tx');
SELECT count(*) AS differences FROM (SELECT * FROM t05.src EXCEPT SELECT * FROM t05.tgt) d;

SELECT incetl.drop_pipeline('tx');
DROP SCHEMA t05 CASCADE;
