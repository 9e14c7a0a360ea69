--
-- 00_setup: install incetl and the helpers the other regression files use.
--
-- The files run in alphabetical order in one database; this one creates the
-- extension, the later ones rely on it.  Each later file works in a schema
-- of its own and drops its pipelines at the end, so run_all (11_run_all)
-- only sees its own.
--
CREATE EXTENSION IF NOT EXISTS incetl CASCADE;

-- the extension's objects
SELECT e.extname, e.extrelocatable, n.nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'incetl';
-- entry points of the contract: run, run_all, backfill and reconcile are
-- procedures, the rest functions
SELECT p.proname, p.prokind, count(*) AS overloads
  FROM pg_proc p
 WHERE p.pronamespace = 'incetl'::regnamespace
   AND p.proname IN ('create_pipeline', 'alter_pipeline', 'drop_pipeline', 'run',
					 'run_all', 'backfill', 'reconcile', 'preview',
					 'set_watermark', 'reset_watermark', 'row_hash')
 GROUP BY 1, 2 ORDER BY 1;
SELECT c.relname, c.relkind FROM pg_class c
 WHERE c.relnamespace = 'incetl'::regnamespace AND c.relkind IN ('r', 'v')
 ORDER BY 1;
-- procedures that commit per batch must carry no SET clause and not be
-- SECURITY DEFINER (either would make them atomic)
SELECT p.proname, p.prosecdef, p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'incetl'::regnamespace AND p.prokind = 'p'
 ORDER BY 1;
SHOW incetl.late_commit_margin;

-- Helpers for the other files.
CREATE SCHEMA regress;
-- the helpers serve every file, including roles that 30_security switches to
GRANT USAGE ON SCHEMA regress TO PUBLIC;

-- try(sql): run a statement and show "ok" or "SQLSTATE: message" with its
-- detail and hint.  A plain psql error would not show the SQLSTATE, and
-- VERBOSITY verbose would add LOCATION lines with C line numbers.
CREATE FUNCTION regress.try(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
	det text;
	hnt text;
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	RETURN st || ': ' || msg
		|| CASE WHEN det <> '' THEN E'\nDETAIL: ' || det ELSE '' END
		|| CASE WHEN hnt <> '' THEN E'\nHINT: ' || hnt ELSE '' END;
END;
$$;

-- the last run_log row of a pipeline, without the columns that vary
-- (run_id, times, pid)
CREATE FUNCTION regress.last_run(p text)
RETURNS TABLE (kind text, status text, batches integer, extracted bigint,
			   inserted bigint, updated bigint, deleted bigint,
			   unchanged bigint, wm_before text, wm_after text, error text)
LANGUAGE sql AS $$
	SELECT kind, status, batches, rows_extracted, rows_inserted, rows_updated,
		   rows_deleted, rows_unchanged, watermark_before, watermark_after, error
	  FROM incetl.run_log WHERE pipeline = p ORDER BY run_id DESC LIMIT 1
$$;

-- the counts of the last run_log row of a pipeline (for strategies whose
-- watermark is a time and so varies)
CREATE FUNCTION regress.last_counts(p text)
RETURNS TABLE (status text, batches integer, extracted bigint, inserted bigint,
			   updated bigint, deleted bigint, unchanged bigint, error text)
LANGUAGE sql AS $$
	SELECT status, batches, rows_extracted, rows_inserted, rows_updated,
		   rows_deleted, rows_unchanged, error
	  FROM incetl.run_log WHERE pipeline = p ORDER BY run_id DESC LIMIT 1
$$;

-- the rows of src and tgt that differ by their text (so by value, not by
-- their types' equality: 1.0 and 1.000 differ), each marked with its side
CREATE FUNCTION regress.differ(src regclass, tgt regclass) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE pg_catalog.format(
		'(SELECT ''source: '' || s::text FROM %s s EXCEPT SELECT ''source: '' || t::text FROM %s t)
		 UNION ALL
		 (SELECT ''target: '' || t::text FROM %s t EXCEPT SELECT ''target: '' || s::text FROM %s s)
		 ORDER BY 1', src, tgt, tgt, src);
END $$;

-- the saved cursor of a pipeline
CREATE FUNCTION regress.cursor(p text)
RETURNS TABLE (watermark text, watermark_key text[], watermark_type regtype)
LANGUAGE sql AS $$
	SELECT s.watermark, s.watermark_key, s.watermark_type
	  FROM incetl.state s JOIN incetl.pipelines pl ON pl.id = s.pipeline_id
	 WHERE pl.name = p
$$;

-- the problems of a history table h of target t (SPEC 5), none when it is
-- right: overlapping versions, valid_to not after valid_from, two current
-- versions of a key, a live target key (soft: its soft-delete column is
-- not true) without a current version or a current version of a key that
-- is not live, a current version unlike the target row in cols (keys: id)
CREATE FUNCTION regress.history_problems(h regclass, t regclass, cols text, soft text DEFAULT NULL)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
	live text := CASE WHEN soft IS NULL THEN 'true' ELSE format('t.%I IS NOT TRUE', soft) END;
BEGIN
	EXECUTE format('SELECT count(*) FROM %s a JOIN %s b ON a.id = b.id AND a.valid_from < b.valid_from
					 AND (a.valid_to IS NULL OR a.valid_to > b.valid_from)', h, h) INTO n;
	IF n > 0 THEN RETURN NEXT 'overlapping versions: ' || n; END IF;
	EXECUTE format('SELECT count(*) FROM %s WHERE valid_to <= valid_from', h) INTO n;
	IF n > 0 THEN RETURN NEXT 'valid_to not after valid_from: ' || n; END IF;
	EXECUTE format('SELECT count(*) FROM (SELECT id FROM %s WHERE valid_to IS NULL
					 GROUP BY id HAVING count(*) > 1) x', h) INTO n;
	IF n > 0 THEN RETURN NEXT 'keys with two current versions: ' || n; END IF;
	EXECUTE format('SELECT count(*) FROM %s t WHERE %s AND NOT EXISTS
					 (SELECT 1 FROM %s h WHERE h.id = t.id AND h.valid_to IS NULL)', t, live, h) INTO n;
	IF n > 0 THEN RETURN NEXT 'live keys without a current version: ' || n; END IF;
	EXECUTE format('SELECT count(*) FROM %s h WHERE h.valid_to IS NULL AND NOT EXISTS
					 (SELECT 1 FROM %s t WHERE t.id = h.id AND %s)', h, t, live) INTO n;
	IF n > 0 THEN RETURN NEXT 'current versions of keys not live: ' || n; END IF;
	EXECUTE format('SELECT count(*) FROM %s h JOIN %s t ON t.id = h.id
					 WHERE h.valid_to IS NULL AND (%s) IS DISTINCT FROM (%s)', h, t,
				   'h.' || replace(cols, ', ', ', h.'), 't.' || replace(cols, ', ', ', t.')) INTO n;
	IF n > 0 THEN RETURN NEXT 'current versions unlike the target: ' || n; END IF;
END;
$$;

SELECT regress.try('SELECT 1/0');
SELECT regress.try('SELECT 1');
