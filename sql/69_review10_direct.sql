--
-- 69_review10_direct: a hostile review of the three paths that bypass the
-- executor: the capture's queue writer (table_multi_insert), the run's
-- direct index probe, and run_log's row by ExecSimpleRelationInsert.
-- Each must do exactly what the statement it replaces would have done.
--
SET incetl.late_commit_margin = 0;
CREATE SCHEMA t69;

\echo '-- queue writer: numeric keys equal but not byte-equal, NULL-free composite keys'
CREATE TABLE t69.n (k numeric PRIMARY KEY, v text);
CREATE TABLE t69.nt (k numeric PRIMARY KEY, v text);
INSERT INTO t69.n SELECT i, 'v' FROM generate_series(1, 10) AS i;
SELECT incetl.create_pipeline('n69', 't69.n', 't69.nt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('n69');
SELECT format('incetl.queue_%s', id) AS nq FROM incetl.pipelines WHERE name = 'n69' \gset
-- 1 -> 1.0 (equal, not byte-equal): the old key queued too; 2..10 -> +100
UPDATE t69.n SET k = CASE WHEN k = 1 THEN 1.0 ELSE k + 100 END;
SELECT op, count(*) FROM :nq GROUP BY op ORDER BY op;
CALL incetl.run('n69');
SELECT * FROM regress.differ('t69.n', 't69.nt');
SELECT k::text FROM t69.nt WHERE k = 1;

\echo '-- queue writer: savepoints rolled back leave no entry, kept ones stay'
BEGIN;
INSERT INTO t69.n VALUES (500, 'kept');
SAVEPOINT a;
INSERT INTO t69.n SELECT i, 'gone' FROM generate_series(1000, 1100) AS i;
DELETE FROM t69.n WHERE k = 500;
ROLLBACK TO SAVEPOINT a;
SAVEPOINT b;
UPDATE t69.n SET v = 'sub' WHERE k = 500;
RELEASE SAVEPOINT b;
COMMIT;
SELECT op, count(*) FROM :nq GROUP BY op ORDER BY op;
CALL incetl.run('n69');
SELECT * FROM regress.differ('t69.n', 't69.nt');

\echo '-- queue writer: a serializable writer, and a statement in a read-only transaction'
BEGIN ISOLATION LEVEL SERIALIZABLE;
INSERT INTO t69.n SELECT i, 's' FROM generate_series(2000, 2010) AS i;
COMMIT;
BEGIN READ ONLY;
SELECT regress.try($$INSERT INTO t69.n VALUES (3000, 'ro')$$);
COMMIT;
CALL incetl.run('n69');
SELECT * FROM regress.differ('t69.n', 't69.nt');

\echo '-- queue writer: array and NULL-able keys, TOASTed and compressed'
CREATE TABLE t69.a (k int[] NOT NULL, j text, v text, UNIQUE (k, j));
CREATE TABLE t69.at (k int[], j text, v text, UNIQUE (k, j));
ALTER TABLE t69.a ALTER j SET STORAGE MAIN;
SELECT incetl.create_pipeline('a69', 't69.a', 't69.at', strategy => 'trigger',
							  key_columns => ARRAY['k', 'j']) > 0 AS created;
CALL incetl.run('a69');
INSERT INTO t69.a SELECT ARRAY[i, i + 1], repeat('j', 3000) || i, 'v' FROM generate_series(1, 20) AS i;
CALL incetl.run('a69');
SELECT * FROM regress.differ('t69.a', 't69.at');
UPDATE t69.a SET v = 'w';
DELETE FROM t69.a WHERE k[1] % 2 = 0;
SELECT format('incetl.queue_%s', id) AS aq FROM incetl.pipelines WHERE name = 'a69' \gset
SELECT op, count(*), sum(length(k2)) AS jlen FROM :aq GROUP BY op ORDER BY op;
CALL incetl.run('a69');
SELECT * FROM regress.differ('t69.a', 't69.at');

\echo '-- queue writer: a rule on the queue (made by a superuser) still fires: the INSERTs write it'
CREATE TABLE t69.ruled (k numeric);
CREATE RULE r69 AS ON INSERT TO :nq DO ALSO INSERT INTO t69.ruled VALUES (NEW.k1);
INSERT INTO t69.n VALUES (4000, 'r'), (4001, 'r');
UPDATE t69.n SET v = 'rr' WHERE k >= 2000;
SELECT count(*) AS ruled FROM t69.ruled;
DROP RULE r69 ON :nq;
CALL incetl.run('n69');
SELECT * FROM regress.differ('t69.n', 't69.nt');

\echo '-- queue writer: the queue attached as a partition (by a superuser): its constraint holds'
CALL incetl.run('n69');
CREATE TABLE t69.qparent (LIKE :nq) PARTITION BY LIST (op);
ALTER TABLE t69.qparent ATTACH PARTITION :nq FOR VALUES IN ('i', 'u');
SELECT left(regress.try($$DELETE FROM t69.n WHERE k = 4000$$), 5) AS small;
SELECT left(regress.try($$DELETE FROM t69.n WHERE k >= 2000$$), 5) AS big;
ALTER TABLE t69.qparent DETACH PARTITION :nq;
DELETE FROM t69.n WHERE k >= 2000;
CALL incetl.run('n69');
SELECT * FROM regress.differ('t69.n', 't69.nt');

\echo '-- queue writer: logical decoding sees the multi-inserted entries'
SELECT 'ok' FROM pg_create_logical_replication_slot('s69', 'test_decoding');
INSERT INTO t69.n SELECT i, 'dec' FROM generate_series(5000, 5049) AS i;
SELECT count(*) AS decoded FROM pg_logical_slot_get_changes('s69', NULL, NULL)
 WHERE data LIKE 'table ' || :'nq' || ': INSERT:%';
SELECT pg_drop_replication_slot('s69');
CALL incetl.run('n69');

\echo '-- direct probe: an int watermark, NULL keys beside the cursor, an INCLUDE index'
CREATE TABLE t69.p (id bigint, v text, w bigint);
CREATE UNIQUE INDEX ON t69.p (w, id) INCLUDE (v);
CREATE TABLE t69.pt (id bigint UNIQUE, v text, w bigint);
INSERT INTO t69.p SELECT i, 'v', i FROM generate_series(1, 5) AS i;
SELECT incetl.create_pipeline('p69', 't69.p', 't69.pt', watermark_column => 'w',
							  key_columns => ARRAY['id']) > 0 AS created;
CALL incetl.run('p69');
SELECT watermark_key FROM regress.cursor('p69');
-- a tie with the cursor whose key is NULL (no row comparison reads it), then one above
INSERT INTO t69.p VALUES (NULL, 'null key', 5);
CALL incetl.run('p69');
SELECT status, extracted FROM regress.last_counts('p69');
INSERT INTO t69.p VALUES (7, 'tie above', 5);
CALL incetl.run('p69');
SELECT status, extracted FROM regress.last_counts('p69');

\echo '-- direct probe: the only fitting index made invalid: the statement probes, the row is read'
CREATE TABLE t69.q (id bigint PRIMARY KEY, v text, ts timestamptz NOT NULL);
CREATE INDEX q69_idx ON t69.q (ts, id);
CREATE TABLE t69.qt (id bigint PRIMARY KEY, v text, ts timestamptz);
INSERT INTO t69.q VALUES (1, 'a', '2024-01-01');
SELECT incetl.create_pipeline('q69', 't69.q', 't69.qt', watermark_column => 'ts') > 0 AS created;
CALL incetl.run('q69');
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 't69.q69_idx'::regclass;
INSERT INTO t69.q VALUES (2, 'b', '2024-01-02');
CALL incetl.run('q69');
SELECT status, extracted FROM regress.last_counts('q69');
UPDATE pg_index SET indisvalid = true WHERE indexrelid = 't69.q69_idx'::regclass;
-- dropped and re-created descending: not used, still read
DROP INDEX t69.q69_idx;
CREATE INDEX q69_idx ON t69.q (ts DESC, id DESC);
INSERT INTO t69.q VALUES (3, 'c', '2024-01-03');
CALL incetl.run('q69');
SELECT status, extracted FROM regress.last_counts('q69');
DROP INDEX t69.q69_idx;
CREATE INDEX q69_idx ON t69.q (ts, id);
INSERT INTO t69.q VALUES (4, 'd', '2024-01-04');
CALL incetl.run('q69');
SELECT status, extracted FROM regress.last_counts('q69');
SELECT * FROM regress.differ('t69.q', 't69.qt');

\echo '-- run_log: a rule on it (a superuser''s) fires: the statement writes the row'
CREATE TABLE t69.logged (run_id bigint);
CREATE RULE l69 AS ON INSERT TO incetl.run_log DO ALSO INSERT INTO t69.logged VALUES (NEW.run_id);
CALL incetl.run('q69');
SELECT count(*) > 0 AS logged FROM t69.logged;
DROP RULE l69 ON incetl.run_log;

-- (a typmod on run_log's columns, which the statement would apply, cannot be
-- added: the view incetl.status depends on them; the direct row checks anyway)

SELECT incetl.drop_pipeline(name) FROM incetl.pipelines WHERE name LIKE '%69' ORDER BY name;
DROP SCHEMA t69 CASCADE;
