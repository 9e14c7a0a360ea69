/*-------------------------------------------------------------------------
 *
 * alert.c
 *	  NOTIFY incetl_alert, and the freshness of pipelines.
 *
 * An alert is a NOTIFY on channel incetl_alert whose payload is a JSON
 * object: {"pipeline", "run_id", "status", "error", "kind"}, kind being
 * 'failed' (a run, backfill or reconcile failed), 'stale' (a pipeline
 * with a freshness_target turned stale) or 'resync' (a 'logical'
 * pipeline's slot was dropped, lost or found gone: its next run compares
 * the whole source).  NOTIFY is transactional: an alert goes out when
 * the transaction that records what it reports commits (the failure row
 * of run_log, the state row), and never for one that rolls back.  The
 * payload stays under NOTIFY's 8000 bytes: a long error is cut.
 *
 * A pipeline is stale when it has a freshness_target and its last
 * successful run (or reconcile) did not start within it.  incetl.state
 * remembers since when (stale_since), so that each turn to stale sends one
 * alert however often it is checked (by the end of every run, by run_all
 * and by guard), and a turn back to fresh clears it.
 *
 * Everything here reads and writes incetl's own tables as the extension
 * owner; no user code runs.
 *
 * src/alert.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/lsyscache.h"

#include "incetl.h"

#define ALERT_CHANNEL "incetl_alert"

/* a JSON string, or null */
static void
append_json(StringInfo buf, const char *key, const char *value, bool comma)
{
	if (comma)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	if (value)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, "null");
}

/* s cut to at most len bytes, on a character boundary, marked when cut */
static char *
clip(const char *s, int len)
{
	int			n;

	if (s == NULL || strlen(s) <= len)
		return (char *) s;
	n = pg_mbcliplen(s, strlen(s), len);
	return psprintf("%.*s... (truncated)", n, s);
}

/*
 * NOTIFY incetl_alert, '{"pipeline": ..., "run_id": ..., "status": ...,
 * "error": ..., "kind": ...}'.  run_id 0: none; status and error may be
 * NULL.  Sent when the current transaction commits.
 */
void
incetl_alert(const char *kind, const char *pipeline, int64 run_id,
			 const char *status, const char *error)
{
	StringInfoData buf;
	int			limit = 4000;

	initStringInfo(&buf);
	for (;;)
	{
		resetStringInfo(&buf);
		appendStringInfoChar(&buf, '{');
		append_json(&buf, "pipeline", clip(pipeline, 1000), false);
		if (run_id > 0)
			appendStringInfo(&buf, ", \"run_id\": " INT64_FORMAT, run_id);
		else
			appendStringInfoString(&buf, ", \"run_id\": null");
		append_json(&buf, "status", status, true);
		append_json(&buf, "error", clip(error, limit), true);
		append_json(&buf, "kind", kind, true);
		appendStringInfoChar(&buf, '}');
		/* escapes may make the error up to six times longer */
		if (buf.len < 7900 || limit == 0)
			break;
		limit /= 2;
	}
	Async_Notify(ALERT_CHANNEL, buf.data);
}

/* whether a column of a row read by incetl_catalog_row() (or no row) is null */
static bool
column_is_null(HeapTuple tup, TupleDesc desc, const char *name)
{
	bool		isnull = true;

	if (tup != NULL)
		(void) incetl_catalog_col(tup, desc, name, &isnull);
	return isnull;
}

/*
 * Check the freshness of one pipeline (pipeline_id > 0) or of all (0):
 * record a turn to stale or back in incetl.state and send a 'stale' alert
 * for each turn to stale.  One pipeline is looked at directly first: only
 * one with a freshness_target, or marked stale, needs the statement.
 */
void
incetl_check_freshness(int32 pipeline_id)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	MemoryContext cxt = CurrentMemoryContext;
	List	   *alerts = NIL;
	ListCell   *lc;

	/* a catalog older than the library: nothing to check */
	if (get_attnum(get_relname_relid("state", get_namespace_oid("incetl", false)),
				   "stale_since") == InvalidAttrNumber)
		return;

	if (pipeline_id > 0)
	{
		TupleDesc	pdesc;
		TupleDesc	sdesc;
		HeapTuple	ptup = incetl_catalog_row("pipelines", "id", F_INT4EQ,
											  Int32GetDatum(pipeline_id), &pdesc);
		HeapTuple	stup = incetl_catalog_row("state", "pipeline_id", F_INT4EQ,
											  Int32GetDatum(pipeline_id), &sdesc);

		if (column_is_null(ptup, pdesc, "freshness_target") &&
			column_is_null(stup, sdesc, "stale_since"))
			return;
	}

	values[0] = Int32GetDatum(pipeline_id);
	incetl_spi_exec_owner("WITH c AS (SELECT p.id, p.name, "
						  "p.freshness_target IS NOT NULL AND NOT COALESCE(ok.started_at "
						  "OPERATOR(pg_catalog.>=) (pg_catalog.now() OPERATOR(pg_catalog.-) p.freshness_target), "
						  "false) AS stale, r.run_id, r.status, r.error "
						  "FROM incetl.pipelines p JOIN incetl.state s0 "
						  "ON s0.pipeline_id OPERATOR(pg_catalog.=) p.id "
						  "LEFT JOIN LATERAL (SELECT rl.started_at FROM incetl.run_log rl "
						  "WHERE rl.pipeline_id OPERATOR(pg_catalog.=) p.id "
						  "AND rl.status OPERATOR(pg_catalog.=) 'succeeded' "
						  "AND rl.kind OPERATOR(pg_catalog.<>) 'backfill' "
						  "ORDER BY rl.run_id DESC LIMIT 1) ok ON true "
						  "LEFT JOIN LATERAL (SELECT rl.run_id, rl.status, rl.error FROM incetl.run_log rl "
						  "WHERE rl.pipeline_id OPERATOR(pg_catalog.=) p.id "
						  "AND rl.status OPERATOR(pg_catalog.<>) 'skipped' "
						  "ORDER BY rl.run_id DESC LIMIT 1) r ON true "
						  "WHERE ($1 OPERATOR(pg_catalog.=) 0 OR p.id OPERATOR(pg_catalog.=) $1) "
						  "AND (p.freshness_target IS NOT NULL OR s0.stale_since IS NOT NULL)) "
						  "UPDATE incetl.state s SET stale_since = "
						  "CASE WHEN c.stale THEN pg_catalog.now() END "
						  "FROM c WHERE s.pipeline_id OPERATOR(pg_catalog.=) c.id "
						  "AND (s.stale_since IS NOT NULL) OPERATOR(pg_catalog.<>) c.stale "
						  "RETURNING c.stale, c.name, c.run_id, c.status, c.error",
						  1, types, values, NULL, SPI_OK_UPDATE_RETURNING);

	/* copied out first: sending reads nothing, but keep SPI's tuples apart */
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;
		MemoryContext old;
		char	  **a;

		if (!DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull)))
			continue;
		old = MemoryContextSwitchTo(cxt);
		a = palloc0(sizeof(char *) * 4);
		a[0] = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		d = SPI_getbinval(tup, desc, 3, &isnull);
		a[1] = isnull ? NULL : psprintf(INT64_FORMAT, DatumGetInt64(d));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		a[2] = isnull ? NULL : TextDatumGetCString(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		a[3] = isnull ? NULL : TextDatumGetCString(d);
		alerts = lappend(alerts, a);
		MemoryContextSwitchTo(old);
	}
	foreach(lc, alerts)
	{
		char	  **a = lfirst(lc);

		incetl_alert("stale", a[0], a[1] ? strtoi64(a[1], NULL, 10) : 0, a[2], a[3]);
	}
}
