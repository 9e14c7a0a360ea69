--
-- 47_history_strategies: history tables (SPEC 5) with the 'hash',
-- 'trigger' and 'logical' strategies, where T is not a column of the row:
--   - 'hash': the run's start;
--   - 'trigger': the start of the transaction that wrote the change (the
--     queue's changed_at), the latest of a key's writers;
--   - 'logical': every committed version between two runs, in commit
--     order, each at its commit time (one per transaction per key).
-- For each: the first load opens one version per row; a key updated three
-- times between two runs opens one version ('logical': three); a
-- delete closes it, a comeback reopens; a change only to an ignored column
-- updates the current version in place; reconcile; and the invariants
-- (regress.history_problems).  A queue made before 0.3 (no
-- changed_at) falls back to the run's start.
--
CREATE SCHEMA t47s;
SET TimeZone = 'UTC';

CREATE FUNCTION t47s.opened(p text) RETURNS bigint LANGUAGE sql AS $$
	SELECT history_versions FROM incetl.run_log WHERE pipeline = p ORDER BY run_id DESC LIMIT 1
$$;
-- the start of the pipeline's last run, as the run_log has it
CREATE FUNCTION t47s.started(p text) RETURNS timestamptz LANGUAGE sql AS $$
	SELECT started_at FROM incetl.run_log WHERE pipeline = p ORDER BY run_id DESC LIMIT 1
$$;
-- one source, target and history table per strategy
CREATE FUNCTION t47s.make(s text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE t47s.%I (id integer PRIMARY KEY, v text, note text)', 'src_' || s);
	EXECUTE format('CREATE TABLE t47s.%I (id integer PRIMARY KEY, v text, note text)', 'tgt_' || s);
	EXECUTE format('CREATE TABLE t47s.%I (id integer, v text, note text, valid_from timestamptz NOT NULL,
					valid_to timestamptz, etl_run_id bigint, UNIQUE (id, valid_from))', 'hist_' || s);
	EXECUTE format('INSERT INTO t47s.%I SELECT i, ''v'' || i, ''n'' FROM generate_series(1, 4) AS i', 'src_' || s);
	PERFORM incetl.create_pipeline('hs_' || s, format('t47s.%I', 'src_' || s)::regclass,
								   format('t47s.%I', 'tgt_' || s)::regclass, strategy => s,
								   history_table => format('t47s.%I', 'hist_' || s)::regclass,
								   history_ignore_columns => '{note}');
END;
$$;

--------------------------------------------------------------------------
\echo '-- hash: T is the run start'
SELECT t47s.make('hash');
CALL incetl.run('hs_hash');
SELECT t47s.opened('hs_hash');
SELECT count(*) AS versions, bool_and(valid_from >= t47s.started('hs_hash') AND valid_from <= now()) AS at_run_start,
	   count(DISTINCT valid_from) AS distinct_starts
  FROM t47s.hist_hash;
UPDATE t47s.src_hash SET v = 'x1' WHERE id = 1;
UPDATE t47s.src_hash SET v = 'x2' WHERE id = 1;
UPDATE t47s.src_hash SET v = 'x3' WHERE id = 1;
UPDATE t47s.src_hash SET note = 'n2' WHERE id = 2;
DELETE FROM t47s.src_hash WHERE id = 3;
CALL incetl.run('hs_hash');
SELECT * FROM regress.last_counts('hs_hash');
SELECT t47s.opened('hs_hash');
SELECT id, v, note, valid_to IS NULL AS current,
	   valid_from >= t47s.started('hs_hash') AS from_this_run,
	   valid_to >= t47s.started('hs_hash') AS closed_by_this_run
  FROM t47s.hist_hash ORDER BY id, valid_from;
SELECT * FROM regress.history_problems('t47s.hist_hash', 't47s.tgt_hash', 'v, note');
-- the key comes back
INSERT INTO t47s.src_hash VALUES (3, 'back', 'n');
CALL incetl.run('hs_hash');
SELECT t47s.opened('hs_hash');
SELECT id, v, valid_to IS NULL AS current,
	   valid_from >= lag(valid_to) OVER (ORDER BY valid_from) AS after_last_end
  FROM t47s.hist_hash WHERE id = 3 ORDER BY valid_from;
-- reconcile: a stale current version is closed and reopened
UPDATE t47s.hist_hash SET v = 'stale' WHERE id = 4;
CALL incetl.reconcile('hs_hash');
SELECT t47s.opened('hs_hash');
SELECT id, v, valid_to IS NULL AS current FROM t47s.hist_hash WHERE id = 4 ORDER BY valid_from;
SELECT * FROM regress.history_problems('t47s.hist_hash', 't47s.tgt_hash', 'v, note');
SELECT incetl.drop_pipeline('hs_hash');

--------------------------------------------------------------------------
\echo '-- trigger: T is the start of the writing transaction'
SELECT t47s.make('trigger');
CALL incetl.run('hs_trigger');
SELECT t47s.opened('hs_trigger');
-- three writers update key 1, each in its own transaction; the last one's
-- start is the new version's valid_from
BEGIN;
UPDATE t47s.src_trigger SET v = 'x1' WHERE id = 1;
COMMIT;
BEGIN;
UPDATE t47s.src_trigger SET v = 'x2' WHERE id = 1;
COMMIT;
BEGIN;
SELECT now() AS w3 \gset
UPDATE t47s.src_trigger SET v = 'x3' WHERE id = 1;
COMMIT;
BEGIN;
SELECT now() AS wdel \gset
DELETE FROM t47s.src_trigger WHERE id = 3;
UPDATE t47s.src_trigger SET note = 'n2' WHERE id = 2;
COMMIT;
CALL incetl.run('hs_trigger');
SELECT * FROM regress.last_counts('hs_trigger');
SELECT t47s.opened('hs_trigger');
SELECT id, v, note, valid_to IS NULL AS current FROM t47s.hist_trigger ORDER BY id, valid_from;
SELECT valid_from = :'w3' AS from_last_writer FROM t47s.hist_trigger WHERE id = 1 AND valid_to IS NULL;
SELECT valid_to = :'wdel' AS closed_at_delete FROM t47s.hist_trigger WHERE id = 3;
SELECT * FROM regress.history_problems('t47s.hist_trigger', 't47s.tgt_trigger', 'v, note');
-- a queue made before 0.3 has no changed_at: the run's start
DO $$
BEGIN
	EXECUTE format('ALTER TABLE incetl.queue_%s DROP COLUMN changed_at',
				   (SELECT id FROM incetl.pipelines WHERE name = 'hs_trigger'));
END;
$$;
UPDATE t47s.src_trigger SET v = 'y' WHERE id = 4;
CALL incetl.run('hs_trigger');
SELECT valid_from >= t47s.started('hs_trigger') AS at_run_start
  FROM t47s.hist_trigger WHERE id = 4 AND valid_to IS NULL;
SELECT * FROM regress.history_problems('t47s.hist_trigger', 't47s.tgt_trigger', 'v, note');
SELECT incetl.drop_pipeline('hs_trigger');

--------------------------------------------------------------------------
\echo '-- logical: every committed version, each at its commit time'
SELECT t47s.make('logical');
CALL incetl.run('hs_logical');
SELECT t47s.opened('hs_logical');
-- the clock between the commits of the changes below
CREATE TABLE t47s.clock (n integer PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO t47s.clock VALUES (0, clock_timestamp());
UPDATE t47s.src_logical SET v = 'x1' WHERE id = 1;
INSERT INTO t47s.clock VALUES (1, clock_timestamp());
UPDATE t47s.src_logical SET v = 'x2' WHERE id = 1;
INSERT INTO t47s.clock VALUES (2, clock_timestamp());
UPDATE t47s.src_logical SET v = 'x3' WHERE id = 1;
INSERT INTO t47s.clock VALUES (3, clock_timestamp());
DELETE FROM t47s.src_logical WHERE id = 3;
INSERT INTO t47s.clock VALUES (4, clock_timestamp());
UPDATE t47s.src_logical SET note = 'n2' WHERE id = 2;
-- two changes in one transaction: one version, what committed
BEGIN;
UPDATE t47s.src_logical SET v = 'y1' WHERE id = 4;
UPDATE t47s.src_logical SET v = 'y2' WHERE id = 4;
COMMIT;
-- a key inserted and deleted in one transaction: nothing
BEGIN;
INSERT INTO t47s.src_logical VALUES (9, 'gone', 'n');
DELETE FROM t47s.src_logical WHERE id = 9;
COMMIT;
-- a key deleted, then back
DELETE FROM t47s.src_logical WHERE id = 2;
INSERT INTO t47s.clock VALUES (5, clock_timestamp());
INSERT INTO t47s.src_logical VALUES (2, 'v2', 'back');
INSERT INTO t47s.clock VALUES (6, clock_timestamp());
CALL incetl.run('hs_logical');
SELECT * FROM regress.last_counts('hs_logical');
SELECT t47s.opened('hs_logical');
SELECT id, v, note, valid_to IS NULL AS current FROM t47s.hist_logical ORDER BY id, valid_from;
-- key 1: three versions, each from its own commit, between the clock readings
SELECT h.v, h.valid_from > c0.at AND h.valid_from < c1.at AS at_its_commit,
	   h.valid_to IS NOT DISTINCT FROM lead(h.valid_from) OVER (ORDER BY h.valid_from) AS no_gap
  FROM t47s.hist_logical h
  JOIN t47s.clock c0 ON c0.n = substr(h.v, 2)::integer - 1
  JOIN t47s.clock c1 ON c1.n = substr(h.v, 2)::integer
 WHERE h.id = 1 AND h.v LIKE 'x%' ORDER BY h.valid_from;
SELECT valid_to > c3.at AND valid_to < c4.at AS closed_at_delete_commit
  FROM t47s.hist_logical, t47s.clock c3, t47s.clock c4 WHERE id = 3 AND c3.n = 3 AND c4.n = 4;
SELECT note, valid_from > c5.at AND valid_from < c6.at AS back_at_its_commit
  FROM t47s.hist_logical, t47s.clock c5, t47s.clock c6
 WHERE id = 2 AND valid_to IS NULL AND c5.n = 5 AND c6.n = 6;
SELECT * FROM regress.history_problems('t47s.hist_logical', 't47s.tgt_logical', 'v, note');
-- as of each clock reading, the history is what the source held
SELECT c.n, string_agg(h.id || '=' || h.v, ' ' ORDER BY h.id) AS state
  FROM t47s.clock c JOIN t47s.hist_logical h
    ON h.valid_from <= c.at AND (h.valid_to IS NULL OR h.valid_to > c.at)
 GROUP BY c.n ORDER BY c.n;
-- a run that rolls back writes no history, and the next run applies it
UPDATE t47s.src_logical SET v = 'z' WHERE id = 4;
SELECT count(*) AS versions FROM t47s.hist_logical \gset
BEGIN;
CALL incetl.run('hs_logical');
ROLLBACK;
SELECT count(*) - :versions AS opened_after_rollback FROM t47s.hist_logical;
CALL incetl.run('hs_logical');
SELECT t47s.opened('hs_logical');
SELECT * FROM regress.history_problems('t47s.hist_logical', 't47s.tgt_logical', 'v, note');
-- reconcile keeps the versions as they are
CALL incetl.reconcile('hs_logical');
SELECT t47s.opened('hs_logical');
-- a TOASTed value that a later change of its transaction left alone (not in
-- that change's decoded row) is the value the earlier change wrote, not
-- the key's previous version's (080_differential seed 3649): one version
ALTER TABLE t47s.src_logical ALTER COLUMN v SET STORAGE EXTERNAL;
BEGIN;
INSERT INTO t47s.src_logical VALUES (20, repeat('y', 5000), 'n');
UPDATE t47s.src_logical SET note = 'n2' WHERE id = 20;
COMMIT;
CALL incetl.run('hs_logical');
SELECT id, length(v) AS v_length, note, valid_to IS NULL AS current
  FROM t47s.hist_logical WHERE id = 20 ORDER BY valid_from;
SELECT incetl.drop_pipeline('hs_logical');

SET client_min_messages = warning;
DROP SCHEMA t47s CASCADE;
RESET client_min_messages;
