--
-- 47_history: history tables (SPEC 5, slowly changing dimension type 2).
--
-- Each rule of the contract, on the 'timestamp' strategy with a time
-- watermark (T is the row's watermark, so versions are exact and shown
-- as they are): the validation of the history table (the unique index on
-- (key, valid_from) with its hint, NOT NULL columns without a default,
-- column types, privileges, history_ignore_columns); the first load opens
-- one version per row; a key updated three times between two runs opens
-- one version; a change only to ignored columns updates the current
-- version in place; a delete closes, a comeback reopens; clock skew (a
-- version starts 1 microsecond after the current one); a run inside BEGIN
-- ... ROLLBACK writes no history; a run that fails mid-way and is run
-- again leaves no duplicate or overlapping version; backfill and
-- reconcile; timestamp watermarks read as UTC whatever TimeZone says;
-- soft deletes through delete_detection 'flag'; run_log.history_versions;
-- alter_pipeline adds and clears a history table; the owner's trigger on
-- its history table runs as the owner, security-restricted, whoever runs.  47_history_strategies
-- covers 'hash', 'trigger' and 'logical'.
--
-- regress.history_problems() (00_setup) is the invariant check: no
-- overlapping versions, valid_to after valid_from, at most one current
-- version per key, a current version for every live target key and none
-- for others, and the current version equal to the target row.
--
CREATE SCHEMA t47;
SET incetl.late_commit_margin = 0;
SET TimeZone = 'UTC';

-- the versions opened by a pipeline's last run
CREATE FUNCTION t47.opened(p text) RETURNS bigint LANGUAGE sql AS $$
	SELECT history_versions FROM incetl.run_log WHERE pipeline = p ORDER BY run_id DESC LIMIT 1
$$;

CREATE TABLE t47.src (id integer PRIMARY KEY, v text, note text, updated_at timestamptz NOT NULL);
CREATE TABLE t47.tgt (id integer PRIMARY KEY, v text, note text, updated_at timestamptz);
CREATE TABLE t47.hist (history_id bigint GENERATED ALWAYS AS IDENTITY, id integer NOT NULL,
					   v text, note text, valid_from timestamptz NOT NULL, valid_to timestamptz,
					   etl_run_id bigint, loaded_at timestamptz NOT NULL DEFAULT now());
INSERT INTO t47.src VALUES (1, 'a', 'n', '2026-01-01 00:00+00'), (2, 'b', 'n', '2026-01-01 00:00+00'),
						   (3, 'c', 'n', '2026-01-01 00:00+00');

--------------------------------------------------------------------------
\echo '-- validation'
-- no unique index on (key, valid_from): 42P16, with the index to create
\set VERBOSITY default
SELECT incetl.create_pipeline('h1', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  delete_detection => 'compare', history_table => 't47.hist',
							  history_ignore_columns => '{note}', batch_size => 2);
CREATE UNIQUE INDEX ON t47.hist (id, valid_from);
-- a column incetl would not fill, NOT NULL without a default
CREATE TABLE t47.hbad1 (id integer, v text, valid_from timestamptz NOT NULL, valid_to timestamptz,
						origin text NOT NULL);
CREATE UNIQUE INDEX ON t47.hbad1 (id, valid_from);
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_table => 't47.hbad1');
-- valid_from of the wrong type, valid_to missing, a key of another type
CREATE TABLE t47.hbad2 (id integer, valid_from timestamp NOT NULL, valid_to timestamptz);
CREATE UNIQUE INDEX ON t47.hbad2 (id, valid_from);
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_table => 't47.hbad2');
CREATE TABLE t47.hbad3 (id integer, valid_from timestamptz NOT NULL);
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_table => 't47.hbad3');
CREATE TABLE t47.hbad4 (id bigint, valid_from timestamptz NOT NULL, valid_to timestamptz);
CREATE UNIQUE INDEX ON t47.hbad4 (id, valid_from);
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_table => 't47.hbad4');
-- a column that cannot take the target's values; no key column
CREATE TABLE t47.hbad5 (id integer, v integer, valid_from timestamptz NOT NULL, valid_to timestamptz);
CREATE UNIQUE INDEX ON t47.hbad5 (id, valid_from);
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_table => 't47.hbad5');
CREATE TABLE t47.hbad6 (v text, valid_from timestamptz NOT NULL, valid_to timestamptz);
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_table => 't47.hbad6');
-- the target as its own history; a view; ignored columns that are keys or unknown
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_table => 't47.tgt');
CREATE VIEW t47.hview AS SELECT * FROM t47.hist;
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_table => 't47.hview');
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_table => 't47.hist', history_ignore_columns => '{id}');
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_table => 't47.hist', history_ignore_columns => '{nope}');
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_ignore_columns => '{note}');
-- the owner needs SELECT, INSERT and UPDATE on the history table
CREATE ROLE r47 LOGIN;
GRANT USAGE ON SCHEMA t47 TO r47;
GRANT SELECT ON t47.src TO r47;
GRANT SELECT, INSERT, UPDATE, DELETE ON t47.tgt TO r47;
GRANT SELECT, INSERT ON t47.hist TO r47;
SET ROLE r47;
SELECT incetl.create_pipeline('bad', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  history_table => 't47.hist');
RESET ROLE;
SELECT count(*) AS pipelines_made FROM incetl.pipelines WHERE name = 'bad';
\set VERBOSITY terse

--------------------------------------------------------------------------
\echo '-- first load: one open version per source row, from its watermark'
SELECT incetl.create_pipeline('h1', 't47.src', 't47.tgt', watermark_column => 'updated_at',
							  delete_detection => 'compare', history_table => 't47.hist',
							  history_ignore_columns => '{note}', batch_size => 2) > 0 AS created;
SELECT history_table, history_ignore_columns FROM incetl.pipelines WHERE name = 'h1';
CALL incetl.run('h1');
SELECT * FROM regress.last_counts('h1');
SELECT t47.opened('h1');
SELECT id, v, note, valid_from, valid_to, etl_run_id IS NOT NULL AS run_id FROM t47.hist ORDER BY id, valid_from;
SELECT * FROM regress.history_problems('t47.hist', 't47.tgt', 'v, note');
-- nothing changed: nothing written
CALL incetl.run('h1');
SELECT t47.opened('h1'), count(*) AS versions FROM t47.hist;

--------------------------------------------------------------------------
\echo '-- a key updated three times between two runs: one new version'
UPDATE t47.src SET v = 'a1', updated_at = '2026-01-02 00:00+00' WHERE id = 1;
UPDATE t47.src SET v = 'a2', updated_at = '2026-01-03 00:00+00' WHERE id = 1;
UPDATE t47.src SET v = 'a3', updated_at = '2026-01-04 00:00+00' WHERE id = 1;
CALL incetl.run('h1');
SELECT t47.opened('h1');
SELECT id, v, valid_from, valid_to FROM t47.hist WHERE id = 1 ORDER BY valid_from;

--------------------------------------------------------------------------
\echo '-- a change only to an ignored column: the current version in place'
UPDATE t47.src SET note = 'n2', updated_at = '2026-01-05 00:00+00' WHERE id = 2;
CALL incetl.run('h1');
SELECT * FROM regress.last_counts('h1');
SELECT t47.opened('h1');
SELECT id, v, note, valid_from, valid_to FROM t47.hist WHERE id = 2 ORDER BY valid_from;
-- an ignored and a kept column together: a new version
UPDATE t47.src SET note = 'n3', v = 'b1', updated_at = '2026-01-06 00:00+00' WHERE id = 2;
CALL incetl.run('h1');
SELECT t47.opened('h1');
SELECT id, v, note, valid_from, valid_to FROM t47.hist WHERE id = 2 ORDER BY valid_from;

--------------------------------------------------------------------------
\echo '-- a delete closes (at the run start), a comeback opens a new version'
SELECT now() AS before_delete \gset
DELETE FROM t47.src WHERE id = 3;
CALL incetl.run('h1');
SELECT * FROM regress.last_counts('h1');
SELECT t47.opened('h1');
SELECT id, v, valid_from, valid_to >= :'before_delete' AS closed_at_run FROM t47.hist WHERE id = 3 ORDER BY valid_from;
SELECT * FROM regress.history_problems('t47.hist', 't47.tgt', 'v, note');
-- it comes back with a watermark before its delete: the version starts where the last ended
INSERT INTO t47.src VALUES (3, 'c1', 'n', '2026-02-01 00:00+00');
CALL incetl.run('h1');
SELECT t47.opened('h1');
SELECT id, v, valid_to IS NULL AS current,
	   valid_from = lag(valid_to) OVER (ORDER BY valid_from) AS starts_at_last_end
  FROM t47.hist WHERE id = 3 ORDER BY valid_from;

--------------------------------------------------------------------------
\echo '-- clock skew: a change stamped before the current version starts'
UPDATE t47.src SET v = 'a4', updated_at = '2026-01-03 12:00+00' WHERE id = 1;
SELECT incetl.set_watermark('h1', '2026-01-01 00:00+00');
CALL incetl.run('h1');
SELECT t47.opened('h1');
SELECT id, v, valid_from, valid_to FROM t47.hist WHERE id = 1 ORDER BY valid_from;
SELECT * FROM regress.history_problems('t47.hist', 't47.tgt', 'v, note');

--------------------------------------------------------------------------
\echo '-- a run inside BEGIN ... ROLLBACK writes no history'
SELECT count(*) AS versions_before FROM t47.hist \gset
UPDATE t47.src SET v = 'b2', updated_at = '2026-03-01 00:00+00' WHERE id = 2;
BEGIN;
CALL incetl.run('h1');
SELECT count(*) - :versions_before AS opened_inside FROM t47.hist;
ROLLBACK;
SELECT count(*) - :versions_before AS opened_after_rollback FROM t47.hist;
CALL incetl.run('h1');
SELECT t47.opened('h1');
SELECT id, v, valid_from, valid_to FROM t47.hist WHERE id = 2 ORDER BY valid_from;

--------------------------------------------------------------------------
\echo '-- a run that fails mid-way, then runs again: no duplicate, no overlap'
INSERT INTO t47.src SELECT i, 'x' || i, 'n', '2026-04-01 00:00+00'::timestamptz + i * interval '1 hour'
  FROM generate_series(10, 19) AS i;
CREATE FUNCTION t47.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id = 15 AND current_setting('t47.refuse', true) IS DISTINCT FROM 'off' THEN
		RAISE EXCEPTION 'refusing key %', NEW.id;
	END IF;
	RETURN NEW;
END;
$$;
CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON t47.tgt FOR EACH ROW EXECUTE FUNCTION t47.refuse();
CALL incetl.run('h1');
SELECT status, rows_inserted, history_versions FROM incetl.run_log
 WHERE pipeline = 'h1' ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS versions_10_19, count(DISTINCT id) AS keys FROM t47.hist WHERE id BETWEEN 10 AND 19;
DROP TRIGGER refuse ON t47.tgt;
CALL incetl.run('h1');
SELECT t47.opened('h1');
SELECT count(*) AS versions_10_19, count(DISTINCT id) AS keys FROM t47.hist WHERE id BETWEEN 10 AND 19;
SELECT * FROM regress.history_problems('t47.hist', 't47.tgt', 'v, note');

--------------------------------------------------------------------------
\echo '-- backfill: a change the forward pass missed gets its version'
UPDATE t47.src SET v = 'x12b' WHERE id = 12;
CALL incetl.backfill('h1', '2026-04-01 00:00+00'::timestamptz, '2026-05-01 00:00+00'::timestamptz, '1 day'::interval);
SELECT * FROM regress.last_counts('h1');
SELECT t47.opened('h1');
SELECT id, v, valid_from, valid_to FROM t47.hist WHERE id = 12 ORDER BY valid_from;

--------------------------------------------------------------------------
\echo '-- run_log.history_versions adds up'
SELECT sum(history_versions) = (SELECT count(*) FROM t47.hist) AS all_counted
  FROM incetl.run_log WHERE pipeline = 'h1';

--------------------------------------------------------------------------
\echo '-- reconcile repairs the target and the current versions'
UPDATE t47.src SET v = 'x13b' WHERE id = 13;
-- a hand-made edit of the history: key 14 loses its current version,
-- key 16 gets another value, key 17 (ignored column only) another note
DELETE FROM t47.hist WHERE id = 14;
UPDATE t47.hist SET v = 'wrong' WHERE id = 16;
UPDATE t47.hist SET note = 'wrong' WHERE id = 17;
SELECT * FROM regress.history_problems('t47.hist', 't47.tgt', 'v, note');
CALL incetl.reconcile('h1');
SELECT * FROM regress.last_counts('h1');
SELECT t47.opened('h1');
SELECT id, v, note, valid_to IS NULL AS current FROM t47.hist WHERE id IN (13, 14, 16, 17) ORDER BY id, valid_from;
SELECT * FROM regress.history_problems('t47.hist', 't47.tgt', 'v, note');
-- and again: nothing to repair
CALL incetl.reconcile('h1');
SELECT t47.opened('h1');

--------------------------------------------------------------------------
\echo '-- alter_pipeline: history_table => 0 clears it; adding one back'
SELECT incetl.alter_pipeline('h1', history_table => 0);
SELECT history_table, history_ignore_columns FROM incetl.pipelines WHERE name = 'h1';
UPDATE t47.src SET v = 'a5', updated_at = '2026-06-01 00:00+00' WHERE id = 1;
SELECT count(*) AS versions FROM t47.hist \gset
CALL incetl.run('h1');
SELECT count(*) - :versions AS opened_without_history FROM t47.hist;
SELECT incetl.alter_pipeline('h1', history_table => 't47.hist');
-- the current version of key 1 is stale: reconcile repairs it
CALL incetl.reconcile('h1');
SELECT id, v, valid_to IS NULL AS current FROM t47.hist WHERE id = 1 ORDER BY valid_from;
SELECT * FROM regress.history_problems('t47.hist', 't47.tgt', 'v, note');
SELECT incetl.drop_pipeline('h1');

--------------------------------------------------------------------------
\echo '-- a timestamp watermark is read as UTC, whatever TimeZone says'
CREATE TABLE t47.src2 (id integer PRIMARY KEY, v text, changed timestamp NOT NULL);
CREATE TABLE t47.tgt2 (id integer PRIMARY KEY, v text, changed timestamp);
CREATE TABLE t47.hist2 (id integer, v text, valid_from timestamptz NOT NULL, valid_to timestamptz,
						PRIMARY KEY (id, valid_from));
INSERT INTO t47.src2 VALUES (1, 'a', '2026-01-01 10:00');
SET TimeZone = 'America/New_York';
SET DateStyle = 'SQL, DMY';
SELECT incetl.create_pipeline('h2', 't47.src2', 't47.tgt2', watermark_column => 'changed',
							  history_table => 't47.hist2') > 0 AS created;
CALL incetl.run('h2');
UPDATE t47.src2 SET v = 'b', changed = '2026-01-02 10:00' WHERE id = 1;
CALL incetl.run('h2');
RESET DateStyle;
SET TimeZone = 'UTC';
SELECT id, v, valid_from, valid_to FROM t47.hist2 ORDER BY valid_from;
SELECT incetl.drop_pipeline('h2');

--------------------------------------------------------------------------
\echo '-- soft deletes (delete_detection flag): closes at the flagged row's watermark, and the comeback reopens'
CREATE TABLE t47.src3 (id integer PRIMARY KEY, v text, gone boolean NOT NULL DEFAULT false,
					   updated_at timestamptz NOT NULL);
CREATE TABLE t47.tgt3 (id integer PRIMARY KEY, v text, updated_at timestamptz,
					   is_deleted boolean NOT NULL DEFAULT false, deleted_at timestamptz);
CREATE TABLE t47.hist3 (id integer, v text, valid_from timestamptz NOT NULL, valid_to timestamptz,
						etl_run_id bigint);
CREATE UNIQUE INDEX ON t47.hist3 (valid_from, id);
INSERT INTO t47.src3 VALUES (1, 'a', false, '2026-01-01 00:00+00'), (2, 'b', false, '2026-01-01 00:00+00');
SELECT incetl.create_pipeline('h3', 't47.src3', 't47.tgt3', watermark_column => 'updated_at',
							  delete_detection => 'flag', delete_flag_column => 'gone',
							  delete_mode => 'soft', history_table => 't47.hist3') > 0 AS created;
CALL incetl.run('h3');
UPDATE t47.src3 SET gone = true, updated_at = '2026-01-02 00:00+00' WHERE id = 2;
CALL incetl.run('h3');
SELECT * FROM regress.last_counts('h3');
SELECT t47.opened('h3');
SELECT id, v, valid_from, valid_to FROM t47.hist3 ORDER BY id, valid_from;
SELECT * FROM regress.history_problems('t47.hist3', 't47.tgt3', 'v', 'is_deleted');
UPDATE t47.src3 SET gone = false, v = 'b1', updated_at = '2026-03-01 00:00+00' WHERE id = 2;
CALL incetl.run('h3');
SELECT t47.opened('h3');
SELECT id, v, valid_from, valid_to FROM t47.hist3 ORDER BY id, valid_from;
SELECT * FROM regress.history_problems('t47.hist3', 't47.tgt3', 'v', 'is_deleted');
-- the same value comes back after a soft delete: a version all the same
UPDATE t47.src3 SET gone = true, updated_at = '2026-04-01 00:00+00' WHERE id = 2;
CALL incetl.run('h3');
UPDATE t47.src3 SET gone = false, updated_at = '2026-05-01 00:00+00' WHERE id = 2;
CALL incetl.run('h3');
SELECT t47.opened('h3');
SELECT id, v, valid_from, valid_to FROM t47.hist3 WHERE id = 2 ORDER BY valid_from;
SELECT * FROM regress.history_problems('t47.hist3', 't47.tgt3', 'v', 'is_deleted');
SELECT incetl.drop_pipeline('h3');

--------------------------------------------------------------------------
\echo '-- the history table''s code runs as the pipeline''s owner, restricted'
-- the owner's trigger on its history table, when a superuser runs the
-- pipeline, sees the owner as current_user and cannot leave anything in
-- the caller's session (no temporary table, no SET ROLE)
CREATE SCHEMA t47o AUTHORIZATION r47;
SET ROLE r47;
CREATE TABLE t47o.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t47o.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
CREATE TABLE t47o.hist (id integer, v text, valid_from timestamptz NOT NULL, valid_to timestamptz,
						UNIQUE (id, valid_from));
CREATE TABLE t47o.seen (who name, what text);
CREATE FUNCTION t47o.spy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO t47o.seen VALUES (current_user, TG_OP);
	BEGIN
		CREATE TEMP TABLE t47_planted (x integer);
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO t47o.seen VALUES (current_user, SQLERRM);
	END;
	BEGIN
		SET ROLE NONE;
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO t47o.seen VALUES (current_user, SQLERRM);
	END;
	RETURN NEW;
END;
$$;
CREATE TRIGGER spy BEFORE INSERT OR UPDATE ON t47o.hist FOR EACH ROW EXECUTE FUNCTION t47o.spy();
INSERT INTO t47o.src VALUES (1, 'a', '2026-01-01 00:00+00');
SELECT incetl.create_pipeline('h47o', 't47o.src', 't47o.tgt', watermark_column => 'updated_at',
							  history_table => 't47o.hist') > 0 AS created;
RESET ROLE;
CALL incetl.run('h47o');
UPDATE t47o.src SET v = 'b', updated_at = '2026-01-02 00:00+00';
CALL incetl.run('h47o');
SELECT who, what FROM t47o.seen ORDER BY what, who;
SELECT current_user = session_user AS caller_unchanged, to_regclass('pg_temp.t47_planted') AS planted;
SELECT id, v, valid_from, valid_to FROM t47o.hist ORDER BY valid_from;
SELECT incetl.drop_pipeline('h47o');

-- A history table cannot be dropped while its pipeline keeps history there
-- (2BP01, as for a table a view depends on), however the DROP reaches it,
-- and whoever drops it; once the pipeline stops keeping history, it can.
CREATE SCHEMA t47d;
GRANT ALL ON SCHEMA t47d TO r47;
CREATE TABLE t47d.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t47d.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
ALTER TABLE t47d.src OWNER TO r47;
ALTER TABLE t47d.tgt OWNER TO r47;
SET ROLE r47;
CREATE TABLE t47d."Hist 1" (id integer NOT NULL, v text, valid_from timestamptz NOT NULL,
							valid_to timestamptz, UNIQUE (id, valid_from));
INSERT INTO t47d.src VALUES (1, 'a', '2026-01-01 00:00+00');
SELECT incetl.create_pipeline('h47 "d"', 't47d.src', 't47d.tgt', watermark_column => 'updated_at',
							  history_table => 't47d."Hist 1"') > 0 AS created;
CALL incetl.run('h47 "d"');
\set VERBOSITY default
DROP TABLE t47d."Hist 1";
\set VERBOSITY terse
DROP TABLE t47d."Hist 1" CASCADE;
RESET ROLE;
DROP SCHEMA t47d CASCADE;
DROP OWNED BY r47;
SELECT count(*) AS versions FROM t47d."Hist 1";
-- dropping something else, or a column of the history table, is not refused
CREATE TABLE t47d.other (i integer);
DROP TABLE t47d.other;
-- moved to another table, the old one may go; without history, the new one too
CREATE TABLE t47d.hist2 (LIKE t47d."Hist 1" INCLUDING ALL);
ALTER TABLE t47d.hist2 OWNER TO r47;
SET ROLE r47;
SELECT incetl.alter_pipeline('h47 "d"', history_table => 't47d.hist2');
ALTER TABLE t47d.hist2 ADD COLUMN extra integer;
ALTER TABLE t47d.hist2 DROP COLUMN extra;
DROP TABLE t47d."Hist 1";
SELECT incetl.alter_pipeline('h47 "d"', history_table => 0);
DROP TABLE t47d.hist2;
RESET ROLE;
-- a history table dropped while the event trigger was disabled (or before
-- the update to 0.3): runs fail with 42P01, naming the pipeline, until it
-- stops keeping history or gets another table
CREATE TABLE t47d.hist3 (LIKE t47d.tgt, valid_from timestamptz NOT NULL, valid_to timestamptz,
						 UNIQUE (id, valid_from));
ALTER TABLE t47d.hist3 OWNER TO r47;
SELECT incetl.alter_pipeline('h47 "d"', history_table => 't47d.hist3');
ALTER EVENT TRIGGER incetl_history_table_dropped DISABLE;
DROP TABLE t47d.hist3;
ALTER EVENT TRIGGER incetl_history_table_dropped ENABLE;
\set VERBOSITY default
CALL incetl.run('h47 "d"');
\set VERBOSITY terse
SELECT incetl.alter_pipeline('h47 "d"', history_table => 0);
UPDATE t47d.src SET v = 'b', updated_at = '2026-01-02 00:00+00';
CALL incetl.run('h47 "d"');
SELECT * FROM t47d.tgt;
SELECT incetl.drop_pipeline('h47 "d"');

SET client_min_messages = warning;
DROP SCHEMA t47d CASCADE;
DROP SCHEMA t47o CASCADE;
DROP SCHEMA t47 CASCADE;
RESET client_min_messages;
REVOKE ALL ON SCHEMA public FROM r47;
DROP ROLE r47;
