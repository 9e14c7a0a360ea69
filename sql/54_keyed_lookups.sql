--
-- 54_keyed_lookups: a keyed batch looks its keys up in the target through
-- the target's key index, even when the target was analyzed while empty.
--
-- A first 'hash' run after VACUUM ANALYZE of its empty target planned the
-- batch's target side as a scan of the whole target (free, by the
-- statistics) inside a nested loop, rescanned per key while the statement
-- inserted into that target: 100k keys took 11.6 s instead of 0.8 s.
-- incetl.explain plans with the batches' settings, so its plan of the
-- apply step shows what a batch would do.
--
CREATE SCHEMA t54;
CREATE TABLE t54.src (id integer PRIMARY KEY, v text);
CREATE TABLE t54.tgt (id integer PRIMARY KEY, v text);
INSERT INTO t54.src SELECT g, 'v' || g FROM generate_series(1, 1000) AS g;
SELECT incetl.create_pipeline('h54', 't54.src', 't54.tgt', strategy => 'hash') > 0 AS created;
VACUUM ANALYZE t54.src, t54.tgt;
SELECT count(*) FILTER (WHERE line ~ 'Seq Scan on tgt') AS target_scans,
	   count(*) FILTER (WHERE line ~ 'Index Scan using tgt_pkey on tgt') > 0 AS target_lookups
  FROM incetl.explain('h54') AS e, regexp_split_to_table(e.plan, E'\n') AS line
 WHERE e.step = 'apply';
CALL incetl.run('h54');
SELECT * FROM regress.last_counts('h54');
SELECT count(*) AS differ FROM (TABLE t54.src EXCEPT TABLE t54.tgt) d;
SELECT incetl.drop_pipeline('h54');
DROP SCHEMA t54 CASCADE;
