--
-- 04_newest_version: a source with several versions of one key (an
-- append-only log, no unique key).  Inside a batch the versions collapse to
-- the newest by sequence_column (else by the watermark); an incoming row
-- with a lower sequence never overwrites a target row with a higher one.
--
CREATE SCHEMA t04;
CREATE TABLE t04.events (
	id integer NOT NULL,
	payload text,
	version integer NOT NULL,
	updated_at timestamptz NOT NULL
);
CREATE TABLE t04.latest (
	id integer PRIMARY KEY,
	payload text,
	version integer,
	updated_at timestamptz
);
-- key 1: three versions; the highest version carries the OLDEST timestamp,
-- so only sequence_column can tell which one is newest
INSERT INTO t04.events VALUES
	(1, 'one v1', 1, '2024-05-01 10:00:01+00'),
	(1, 'one v3', 3, '2024-05-01 10:00:00+00'),
	(1, 'one v2', 2, '2024-05-01 10:00:02+00'),
	(2, 'two v1', 1, '2024-05-01 10:00:03+00'),
	(3, 'three v1', 1, '2024-05-01 10:00:04+00'),
	(3, 'three v2', 2, '2024-05-01 10:00:05+00');
-- key_columns NULL and no primary key in the source: the target's key
SELECT incetl.create_pipeline('versions', 't04.events', 't04.latest',
							  watermark_column => 'updated_at',
							  sequence_column => 'version') > 0 AS created;
SELECT key_columns, sequence_column FROM incetl.pipelines WHERE name = 'versions';

\echo '-- one batch: the highest version of each key wins'
CALL incetl.run('versions');
-- 6 rows read, 3 keys inserted; the 3 superseded versions count as unchanged
SELECT * FROM regress.last_run('versions');
SELECT * FROM t04.latest ORDER BY id;

\echo '-- a late row with a lower version does not overwrite a higher one'
INSERT INTO t04.events VALUES
	(1, 'one v2 replayed', 2, '2024-05-01 11:00:00+00'),	-- lower than 3: ignored
	(2, 'two v2', 2, '2024-05-01 11:00:01+00'),				-- higher: applied
	(3, 'three v2 again', 2, '2024-05-01 11:00:02+00');		-- equal version, new payload: applied
CALL incetl.run('versions');
SELECT * FROM regress.last_run('versions');
SELECT * FROM t04.latest ORDER BY id;

\echo '-- versions spread over batches (batch_size 1), highest first'
SELECT incetl.alter_pipeline('versions', batch_size => 1);
INSERT INTO t04.events VALUES
	(4, 'four v9', 9, '2024-05-01 12:00:00+00'),
	(4, 'four v5', 5, '2024-05-01 12:00:01+00'),
	(4, 'four v7', 7, '2024-05-01 12:00:02+00'),
	(4, 'four v1', 1, '2024-05-01 12:00:03+00');
CALL incetl.run('versions');
-- four batches with a row each plus an empty one; only the first writes
SELECT * FROM regress.last_run('versions');
SELECT * FROM t04.latest WHERE id = 4;

\echo '-- versions spread over batches, lowest first: only the newest is applied (the source holds it), the older ones are unchanged'
INSERT INTO t04.events VALUES
	(5, 'five v1', 1, '2024-05-01 13:00:00+00'),
	(5, 'five v2', 2, '2024-05-01 13:00:01+00'),
	(5, 'five v3', 3, '2024-05-01 13:00:02+00');
CALL incetl.run('versions');
SELECT * FROM regress.last_run('versions');
SELECT * FROM t04.latest WHERE id = 5;

\echo '-- the target row changed by someone else to a higher version is kept'
UPDATE t04.latest SET payload = 'two, edited in target', version = 100 WHERE id = 2;
INSERT INTO t04.events VALUES (2, 'two v3', 3, '2024-05-01 14:00:00+00');
CALL incetl.run('versions');
SELECT extracted, inserted, updated, unchanged FROM regress.last_run('versions');
SELECT * FROM t04.latest WHERE id = 2;

\echo '-- no sequence_column: the newest by the watermark wins inside a batch'
CREATE TABLE t04.latest_by_time (LIKE t04.latest INCLUDING ALL);
-- a view as source: never assumed unique
CREATE VIEW t04.events_v AS SELECT id, payload, version, updated_at FROM t04.events WHERE id <= 3;
SELECT incetl.create_pipeline('by_time', 't04.events_v', 't04.latest_by_time',
							  key_columns => '{id}', watermark_column => 'updated_at') > 0 AS created;
CALL incetl.run('by_time');
SELECT * FROM regress.last_run('by_time');
-- key 1: 'one v2 replayed' has the newest timestamp (version ignored here)
SELECT * FROM t04.latest_by_time ORDER BY id;

\echo '-- a unique source key with a sequence: same result, one row per key'
CREATE TABLE t04.usrc (id integer PRIMARY KEY, payload text, version integer, updated_at timestamptz);
CREATE TABLE t04.utgt (id integer PRIMARY KEY, payload text, version integer, updated_at timestamptz);
INSERT INTO t04.usrc VALUES (1, 'a', 5, '2024-05-01 00:00:00+00');
INSERT INTO t04.utgt VALUES (1, 'newer in target', 6, '2024-04-01 00:00:00+00');
SELECT incetl.create_pipeline('useq', 't04.usrc', 't04.utgt', watermark_column => 'updated_at',
							  sequence_column => 'version') > 0 AS created;
CALL incetl.run('useq');
SELECT extracted, inserted, updated, unchanged FROM regress.last_run('useq');
SELECT * FROM t04.utgt;

SELECT incetl.drop_pipeline('versions');
SELECT incetl.drop_pipeline('by_time');
SELECT incetl.drop_pipeline('useq');
DROP SCHEMA t04 CASCADE;
