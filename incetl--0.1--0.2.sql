/* incetl--0.1--0.2.sql: security and exactness fixes of 0.2 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION incetl UPDATE TO '0.2'" to load this file. \quit

/*
 * A pipeline's run lock is no longer an advisory lock that SQL can take
 * (pg_advisory_lock(classid, objid) could block any pipeline): it lives in
 * a key space of its own (objsubid 7879, classid = pipeline id, objid = 1
 * for runs and reconciles, 2 for backfills; see src/lock.c).  The status
 * view tells an interrupted run by the absence of that lock.
 */
CREATE OR REPLACE VIEW incetl.status WITH (security_invoker = true) AS
SELECT p.name AS pipeline,
	   p.strategy,
	   p.enabled,
	   s.watermark,
	   r.run_id AS last_run_id,
	   CASE WHEN r.status OPERATOR(pg_catalog.=) 'running'
				 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
								 WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'
								   AND l.pid OPERATOR(pg_catalog.=) r.pid
								   AND l.classid OPERATOR(pg_catalog.=) p.id::pg_catalog.oid
								   AND l.objid OPERATOR(pg_catalog.=)
									   CASE WHEN r.kind OPERATOR(pg_catalog.=) 'backfill'
											THEN 2 ELSE 1 END::pg_catalog.oid
								   AND l.objsubid OPERATOR(pg_catalog.=) 7879
								   AND l.granted)
			THEN 'interrupted' ELSE r.status END AS last_status,
	   r.started_at AS last_started_at,
	   r.finished_at AS last_finished_at,
	   r.error AS last_error,
	   CASE WHEN s.watermark_type OPERATOR(pg_catalog.=) ANY
				 (ARRAY['pg_catalog.timestamptz', 'pg_catalog.timestamp', 'pg_catalog.date']::pg_catalog.regtype[])
			THEN pg_catalog.now() OPERATOR(pg_catalog.-) s.watermark::pg_catalog.timestamptz
	   END AS lag,
	   CASE WHEN p.strategy OPERATOR(pg_catalog.=) 'logical'
			THEN (SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), rs.restart_lsn)::bigint
				  FROM pg_catalog.pg_replication_slots rs
				  WHERE rs.slot_name OPERATOR(pg_catalog.=) s.slot_name)
	   END AS retained_wal_bytes
  FROM incetl.pipelines p
  LEFT JOIN incetl.state s ON s.pipeline_id OPERATOR(pg_catalog.=) p.id
  LEFT JOIN LATERAL (SELECT rl.* FROM incetl.run_log rl
					 WHERE rl.pipeline_id OPERATOR(pg_catalog.=) p.id
					   AND rl.status OPERATOR(pg_catalog.<>) 'skipped'
					 ORDER BY rl.run_id DESC LIMIT 1) r ON true;

/*
 * 0.1 created the key columns of hash states (and queues, rebuilt below)
 * without their typmod: a char(2) key got a character(1) column (a 'hash'
 * run failed).  Such tables can hold no row of those keys, so give them the
 * source column's exact type.
 */
DO $$
DECLARE
	p record;
	tbl regclass;
	i integer;
	want text;
BEGIN
	FOR p IN SELECT id, source, strategy, key_columns FROM incetl.pipelines
			  WHERE strategy OPERATOR(pg_catalog.=) 'hash'
	LOOP
		tbl := pg_catalog.to_regclass(pg_catalog.format('incetl.hash_state_%s', p.id));
		CONTINUE WHEN tbl IS NULL;
		FOR i IN 1 .. pg_catalog.array_length(p.key_columns, 1) LOOP
			SELECT pg_catalog.format_type(s.atttypid, s.atttypmod) INTO want
			  FROM pg_catalog.pg_attribute s, pg_catalog.pg_attribute q
			 WHERE s.attrelid OPERATOR(pg_catalog.=) p.source
			   AND s.attname OPERATOR(pg_catalog.=) p.key_columns[i]
			   AND NOT s.attisdropped
			   AND q.attrelid OPERATOR(pg_catalog.=) tbl
			   AND q.attname OPERATOR(pg_catalog.=) ('k' OPERATOR(pg_catalog.||) i)
			   AND s.atttypmod OPERATOR(pg_catalog.<>) -1
			   AND q.atttypmod OPERATOR(pg_catalog.<>) s.atttypmod;
			IF want IS NOT NULL THEN
				EXECUTE pg_catalog.format('ALTER TABLE %s ALTER COLUMN %I TYPE %s',
										  tbl, 'k' OPERATOR(pg_catalog.||) i, want);
			END IF;
		END LOOP;
	END LOOP;
END
$$;

/*
 * 'trigger' pipelines.  A capture queue now belongs to the extension owner
 * (its pipeline's owner may only read it: nothing that owner attaches to it
 * can run in a writer's session or break writes to the source), stores keys
 * as their base types (a domain's CHECK would run on insert), and numbers
 * its entries (a run deletes what it applied by tuple id only where it
 * finds the number it copied: VACUUM FULL, CLUSTER and pg_repack move
 * entries, and a tuple id alone then names another one).  Capture
 * triggers go on every partition as well, in firing modes that also see
 * session_replication_role = replica, and incetl.state remembers which
 * tables carry them.
 *
 * The queues and triggers of 0.1 are dropped here; the next run of each
 * pipeline creates them anew and, its watermark being reset, compares the
 * whole source with the target once, so nothing written meanwhile is lost.
 * The old queue is never read here: its owner may have given it rules or
 * policies that would run as the role updating the extension.
 */
ALTER TABLE incetl.state ADD COLUMN capture_relations regclass[];

DO $$
DECLARE
	p record;
	t record;
BEGIN
	FOR p IN SELECT id FROM incetl.pipelines
			  WHERE strategy OPERATOR(pg_catalog.=) 'trigger' ORDER BY id LOOP
		FOR t IN SELECT tgrelid::pg_catalog.regclass AS rel, tgname
				   FROM pg_catalog.pg_trigger
				  WHERE tgfoid OPERATOR(pg_catalog.=) 'incetl._capture()'::pg_catalog.regprocedure
					AND tgname OPERATOR(pg_catalog.~~)
						('incetl\_capture\_' OPERATOR(pg_catalog.||) p.id OPERATOR(pg_catalog.||) '\_%')
		LOOP
			EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', t.tgname, t.rel);
		END LOOP;
		EXECUTE pg_catalog.format('DROP TABLE IF EXISTS incetl.%I CASCADE',
								  'queue_' OPERATOR(pg_catalog.||) p.id);
		UPDATE incetl.state
		   SET watermark = NULL, watermark_key = NULL, watermark_type = NULL,
			   updated_at = pg_catalog.now()
		 WHERE pipeline_id OPERATOR(pg_catalog.=) p.id;
	END LOOP;
END
$$;

/*
 * Replication slots of 'logical' pipelines are made by their first run and
 * dropped when the transaction of drop_pipeline commits (src/logical.c).
 * DROP EXTENSION incetl drops them too: this event trigger sees the
 * statement before the extension goes and has incetl's slots in this
 * database dropped when it commits.
 */
CREATE FUNCTION incetl._drop_extension_slots()
RETURNS event_trigger
LANGUAGE C
AS 'MODULE_PATHNAME', 'incetl_drop_extension_slots';
COMMENT ON FUNCTION incetl._drop_extension_slots() IS 'drops incetl''s replication slots with the extension (internal)';
REVOKE ALL ON FUNCTION incetl._drop_extension_slots() FROM PUBLIC;

CREATE EVENT TRIGGER incetl_drop_extension_slots ON ddl_command_start
	WHEN TAG IN ('DROP EXTENSION')
	EXECUTE FUNCTION incetl._drop_extension_slots();
