--
-- 55_hash_reconcile_state: a reconcile of a 'hash' pipeline whose stored
-- hashes were emptied (alter_pipeline(hash_algorithm => ...) empties them)
-- leaves a complete hash state, so the next run still sees deletes.
--
-- Found by 080_differential (seed 6713295): the reconcile stored the
-- hashes of the keys it wrote and nothing else; the next run, finding a
-- state that was not empty, did not seed it from the target, and a key
-- the source lost after the reconcile stayed in the target for good.  An
-- empty state is now seeded from the target before a reconcile too.
--
CREATE SCHEMA t55;
CREATE TABLE t55.src (id integer PRIMARY KEY, v text);
CREATE TABLE t55.tgt (id integer PRIMARY KEY, v text);
INSERT INTO t55.src SELECT g, 'v' || g FROM generate_series(1, 10) AS g;
SELECT incetl.create_pipeline('h55', 't55.src', 't55.tgt', strategy => 'hash',
							  hash_algorithm => 'sha256') > 0 AS created;
CALL incetl.run('h55');
-- another algorithm: the stored hashes go
SELECT incetl.alter_pipeline('h55', hash_algorithm => 'hash64');
UPDATE t55.src SET v = 'changed' WHERE id = 3;
DELETE FROM t55.src WHERE id = 4;
CALL incetl.reconcile('h55');
SELECT * FROM regress.last_counts('h55');
-- every target row has its stored hash again
CREATE FUNCTION t55.stored() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM incetl.hash_state_%s',
				   (SELECT id FROM incetl.pipelines WHERE name = 'h55')) INTO n;
	RETURN n;
END;
$$;
SELECT (SELECT count(*) FROM t55.tgt) = t55.stored() AS state_complete;
-- a key change after the reconcile: its old key must go
UPDATE t55.src SET id = 99 WHERE id = 5;
CALL incetl.run('h55');
SELECT * FROM regress.last_counts('h55');
SELECT (SELECT count(*) FROM (TABLE t55.src EXCEPT TABLE t55.tgt) a) AS missing,
	   (SELECT count(*) FROM (TABLE t55.tgt EXCEPT TABLE t55.src) b) AS extra;
SELECT incetl.drop_pipeline('h55');
DROP SCHEMA t55 CASCADE;
