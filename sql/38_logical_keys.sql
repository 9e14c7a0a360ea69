--
-- 38_logical_keys: keys travel from incetl's output plugin to the run as
-- text, and are decoded exactly whatever the session's settings.
--
-- A float8 and timestamptz key, changed and deleted, and a run in a
-- session with extra_float_digits = 0 (floats print rounded),
-- DateStyle = 'SQL, DMY' and TimeZone = 'Asia/Kolkata' (timestamps print
-- with the abbreviation IST, which reads back as Israel time), plus
-- IntervalStyle and bytea_output changed: every change is applied, and the
-- session's settings are as they were after the run.
--
CREATE SCHEMA t38;

\echo '-- keys are exact whatever the session settings'
CREATE TABLE t38.fsrc (f float8, t timestamptz, v text, PRIMARY KEY (f, t));
CREATE TABLE t38.ftgt (f float8, t timestamptz, v text, PRIMARY KEY (f, t));
INSERT INTO t38.fsrc VALUES
	(0.1::float8 + 0.2::float8, '2024-12-25 10:00:00.123456+00', 'a'),
	(pi(), '2024-06-30 23:59:59.999999+00', 'b'),
	(1::float8 / 3, 'infinity', 'c'),
	(1.2345678901234567e300, '1999-12-31 23:59:59+00', 'd'),
	(-5e-324, '2000-01-01 00:00:00+00', 'e');
CREATE FUNCTION t38.fdiff(OUT missing bigint, OUT extra bigint) LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM (TABLE t38.fsrc EXCEPT TABLE t38.ftgt) a),
		   (SELECT count(*) FROM (TABLE t38.ftgt EXCEPT TABLE t38.fsrc) b)
$$;
SELECT incetl.create_pipeline('f38', 't38.fsrc', 't38.ftgt', strategy => 'logical') > 0 AS created;
CALL incetl.run('f38');
SELECT * FROM regress.last_counts('f38');
SELECT * FROM t38.fdiff();
-- a session whose output rounds floats and names zones ambiguously
SET extra_float_digits = 0;
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Asia/Kolkata';
SET IntervalStyle = 'sql_standard';
SET bytea_output = 'escape';
UPDATE t38.fsrc SET v = v || ' changed' WHERE v IN ('a', 'b', 'c', 'd');
DELETE FROM t38.fsrc WHERE v = 'e';
SELECT op, count(*) FROM incetl.preview('f38') GROUP BY op ORDER BY op;
CALL incetl.run('f38');
SELECT * FROM regress.last_counts('f38');
SELECT * FROM t38.fdiff();
-- the settings are the session's own again
SHOW extra_float_digits;
SHOW DateStyle;
SHOW TimeZone;
SHOW IntervalStyle;
SHOW bytea_output;
CALL incetl.run('f38');
SELECT * FROM regress.last_counts('f38');
RESET extra_float_digits;
RESET DateStyle;
RESET TimeZone;
RESET IntervalStyle;
RESET bytea_output;
SELECT incetl.drop_pipeline('f38');

DROP SCHEMA t38 CASCADE;
