--
-- 30_security: privileges, ownership, row-level security and search_path.
--
-- Roles sec_alice, sec_bob and sec_carol (a member of sec_alice), each
-- working in a schema of their own.  Proves:
--   - create_pipeline needs SELECT on the source and SELECT, INSERT, UPDATE,
--     DELETE on the target; a refusal is 42501 and writes nothing;
--   - only the owner, a member of the owning role or a superuser may run,
--     alter, drop, backfill, reconcile, preview or move the watermark of a
--     pipeline; run_all of a non-superuser runs the pipelines it may run;
--   - the catalog, run log, state and status show a role only its own
--     pipelines (row-level security); nobody writes incetl's tables directly;
--   - row-level security on the source applies to runs;
--   - writers of a 'trigger' source need no privilege on incetl's objects,
--     cannot forge captures into another pipeline's queue, and capture does
--     not run the pipeline owner's code with elevated rights;
--   - with a hostile schema ahead of pg_catalog in search_path, no function,
--     operator or aggregate of that schema is ever called.
--
CREATE SCHEMA sec;
GRANT USAGE ON SCHEMA sec TO PUBLIC;
-- try(sql): "ok" or "SQLSTATE: message" with detail and hint

CREATE ROLE sec_alice NOLOGIN;
CREATE ROLE sec_bob NOLOGIN;
CREATE ROLE sec_carol NOLOGIN;
GRANT sec_alice TO sec_carol;
CREATE SCHEMA sec_a AUTHORIZATION sec_alice;
CREATE SCHEMA sec_b AUTHORIZATION sec_bob;
-- what incetl owns before this file: nothing of it may be left behind by a
-- refused call
SELECT count(*) AS incetl_rels FROM pg_class
 WHERE relnamespace = 'incetl'::regnamespace \gset before_

\echo '-- alice builds a pipeline of her own'
SET ROLE sec_alice;
CREATE TABLE sec_a.src (id integer PRIMARY KEY, name text NOT NULL,
						updated_at timestamptz NOT NULL);
CREATE TABLE sec_a.tgt (id integer PRIMARY KEY, name text, updated_at timestamptz);
INSERT INTO sec_a.src
SELECT i, 'a' || i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 10) AS i;
SELECT incetl.create_pipeline('sec_alice_ts', source => 'sec_a.src', target => 'sec_a.tgt',
							  watermark_column => 'updated_at') IS NOT NULL AS created;
CALL incetl.run('sec_alice_ts');
SELECT count(*) FROM sec_a.tgt;
SELECT name, owner, run_by, status, rows_inserted
  FROM incetl.pipelines p JOIN incetl.run_log r ON r.pipeline_id = p.id
 WHERE p.name = 'sec_alice_ts';
-- bob may see (not read) her schema
GRANT USAGE ON SCHEMA sec_a TO sec_bob;
RESET ROLE;

\echo '-- create_pipeline checks privileges on the source and the target'
SET ROLE sec_bob;
CREATE TABLE sec_b.src (id integer PRIMARY KEY, name text NOT NULL,
						updated_at timestamptz NOT NULL);
CREATE TABLE sec_b.tgt (id integer PRIMARY KEY, name text, updated_at timestamptz);
INSERT INTO sec_b.src VALUES (1, 'b1', '2024-01-01 00:00:00+00');
-- no SELECT on alice's source, whatever the strategy
SELECT regress.try($$SELECT incetl.create_pipeline('sec_bob_steal', source => 'sec_a.src',
		target => 'sec_b.tgt', watermark_column => 'updated_at')$$);
SELECT regress.try($$SELECT incetl.create_pipeline('sec_bob_steal', source => 'sec_a.src',
		target => 'sec_b.tgt', strategy => 'hash')$$);
SELECT regress.try($$SELECT incetl.create_pipeline('sec_bob_steal', source => 'sec_a.src',
		target => 'sec_b.tgt', strategy => 'trigger')$$);
-- no write privileges on alice's target
SELECT regress.try($$SELECT incetl.create_pipeline('sec_bob_push', source => 'sec_b.src',
		target => 'sec_a.tgt', watermark_column => 'updated_at')$$);
RESET ROLE;
GRANT SELECT, INSERT, UPDATE ON sec_a.tgt TO sec_bob;
SET ROLE sec_bob;
-- SELECT, INSERT and UPDATE are not enough: DELETE is needed too
SELECT regress.try($$SELECT incetl.create_pipeline('sec_bob_push', source => 'sec_b.src',
		target => 'sec_a.tgt', watermark_column => 'updated_at')$$);
RESET ROLE;
REVOKE ALL ON sec_a.tgt FROM sec_bob;
-- nothing was written: no catalog row, no trigger, no state table
SELECT count(*) AS bob_pipelines FROM incetl.pipelines WHERE name LIKE 'sec_bob%';
SELECT count(*) AS triggers_on_alice_src FROM pg_trigger WHERE tgrelid = 'sec_a.src'::regclass;
SELECT count(*) - :before_incetl_rels AS new_incetl_rels FROM pg_class
 WHERE relnamespace = 'incetl'::regnamespace;

\echo '-- bob has a pipeline of his own'
SET ROLE sec_bob;
SELECT incetl.create_pipeline('sec_bob_ts', source => 'sec_b.src', target => 'sec_b.tgt',
							  watermark_column => 'updated_at') IS NOT NULL AS created;
CALL incetl.run('sec_bob_ts');
SELECT * FROM sec_b.tgt;
RESET ROLE;

\echo '-- only the owner (or a member of the owning role) manages a pipeline'
SET ROLE sec_bob;
SELECT regress.try($$CALL incetl.run('sec_alice_ts')$$);
SELECT regress.try($$SELECT incetl.alter_pipeline('sec_alice_ts', batch_size => 5)$$);
SELECT regress.try($$SELECT incetl.alter_pipeline('sec_alice_ts', enabled => false)$$);
SELECT regress.try($$SELECT incetl.drop_pipeline('sec_alice_ts')$$);
SELECT regress.try($$SELECT incetl.set_watermark('sec_alice_ts', '2030-01-01 00:00:00+00')$$);
SELECT regress.try($$SELECT incetl.reset_watermark('sec_alice_ts')$$);
SELECT regress.try($$CALL incetl.backfill('sec_alice_ts', timestamptz '2024-01-01', timestamptz '2024-02-01')$$);
SELECT regress.try($$CALL incetl.reconcile('sec_alice_ts')$$);
SELECT regress.try($$SELECT * FROM incetl.preview('sec_alice_ts')$$);
-- run_all of bob runs his pipelines, not the ones he may not run (nor does
-- it name them to him)
SELECT regress.try($$CALL incetl.run_all()$$);
SELECT pipeline, status FROM incetl.run_log
 WHERE pipeline LIKE 'sec%' ORDER BY run_id;
RESET ROLE;
-- alice's pipeline is untouched: same options, same watermark, no run since
SELECT p.batch_size, p.enabled, s.watermark,
	   (SELECT count(*) FROM incetl.run_log r WHERE r.pipeline_id = p.id) AS runs
  FROM incetl.pipelines p JOIN incetl.state s ON s.pipeline_id = p.id
 WHERE p.name = 'sec_alice_ts';

-- carol, a member of alice's role, may do all of it
SET ROLE sec_carol;
INSERT INTO sec_a.src VALUES (11, 'a11', '2024-01-01 01:00:00+00');
SELECT incetl.alter_pipeline('sec_alice_ts', batch_size => 5);
SELECT op, key FROM incetl.preview('sec_alice_ts');
CALL incetl.run('sec_alice_ts');
SELECT incetl.set_watermark('sec_alice_ts', '2024-01-01 00:05:00+00');
SELECT incetl.reset_watermark('sec_alice_ts');
CALL incetl.backfill('sec_alice_ts', timestamptz '2024-01-01', timestamptz '2024-01-02');
CALL incetl.reconcile('sec_alice_ts');
SELECT kind, status, run_by, rows_inserted FROM incetl.run_log
 WHERE pipeline = 'sec_alice_ts' ORDER BY run_id;
SELECT batch_size FROM incetl.pipelines WHERE name = 'sec_alice_ts';
SELECT count(*) FROM sec_a.tgt;
RESET ROLE;

\echo '-- row-level security on the catalog: each role sees its own pipelines'
SET ROLE sec_bob;
SELECT name, owner FROM incetl.pipelines ORDER BY name;
SELECT count(*) AS state_rows FROM incetl.state;
SELECT DISTINCT pipeline FROM incetl.run_log ORDER BY 1;
SELECT pipeline, last_status FROM incetl.status ORDER BY 1;
RESET ROLE;
SET ROLE sec_carol;
SELECT name, owner FROM incetl.pipelines ORDER BY name;
SELECT DISTINCT pipeline FROM incetl.run_log ORDER BY 1;
SELECT pipeline, last_status FROM incetl.status ORDER BY 1;
RESET ROLE;
-- a superuser sees everything
SELECT name, owner FROM incetl.pipelines WHERE name LIKE 'sec%' ORDER BY name;
SELECT DISTINCT pipeline FROM incetl.run_log WHERE pipeline LIKE 'sec%' ORDER BY 1;
SELECT pipeline FROM incetl.status WHERE pipeline LIKE 'sec%' ORDER BY 1;

\echo '-- nobody writes incetl tables directly, not even a pipeline owner'
SET ROLE sec_bob;
SELECT regress.try($$INSERT INTO incetl.pipelines (name, source, target, key_columns, owner)
		VALUES ('sec_forged', 'sec_b.src', 'sec_b.tgt', '{id}', 'sec_bob')$$);
SELECT regress.try($$UPDATE incetl.pipelines SET owner = 'sec_bob'$$);
SELECT regress.try($$UPDATE incetl.state SET watermark = NULL$$);
SELECT regress.try($$DELETE FROM incetl.run_log$$);
SELECT regress.try($$TRUNCATE incetl.run_log$$);
SELECT regress.try($$INSERT INTO incetl.run_log (pipeline, kind, status) VALUES ('x', 'run', 'succeeded')$$);
SELECT regress.try($$SELECT pg_catalog.nextval('incetl.run_log_run_id_seq')$$);
RESET ROLE;
SET ROLE sec_alice;
SELECT regress.try($$UPDATE incetl.pipelines SET batch_size = 1 WHERE name = 'sec_alice_ts'$$);
SELECT regress.try($$UPDATE incetl.state SET watermark = NULL$$);
SELECT regress.try($$DELETE FROM incetl.run_log WHERE pipeline = 'sec_alice_ts'$$);
RESET ROLE;

\echo '-- row-level security on the source applies to runs'
CREATE SCHEMA sec_data;
CREATE TABLE sec_data.orders (id integer PRIMARY KEY, region text NOT NULL,
							  amount integer NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO sec_data.orders
SELECT i, CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END, i * 10,
	   timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 10) AS i;
ALTER TABLE sec_data.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY eu_only ON sec_data.orders FOR SELECT TO sec_alice USING (region = 'eu');
GRANT USAGE ON SCHEMA sec_data TO sec_alice;
GRANT SELECT ON sec_data.orders TO sec_alice;
SET ROLE sec_alice;
CREATE TABLE sec_a.orders_ts (id integer PRIMARY KEY, region text, amount integer,
							  updated_at timestamptz);
CREATE TABLE sec_a.orders_hash (LIKE sec_a.orders_ts INCLUDING ALL);
SELECT incetl.create_pipeline('sec_alice_rls_ts', source => 'sec_data.orders',
							  target => 'sec_a.orders_ts', watermark_column => 'updated_at',
							  delete_detection => 'compare') IS NOT NULL AS created;
SELECT incetl.create_pipeline('sec_alice_rls_hash', source => 'sec_data.orders',
							  target => 'sec_a.orders_hash', strategy => 'hash') IS NOT NULL AS created;
SELECT count(*) AS previewed_inserts FROM incetl.preview('sec_alice_rls_ts');
CALL incetl.run('sec_alice_rls_ts');
CALL incetl.run('sec_alice_rls_hash');
SELECT region, count(*) FROM sec_a.orders_ts GROUP BY 1 ORDER BY 1;
SELECT region, count(*) FROM sec_a.orders_hash GROUP BY 1 ORDER BY 1;
-- reconcile compares with what alice may see: nothing to repair
CALL incetl.reconcile('sec_alice_rls_ts');
SELECT kind, status, rows_extracted, rows_inserted, rows_updated, rows_deleted
  FROM incetl.run_log WHERE pipeline = 'sec_alice_rls_ts' ORDER BY run_id;
SELECT count(*) FROM sec_a.orders_ts;
RESET ROLE;

\echo '-- writers of a trigger source need no privilege on incetl objects'
SET ROLE sec_alice;
CREATE TABLE sec_a.tsrc (id integer PRIMARY KEY, name text);
CREATE TABLE sec_a.ttgt (id integer PRIMARY KEY, name text);
INSERT INTO sec_a.tsrc VALUES (1, 'one'), (2, 'two'), (3, 'three');
SELECT incetl.create_pipeline('sec_alice_trg', source => 'sec_a.tsrc', target => 'sec_a.ttgt',
							  strategy => 'trigger') IS NOT NULL AS created;
CALL incetl.run('sec_alice_trg');
GRANT INSERT, TRUNCATE ON sec_a.tsrc TO sec_bob;
-- alice's code on her own queue: whoever fires it, it never runs with more
-- rights than hers (if she may attach it at all)
CREATE TABLE sec_a.queue_log (who name);
GRANT INSERT ON sec_a.queue_log TO PUBLIC;
CREATE FUNCTION sec_a.on_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_a.queue_log VALUES (current_user);
	RETURN NULL;
END;
$$;
RESET ROLE;
SELECT id AS trg_id FROM incetl.pipelines WHERE name = 'sec_alice_trg' \gset
SET ROLE sec_alice;
SELECT regress.try(format('CREATE TRIGGER on_queue AFTER INSERT ON incetl.queue_%s '
					  'FOR EACH STATEMENT EXECUTE FUNCTION sec_a.on_queue()', :'trg_id'))
	   IS NOT NULL AS tried;
RESET ROLE;
SET ROLE sec_bob;
INSERT INTO sec_a.tsrc VALUES (4, 'from bob');
-- bob cannot read or write the queue itself (only the SQLSTATE: the name
-- holds the pipeline id)
SELECT left(regress.try(format('SELECT count(*) FROM incetl.queue_%s', :'trg_id')), 5) AS read_queue;
SELECT left(regress.try(format('DELETE FROM incetl.queue_%s', :'trg_id')), 5) AS delete_queue;
RESET ROLE;
SET ROLE sec_alice;
CALL incetl.run('sec_alice_trg');
SELECT * FROM sec_a.ttgt ORDER BY id;
RESET ROLE;
-- bob's TRUNCATE is captured too
SET ROLE sec_bob;
TRUNCATE sec_a.tsrc;
RESET ROLE;
SET ROLE sec_alice;
CALL incetl.run('sec_alice_trg');
SELECT count(*) FROM sec_a.ttgt;
RESET ROLE;
-- the queue trigger never ran as a superuser
SELECT count(*) FILTER (WHERE r.rolsuper) AS ran_as_superuser
  FROM sec_a.queue_log l JOIN pg_roles r ON r.rolname = l.who;

-- bob cannot forge captures into alice's queue with incetl._capture on a
-- table of his own
SET ROLE sec_bob;
CREATE TABLE sec_b.forge (id integer);
SELECT regress.try(format('CREATE TRIGGER forge_ins AFTER INSERT ON sec_b.forge '
					  'REFERENCING NEW TABLE AS incetl_new FOR EACH STATEMENT '
					  'EXECUTE FUNCTION incetl._capture(%L, %L)', :'trg_id', 'id'))
	   IS NOT NULL AS tried;
SELECT regress.try(format('CREATE TRIGGER forge_trunc AFTER TRUNCATE ON sec_b.forge '
					  'FOR EACH STATEMENT EXECUTE FUNCTION incetl._capture(%L, %L)',
					  :'trg_id', 'id'))
	   IS NOT NULL AS tried;
SELECT regress.try('INSERT INTO sec_b.forge VALUES (999)') IS NOT NULL AS tried;
SELECT regress.try('TRUNCATE sec_b.forge') IS NOT NULL AS tried;
RESET ROLE;
SELECT count(*) AS forged_entries FROM incetl.queue_:trg_id;

\echo '-- search_path: a hostile schema ahead of pg_catalog is never used'
-- bob plants look-alikes of what SQL commonly calls: comparison operators for
-- the types in play, now(), count(*), max, min, sum, string_agg, hashing and
-- jsonb builders.  Each logs its call, then does the real thing.
CREATE SCHEMA sec_evil AUTHORIZATION sec_bob;
GRANT USAGE ON SCHEMA sec_evil TO PUBLIC;
SET ROLE sec_bob;
CREATE TABLE sec_evil.calls (what text, who name);
GRANT INSERT ON sec_evil.calls TO PUBLIC;
DO $do$
DECLARE
	t text;
	o text;
	n integer := 0;
BEGIN
	FOREACH t IN ARRAY ARRAY['integer', 'bigint', 'smallint', 'numeric', 'text', 'name',
							 'boolean', 'timestamptz', 'timestamp', 'jsonb', 'oid',
							 'bytea', '"char"', 'text[]', 'pg_lsn', 'regclass', 'interval']
	LOOP
		FOREACH o IN ARRAY ARRAY['=', '<>', '<', '>', '<=', '>=']
		LOOP
			CONTINUE WHEN t = 'regclass' AND o NOT IN ('=', '<>');
			n := n + 1;
			EXECUTE format($f$
				CREATE FUNCTION sec_evil.op_%s(a %s, b %s) RETURNS boolean
				LANGUAGE plpgsql AS $b$
				BEGIN
					INSERT INTO sec_evil.calls VALUES (%L, current_user);
					RETURN a OPERATOR(pg_catalog.%s) b;
				END $b$$f$, n, t, t, t || ' ' || o, o);
			EXECUTE format('CREATE OPERATOR sec_evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = sec_evil.op_%s)',
						   o, t, t, n);
		END LOOP;
	END LOOP;
END
$do$;
CREATE FUNCTION sec_evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('now()', current_user);
	RETURN pg_catalog.now();
END $$;
CREATE FUNCTION sec_evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('clock_timestamp()', current_user);
	RETURN pg_catalog.clock_timestamp();
END $$;
CREATE FUNCTION sec_evil.count_sf(s bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('count(*)', current_user);
	RETURN s + 1;
END $$;
CREATE AGGREGATE sec_evil.count(*) (SFUNC = sec_evil.count_sf, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION sec_evil.count_any_sf(s bigint, v anyelement) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('count(x)', current_user);
	RETURN s + CASE WHEN v IS NULL THEN 0 ELSE 1 END;
END $$;
CREATE AGGREGATE sec_evil.count(anyelement) (SFUNC = sec_evil.count_any_sf, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION sec_evil.max_sf(s anyelement, v anyelement) RETURNS anyelement LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('max', current_user);
	RETURN pg_catalog.max(x) FROM (VALUES (s), (v)) AS u(x);
END $$;
CREATE FUNCTION sec_evil.min_sf(s anyelement, v anyelement) RETURNS anyelement LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('min', current_user);
	RETURN pg_catalog.min(x) FROM (VALUES (s), (v)) AS u(x);
END $$;
CREATE AGGREGATE sec_evil.max(integer) (SFUNC = sec_evil.max_sf, STYPE = integer);
CREATE AGGREGATE sec_evil.max(bigint) (SFUNC = sec_evil.max_sf, STYPE = bigint);
CREATE AGGREGATE sec_evil.max(timestamptz) (SFUNC = sec_evil.max_sf, STYPE = timestamptz);
CREATE AGGREGATE sec_evil.min(integer) (SFUNC = sec_evil.min_sf, STYPE = integer);
CREATE AGGREGATE sec_evil.min(bigint) (SFUNC = sec_evil.min_sf, STYPE = bigint);
CREATE AGGREGATE sec_evil.min(timestamptz) (SFUNC = sec_evil.min_sf, STYPE = timestamptz);
CREATE FUNCTION sec_evil.sum_sf(s bigint, v bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('sum', current_user);
	RETURN s OPERATOR(pg_catalog.+) v;
END $$;
CREATE AGGREGATE sec_evil.sum(bigint) (SFUNC = sec_evil.sum_sf, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION sec_evil.string_agg_sf(s text, v text, d text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('string_agg', current_user);
	RETURN pg_catalog.concat_ws(d, s, v);
END $$;
CREATE AGGREGATE sec_evil.string_agg(text, text) (SFUNC = sec_evil.string_agg_sf, STYPE = text);
CREATE FUNCTION sec_evil.sha256(v bytea) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('sha256', current_user);
	RETURN pg_catalog.sha256(v);
END $$;
CREATE FUNCTION sec_evil.digest(v bytea, a text) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('digest(bytea)', current_user);
	RETURN pg_catalog.sha256(v);
END $$;
CREATE FUNCTION sec_evil.digest(v text, a text) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('digest(text)', current_user);
	RETURN pg_catalog.sha256(pg_catalog.convert_to(v, 'UTF8'));
END $$;
CREATE FUNCTION sec_evil.hashtext(v text) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('hashtext', current_user);
	RETURN pg_catalog.hashtext(v);
END $$;
CREATE FUNCTION sec_evil.record_send(v record) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('record_send', current_user);
	RETURN pg_catalog.record_send(v);
END $$;
CREATE FUNCTION sec_evil.jsonb_build_object(k text, v integer) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('jsonb_build_object', current_user);
	RETURN pg_catalog.jsonb_build_object(k, v);
END $$;
CREATE FUNCTION sec_evil.to_jsonb(v integer) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('to_jsonb', current_user);
	RETURN pg_catalog.to_jsonb(v);
END $$;
CREATE FUNCTION sec_evil.pg_backend_pid() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO sec_evil.calls VALUES ('pg_backend_pid', current_user);
	RETURN pg_catalog.pg_backend_pid();
END $$;
RESET ROLE;
SELECT count(*) AS planted_operators FROM pg_operator WHERE oprnamespace = 'sec_evil'::regnamespace;
-- they work: unqualified SQL under this search_path calls them
SET search_path = sec_evil, public, pg_catalog;
SELECT count(*) FROM (VALUES (1), (2)) AS v(x) WHERE x = 1 AND now() IS NOT NULL;
RESET search_path;
SELECT what, count(*) FROM sec_evil.calls GROUP BY 1 ORDER BY 1;
TRUNCATE sec_evil.calls;

-- alice's tables for a timestamp, a hash and a trigger pipeline
SET ROLE sec_alice;
CREATE TABLE sec_a.esrc (id integer PRIMARY KEY, name text NOT NULL, amount bigint,
						 flag boolean, updated_at timestamptz NOT NULL);
CREATE TABLE sec_a.etgt (id integer PRIMARY KEY, name text, amount bigint, flag boolean,
						 updated_at timestamptz, etl_inserted_at timestamptz,
						 etl_updated_at timestamptz, etl_run_id bigint);
CREATE TABLE sec_a.ehash (LIKE sec_a.etgt INCLUDING ALL);
CREATE TABLE sec_a.ehash64 (LIKE sec_a.etgt INCLUDING ALL,
							 is_deleted boolean NOT NULL DEFAULT false, deleted_at timestamptz);
CREATE TABLE sec_a.etsrc (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE sec_a.ettgt (id integer PRIMARY KEY, name text);
INSERT INTO sec_a.esrc
SELECT i, 'e' || i, i * 100, i % 2 = 0,
	   timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 10) AS i;
INSERT INTO sec_a.etsrc VALUES (1, 'one'), (2, 'two');

SET search_path = sec_evil, public, pg_catalog;
SELECT incetl.create_pipeline('sec_evil_ts', source => 'sec_a.esrc', target => 'sec_a.etgt',
							  watermark_column => 'updated_at', delete_detection => 'compare',
							  lookback => '1 hour', batch_size => 3) IS NOT NULL AS created;
SELECT incetl.create_pipeline('sec_evil_sha', source => 'sec_a.esrc', target => 'sec_a.ehash',
							  strategy => 'hash', hash_algorithm => 'sha256',
							  batch_size => 3) IS NOT NULL AS created;
SELECT incetl.create_pipeline('sec_evil_hash', source => 'sec_a.esrc', target => 'sec_a.ehash64',
							  strategy => 'hash', delete_mode => 'soft',
							  on_schema_change => 'add_columns') IS NOT NULL AS created;
SELECT incetl.create_pipeline('sec_evil_trg', source => 'sec_a.etsrc', target => 'sec_a.ettgt',
							  strategy => 'trigger') IS NOT NULL AS created;
SELECT op, key FROM incetl.preview('sec_evil_ts', 2);
CALL incetl.run('sec_evil_ts');
CALL incetl.run('sec_evil_sha');
CALL incetl.run('sec_evil_hash');
CALL incetl.run('sec_evil_trg');
-- changes (written with a safe search_path: these statements are ours)
RESET search_path;
UPDATE sec_a.esrc SET name = 'changed', updated_at = '2024-01-02 00:00:00+00' WHERE id = 2;
DELETE FROM sec_a.esrc WHERE id = 3;
INSERT INTO sec_a.esrc VALUES (11, 'e11', 1100, true, '2024-01-02 00:01:00+00');
UPDATE sec_a.etgt SET name = 'drifted' WHERE id = 5;
SET search_path = sec_evil, public, pg_catalog;
-- the capture trigger fires under the hostile search_path
INSERT INTO sec_a.etsrc VALUES (3, 'three');
SELECT op, key FROM incetl.preview('sec_evil_ts') ORDER BY op, key;
SELECT op, key FROM incetl.preview('sec_evil_sha') ORDER BY op, key;
SELECT op, key FROM incetl.preview('sec_evil_trg') ORDER BY op, key;
CALL incetl.run('sec_evil_ts');
CALL incetl.run('sec_evil_sha');
CALL incetl.run('sec_evil_hash');
CALL incetl.run('sec_evil_trg');
CALL incetl.backfill('sec_evil_ts', timestamptz '2024-01-01', timestamptz '2024-01-03', interval '12 hours');
CALL incetl.reconcile('sec_evil_ts');
CALL incetl.reconcile('sec_evil_sha');
CALL incetl.reconcile('sec_evil_hash');
CALL incetl.reconcile('sec_evil_trg');
SELECT incetl.set_watermark('sec_evil_ts', '2024-01-01 00:05:00+00');
CALL incetl.run('sec_evil_ts');
SELECT incetl.reset_watermark('sec_evil_ts');
SELECT incetl.alter_pipeline('sec_evil_ts', batch_size => 4, lookback => '0');
CALL incetl.run('sec_evil_ts');
CALL incetl.run_all();
SELECT incetl.row_hash(ROW(1, 'x'::text)) IS NOT NULL AS hashed;
SELECT pipeline, strategy, last_status, last_error FROM incetl.status
 WHERE pipeline LIKE 'sec_evil%' ORDER BY pipeline;
RESET search_path;
RESET ROLE;
-- nothing of sec_evil was called, by anyone
SELECT what, who, count(*) FROM sec_evil.calls GROUP BY 1, 2 ORDER BY 1, 2;
-- and the pipelines did their work
SELECT kind, status, rows_inserted, rows_updated, rows_deleted, error
  FROM incetl.run_log WHERE pipeline = 'sec_evil_ts' ORDER BY run_id;
SELECT count(*) AS ts_diff FROM (
	(SELECT id, name, amount, flag, updated_at FROM sec_a.esrc
	 EXCEPT SELECT id, name, amount, flag, updated_at FROM sec_a.etgt)
	UNION ALL
	(SELECT id, name, amount, flag, updated_at FROM sec_a.etgt
	 EXCEPT SELECT id, name, amount, flag, updated_at FROM sec_a.esrc)) d;
SELECT count(*) AS sha_diff FROM (
	(SELECT id, name, amount, flag, updated_at FROM sec_a.esrc
	 EXCEPT SELECT id, name, amount, flag, updated_at FROM sec_a.ehash)
	UNION ALL
	(SELECT id, name, amount, flag, updated_at FROM sec_a.ehash
	 EXCEPT SELECT id, name, amount, flag, updated_at FROM sec_a.esrc)) d;
SELECT * FROM sec_a.ettgt ORDER BY id;
SELECT id, name, is_deleted, deleted_at IS NOT NULL AS has_deleted_at
  FROM sec_a.ehash64 WHERE id IN (2, 3, 11) ORDER BY id;
-- drop under the hostile search_path too
SET ROLE sec_alice;
SET search_path = sec_evil, public, pg_catalog;
SELECT incetl.drop_pipeline('sec_evil_ts');
SELECT incetl.drop_pipeline('sec_evil_sha');
SELECT incetl.drop_pipeline('sec_evil_hash');
SELECT incetl.drop_pipeline('sec_evil_trg');
RESET search_path;
RESET ROLE;
SELECT count(*) AS calls FROM sec_evil.calls;

\echo '-- clean up: carol drops alice''s pipelines, bob his own'
SET ROLE sec_carol;
SELECT incetl.drop_pipeline('sec_alice_ts');
SELECT incetl.drop_pipeline('sec_alice_rls_ts');
SELECT incetl.drop_pipeline('sec_alice_rls_hash');
SELECT incetl.drop_pipeline('sec_alice_trg');
RESET ROLE;
SET ROLE sec_bob;
SELECT incetl.drop_pipeline('sec_bob_ts');
RESET ROLE;
SELECT count(*) AS sec_pipelines FROM incetl.pipelines WHERE name LIKE 'sec%';
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'sec_a.tsrc'::regclass;
SELECT count(*) - :before_incetl_rels AS new_incetl_rels FROM pg_class
 WHERE relnamespace = 'incetl'::regnamespace;
SET client_min_messages = warning;
DROP SCHEMA sec_a, sec_b, sec_data, sec_evil, sec CASCADE;
DROP OWNED BY sec_alice, sec_bob, sec_carol;
DROP ROLE sec_alice, sec_bob, sec_carol;
RESET client_min_messages;
