--
-- 41_flag_deletes: delete_detection 'flag' outside the forward pass of a
-- run.  A source row whose delete_flag_column is true stands for a deleted
-- key everywhere: reconcile (hard: the target must not have it; soft: the
-- target row is flagged, deleted_at set) and a keyed first load never put
-- it (back) into the target.  And with sequence_column a version is never
-- applied while the source holds a newer version of its key: a lookback
-- that re-reads the older live version of a key whose newest version is
-- flagged must not insert it again (every run would insert and delete it).
-- Both found by t/080_differential.pl (gates flag_reconcile and
-- log_flag_lookback).
--
CREATE SCHEMA t41;
SET incetl.late_commit_margin = 0;

--------------------------------------------------------------------------
\echo '-- reconcile, hard: a flagged row stays out of the target'
CREATE TABLE t41.s1 (id bigint PRIMARY KEY, v text, deleted boolean NOT NULL DEFAULT false,
					 updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE t41.t1 (id bigint PRIMARY KEY, v text, deleted boolean, updated_at timestamptz);
INSERT INTO t41.s1 VALUES (1, 'a'), (2, 'b'), (3, 'c');
SELECT incetl.create_pipeline('flag_rec_hard', 't41.s1', 't41.t1', watermark_column => 'updated_at',
							  delete_detection => 'flag', delete_flag_column => 'deleted') > 0 AS created;
CALL incetl.run('flag_rec_hard');
UPDATE t41.s1 SET deleted = true, updated_at = now() WHERE id = 2;
CALL incetl.run('flag_rec_hard');
SELECT * FROM regress.last_counts('flag_rec_hard');
SELECT id, v, deleted FROM t41.t1 ORDER BY id;
-- nothing to do: the flagged row is not inserted again
CALL incetl.reconcile('flag_rec_hard');
SELECT * FROM regress.last_counts('flag_rec_hard');
SELECT id, v, deleted FROM t41.t1 ORDER BY id;
-- a hand-made copy of the flagged row is deleted
INSERT INTO t41.t1 SELECT id, v, false, updated_at FROM t41.s1 WHERE id = 2;
CALL incetl.reconcile('flag_rec_hard');
SELECT * FROM regress.last_counts('flag_rec_hard');
SELECT id, v, deleted FROM t41.t1 ORDER BY id;
-- and the next run writes nothing
CALL incetl.run('flag_rec_hard');
SELECT * FROM regress.last_counts('flag_rec_hard');
SELECT incetl.drop_pipeline('flag_rec_hard');

--------------------------------------------------------------------------
\echo '-- reconcile, hard, the flag not a target column: equal hashes, still deleted'
CREATE TABLE t41.t1b (id bigint PRIMARY KEY, v text, updated_at timestamptz);
SELECT incetl.create_pipeline('flag_rec_noflag', 't41.s1', 't41.t1b', watermark_column => 'updated_at',
							  delete_detection => 'flag', delete_flag_column => 'deleted',
							  on_schema_change => 'ignore') > 0 AS created;
CALL incetl.run('flag_rec_noflag');
SELECT id, v FROM t41.t1b ORDER BY id;
INSERT INTO t41.t1b SELECT id, v, updated_at FROM t41.s1 WHERE id = 2;
CALL incetl.reconcile('flag_rec_noflag');
SELECT * FROM regress.last_counts('flag_rec_noflag');
SELECT id, v FROM t41.t1b ORDER BY id;
SELECT incetl.drop_pipeline('flag_rec_noflag');

--------------------------------------------------------------------------
\echo '-- reconcile, soft: a flagged row stays soft-deleted, or becomes so'
CREATE TABLE t41.t2 (id bigint PRIMARY KEY, v text, deleted boolean, updated_at timestamptz,
					 is_deleted boolean NOT NULL DEFAULT false, deleted_at timestamptz);
SELECT incetl.create_pipeline('flag_rec_soft', 't41.s1', 't41.t2', watermark_column => 'updated_at',
							  delete_detection => 'flag', delete_flag_column => 'deleted',
							  delete_mode => 'soft') > 0 AS created;
CALL incetl.run('flag_rec_soft');
-- row 2 was flagged before it reached the target: nothing to soft-delete
SELECT id, v, is_deleted, deleted_at IS NOT NULL AS has_deleted_at FROM t41.t2 ORDER BY id;
UPDATE t41.s1 SET deleted = true, updated_at = now() WHERE id = 3;
CALL incetl.run('flag_rec_soft');
SELECT * FROM regress.last_counts('flag_rec_soft');
SELECT id, v, is_deleted, deleted_at IS NOT NULL AS has_deleted_at FROM t41.t2 ORDER BY id;
-- nothing to do: row 3 stays soft-deleted
CALL incetl.reconcile('flag_rec_soft');
SELECT * FROM regress.last_counts('flag_rec_soft');
SELECT id, v, is_deleted, deleted_at IS NOT NULL AS has_deleted_at FROM t41.t2 ORDER BY id;
-- a hand edit un-deletes row 3: reconcile soft-deletes it again
UPDATE t41.t2 SET is_deleted = false, deleted_at = NULL WHERE id = 3;
CALL incetl.reconcile('flag_rec_soft');
SELECT * FROM regress.last_counts('flag_rec_soft');
SELECT id, v, is_deleted, deleted_at IS NOT NULL AS has_deleted_at FROM t41.t2 ORDER BY id;
SELECT incetl.drop_pipeline('flag_rec_soft');

--------------------------------------------------------------------------
\echo '-- trigger strategy with a flag: the first (keyed) load skips flagged rows'
CREATE TABLE t41.t3 (id bigint PRIMARY KEY, v text, deleted boolean, updated_at timestamptz);
SELECT incetl.create_pipeline('flag_trigger', 't41.s1', 't41.t3', strategy => 'trigger',
							  delete_detection => 'flag', delete_flag_column => 'deleted') > 0 AS created;
SELECT op, key FROM incetl.preview('flag_trigger') ORDER BY op, key->>'id';
CALL incetl.run('flag_trigger');
SELECT * FROM regress.last_counts('flag_trigger');
SELECT id, v FROM t41.t3 ORDER BY id;
UPDATE t41.s1 SET deleted = true WHERE id = 1;
CALL incetl.run('flag_trigger');
SELECT * FROM regress.last_counts('flag_trigger');
SELECT id, v FROM t41.t3 ORDER BY id;
SELECT incetl.drop_pipeline('flag_trigger');

--------------------------------------------------------------------------
\echo '-- log source, flag, lookback: a deleted key is not inserted again by every run'
CREATE TABLE t41.s4 (id int NOT NULL, seq bigint GENERATED ALWAYS AS IDENTITY, v text,
					 deleted boolean NOT NULL DEFAULT false,
					 updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON t41.s4 (updated_at, id);
CREATE TABLE t41.t4 (id int PRIMARY KEY, seq bigint, v text, deleted boolean, updated_at timestamptz);
SELECT incetl.create_pipeline('flag_log', 't41.s4', 't41.t4', watermark_column => 'updated_at',
							  key_columns => '{id}', sequence_column => 'seq',
							  delete_detection => 'flag', delete_flag_column => 'deleted',
							  lookback => '10 minutes', batch_size => 1) > 0 AS created;
INSERT INTO t41.s4 (id, v) VALUES (1, 'live');
INSERT INTO t41.s4 (id, v, deleted) VALUES (1, 'gone', true);
INSERT INTO t41.s4 (id, v) VALUES (2, 'two');
CALL incetl.run('flag_log');
SELECT inserted, deleted FROM regress.last_counts('flag_log');
SELECT id, v FROM t41.t4 ORDER BY id;
-- re-runs with no source change write nothing (each re-reads all three
-- rows through the lookback)
CALL incetl.run('flag_log');
SELECT status, extracted, inserted, updated, deleted, unchanged FROM regress.last_counts('flag_log');
SELECT op, key FROM incetl.preview('flag_log') ORDER BY op, key->>'id';
CALL incetl.run('flag_log');
SELECT status, extracted, inserted, updated, deleted, unchanged FROM regress.last_counts('flag_log');
SELECT id, v FROM t41.t4 ORDER BY id;
-- the key comes back with a newer version, then key 2 is flagged
INSERT INTO t41.s4 (id, v) VALUES (1, 'back');
INSERT INTO t41.s4 (id, v, deleted) VALUES (2, 'two gone', true);
CALL incetl.run('flag_log');
SELECT inserted, updated, deleted FROM regress.last_counts('flag_log');
SELECT id, v FROM t41.t4 ORDER BY id;
CALL incetl.run('flag_log');
SELECT status, inserted, updated, deleted FROM regress.last_counts('flag_log');
-- a reconcile agrees
CALL incetl.reconcile('flag_log');
SELECT status, inserted, updated, deleted FROM regress.last_counts('flag_log');
SELECT id, v FROM t41.t4 ORDER BY id;
SELECT incetl.drop_pipeline('flag_log');

DROP SCHEMA t41 CASCADE;
