-- 70_logical_direct_fill: a logical run writes its kept rows into the work table
-- directly (table_multi_insert), and batches without the source when every key
-- has its row; the INSERT when the work table is not as the run made it
SET incetl.late_commit_margin = 0;
CREATE SCHEMA t70;
CREATE TABLE t70.src (id integer PRIMARY KEY, v text, big text, n integer);
CREATE TABLE t70.tgt (LIKE t70.src);
ALTER TABLE t70.tgt ADD PRIMARY KEY (id);
CREATE FUNCTION t70.big(i integer, len integer) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(md5((i * 100000 + g)::text), '') FROM generate_series(1, len) AS g
$$;
CREATE FUNCTION t70.diff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (TABLE t70.src EXCEPT TABLE t70.tgt) a),
		   (SELECT count(*) FROM (TABLE t70.tgt EXCEPT TABLE t70.src) b)
$$;
CREATE FUNCTION t70.scans() RETURNS bigint LANGUAGE sql AS $$
	SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables
	 WHERE relid = 't70.src'::regclass
$$;
INSERT INTO t70.src SELECT g, 'v' || g, NULL, g FROM generate_series(1, 3000) AS g;
SELECT incetl.create_pipeline('l70', 't70.src', 't70.tgt', strategy => 'logical',
							  batch_size => 7) > 0 AS created;
CALL incetl.run('l70');
SELECT * FROM t70.diff();

\echo '-- 1. only inserts/updates (rows only), 2500 keys over many batches and writer flushes, TOASTed values'
UPDATE t70.src SET v = 'u1', n = n + 1 WHERE id <= 2500;
UPDATE t70.src SET big = t70.big(id, 3000) WHERE id IN (3, 1500, 2500);  -- ~96 kB incompressible
UPDATE t70.src SET big = repeat('x', 3000000) WHERE id = 4;               -- compressible
INSERT INTO t70.src SELECT g, 'new', t70.big(g, 100), g FROM generate_series(3001, 3010) AS g;
SELECT pg_stat_force_next_flush();
SELECT pg_stat_clear_snapshot();
SELECT t70.scans() AS scans_before \gset
CALL incetl.run('l70');
SELECT pg_stat_force_next_flush();
SELECT pg_stat_clear_snapshot();
SELECT t70.scans() - :scans_before AS source_scans_rows_only;
SELECT * FROM regress.last_counts('l70');
SELECT * FROM t70.diff();
SELECT id, length(big), md5(big) = (SELECT md5(big) FROM t70.src s WHERE s.id = t.id) AS same
  FROM t70.tgt t WHERE id IN (3, 4, 1500, 2500, 3005) ORDER BY id;

\echo '-- 2. one delete among them: not rows only, the source is probed'
UPDATE t70.src SET v = 'u2' WHERE id <= 20;
DELETE FROM t70.src WHERE id = 10;
SELECT pg_stat_force_next_flush();
SELECT pg_stat_clear_snapshot();
SELECT t70.scans() AS scans_before \gset
CALL incetl.run('l70');
SELECT pg_stat_force_next_flush();
SELECT pg_stat_clear_snapshot();
SELECT t70.scans() - :scans_before > 0 AS source_probed;
SELECT * FROM t70.diff();

\echo '-- 3. unchanged TOASTed value (rowless) among rows'
UPDATE t70.src SET v = 'u3' WHERE id IN (3, 4, 5, 6);
CALL incetl.run('l70');
SELECT * FROM t70.diff();

\echo '-- 4. in a transaction block, rolled back, then again'
UPDATE t70.src SET v = 'u4' WHERE id <= 30;
BEGIN;
CALL incetl.run('l70');
SELECT count(*) FROM t70.tgt WHERE v = 'u4';
ROLLBACK;
SELECT count(*) FROM t70.tgt WHERE v = 'u4';
CALL incetl.run('l70');
SELECT * FROM t70.diff();

\echo '-- 5. work table altered at creation by an event trigger: the INSERT fallback'
CREATE TABLE t70.hits (n bigint);
INSERT INTO t70.hits VALUES (0);
CREATE FUNCTION t70.count_hit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE t70.hits SET n = n + 1; RETURN NEW; END $$;
CREATE FUNCTION t70.et() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
	FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
		IF (SELECT relname FROM pg_class WHERE oid = r.objid) LIKE 'incetl_work_%' THEN
			EXECUTE format('CREATE TRIGGER hit BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION t70.count_hit()',
						   r.objid::regclass);
		END IF;
	END LOOP;
END $$;
CREATE EVENT TRIGGER t70_et ON ddl_command_end EXECUTE FUNCTION t70.et();
UPDATE t70.src SET v = 'u5' WHERE id <= 40;
CALL incetl.run('l70');
SELECT n AS work_inserts_through_trigger FROM t70.hits;
SELECT * FROM t70.diff();
DROP EVENT TRIGGER t70_et;

\echo '-- 6. a key whose last change is a delete, grouped with a re-insert of an equal key'
UPDATE t70.src SET id = 5000 WHERE id = 50;
INSERT INTO t70.src VALUES (50, 'back', NULL, 50);
CALL incetl.run('l70');
SELECT * FROM t70.diff();

SELECT incetl.drop_pipeline('l70');
DROP SCHEMA t70 CASCADE;
