--
-- 57_history_key_change_toast: a 'logical' history (SPEC 5) records the
-- new key of a key change (UPDATE ... SET id = <new> WHERE id = <old>)
-- with the old key's TOASTed value when the change left that value alone.
-- The decoded new row leaves such a value out (decode.c, option "values");
-- the run takes it from the old key's version just before the change: its
-- earlier changes in the run, else its latest version in the history
-- table.  Covered: key changes in one transaction with other changes, the
-- old key's previous change in the same transaction, in the same run and
-- in an earlier run, a key changed twice in one transaction (A to B to C),
-- changed and back in one transaction, a chain of key changes across two
-- runs, batches of two keys (old and new key in different batches), and a
-- run that failed after the old key's batch committed, run again.
-- As of every clock reading between the commits, the history must be what
-- the source held then.
--
CREATE SCHEMA t57;
SET TimeZone = 'UTC';

-- a value of about 4 kB that pglz cannot compress (hex of md5s): stored
-- out of line, in the TOAST table
CREATE FUNCTION t57.big(s text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
	SELECT string_agg(md5(s || i), '') FROM generate_series(1, 128) AS i
$$;
CREATE TABLE t57.src (id integer PRIMARY KEY, big text, v text);
CREATE TABLE t57.tgt (id integer PRIMARY KEY, big text, v text);
CREATE TABLE t57.hist (id integer NOT NULL, big text, v text, valid_from timestamptz NOT NULL,
					   valid_to timestamptz, etl_run_id bigint);
CREATE UNIQUE INDEX ON t57.hist (id, valid_from);
INSERT INTO t57.src SELECT i, t57.big('b' || i), 'v' || i FROM generate_series(1, 9) AS i;
-- the values really are TOASTed: uncompressed, out of line
SELECT count(*) AS rows, bool_and(pg_column_size(big) = octet_length(big)) AS uncompressed,
	   min(octet_length(big)) > 2048 AS above_2kb
  FROM t57.src;
SELECT reltoastrelid::regclass AS toast FROM pg_class WHERE oid = 't57.src'::regclass \gset
SELECT count(DISTINCT chunk_id) AS toasted_values FROM :toast;

SELECT incetl.create_pipeline('p57', 't57.src', 't57.tgt', strategy => 'logical',
							  batch_size => 2, history_table => 't57.hist') > 0 AS created;
CALL incetl.run('p57');

-- copies of the source at clock readings between commits, as 080 makes
CREATE TABLE t57.copies (at timestamptz, id integer, big_md5 text, v text);
CREATE PROCEDURE t57.copy() LANGUAGE sql AS $$
	INSERT INTO t57.copies SELECT now(), id, md5(big), v FROM t57.src
$$;
-- what the history says as of each copy, against the copy
CREATE FUNCTION t57.asof_problems() RETURNS SETOF text LANGUAGE sql AS $$
	WITH h AS (SELECT a.at, h.id, md5(h.big) AS big_md5, h.v
				 FROM (SELECT DISTINCT at FROM t57.copies) AS a
				 JOIN t57.hist AS h ON h.valid_from <= a.at AND (h.valid_to IS NULL OR h.valid_to > a.at))
	SELECT 'history only: ' || x.id || ' ' || x.v || ' ' ||
		   COALESCE((SELECT 'b' || i FROM generate_series(1, 30) AS i
					 WHERE md5(t57.big('b' || i)) = x.big_md5), x.big_md5, 'NULL')
	  FROM (SELECT * FROM h EXCEPT ALL SELECT * FROM t57.copies) AS x
	UNION ALL
	SELECT 'source only: ' || x.id || ' ' || x.v
	  FROM (SELECT * FROM t57.copies EXCEPT ALL SELECT * FROM h) AS x
	ORDER BY 1
$$;
CALL t57.copy();

\echo '-- one run: key changes that leave the TOASTed value alone'
-- in one transaction with other changes
BEGIN;
UPDATE t57.src SET id = 11, v = 'moved' WHERE id = 1;
UPDATE t57.src SET v = 'x2' WHERE id = 2;
INSERT INTO t57.src VALUES (10, t57.big('b10'), 'v10');
COMMIT;
CALL t57.copy();
-- a key changed twice in one transaction: 3 to 13 to 23
BEGIN;
UPDATE t57.src SET id = 13 WHERE id = 3;
UPDATE t57.src SET id = 23, v = 'twice' WHERE id = 13;
COMMIT;
CALL t57.copy();
-- changed and back in one transaction: 4 to 14 to 4
BEGIN;
UPDATE t57.src SET id = 14 WHERE id = 4;
UPDATE t57.src SET id = 4, v = 'back' WHERE id = 14;
COMMIT;
CALL t57.copy();
-- the old key's previous change in the same run (a value it did not carry
-- either), then the key change
UPDATE t57.src SET v = 'pre' WHERE id = 5;
CALL t57.copy();
UPDATE t57.src SET id = 15 WHERE id = 5;
CALL t57.copy();
-- the old key's TOASTed value written earlier in the same transaction
BEGIN;
UPDATE t57.src SET big = t57.big('b27') WHERE id = 7;
UPDATE t57.src SET id = 17 WHERE id = 7;
COMMIT;
CALL t57.copy();
-- into a key that had versions before (deleted), then changed again
DELETE FROM t57.src WHERE id = 9;
CALL t57.copy();
UPDATE t57.src SET id = 9, v = 'again' WHERE id = 8;
CALL t57.copy();
UPDATE t57.src SET id = 19 WHERE id = 9;
CALL t57.copy();
CALL incetl.run('p57');
SELECT * FROM regress.last_counts('p57');

-- the new keys' versions: the old key's value, from the change's commit on
SELECT h.id, h.v, (SELECT 'b' || i FROM generate_series(1, 30) AS i
				   WHERE t57.big('b' || i) = h.big) AS big, h.valid_to IS NULL AS current
  FROM t57.hist AS h WHERE h.id > 9 OR h.id IN (4, 9) ORDER BY h.id, h.valid_from;
SELECT * FROM t57.asof_problems();
SELECT * FROM regress.history_problems('t57.hist', 't57.tgt', 'big, v');

\echo '-- the next run: the old keys changed in the run before'
-- 2 was updated in the last run, 11 and 15 made by its key changes
BEGIN;
UPDATE t57.src SET id = 12 WHERE id = 2;
UPDATE t57.src SET id = 21 WHERE id = 11;
COMMIT;
CALL t57.copy();
UPDATE t57.src SET id = 25, v = 'later' WHERE id = 15;
CALL t57.copy();
-- 6 was last changed by the first run
UPDATE t57.src SET id = 16 WHERE id = 6;
CALL t57.copy();
CALL incetl.run('p57');
SELECT * FROM regress.last_counts('p57');
SELECT h.id, h.v, (SELECT 'b' || i FROM generate_series(1, 30) AS i
				   WHERE t57.big('b' || i) = h.big) AS big, h.valid_to IS NULL AS current
  FROM t57.hist AS h WHERE h.id IN (12, 16, 21, 25) ORDER BY h.id, h.valid_from;
SELECT * FROM t57.asof_problems();
SELECT * FROM regress.history_problems('t57.hist', 't57.tgt', 'big, v');
\echo '-- a run that failed after a batch committed, run again'
-- the old key 30 is in the first batch, which commits, and comes back
-- (another value) after its key change; the new key 31 is in the second,
-- which fails.  The run after it reads both changes again and must take
-- 30's value as it was before the key change, not its latest version's.
CREATE TABLE t57.fail (on_key integer);
CREATE FUNCTION t57.fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id IN (SELECT on_key FROM t57.fail) THEN
		RAISE EXCEPTION 'injected failure on key %', NEW.id;
	END IF;
	RETURN NEW;
END;
$$;
CREATE TRIGGER fail BEFORE INSERT OR UPDATE ON t57.tgt FOR EACH ROW EXECUTE FUNCTION t57.fail();
INSERT INTO t57.src VALUES (29, t57.big('b29'), 'v29'), (30, t57.big('b30'), 'v30');
CALL incetl.run('p57');
CALL t57.copy();
UPDATE t57.src SET v = 'x29' WHERE id = 29;
CALL t57.copy();
UPDATE t57.src SET id = 31 WHERE id = 30;
CALL t57.copy();
INSERT INTO t57.src VALUES (30, t57.big('b28'), 'back');
CALL t57.copy();
INSERT INTO t57.fail VALUES (31);
\set VERBOSITY terse
CALL incetl.run('p57');
\set VERBOSITY default
SELECT status, batches FROM incetl.run_log WHERE pipeline = 'p57' ORDER BY run_id DESC LIMIT 1;
-- the first batch committed: 30 is back in the history
SELECT id, v, (SELECT 'b' || i FROM generate_series(1, 30) AS i
			   WHERE t57.big('b' || i) = h.big) AS big, h.valid_to IS NULL AS current
  FROM t57.hist AS h WHERE h.id = 30 AND h.valid_to IS NULL;
DELETE FROM t57.fail;
CALL incetl.run('p57');
SELECT h.id, h.v, (SELECT 'b' || i FROM generate_series(1, 30) AS i
				   WHERE t57.big('b' || i) = h.big) AS big, h.valid_to IS NULL AS current
  FROM t57.hist AS h WHERE h.id = 31 ORDER BY h.valid_from;
SELECT * FROM t57.asof_problems();
SELECT * FROM regress.history_problems('t57.hist', 't57.tgt', 'big, v');

-- a run with nothing to do writes nothing
CALL incetl.run('p57');
SELECT history_versions FROM incetl.run_log WHERE pipeline = 'p57' ORDER BY run_id DESC LIMIT 1;

SELECT incetl.drop_pipeline('p57');
SET client_min_messages = warning;
DROP SCHEMA t57 CASCADE;
RESET client_min_messages;
