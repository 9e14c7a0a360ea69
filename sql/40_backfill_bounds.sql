--
-- 40_backfill_bounds: a backfill with an infinite bound, or a bound far
-- beyond the data, ends.  Its range is narrowed to the first and last
-- watermark of the rows in [start_at, end_at), so
-- backfill('-infinity', 'infinity') reprocesses everything the source holds
-- (rows stamped -infinity included, 'infinity' excluded by the half-open
-- range) in chunks from the first row to the last, instead of walking
-- one-day chunks towards the end of time.  Both overloads, and timestamp and
-- date watermark columns.
--
CREATE SCHEMA t40b;
-- a backfill that never ends fails here instead of hanging the suite
SET statement_timeout = '60s';

CREATE TABLE t40b.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t40b.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
INSERT INTO t40b.src VALUES
	(1, 'minus infinity', '-infinity'),
	(2, 'a', '2024-05-01 10:00:00+00'),
	(3, 'b', '2024-05-02 11:00:00+00'),
	(4, 'c', '2024-05-03 12:00:00+00'),
	(5, 'plus infinity', 'infinity');
SELECT incetl.create_pipeline('bfb', 't40b.src', 't40b.tgt', watermark_column => 'updated_at') > 0 AS created;

\echo '-- -infinity to infinity: every row but the one at infinity, chunk by chunk'
CALL incetl.backfill('bfb', '-infinity'::timestamptz, 'infinity'::timestamptz, '1 day');
-- a chunk for -infinity, then the days from the first row to the last
SELECT kind, status, batches, extracted, inserted FROM regress.last_run('bfb');
SELECT id, v FROM t40b.tgt ORDER BY id;
-- the watermark is not moved
SELECT * FROM regress.cursor('bfb');

\echo '-- again: nothing changes'
CALL incetl.backfill('bfb', '-infinity'::timestamptz, 'infinity'::timestamptz);
SELECT kind, status, extracted, inserted, updated, unchanged FROM regress.last_run('bfb');

\echo '-- one infinite bound'
DELETE FROM t40b.tgt;
CALL incetl.backfill('bfb', '2024-05-02 00:00:00+00'::timestamptz, 'infinity'::timestamptz, '1 hour');
SELECT kind, status, batches, extracted, inserted FROM regress.last_run('bfb');
CALL incetl.backfill('bfb', '-infinity'::timestamptz, '2024-05-02 00:00:00+00'::timestamptz, '1 year');
SELECT kind, status, batches, extracted, inserted FROM regress.last_run('bfb');
SELECT id, v FROM t40b.tgt ORDER BY id;

\echo '-- a range holding no row: no batch at all'
CALL incetl.backfill('bfb', '2024-05-04 00:00:00+00'::timestamptz, 'infinity'::timestamptz, '1 day');
SELECT kind, status, batches, extracted FROM regress.last_run('bfb');
CALL incetl.backfill('bfb', '1990-01-01'::timestamptz, '2000-01-01'::timestamptz);
SELECT kind, status, batches, extracted FROM regress.last_run('bfb');

\echo '-- timestamp and date watermark columns'
CREATE TABLE t40b.lsrc (id integer PRIMARY KEY, v text, stamped timestamp NOT NULL, day date NOT NULL);
CREATE TABLE t40b.ltgt (id integer PRIMARY KEY, v text, stamped timestamp, day date);
CREATE TABLE t40b.dtgt (LIKE t40b.ltgt INCLUDING ALL);
INSERT INTO t40b.lsrc VALUES (1, 'a', '2024-05-01 10:00', '2024-05-01'), (2, 'b', '2024-05-03 23:59:59', '2024-05-03'),
	(3, 'c', '-infinity', '-infinity');
SELECT incetl.create_pipeline('bfb_ts', 't40b.lsrc', 't40b.ltgt', watermark_column => 'stamped') > 0 AS created;
SELECT incetl.create_pipeline('bfb_date', 't40b.lsrc', 't40b.dtgt', watermark_column => 'day') > 0 AS created;
CALL incetl.backfill('bfb_ts', '-infinity'::timestamptz, 'infinity'::timestamptz);
SELECT kind, status, batches, extracted, inserted FROM regress.last_run('bfb_ts');
CALL incetl.backfill('bfb_date', '-infinity'::timestamptz, 'infinity'::timestamptz);
SELECT kind, status, batches, extracted, inserted FROM regress.last_run('bfb_date');
SELECT (SELECT count(*) FROM t40b.ltgt) AS ts_rows, (SELECT count(*) FROM t40b.dtgt) AS date_rows;

\echo '-- the bigint overload with the widest bounds'
CREATE TABLE t40b.isrc (id integer PRIMARY KEY, v text, seq bigint NOT NULL);
CREATE TABLE t40b.itgt (id integer PRIMARY KEY, v text, seq bigint);
INSERT INTO t40b.isrc VALUES (1, 'a', -5), (2, 'b', 17), (3, 'c', 42);
SELECT incetl.create_pipeline('bfb_int', 't40b.isrc', 't40b.itgt', watermark_column => 'seq') > 0 AS created;
CALL incetl.backfill('bfb_int', -9223372036854775808, 9223372036854775807, 10);
-- chunks [-5, 5) [5, 15) [15, 25) [25, 35) [35, 43)
SELECT kind, status, batches, extracted, inserted FROM regress.last_run('bfb_int');
SELECT id, seq FROM t40b.itgt ORDER BY id;
-- a numeric watermark: the range is rounded outwards to whole numbers
CREATE TABLE t40b.nsrc (id integer PRIMARY KEY, v text, seq numeric NOT NULL);
CREATE TABLE t40b.ntgt (id integer PRIMARY KEY, v text, seq numeric);
INSERT INTO t40b.nsrc VALUES (1, 'a', -5.5), (2, 'b', 17.25), (3, 'c', 42.75);
SELECT incetl.create_pipeline('bfb_num', 't40b.nsrc', 't40b.ntgt', watermark_column => 'seq') > 0 AS created;
CALL incetl.backfill('bfb_num', -9223372036854775808, 9223372036854775807, 1000);
SELECT kind, status, batches, extracted, inserted FROM regress.last_run('bfb_num');

RESET statement_timeout;
SELECT incetl.drop_pipeline(name) FROM (VALUES ('bfb'), ('bfb_ts'), ('bfb_date'), ('bfb_int'), ('bfb_num')) AS v(name);
DROP SCHEMA t40b CASCADE;
