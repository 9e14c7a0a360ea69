--
-- 37_logical_truncate: a TRUNCATE read by a 'logical' run is not lost when
-- the run fails after its keyed batches.
--
-- After a TRUNCATE the run applies the keys it read, then deletes the
-- target keys the source no longer has.  A target trigger fails once in
-- that second pass: the applied LSN must not have moved with the keyed
-- batch, so the next run sees the TRUNCATE again and finishes the job.
--
CREATE SCHEMA t37;

\echo '-- TRUNCATE, then the compare pass fails once'
CREATE TABLE t37.src (id integer PRIMARY KEY, v text);
CREATE TABLE t37.tgt (id integer PRIMARY KEY, v text);
INSERT INTO t37.src SELECT g, 'v' || g FROM generate_series(1, 6) AS g;
CREATE FUNCTION t37.diff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (TABLE t37.src EXCEPT TABLE t37.tgt) a),
		   (SELECT count(*) FROM (TABLE t37.tgt EXCEPT TABLE t37.src) b)
$$;
SELECT incetl.create_pipeline('x37', 't37.src', 't37.tgt', strategy => 'logical',
							  batch_size => 2) > 0 AS created;
CALL incetl.run('x37');
SELECT * FROM regress.last_counts('x37');
-- the first delete from the target fails, once (a sequence is not rolled back)
CREATE SEQUENCE t37.deletes;
CREATE FUNCTION t37.fail_first_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF nextval('t37.deletes') = 1 THEN
		RAISE EXCEPTION 'target trigger fails once';
	END IF;
	RETURN OLD;
END
$$;
CREATE TRIGGER fail_first_delete BEFORE DELETE ON t37.tgt
	FOR EACH ROW EXECUTE FUNCTION t37.fail_first_delete();
TRUNCATE t37.src;
INSERT INTO t37.src VALUES (1, 'after truncate'), (10, 'new');
\set VERBOSITY terse
CALL incetl.run('x37');
-- the keyed batch (keys 1 and 10) committed, the deletes did not
SELECT * FROM regress.last_counts('x37');
SELECT id, v FROM t37.tgt ORDER BY id;
-- the next run reads the TRUNCATE again and deletes what the source lacks
CALL incetl.run('x37');
SELECT * FROM regress.last_counts('x37');
SELECT * FROM t37.diff();
CALL incetl.run('x37');
SELECT * FROM regress.last_counts('x37');
SELECT incetl.drop_pipeline('x37');

DROP SCHEMA t37 CASCADE;
