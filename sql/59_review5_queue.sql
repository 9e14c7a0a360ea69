--
-- 59_review5_queue: the 'trigger' queue's end-of-run cleanup (review of
-- cc10604).  Fixed: queues are REPLICA IDENTITY FULL.
--
-- A database with a FOR ALL TABLES publication (logical replication of the
-- whole database, a major-version upgrade by logical replication, Debezium
-- with all tables): the queue has no primary key, so no replica identity,
-- and DELETE from it fails ("cannot delete from table ... because it does
-- not have a replica identity and publishes deletes").  Since cc10604 the
-- run mostly empties the queue by TRUNCATE, which works, so the failure
-- became intermittent: it comes back whenever the run falls back to
-- deleting (a run inside a transaction block, as here; a writer in flight
-- at the run's end; autovacuum on the queue; a reader of the queue).  (It
-- failed always before cc10604.)
--
SET incetl.late_commit_margin = 0;
CREATE SCHEMA t59q;
CREATE TABLE t59q.src (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE t59q.tgt (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO t59q.src SELECT g, g FROM generate_series(1, 5) g;
SELECT incetl.create_pipeline('q59', 't59q.src', 't59q.tgt', strategy => 'trigger') > 0 AS created;
CALL incetl.run('q59');
SET client_min_messages = warning;
CREATE PUBLICATION p59_all FOR ALL TABLES;
RESET client_min_messages;

-- on its own, no writer in flight: TRUNCATE
UPDATE t59q.src SET v = v + 1 WHERE id <= 2;
CALL incetl.run('q59');
SELECT status, updated, error FROM regress.last_counts('q59');

-- inside a transaction block: the copied entries are deleted
UPDATE t59q.src SET v = v + 1 WHERE id >= 4;
\set VERBOSITY terse
BEGIN;
CALL incetl.run('q59');
COMMIT;
\set VERBOSITY default
SELECT status, updated, error FROM regress.last_counts('q59');
SELECT count(*) AS differ FROM ((TABLE t59q.src EXCEPT TABLE t59q.tgt)
  UNION ALL (TABLE t59q.tgt EXCEPT TABLE t59q.src)) d;

DROP PUBLICATION p59_all;
SELECT incetl.drop_pipeline('q59');
DROP SCHEMA t59q CASCADE;
