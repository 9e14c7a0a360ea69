--
-- 68_direct_probe: a run asks first whether anything lies above its cursor.
-- Where the source is a plain table with an index on (watermark, key) of
-- types without collation, it asks that index directly (engine.c,
-- direct_range_probe); elsewhere (a table with child tables, a key with a
-- collation, no such index) a one-row statement answers.  Both read what
-- the batch would: a tie with the cursor's watermark above its key, a row
-- above it, a row of a child table; not a row at or below the cursor, nor
-- one past the late-commit bound.
--
SET incetl.late_commit_margin = 0;
CREATE SCHEMA t68;

\echo '-- a time watermark and a bigint key, with the index the README asks for'
CREATE TABLE t68.src (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE INDEX ON t68.src (updated_at, id);
CREATE TABLE t68.tgt (id bigint PRIMARY KEY, v text, updated_at timestamptz);
INSERT INTO t68.src
SELECT i, 'v' || i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 5) AS i;
SELECT incetl.create_pipeline('probe', 't68.src', 't68.tgt',
							  watermark_column => 'updated_at') > 0 AS created;
CALL incetl.run('probe');
SELECT status, extracted FROM regress.last_counts('probe');
SELECT watermark_key FROM regress.cursor('probe');

\echo '-- nothing new: nothing read'
CALL incetl.run('probe');
SELECT status, batches, extracted FROM regress.last_counts('probe');

\echo '-- a tie with the cursor, below its key: not read (the cursor is past it)'
INSERT INTO t68.src VALUES (0, 'tie below', '2024-01-01 00:05:00+00');
CALL incetl.run('probe');
SELECT status, extracted FROM regress.last_counts('probe');

\echo '-- a row past the late-commit bound: not read yet'
INSERT INTO t68.src VALUES (100, 'future', '2999-01-01 00:00:00+00');
CALL incetl.run('probe');
SELECT status, extracted FROM regress.last_counts('probe');
DELETE FROM t68.src WHERE id = 100;

\echo '-- a tie with the cursor above its key: read'
INSERT INTO t68.src VALUES (6, 'tie above', '2024-01-01 00:05:00+00');
CALL incetl.run('probe');
SELECT status, extracted FROM regress.last_counts('probe');
SELECT watermark_key FROM regress.cursor('probe');

\echo '-- a row above the cursor: read'
UPDATE t68.src SET v = 'moved', updated_at = '2024-01-01 00:07:00+00' WHERE id = 2;
CALL incetl.run('probe');
SELECT status, extracted FROM regress.last_counts('probe');
CALL incetl.run('probe');
SELECT status, extracted FROM regress.last_counts('probe');
SELECT * FROM regress.differ('t68.src', 't68.tgt');

\echo '-- a bigint watermark and a key of two columns'
CREATE TABLE t68.src2 (a integer, b integer, v text, version bigint NOT NULL,
					   PRIMARY KEY (a, b));
CREATE INDEX ON t68.src2 (version, a, b);
CREATE TABLE t68.tgt2 (a integer, b integer, v text, version bigint, PRIMARY KEY (a, b));
INSERT INTO t68.src2 VALUES (1, 1, 'x', 10), (1, 2, 'x', 10), (2, 1, 'x', 10);
SELECT incetl.create_pipeline('probe2', 't68.src2', 't68.tgt2',
							  watermark_column => 'version') > 0 AS created;
CALL incetl.run('probe2');
SELECT status, extracted, wm_after FROM regress.last_run('probe2');
SELECT watermark_key FROM regress.cursor('probe2');
CALL incetl.run('probe2');
SELECT status, extracted FROM regress.last_counts('probe2');
-- below the cursor (10, 2, 1) in its second and in its third column
INSERT INTO t68.src2 VALUES (1, 3, 'below', 10), (2, 0, 'below', 10);
CALL incetl.run('probe2');
SELECT status, extracted FROM regress.last_counts('probe2');
-- above it in its third column, then in its second
INSERT INTO t68.src2 VALUES (2, 2, 'above', 10);
CALL incetl.run('probe2');
SELECT status, extracted FROM regress.last_counts('probe2');
INSERT INTO t68.src2 VALUES (3, 0, 'above', 10);
CALL incetl.run('probe2');
SELECT status, extracted FROM regress.last_counts('probe2');
CALL incetl.run('probe2');
SELECT status, extracted FROM regress.last_counts('probe2');
SELECT a, b FROM t68.src2 EXCEPT SELECT a, b FROM t68.tgt2 ORDER BY 1, 2;

\echo '-- a source with a child table: rows of the child are read'
CREATE TABLE t68.parent (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL);
CREATE INDEX ON t68.parent (updated_at, id);
CREATE TABLE t68.child () INHERITS (t68.parent);
CREATE INDEX ON t68.child (updated_at, id);
CREATE TABLE t68.tgt3 (id bigint PRIMARY KEY, updated_at timestamptz);
INSERT INTO t68.parent VALUES (1, '2024-01-01 00:01:00+00');
INSERT INTO t68.child VALUES (2, '2024-01-01 00:02:00+00');
SELECT incetl.create_pipeline('probe3', 't68.parent', 't68.tgt3',
							  watermark_column => 'updated_at') > 0 AS created;
CALL incetl.run('probe3');
SELECT status, extracted FROM regress.last_counts('probe3');
CALL incetl.run('probe3');
SELECT status, extracted FROM regress.last_counts('probe3');
INSERT INTO t68.child VALUES (3, '2024-01-01 00:03:00+00');
CALL incetl.run('probe3');
SELECT status, extracted FROM regress.last_counts('probe3');
SELECT * FROM regress.differ('t68.parent', 't68.tgt3');

\echo '-- a text key (it has a collation): the statement probes, with the same answers'
CREATE TABLE t68.src4 (k text PRIMARY KEY, updated_at timestamptz NOT NULL);
CREATE INDEX ON t68.src4 (updated_at, k);
CREATE TABLE t68.tgt4 (k text PRIMARY KEY, updated_at timestamptz);
INSERT INTO t68.src4 VALUES ('b', '2024-01-01 00:01:00+00');
SELECT incetl.create_pipeline('probe4', 't68.src4', 't68.tgt4',
							  watermark_column => 'updated_at') > 0 AS created;
CALL incetl.run('probe4');
CALL incetl.run('probe4');
SELECT status, extracted FROM regress.last_counts('probe4');
INSERT INTO t68.src4 VALUES ('a', '2024-01-01 00:01:00+00');
CALL incetl.run('probe4');
SELECT status, extracted FROM regress.last_counts('probe4');
INSERT INTO t68.src4 VALUES ('c', '2024-01-01 00:01:00+00');
CALL incetl.run('probe4');
SELECT status, extracted FROM regress.last_counts('probe4');

\echo '-- an index on the watermark alone: the statement probes'
CREATE TABLE t68.src5 (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL);
CREATE INDEX ON t68.src5 (updated_at);
CREATE TABLE t68.tgt5 (id bigint PRIMARY KEY, updated_at timestamptz);
INSERT INTO t68.src5 VALUES (1, '2024-01-01 00:01:00+00');
SELECT incetl.create_pipeline('probe5', 't68.src5', 't68.tgt5',
							  watermark_column => 'updated_at') > 0 AS created;
CALL incetl.run('probe5');
CALL incetl.run('probe5');
SELECT status, extracted FROM regress.last_counts('probe5');
INSERT INTO t68.src5 VALUES (2, '2024-01-01 00:01:00+00');
CALL incetl.run('probe5');
SELECT status, extracted FROM regress.last_counts('probe5');

\echo '-- an owner without SELECT on the source: the run fails as the statement would'
CREATE ROLE t68_owner LOGIN;
CREATE TABLE t68.src6 (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL);
CREATE INDEX ON t68.src6 (updated_at, id);
CREATE TABLE t68.tgt6 (id bigint PRIMARY KEY, updated_at timestamptz);
ALTER TABLE t68.tgt6 OWNER TO t68_owner;
GRANT USAGE ON SCHEMA t68 TO t68_owner;
GRANT SELECT ON t68.src6 TO t68_owner;
INSERT INTO t68.src6 VALUES (1, '2024-01-01 00:01:00+00');
SET SESSION AUTHORIZATION t68_owner;
SELECT incetl.create_pipeline('probe6', 't68.src6', 't68.tgt6',
							  watermark_column => 'updated_at') > 0 AS created;
CALL incetl.run('probe6');
RESET SESSION AUTHORIZATION;
REVOKE SELECT ON t68.src6 FROM t68_owner;
SET SESSION AUTHORIZATION t68_owner;
\set VERBOSITY terse
CALL incetl.run('probe6');
\set VERBOSITY default
SELECT status, extracted FROM regress.last_counts('probe6');
SELECT incetl.drop_pipeline('probe6');
RESET SESSION AUTHORIZATION;

SELECT incetl.drop_pipeline(p) FROM unnest(ARRAY['probe', 'probe2', 'probe3', 'probe4', 'probe5']) AS p;
DROP SCHEMA t68 CASCADE;
DROP ROLE t68_owner;
RESET incetl.late_commit_margin;
