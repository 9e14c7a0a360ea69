--
-- 99_upgrade: every shipped version of incetl updates to exactly what a
-- fresh CREATE EXTENSION gives, and a pipeline survives the update.
--
-- This file drops and re-creates the extension, so it runs last (99) and
-- first drops whatever pipelines the other files left behind (with their
-- triggers and replication slots).  It prints nothing that names a version,
-- so a new incetl--A--B.sql is exercised without changing this output:
--   - the extension's member objects and their definitions (functions, the
--     columns, constraints, indexes, policies, privileges and comments of the
--     tables and sequences, the view, the schema, the config-dump list) after
--     CREATE EXTENSION VERSION v + ALTER EXTENSION UPDATE, for every
--     available version v, equal those of a fresh install;
--   - every available version has an update path to the default version;
--   - a pipeline created and run at the oldest version (0.1) keeps its
--     definition, watermark and run log across the update and runs on.
--
CREATE SCHEMA upg;

-- one row per member object of the extension: its identity and everything
-- that defines it
CREATE FUNCTION upg.snapshot() RETURNS TABLE (object text, definition text)
LANGUAGE sql AS $$
SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid),
	   CASE d.classid
	   WHEN 'pg_catalog.pg_proc'::regclass THEN
		   (SELECT pg_catalog.pg_get_functiondef(p.oid)
				   || ' acl=' || coalesce(p.proacl::text, '-')
				   || ' comment=' || coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '-')
			  FROM pg_catalog.pg_proc p WHERE p.oid = d.objid)
	   WHEN 'pg_catalog.pg_namespace'::regclass THEN
		   (SELECT 'acl=' || coalesce(n.nspacl::text, '-')
				   || ' comment=' || coalesce(pg_catalog.obj_description(n.oid, 'pg_namespace'), '-')
			  FROM pg_catalog.pg_namespace n WHERE n.oid = d.objid)
	   WHEN 'pg_catalog.pg_class'::regclass THEN
		   (SELECT concat_ws(E'\n',
					'kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text
					|| ' rls=' || c.relrowsecurity || ' force_rls=' || c.relforcerowsecurity
					|| ' options=' || coalesce(c.reloptions::text, '-')
					|| ' acl=' || coalesce(c.relacl::text, '-')
					|| ' comment=' || coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '-'),
					-- columns in order, dropped ones left out
					(SELECT 'columns: ' || string_agg(
								quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
								|| CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
								|| coalesce(' default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '')
								|| coalesce(' collate ' || co.collname, '')
								|| coalesce(' acl=' || a.attacl::text, ''),
								', ' ORDER BY a.attnum)
					   FROM pg_catalog.pg_attribute a
					   LEFT JOIN pg_catalog.pg_attrdef ad
							  ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
					   LEFT JOIN pg_catalog.pg_collation co
							  ON co.oid = a.attcollation AND a.attcollation <> 100
					  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
					(SELECT 'constraints: ' || string_agg(x.conname || ' ' || pg_catalog.pg_get_constraintdef(x.oid),
														  '; ' ORDER BY x.conname)
					   FROM pg_catalog.pg_constraint x WHERE x.conrelid = c.oid),
					(SELECT 'indexes: ' || string_agg(pg_catalog.pg_get_indexdef(i.indexrelid), '; '
													  ORDER BY pg_catalog.pg_get_indexdef(i.indexrelid))
					   FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid),
					(SELECT 'policies: ' || string_agg(
								pol.polname || ' ' || pol.polcmd::text || ' permissive=' || pol.polpermissive
								|| ' roles=' || pol.polroles::regrole[]::text
								|| ' using=' || coalesce(pg_catalog.pg_get_expr(pol.polqual, pol.polrelid), '-')
								|| ' check=' || coalesce(pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid), '-'),
								'; ' ORDER BY pol.polname)
					   FROM pg_catalog.pg_policy pol WHERE pol.polrelid = c.oid),
					(SELECT 'triggers: ' || string_agg(pg_catalog.pg_get_triggerdef(t.oid), '; '
													   ORDER BY t.tgname)
					   FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal),
					(SELECT 'view: ' || pg_catalog.pg_get_viewdef(c.oid) WHERE c.relkind = 'v'),
					(SELECT 'sequence: ' || s.seqtypid::regtype || ' ' || s.seqstart || ' '
							|| s.seqincrement || ' ' || s.seqmin || ' ' || s.seqmax || ' '
							|| s.seqcache || ' ' || s.seqcycle
					   FROM pg_catalog.pg_sequence s WHERE s.seqrelid = c.oid))
			  FROM pg_catalog.pg_class c WHERE c.oid = d.objid)
	   ELSE
		   (SELECT concat_ws(' ', i.type, i.identity)
			  FROM pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid) AS i)
	   END
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
 WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
   AND d.deptype = 'e'
   AND e.extname = 'incetl'
UNION ALL
-- the extension's schema (CREATE EXTENSION makes it from the control file;
-- it is not a member object)
SELECT 'schema ' || n.nspname || ' (extension schema)',
	   'acl=' || coalesce(n.nspacl::text, '-')
	   || ' comment=' || coalesce(pg_catalog.obj_description(n.oid, 'pg_namespace'), '-')
  FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'incetl'
UNION ALL
-- the extension itself: schema, relocatability, what pg_dump keeps
SELECT 'extension incetl',
	   'schema=' || e.extnamespace::regnamespace || ' relocatable=' || e.extrelocatable
	   || ' config=' || coalesce((SELECT string_agg(c::regclass::text || ' ' || coalesce(w, ''), ', '
												  ORDER BY c::regclass::text)
								   FROM unnest(e.extconfig, e.extcondition) AS u(c, w)), '-')
  FROM pg_catalog.pg_extension e WHERE e.extname = 'incetl'
$$;

-- upg.compare(v): the differences between the installed extension and the
-- fresh snapshot
CREATE TEMP TABLE fresh (object text PRIMARY KEY, definition text);
CREATE TEMP TABLE upgrade_diff (from_version text, object text, in_fresh boolean,
								in_upgraded boolean);
CREATE FUNCTION upg.compare(from_version text) RETURNS bigint
LANGUAGE sql AS $$
WITH u AS (SELECT * FROM upg.snapshot()),
ins AS (
	INSERT INTO upgrade_diff
	SELECT from_version, coalesce(f.object, u.object), f.object IS NOT NULL, u.object IS NOT NULL
	  FROM fresh f FULL JOIN u ON u.object = f.object
	 WHERE f.definition IS DISTINCT FROM u.definition
	RETURNING 1)
SELECT count(*) FROM ins
$$;

\echo '-- drop what the other files left behind: pipelines, with triggers and slots'
DO $$
DECLARE
	n text;
BEGIN
	FOR n IN SELECT name FROM incetl.pipelines ORDER BY id LOOP
		PERFORM incetl.drop_pipeline(n);
	END LOOP;
END
$$;
SELECT count(*) AS incetl_slots FROM pg_replication_slots WHERE plugin = 'incetl';

\echo '-- a fresh install, as the reference'
SET client_min_messages = warning;
DROP EXTENSION incetl CASCADE;
RESET client_min_messages;
CREATE EXTENSION incetl CASCADE;
INSERT INTO fresh SELECT * FROM upg.snapshot();
-- what the reference covers
SELECT split_part(object, ' ', 1) AS kind, count(*) > 0 AS present
  FROM fresh GROUP BY 1 ORDER BY 1;
SELECT count(*) FILTER (WHERE definition LIKE 'CREATE OR REPLACE FUNCTION incetl.create_pipeline(%') AS create_pipeline_def,
	   count(*) FILTER (WHERE object = 'view incetl.status' AND definition LIKE '%view: %FROM (%(incetl.pipelines p%') AS status_view_def,
	   count(*) FILTER (WHERE object = 'table incetl.run_log' AND definition LIKE '%columns: run_id bigint not null%policies: run_log_visible%') AS run_log_def
  FROM fresh;
SELECT count(*) AS no_definition FROM fresh WHERE definition IS NULL;

\echo '-- every available version reaches the default version'
SELECT v.version IS NOT NULL AS has_versions,
	   count(*) FILTER (WHERE v.version <> a.default_version AND p.path IS NULL) AS unreachable
  FROM pg_available_extensions a
  JOIN pg_available_extension_versions v ON v.name = a.name
  LEFT JOIN pg_extension_update_paths('incetl') p
		 ON p.source = v.version AND p.target = a.default_version
 WHERE a.name = 'incetl'
 GROUP BY 1;

\echo '-- a pipeline at the oldest version, then the update'
SET client_min_messages = warning;
DROP EXTENSION incetl CASCADE;
RESET client_min_messages;
CREATE EXTENSION incetl VERSION '0.1' CASCADE;
CREATE SCHEMA upg_data;
CREATE TABLE upg_data.src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE TABLE upg_data.tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
INSERT INTO upg_data.src
SELECT i, 'v' || i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 5) AS i;
SELECT incetl.create_pipeline('upg_ts', source => 'upg_data.src', target => 'upg_data.tgt',
							  watermark_column => 'updated_at', batch_size => 2) IS NOT NULL AS created;
CALL incetl.run('upg_ts');
-- 0.1 gave this hash state a character(1) column: every run fails
CREATE TABLE upg_data.csrc (code char(2) PRIMARY KEY, v text);
CREATE TABLE upg_data.ctgt (code char(2) PRIMARY KEY, v text);
SELECT incetl.create_pipeline('upg_char', source => 'upg_data.csrc', target => 'upg_data.ctgt',
							  strategy => 'hash') IS NOT NULL AS created;
-- what 0.1's library created (this library creates character(2))
SELECT format('ALTER TABLE incetl.hash_state_%s ALTER COLUMN k1 TYPE character(1)', id)
  FROM incetl.pipelines WHERE name = 'upg_char' \gexec
CREATE TEMP TABLE before_update AS
SELECT p.name, p.source::text AS source, p.target::text AS target, p.strategy, p.key_columns,
	   p.watermark_column, p.batch_size, s.watermark, s.watermark_key,
	   (SELECT count(*) FROM incetl.run_log r WHERE r.pipeline_id = p.id) AS runs
  FROM incetl.pipelines p JOIN incetl.state s ON s.pipeline_id = p.id;
SET client_min_messages = warning;
ALTER EXTENSION incetl UPDATE;
RESET client_min_messages;
SELECT e.extversion = a.default_version AS at_default_version
  FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
 WHERE e.extname = 'incetl';
-- the pipeline, its watermark and its run log are as they were
SELECT count(*) AS changed FROM (
	TABLE before_update
	EXCEPT
	SELECT p.name, p.source::text, p.target::text, p.strategy, p.key_columns,
		   p.watermark_column, p.batch_size, s.watermark, s.watermark_key,
		   (SELECT count(*) FROM incetl.run_log r WHERE r.pipeline_id = p.id)
	  FROM incetl.pipelines p JOIN incetl.state s ON s.pipeline_id = p.id) d;
-- and it runs on from there
INSERT INTO upg_data.src VALUES (6, 'v6', '2024-01-02 00:00:00+00');
UPDATE upg_data.src SET v = 'changed', updated_at = '2024-01-02 00:01:00+00' WHERE id = 1;
CALL incetl.run('upg_ts');
SELECT kind, status, rows_extracted, rows_inserted, rows_updated, watermark_before, watermark_after
  FROM incetl.run_log WHERE pipeline = 'upg_ts' ORDER BY run_id;
SELECT count(*) AS diff FROM ((TABLE upg_data.src EXCEPT TABLE upg_data.tgt)
							  UNION ALL (TABLE upg_data.tgt EXCEPT TABLE upg_data.src)) d;
-- the char(2)-keyed hash pipeline works after the update
INSERT INTO upg_data.csrc VALUES ('ab', 'x'), ('cd', 'y');
CALL incetl.run('upg_char');
SELECT code, v FROM upg_data.ctgt ORDER BY code;
SELECT upg.compare('0.1 with a pipeline') AS differences;
SELECT incetl.drop_pipeline('upg_ts');
SELECT incetl.drop_pipeline('upg_char');
DROP SCHEMA upg_data CASCADE;

\echo '-- every available version, updated, equals the fresh install'
SET client_min_messages = warning;
DO $$
DECLARE
	v text;
BEGIN
	FOR v IN SELECT version FROM pg_available_extension_versions
			  WHERE name = 'incetl' ORDER BY version LOOP
		DROP EXTENSION incetl CASCADE;
		EXECUTE format('CREATE EXTENSION incetl VERSION %L', v);
		ALTER EXTENSION incetl UPDATE;
		PERFORM upg.compare(v);
	END LOOP;
END
$$;
RESET client_min_messages;
SELECT count(DISTINCT version) > 0 AS versions_checked
  FROM pg_available_extension_versions WHERE name = 'incetl';
-- the differences (none): which version, which object, on which side
SELECT * FROM upgrade_diff ORDER BY 1, 2;
-- the comparison does see a change: a comment, a default, a privilege
COMMENT ON TABLE incetl.state IS 'changed';
ALTER TABLE incetl.run_log ALTER COLUMN batches SET DEFAULT 1;
GRANT INSERT ON incetl.pipelines TO PUBLIC;
SELECT upg.compare('altered') AS differences;
SELECT * FROM upgrade_diff ORDER BY 1, 2;
SET client_min_messages = warning;
DROP EXTENSION incetl CASCADE;
RESET client_min_messages;
CREATE EXTENSION incetl CASCADE;
-- left installed at the default version, as a fresh install
SELECT count(*) AS differences FROM fresh f FULL JOIN upg.snapshot() u ON u.object = f.object
 WHERE f.definition IS DISTINCT FROM u.definition;
SELECT e.extversion = a.default_version AS at_default_version
  FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname
 WHERE e.extname = 'incetl';
DROP SCHEMA upg CASCADE;
