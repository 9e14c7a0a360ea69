--
-- 63_review6_toast_delete: another table's TOASTed row, whose row the
-- read skips but whose TOAST chunks it does not, then a DELETE of the
-- source (which has a TOAST table) in the same transaction: the reorder
-- buffer's TOAST hash still holds the chunks when the DELETE is replayed,
-- and ReorderBufferToastReplace reads the DELETE's new tuple (NULL).
-- Last: before the fix the server crashed here (signal 11).
--
CREATE SCHEMA t63;
CREATE TABLE t63.src (id integer PRIMARY KEY, v text);
CREATE TABLE t63.tgt (id integer PRIMARY KEY, v text);
CREATE TABLE t63.other (id integer PRIMARY KEY, t text);
ALTER TABLE t63.other ALTER t SET STORAGE EXTERNAL;
SELECT incetl.create_pipeline('l63', 't63.src', 't63.tgt', strategy => 'logical') > 0 AS created;
INSERT INTO t63.src SELECT g, 'a' FROM generate_series(1, 10) AS g;
CALL incetl.run('l63');
-- the slot's catalog_xmin past the tables' creation
CHECKPOINT;
INSERT INTO t63.src VALUES (11, 'b');
CALL incetl.run('l63');
CHECKPOINT;
INSERT INTO t63.src VALUES (12, 'b');
CALL incetl.run('l63');
BEGIN;
INSERT INTO t63.other SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, 200) AS g;
DELETE FROM t63.src WHERE id = 1;
COMMIT;
CALL incetl.run('l63');
SELECT (SELECT count(*) FROM (TABLE t63.src EXCEPT TABLE t63.tgt) a) AS missing,
	   (SELECT count(*) FROM (TABLE t63.tgt EXCEPT TABLE t63.src) b) AS extra;
SELECT incetl.drop_pipeline('l63');
DROP SCHEMA t63 CASCADE;
