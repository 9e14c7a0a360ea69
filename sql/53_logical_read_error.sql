--
-- 53_logical_read_error: a 'logical' run whose fill fails (here a key value
-- the source's domain no longer accepts) must leave nothing behind in the
-- session: in run_all, the pipelines after it share its SPI connection, and
-- the changes a run read are registered there (as the ephemeral relation
-- incetl_slot_changes) only for the fill's statement.  The next logical
-- pipeline of the same run_all reads and applies its own changes.
--
CREATE SCHEMA t53e;
CREATE DOMAIN t53e.small AS integer;
CREATE TABLE t53e.src_a (id t53e.small PRIMARY KEY, v text);
CREATE TABLE t53e.tgt_a (id integer PRIMARY KEY, v text);
CREATE TABLE t53e.src_b (id integer PRIMARY KEY, v text);
CREATE TABLE t53e.tgt_b (id integer PRIMARY KEY, v text);
SELECT incetl.create_pipeline('e53_a', 't53e.src_a', 't53e.tgt_a', strategy => 'logical') > 0 AS created;
SELECT incetl.create_pipeline('e53_b', 't53e.src_b', 't53e.tgt_b', strategy => 'logical') > 0 AS created;
CALL incetl.run_all();
INSERT INTO t53e.src_a VALUES (5, 'a');
INSERT INTO t53e.src_b VALUES (1, 'b');
-- the key 5 read back from the slot no longer casts to the domain
ALTER DOMAIN t53e.small ADD CONSTRAINT small_big CHECK (VALUE > 10) NOT VALID;
CALL incetl.run_all();
SELECT pipeline, status, rows_extracted, rows_inserted, error FROM incetl.run_log
 WHERE pipeline LIKE 'e53_%' ORDER BY run_id;
SELECT * FROM t53e.tgt_b;
-- and once the cause is gone, the first pipeline catches up too
ALTER DOMAIN t53e.small DROP CONSTRAINT small_big;
CALL incetl.run_all();
SELECT * FROM t53e.tgt_a;

SELECT incetl.drop_pipeline('e53_a'), incetl.drop_pipeline('e53_b');
DROP SCHEMA t53e CASCADE;
