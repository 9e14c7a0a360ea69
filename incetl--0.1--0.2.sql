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
 * 0.1 created the key columns of queues and hash states without their
 * typmod: a char(2) key got a character(1) column (every write of a
 * 'trigger' source failed; a 'hash' run failed).  Such tables can hold no
 * row of those keys, so give them the source column's exact type.
 */
DO $$
DECLARE
	p record;
	tbl regclass;
	i integer;
	want text;
BEGIN
	FOR p IN SELECT id, source, strategy, key_columns FROM incetl.pipelines
			  WHERE strategy OPERATOR(pg_catalog.=) ANY (ARRAY['trigger', 'hash'])
	LOOP
		tbl := pg_catalog.to_regclass(pg_catalog.format('incetl.%s_%s',
				CASE p.strategy WHEN 'trigger' THEN 'queue' ELSE 'hash_state' END, p.id));
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
