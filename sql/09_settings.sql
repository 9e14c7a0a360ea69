--
-- 09_settings: session settings cannot bend the watermark.  A run under
-- DateStyle 'ISO, MDY' / TimeZone 'UTC' saves a cursor; a later run under
-- DateStyle 'SQL, DMY', TimeZone 'Asia/Kathmandu' (UTC+05:45),
-- IntervalStyle 'sql_standard' and extra_float_digits -15 reads exactly
-- the new rows, none skipped and none read again, and the stored watermark
-- keeps its canonical form (ISO 8601, UTC for timestamptz).  Likewise for
-- numeric, timestamp without time zone and date watermark columns.
-- set_watermark reads its text in the caller's settings and stores the
-- canonical form.
--
CREATE SCHEMA t09;
CREATE FUNCTION t09.odd_settings() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('DateStyle', 'SQL, DMY', false);
	PERFORM set_config('TimeZone', 'Asia/Kathmandu', false);
	PERFORM set_config('IntervalStyle', 'sql_standard', false);
	PERFORM set_config('extra_float_digits', '-15', false);
	-- a locale with a decimal comma, where the system has one (no output either way)
	BEGIN
		PERFORM set_config('lc_numeric', 'de_DE.UTF-8', false);
	EXCEPTION WHEN OTHERS THEN
		NULL;
	END;
END;
$$;
CREATE FUNCTION t09.plain_settings() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('DateStyle', 'ISO, MDY', false);
	PERFORM set_config('TimeZone', 'UTC', false);
	PERFORM set_config('IntervalStyle', 'postgres', false);
	PERFORM set_config('extra_float_digits', '1', false);
	PERFORM set_config('lc_numeric', 'C', false);
END;
$$;

\echo '-- timestamptz, with microseconds'
CREATE TABLE t09.src_tz (id integer PRIMARY KEY, v text, ts timestamptz NOT NULL);
CREATE TABLE t09.tgt_tz (id integer PRIMARY KEY, v text, ts timestamptz);
INSERT INTO t09.src_tz VALUES
	(1, 'a', '2024-01-02 03:04:05.123456+00'),
	(2, 'b', '2024-01-02 03:04:05.123456+00'),
	(3, 'c', '2024-01-02 03:04:05.123457+00'),
	(4, 'd', '2024-12-31 23:59:59.999999+00');
SELECT incetl.create_pipeline('s_tz', 't09.src_tz', 't09.tgt_tz', watermark_column => 'ts',
							  batch_size => 3) > 0 AS created;
SELECT t09.plain_settings();
CALL incetl.run('s_tz');
SELECT batches, extracted, inserted, wm_after FROM regress.last_run('s_tz');
SELECT * FROM regress.cursor('s_tz');
-- new rows: one a microsecond after the cursor, one at the cursor with a
-- higher key, and (in Kathmandu) one at 05:45 local on 1 January 2025,
-- which is the cursor's instant plus a microsecond
INSERT INTO t09.src_tz VALUES
	(5, 'e', '2025-01-01 00:00:00+00'),
	(6, 'f', '2024-12-31 23:59:59.999999+00'),
	(7, 'g', '2025-01-01 05:45:00.000001+05:45');
SELECT t09.odd_settings();
SHOW DateStyle;
SHOW TimeZone;
CALL incetl.run('s_tz');
SELECT batches, extracted, inserted, updated, unchanged, wm_before, wm_after FROM regress.last_run('s_tz');
SELECT * FROM regress.cursor('s_tz');
-- and nothing again
CALL incetl.run('s_tz');
SELECT extracted FROM regress.last_run('s_tz');
SELECT t09.plain_settings();
SELECT count(*) AS differences FROM (
	(SELECT * FROM t09.src_tz EXCEPT SELECT * FROM t09.tgt_tz)
	UNION ALL (SELECT * FROM t09.tgt_tz EXCEPT SELECT * FROM t09.src_tz)) d;

\echo '-- numeric'
CREATE TABLE t09.src_num (id integer PRIMARY KEY, v text, pos numeric NOT NULL);
CREATE TABLE t09.tgt_num (id integer PRIMARY KEY, v text, pos numeric);
INSERT INTO t09.src_num VALUES (1, 'a', 1.5), (2, 'b', 2.25), (3, 'c', 1000000.000001),
	(4, 'd', 12345678901234567890.123456789);
SELECT incetl.create_pipeline('s_num', 't09.src_num', 't09.tgt_num', watermark_column => 'pos',
							  batch_size => 2) > 0 AS created;
CALL incetl.run('s_num');
SELECT batches, extracted, inserted, wm_after FROM regress.last_run('s_num');
SELECT * FROM regress.cursor('s_num');
INSERT INTO t09.src_num VALUES (5, 'e', 12345678901234567890.12345679), (6, 'f', 12345678901234567890.123456789),
	(7, 'g', 12345678901234567890.1234567889);
SELECT t09.odd_settings();
CALL incetl.run('s_num');
-- 5 and 6 are above the cursor, 7 is below it
SELECT batches, extracted, inserted, unchanged, wm_before, wm_after FROM regress.last_run('s_num');
SELECT * FROM regress.cursor('s_num');
SELECT t09.plain_settings();
SELECT id FROM t09.tgt_num ORDER BY id;

\echo '-- timestamp without time zone'
CREATE TABLE t09.src_ts (id integer PRIMARY KEY, v text, ts timestamp NOT NULL);
CREATE TABLE t09.tgt_ts (id integer PRIMARY KEY, v text, ts timestamp);
INSERT INTO t09.src_ts VALUES (1, 'a', '2024-01-02 03:04:05.5'), (2, 'b', '2024-01-03 00:00:00'),
	(3, 'c', '2024-01-03 00:00:00');
SELECT incetl.create_pipeline('s_ts', 't09.src_ts', 't09.tgt_ts', watermark_column => 'ts',
							  batch_size => 2) > 0 AS created;
CALL incetl.run('s_ts');
SELECT batches, extracted, inserted, wm_after FROM regress.last_run('s_ts');
SELECT * FROM regress.cursor('s_ts');
INSERT INTO t09.src_ts VALUES (4, 'd', '2024-01-03 00:00:00.000001'), (5, 'e', '2024-01-03 00:00:00');
SELECT t09.odd_settings();
CALL incetl.run('s_ts');
-- 4 is after the cursor, 5 shares its timestamp with a higher key
SELECT batches, extracted, inserted, unchanged, wm_before, wm_after FROM regress.last_run('s_ts');
SELECT * FROM regress.cursor('s_ts');
SELECT t09.plain_settings();

\echo '-- date'
CREATE TABLE t09.src_d (id integer PRIMARY KEY, v text, d date NOT NULL);
CREATE TABLE t09.tgt_d (id integer PRIMARY KEY, v text, d date);
INSERT INTO t09.src_d VALUES (1, 'a', '2024-01-02'), (2, 'b', '2024-02-01');
SELECT incetl.create_pipeline('s_d', 't09.src_d', 't09.tgt_d', watermark_column => 'd') > 0 AS created;
CALL incetl.run('s_d');
SELECT * FROM regress.cursor('s_d');
-- under DMY, '2024-02-01' must still be 1 February
INSERT INTO t09.src_d VALUES (3, 'c', '2024-01-03'), (4, 'd', '2024-02-02');
SELECT t09.odd_settings();
CALL incetl.run('s_d');
SELECT extracted, inserted, wm_before, wm_after FROM regress.last_run('s_d');
SELECT t09.plain_settings();
SELECT id FROM t09.tgt_d ORDER BY id;

\echo '-- every stored time watermark has the canonical ISO form'
SELECT p.name, s.watermark,
	   s.watermark ~ '^\d{4}-\d\d-\d\d( \d\d:\d\d:\d\d(\.\d{1,6})?(\+00)?)?$' AS iso_form
  FROM incetl.state s JOIN incetl.pipelines p ON p.id = s.pipeline_id
 WHERE p.name LIKE 's\_%' AND s.watermark_type <> 'numeric'::regtype ORDER BY p.name;

\echo '-- set_watermark reads the caller''s settings, stores UTC'
SELECT t09.odd_settings();
-- DMY: 02/01/2024 is 2 January; Kathmandu is UTC+05:45
SELECT incetl.set_watermark('s_tz', '02/01/2024 10:00:00');
SELECT incetl.set_watermark('s_ts', '02/01/2024 10:00:00');
SELECT incetl.set_watermark('s_d', '02/01/2024');
SELECT incetl.set_watermark('s_num', '3.5');
SELECT t09.plain_settings();
SELECT p.name, s.watermark, s.watermark_key
  FROM incetl.state s JOIN incetl.pipelines p ON p.id = s.pipeline_id
 WHERE p.name LIKE 's\_%' ORDER BY p.name;
-- an explicit offset wins over the session's TimeZone
SET TimeZone = 'America/New_York';
SELECT incetl.set_watermark('s_tz', '2024-06-01 12:00:00+02');
SELECT watermark FROM regress.cursor('s_tz');
-- the runs after set_watermark read everything above it
CALL incetl.run('s_tz');
SELECT extracted, wm_before FROM regress.last_run('s_tz');
CALL incetl.run('s_num');
SELECT extracted, wm_before FROM regress.last_run('s_num');
RESET TimeZone;

SELECT incetl.drop_pipeline(name) FROM incetl.pipelines WHERE name LIKE 's\_%' ORDER BY name;
RESET DateStyle;
RESET IntervalStyle;
RESET extra_float_digits;
RESET lc_numeric;
DROP SCHEMA t09 CASCADE;
