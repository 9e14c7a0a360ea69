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
 * incetl.state is read and written by state.c; no user code runs.
 *
 * src/alert.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/async.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"

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

/*
 * Check the freshness of one pipeline (pipeline_id > 0) or of all (0):
 * incetl.state records each turn to stale or back (state.c), and each turn
 * to stale sends a 'stale' alert.
 */
void
incetl_check_freshness(int32 pipeline_id)
{
	List	   *turns = incetl_state_record_freshness(pipeline_id);
	ListCell   *lc;

	foreach(lc, turns)
	{
		IncetlStaleTurn *t = lfirst(lc);

		incetl_alert("stale", t->pipeline, t->run_id, t->status, t->error);
	}
}
