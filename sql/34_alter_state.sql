--
-- 34_alter_state: alter_pipeline keeps exactly the state that stays true.
--   - a new hash_algorithm on a 'trigger' pipeline keeps its queue: the
--     changes queued before are still applied;
--   - a new target, for every strategy, starts from an empty watermark (and
--     hash state): the next run, and preview, load everything into it.
--
CREATE SCHEMA t34;
CREATE TABLE t34.src (id integer PRIMARY KEY, v text NOT NULL,
					  updated_at timestamptz NOT NULL);
INSERT INTO t34.src SELECT g, 'v' || g, timestamptz '2024-01-01 00:00+00' + g * interval '1 minute'
  FROM generate_series(1, 5) g;
CREATE FUNCTION t34.same(tgt regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	missing bigint;
	extra bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM (SELECT id, v, updated_at FROM t34.src EXCEPT SELECT id, v, updated_at FROM %s) x', tgt) INTO missing;
	EXECUTE format('SELECT count(*) FROM (SELECT id, v, updated_at FROM %s EXCEPT SELECT id, v, updated_at FROM t34.src) x', tgt) INTO extra;
	RETURN format('missing %s, extra %s', missing, extra);
END;
$$;
CREATE TABLE t34.a_ts (id integer PRIMARY KEY, v text, updated_at timestamptz);
CREATE TABLE t34.b_ts (LIKE t34.a_ts INCLUDING ALL);
CREATE TABLE t34.a_hash (LIKE t34.a_ts INCLUDING ALL);
CREATE TABLE t34.b_hash (LIKE t34.a_ts INCLUDING ALL);
CREATE TABLE t34.a_trg (LIKE t34.a_ts INCLUDING ALL);
CREATE TABLE t34.b_trg (LIKE t34.a_ts INCLUDING ALL);
SELECT incetl.create_pipeline('alt_ts', 't34.src', 't34.a_ts', watermark_column => 'updated_at') > 0 AS created;
SELECT incetl.create_pipeline('alt_hash', 't34.src', 't34.a_hash', strategy => 'hash') > 0 AS created;
SELECT incetl.create_pipeline('alt_trg', 't34.src', 't34.a_trg', strategy => 'trigger') > 0 AS created;
CALL incetl.run('alt_ts');
CALL incetl.run('alt_hash');
CALL incetl.run('alt_trg');

\echo '-- hash_algorithm of a trigger pipeline changes with changes queued'
UPDATE t34.src SET v = 'changed', updated_at = updated_at + interval '1 day' WHERE id = 2;
SELECT incetl.alter_pipeline('alt_trg', hash_algorithm => 'sha256');
CALL incetl.run('alt_trg');
SELECT status, rows_updated FROM incetl.run_log WHERE pipeline = 'alt_trg' ORDER BY run_id DESC LIMIT 1;
SELECT t34.same('t34.a_trg');

\echo '-- a new, empty target: everything is loaded into it'
SELECT incetl.alter_pipeline('alt_ts', target => 't34.b_ts');
SELECT incetl.alter_pipeline('alt_hash', target => 't34.b_hash');
SELECT incetl.alter_pipeline('alt_trg', target => 't34.b_trg');
SELECT p.name, count(v.op) AS previewed
  FROM unnest(ARRAY['alt_ts', 'alt_hash', 'alt_trg']) AS p(name)
  LEFT JOIN LATERAL incetl.preview(p.name) AS v ON true GROUP BY 1 ORDER BY 1;
CALL incetl.run('alt_ts');
CALL incetl.run('alt_hash');
CALL incetl.run('alt_trg');
SELECT t34.same('t34.b_ts') AS ts, t34.same('t34.b_hash') AS hash, t34.same('t34.b_trg') AS trg;
-- and they go on incrementally
UPDATE t34.src SET v = 'again', updated_at = updated_at + interval '2 days' WHERE id = 3;
DELETE FROM t34.src WHERE id = 4;
CALL incetl.run('alt_hash');
CALL incetl.run('alt_trg');
SELECT t34.same('t34.b_hash') AS hash, t34.same('t34.b_trg') AS trg;

SELECT incetl.drop_pipeline(p) FROM unnest(ARRAY['alt_ts', 'alt_hash', 'alt_trg']) AS p;
DROP SCHEMA t34 CASCADE;
