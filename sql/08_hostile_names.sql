--
-- 08_hostile_names: schema, table, column and pipeline names with double
-- and single quotes, spaces, semicolons, upper case, reserved words and
-- non-ASCII letters work end to end (create, run, update, run, preview,
-- set_watermark, backfill, alter, drop), and a canary table proves that no
-- name was spliced into SQL unquoted.  Then a hostile search_path: operators
-- and functions that shadow pg_catalog's are never called.
--
SET client_encoding = 'UTF8';
CREATE SCHEMA t08;
CREATE TABLE t08.canary (note text);
INSERT INTO t08.canary VALUES ('alive');

CREATE SCHEMA "My Schema; DROP";
CREATE TABLE "My Schema; DROP"."Ta""ble ü" (
	"Id Ä" integer PRIMARY KEY,
	"Na'me" text,
	"select" integer,
	"Updated At;" timestamptz NOT NULL
);
CREATE SCHEMA "Tgt ""S""";
CREATE TABLE "Tgt ""S"""."T; DELETE FROM t08.canary; --" (
	"Id Ä" integer PRIMARY KEY,
	"Na'me" text,
	"select" integer,
	"Updated At;" timestamptz,
	etl_run_id bigint
);
INSERT INTO "My Schema; DROP"."Ta""ble ü"
SELECT i, 'it''s "row" ' || i || '; DROP TABLE t08.canary; --', i, timestamptz '2024-09-01 00:00:00+00' + i * interval '1 hour'
  FROM generate_series(1, 5) AS i;

SELECT incetl.create_pipeline('p"; DROP TABLE t08.canary; --',
							  source => '"My Schema; DROP"."Ta""ble ü"',
							  target => '"Tgt ""S"""."T; DELETE FROM t08.canary; --"',
							  watermark_column => 'Updated At;', batch_size => 2) > 0 AS created;
SELECT name, source, target, key_columns, watermark_column FROM incetl.pipelines;

\echo '-- run, update, run'
CALL incetl.run('p"; DROP TABLE t08.canary; --');
SELECT * FROM regress.last_run('p"; DROP TABLE t08.canary; --');
SELECT * FROM regress.cursor('p"; DROP TABLE t08.canary; --');
UPDATE "My Schema; DROP"."Ta""ble ü" SET "Na'me" = 'changed ''again''', "Updated At;" = '2024-09-02 00:00:00+00'
 WHERE "Id Ä" = 2;
INSERT INTO "My Schema; DROP"."Ta""ble ü" VALUES (6, 'six', 6, '2024-09-02 00:00:00+00');
-- preview names the key column as it is spelled
SELECT * FROM incetl.preview('p"; DROP TABLE t08.canary; --') ORDER BY key->>'Id Ä';
CALL incetl.run('p"; DROP TABLE t08.canary; --');
SELECT * FROM regress.last_run('p"; DROP TABLE t08.canary; --');
SELECT count(*) AS differences FROM (
	(SELECT * FROM "My Schema; DROP"."Ta""ble ü"
	 EXCEPT SELECT "Id Ä", "Na'me", "select", "Updated At;" FROM "Tgt ""S"""."T; DELETE FROM t08.canary; --")
	UNION ALL
	(SELECT "Id Ä", "Na'me", "select", "Updated At;" FROM "Tgt ""S"""."T; DELETE FROM t08.canary; --"
	 EXCEPT SELECT * FROM "My Schema; DROP"."Ta""ble ü")) d;
SELECT "Id Ä", "Na'me" FROM "Tgt ""S"""."T; DELETE FROM t08.canary; --" WHERE "Id Ä" IN (1, 2) ORDER BY 1;

\echo '-- set_watermark, backfill, alter, reset, status'
SELECT incetl.set_watermark('p"; DROP TABLE t08.canary; --', '2024-09-01 02:00:00+00');
SELECT * FROM regress.cursor('p"; DROP TABLE t08.canary; --');
CALL incetl.run('p"; DROP TABLE t08.canary; --');
-- rows after 02:00: ids 3, 4, 5, 2 and 6, all unchanged
SELECT extracted, inserted, updated, unchanged FROM regress.last_run('p"; DROP TABLE t08.canary; --');
DELETE FROM "Tgt ""S"""."T; DELETE FROM t08.canary; --" WHERE "Id Ä" = 1;
-- (four untyped literals would match both overloads of backfill: cast them)
CALL incetl.backfill('p"; DROP TABLE t08.canary; --', timestamptz '2024-09-01 00:00:00+00',
					 timestamptz '2024-09-01 02:00:00+00', interval '1 hour');
SELECT kind, status, extracted, inserted FROM regress.last_run('p"; DROP TABLE t08.canary; --');
SELECT count(*) FROM "Tgt ""S"""."T; DELETE FROM t08.canary; --";
SELECT incetl.alter_pipeline('p"; DROP TABLE t08.canary; --', batch_size => 100, lookback => '1 day');
CALL incetl.run('p"; DROP TABLE t08.canary; --');
SELECT status, extracted, unchanged FROM regress.last_run('p"; DROP TABLE t08.canary; --');
SELECT incetl.reset_watermark('p"; DROP TABLE t08.canary; --');
SELECT pipeline, watermark, last_status FROM incetl.status;

\echo '-- a second pipeline with a single quote in its name, a composite key and a key value with quotes'
CREATE TABLE "My Schema; DROP"."ключ" ("a b" text COLLATE "C", "A B" integer, "v" text, "Ts" timestamp NOT NULL,
									   PRIMARY KEY ("a b", "A B"));
CREATE TABLE "Tgt ""S"""."ключ" (LIKE "My Schema; DROP"."ключ" INCLUDING ALL);
INSERT INTO "My Schema; DROP"."ключ" VALUES
	('it''s', 1, 'x', '2024-09-01 00:00:00'),
	('NULL', 4, 'x', '2024-09-01 00:00:00'),
	('a', 3, 'x', '2024-09-01 00:00:01'),
	('a "quoted" {key}, back\slash', 2, 'x', '2024-09-01 00:00:01');
SELECT incetl.create_pipeline('it''s', '"My Schema; DROP"."ключ"', '"Tgt ""S"""."ключ"',
							  watermark_column => 'Ts', batch_size => 1) > 0 AS created;
SELECT key_columns FROM incetl.pipelines WHERE name = 'it''s';
CALL incetl.run('it''s');
SELECT status, batches, extracted, inserted FROM regress.last_run('it''s');
-- the cursor keeps the last key exactly, quotes, braces and all
SELECT * FROM regress.cursor('it''s');
-- above the cursor: read; below it (same timestamp, lower key): not read
INSERT INTO "My Schema; DROP"."ключ" VALUES ('a "quoted" {key}, back\slash', 3, 'x', '2024-09-01 00:00:01'),
	('a "quoted" {key}, back\slash', 1, 'x', '2024-09-01 00:00:01');
CALL incetl.run('it''s');
SELECT status, batches, extracted, inserted, unchanged FROM regress.last_run('it''s');
SELECT "a b", "A B" FROM "Tgt ""S"""."ключ" ORDER BY 1, 2;
-- a disabled pipeline's hint quotes the name as an SQL literal
SELECT incetl.alter_pipeline('it''s', enabled => false);
SELECT regress.try($$CALL incetl.run('it''s')$$);

\echo '-- a hostile search_path: look-alike operators and functions are never called'
CREATE SCHEMA hostile;
CREATE FUNCTION hostile.trap_int(integer, integer) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO t08.canary VALUES ('trap: = on integer'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR hostile.= (LEFTARG = integer, RIGHTARG = integer, FUNCTION = hostile.trap_int);
CREATE FUNCTION hostile.trap_text(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO t08.canary VALUES ('trap: = on text'); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = hostile.trap_text);
CREATE FUNCTION hostile.trap_ts(timestamptz, timestamptz) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO t08.canary VALUES ('trap: > on timestamptz'); RETURN $1 OPERATOR(pg_catalog.>) $2; END $$;
CREATE OPERATOR hostile.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = hostile.trap_ts);
CREATE OPERATOR hostile.< (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = hostile.trap_ts);
CREATE FUNCTION hostile.now() RETURNS timestamptz LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO t08.canary VALUES ('trap: now()'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION hostile.count(anyelement) RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO t08.canary VALUES ('trap: count()'); RETURN 0; END $$;
CREATE TABLE hostile.pipelines (name text);			-- look-alike of incetl's catalog
CREATE TABLE t08.hsrc (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE t08.htgt (id integer PRIMARY KEY, v text, updated_at timestamptz,
					   etl_inserted_at timestamptz, etl_updated_at timestamptz, etl_run_id bigint);
INSERT INTO t08.hsrc SELECT i, 'v' || i, timestamptz '2024-09-01 00:00:00+00' + i * interval '1 second'
  FROM generate_series(1, 4) AS i;
SET search_path = hostile, pg_catalog, public;
SELECT incetl.create_pipeline('hostile', 't08.hsrc', 't08.htgt', watermark_column => 'updated_at',
							  batch_size => 3) > 0 AS created;
CALL incetl.run('hostile');
UPDATE t08.hsrc SET v = 'changed', updated_at = '2024-09-02 00:00:00+00' WHERE id OPERATOR(pg_catalog.=) 1;
SELECT * FROM incetl.preview('hostile');
CALL incetl.run('hostile');
CALL incetl.backfill('hostile', '2024-09-01', '2024-09-03');
SELECT incetl.set_watermark('hostile', '2024-09-01 00:00:02+00');
CALL incetl.run_all();
SELECT * FROM incetl.status WHERE false;
SELECT incetl.drop_pipeline('hostile');
RESET search_path;
SELECT count(*) AS rows, count(*) FILTER (WHERE v = 'changed') AS changed,
	   count(*) FILTER (WHERE etl_inserted_at > '2001-01-01') AS real_now
  FROM t08.htgt;

\echo '-- drop, and the canary'
SELECT incetl.drop_pipeline('p"; DROP TABLE t08.canary; --');
SELECT incetl.drop_pipeline('it''s');
SELECT count(*) AS pipelines FROM incetl.pipelines;
-- only the first row: no trap was ever called
SELECT * FROM t08.canary;
SELECT count(*) AS tables_left FROM pg_class
 WHERE relnamespace IN ('"My Schema; DROP"'::regnamespace, '"Tgt ""S"""'::regnamespace) AND relkind = 'r';
DROP SCHEMA "My Schema; DROP" CASCADE;
DROP SCHEMA "Tgt ""S""" CASCADE;
DROP SCHEMA hostile CASCADE;
DROP SCHEMA t08 CASCADE;
