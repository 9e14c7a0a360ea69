--
-- 25_logical: the 'logical' strategy, through a logical replication slot
-- that the first run creates and incetl's own output plugin decodes.
-- Covered: create_pipeline creates no slot, the first run creates it and
-- loads everything; inserts, updates (one that
-- changes the key, one to the same values), deletes, several changes of
-- one key, TRUNCATE; after a run the stored applied LSN is the slot's
-- confirmed_flush_lsn; a run in a transaction block that rolls back
-- leaves the changes for the next run, one that commits leaves the slot
-- to be confirmed by the next run, which applies nothing twice; a quiet
-- source does not pin WAL; incetl.status.retained_wal_bytes; clear errors
-- for a source without replica identity and for a view; drop_pipeline
-- drops the slot.
--
-- Needs wal_level = logical and, on this Debian build,
-- output_plugin_libraries listing incetl (test/regress.conf).  Slots
-- belong to the cluster: every pipeline made here is dropped at the end.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;
CREATE SCHEMA t25;
SHOW wal_level;
SELECT current_setting('output_plugin_libraries', true) IS NULL
	OR current_setting('output_plugin_libraries', true) LIKE '%incetl%' AS incetl_may_decode;

-- the pipeline's slot, its stored applied LSN and the slot's confirmed LSN
CREATE FUNCTION t25.slot(p text)
RETURNS TABLE (slot_name name, applied_lsn pg_lsn, confirmed_flush_lsn pg_lsn)
LANGUAGE sql AS $$
	SELECT s.slot_name, s.applied_lsn, r.confirmed_flush_lsn
	  FROM incetl.pipelines pl JOIN incetl.state s ON s.pipeline_id = pl.id
	  LEFT JOIN pg_replication_slots r ON r.slot_name = s.slot_name
	 WHERE pl.name = p
$$;
-- WAL positions noted during the test
CREATE TABLE t25.lsn (name text PRIMARY KEY, lsn pg_lsn NOT NULL);

CREATE TABLE t25.src (id integer PRIMARY KEY, v text, n integer);
CREATE TABLE t25.tgt (id integer PRIMARY KEY, v text, n integer, etl_run_id bigint);
INSERT INTO t25.src SELECT i, 'v' || i, i FROM generate_series(1, 10) AS i;
CREATE FUNCTION t25.diff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (SELECT id, v, n FROM t25.src
								  EXCEPT SELECT id, v, n FROM t25.tgt) a),
		   (SELECT count(*) FROM (SELECT id, v, n FROM t25.tgt
								  EXCEPT SELECT id, v, n FROM t25.src) b)
$$;

CREATE TEMP TABLE slots_before AS SELECT slot_name FROM pg_replication_slots;
SELECT incetl.create_pipeline('logi', 't25.src', 't25.tgt', strategy => 'logical',
							  batch_size => 4) > 0 AS created;
-- no slot yet (the first run makes it), but its name is stored
SELECT count(*) AS new_slots FROM pg_replication_slots
 WHERE slot_name NOT IN (SELECT slot_name FROM slots_before);
SELECT slot_name = 'incetl_' || (SELECT oid FROM pg_database WHERE datname = current_database())
				   || '_' || (SELECT id FROM incetl.pipelines WHERE name = 'logi') AS named_by_db_and_id
  FROM t25.slot('logi');

\echo '-- first run: creates the slot, loads all 10 rows'
CALL incetl.run('logi');
SELECT * FROM regress.last_counts('logi');
SELECT * FROM t25.diff();
-- one new slot, named after the database, decoded by the incetl plugin
SELECT r.plugin, r.slot_type, r.database = current_database() AS this_db, r.temporary,
	   r.slot_name = (SELECT slot_name FROM t25.slot('logi')) AS stored_in_state
  FROM pg_replication_slots r WHERE r.slot_name NOT IN (SELECT slot_name FROM slots_before);

\echo '-- inserts, updates, deletes'
INSERT INTO t25.src VALUES (11, 'v11', 11), (12, 'v12', 12);
UPDATE t25.src SET v = 'changed' WHERE id = 3;
UPDATE t25.src SET id = 40 WHERE id = 4;
DELETE FROM t25.src WHERE id IN (7, 8);
UPDATE t25.src SET n = n WHERE id = 1;
-- one key changed in three transactions
UPDATE t25.src SET n = 100 WHERE id = 9;
UPDATE t25.src SET n = 101 WHERE id = 9;
UPDATE t25.src SET v = 'nine' WHERE id = 9;
-- a key inserted and deleted before any run
INSERT INTO t25.src VALUES (13, 'fleeting', 13);
DELETE FROM t25.src WHERE id = 13;
-- changes that roll back are never decoded
BEGIN;
UPDATE t25.src SET v = 'rolled back' WHERE id = 2;
INSERT INTO t25.src VALUES (14, 'rolled back', 14);
ROLLBACK;
SELECT op, key FROM incetl.preview('logi') ORDER BY op, (key->>'id')::integer;
CREATE TEMP TABLE x1 AS SELECT id, xmin::text AS x FROM t25.tgt;
CALL incetl.run('logi');
-- keys 11, 12, 3, 4, 40, 7, 8, 1, 9, 13: 10 keys in 3 batches
SELECT * FROM regress.last_counts('logi');
SELECT * FROM t25.diff();
SELECT id, v, n FROM t25.tgt WHERE id IN (1, 2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 40) ORDER BY id;
SELECT t.id FROM t25.tgt t JOIN x1 USING (id) WHERE t.xmin::text <> x1.x ORDER BY t.id;
-- the applied LSN is stored and the slot confirmed up to it
SELECT applied_lsn IS NOT NULL AS has_applied_lsn, applied_lsn = confirmed_flush_lsn AS confirmed
  FROM t25.slot('logi');
-- nothing left: the next run reads nothing
CALL incetl.run('logi');
SELECT * FROM regress.last_counts('logi');
SELECT applied_lsn = confirmed_flush_lsn AS confirmed FROM t25.slot('logi');

\echo '-- TRUNCATE: the next run deletes every target row the source lacks'
TRUNCATE t25.src;
INSERT INTO t25.src VALUES (1, 'v1', 1), (2, 'after truncate', 2), (100, 'new', 100);
SELECT op, key FROM incetl.preview('logi') ORDER BY op, (key->>'id')::integer;
CALL incetl.run('logi');
SELECT * FROM regress.last_counts('logi');
SELECT * FROM t25.diff();
SELECT applied_lsn = confirmed_flush_lsn AS confirmed FROM t25.slot('logi');
-- handled once: a row added to the target by hand stays
INSERT INTO t25.tgt (id, v) VALUES (500, 'hand-made');
CALL incetl.run('logi');
SELECT * FROM regress.last_counts('logi');
SELECT count(*) AS hand_made_kept FROM t25.tgt WHERE id = 500;
DELETE FROM t25.tgt WHERE id = 500;

\echo '-- a run in a transaction block that rolls back: the changes stay for the next run'
UPDATE t25.src SET v = 'once' WHERE id = 100;
INSERT INTO t25.src VALUES (101, 'v101', 101);
BEGIN;
CALL incetl.run('logi');
SELECT * FROM regress.last_counts('logi');
ROLLBACK;
SELECT v FROM t25.tgt WHERE id = 100;
CALL incetl.run('logi');
SELECT * FROM regress.last_counts('logi');
SELECT * FROM t25.diff();

\echo '-- a run in a transaction block that commits: the slot is confirmed by the next run'
UPDATE t25.src SET v = 'in block' WHERE id = 101;
BEGIN;
CALL incetl.run('logi');
COMMIT;
SELECT * FROM regress.last_counts('logi');
-- applied, stored, but the slot not yet confirmed
SELECT applied_lsn > confirmed_flush_lsn AS applied_ahead_of_slot FROM t25.slot('logi');
-- the change is still in the slot, but below the stored LSN: nothing to do
SELECT count(*) AS previewed FROM incetl.preview('logi');
CREATE TEMP TABLE x2 AS SELECT id, xmin::text AS x FROM t25.tgt;
CALL incetl.run('logi');
SELECT * FROM regress.last_counts('logi');
SELECT count(*) AS rewritten FROM t25.tgt t JOIN x2 USING (id) WHERE t.xmin::text <> x2.x;
SELECT applied_lsn = confirmed_flush_lsn AS confirmed FROM t25.slot('logi');
SELECT * FROM t25.diff();

\echo '-- a quiet source does not hold back WAL written for other tables'
CREATE TABLE t25.other (i integer, pad text);
INSERT INTO t25.lsn VALUES ('before_other', pg_current_wal_lsn());
INSERT INTO t25.other SELECT i, repeat('x', 100) FROM generate_series(1, 2000) AS i;
INSERT INTO t25.lsn VALUES ('after_other', pg_current_wal_lsn());
CALL incetl.run('logi');
SELECT * FROM regress.last_counts('logi');
SELECT confirmed_flush_lsn >= (SELECT lsn FROM t25.lsn WHERE name = 'after_other') AS slot_moved_past_other_writes
  FROM t25.slot('logi');

\echo '-- status: retained WAL for the logical pipeline, NULL for the others'
CREATE TABLE t25.tgt2 (id integer PRIMARY KEY, v text, n integer);
SELECT incetl.create_pipeline('logi_hash', 't25.src', 't25.tgt2', strategy => 'hash') > 0 AS created;
SELECT pipeline, strategy, retained_wal_bytes IS NOT NULL AS has_retained_wal,
	   retained_wal_bytes >= 0 AS non_negative,
	   pg_typeof(retained_wal_bytes) AS type
  FROM incetl.status WHERE pipeline IN ('logi', 'logi_hash') ORDER BY 1;
SELECT incetl.drop_pipeline('logi_hash');

\echo '-- sources the logical strategy cannot serve'
CREATE TABLE t25.nokey (id integer NOT NULL, v text);
CREATE UNIQUE INDEX ON t25.nokey (id);
CREATE VIEW t25.vw AS SELECT id, v, n FROM t25.src;
CREATE TABLE t25.ptab (id integer, v text, n integer) PARTITION BY RANGE (id);
CREATE TABLE t25.ptab_1 PARTITION OF t25.ptab FOR VALUES FROM (0) TO (1000);
\set VERBOSITY default
-- no primary key, replica identity DEFAULT: deletes could not be decoded
SELECT incetl.create_pipeline('logi_bad', 't25.nokey', 't25.tgt', strategy => 'logical',
							  key_columns => '{id}');
-- replica identity NOTHING on a table that has a primary key
CREATE TABLE t25.nothing (id integer PRIMARY KEY, v text);
ALTER TABLE t25.nothing REPLICA IDENTITY NOTHING;
SELECT incetl.create_pipeline('logi_bad', 't25.nothing', 't25.tgt', strategy => 'logical');
-- a view, a partitioned table
SELECT incetl.create_pipeline('logi_bad', 't25.vw', 't25.tgt', strategy => 'logical',
							  key_columns => '{id}');
SELECT incetl.create_pipeline('logi_bad', 't25.ptab', 't25.tgt', strategy => 'logical',
							  key_columns => '{id}');
-- none of them left a pipeline or a slot behind
SELECT count(*) AS pipelines FROM incetl.pipelines WHERE name = 'logi_bad';
SELECT count(*) AS new_slots FROM pg_replication_slots
 WHERE slot_name NOT IN (SELECT slot_name FROM slots_before);
-- REPLICA IDENTITY FULL works without a primary key
ALTER TABLE t25.nokey REPLICA IDENTITY FULL;
CREATE TABLE t25.nokey_tgt (id integer PRIMARY KEY, v text);
INSERT INTO t25.nokey VALUES (1, 'a'), (2, 'b');
SELECT incetl.create_pipeline('logi_full', 't25.nokey', 't25.nokey_tgt', strategy => 'logical',
							  key_columns => '{id}') > 0 AS created;
CALL incetl.run('logi_full');
DELETE FROM t25.nokey WHERE id = 1;
UPDATE t25.nokey SET v = 'bb' WHERE id = 2;
INSERT INTO t25.nokey VALUES (3, 'c');
CALL incetl.run('logi_full');
SELECT * FROM regress.last_counts('logi_full');
SELECT * FROM t25.nokey_tgt ORDER BY id;

\echo '-- drop_pipeline drops the slot'
CREATE TEMP TABLE our_slots AS SELECT slot_name FROM t25.slot('logi') UNION ALL SELECT slot_name FROM t25.slot('logi_full');
SELECT count(*) AS slots FROM pg_replication_slots WHERE slot_name IN (SELECT slot_name FROM our_slots);
SELECT incetl.drop_pipeline('logi');
SELECT incetl.drop_pipeline('logi_full');
SELECT count(*) AS slots FROM pg_replication_slots WHERE slot_name IN (SELECT slot_name FROM our_slots);
SELECT count(*) AS new_slots FROM pg_replication_slots
 WHERE slot_name NOT IN (SELECT slot_name FROM slots_before);

DROP SCHEMA t25 CASCADE;
