/*-------------------------------------------------------------------------
 *
 * explain.c
 *	  incetl.explain(name): the statements the next run would execute and
 *	  their plans, writing nothing.
 *
 * The statements are the run's own, built by the same builders (deparse)
 * with the parameters the next run would give its first batches: the
 * strategy adds the statements that fill its change set (strategy.h's
 * explain callback), and for a keyed strategy the engine's apply statement
 * follows.  Each is planned with EXPLAIN (not ANALYZE), as the pipeline's
 * owner in a security-restricted operation, like a run.
 *
 * Keyed statements read the run's temporary work table; explain makes an
 * empty one in a subtransaction that it rolls back at the end, so nothing
 * is left behind.  Plans over an empty work table show the statement's
 * shape, not the row counts a real run would see.
 *
 * src/explain.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "replication/slot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/tuplestore.h"

#include "engine.h"

INCETL_FUNCTION(incetl_explain);

/*
 * EXPLAIN one statement, with the settings a run gives it; its plan as
 * text, one line per plan line
 */
static char *
plan_text(IncetlPipeline *p, IncetlExplainStatement *st)
{
	StringInfoData plan;
	int			rc;
	int			nest = -1;

	if (st->kind != EXPLAIN_PLAIN)
		nest = incetl_begin_batch_settings(p, st->kind == EXPLAIN_KEYED_BATCH);
	rc = SPI_execute_with_args(psprintf("EXPLAIN %s", st->sql), st->nargs,
							   st->argtypes, st->values, st->nulls, false, 0);
	if (nest >= 0)
		incetl_end_batch_settings(nest);
	if (rc != SPI_OK_UTILITY && rc != SPI_OK_SELECT)
		elog(ERROR, "incetl: EXPLAIN of step \"%s\" returned %s", st->step,
			 SPI_result_code_string(rc));
	initStringInfo(&plan);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *line = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		appendStringInfo(&plan, "%s%s", i ? "\n" : "", line ? line : "");
	}
	return plan.data;
}

/* the statements of the next run of p, planned, into the result */
static void
explain_pipeline(IncetlPipeline *p, ReturnSetInfo *rsinfo)
{
	IncetlRoleSwitch role;
	IncetlExplain ex;
	ListCell   *lc;

	memset(&ex, 0, sizeof(ex));
	ex.p = p;

	incetl_switch_role(&role, p->owner, 0);
	incetl_resolve_pipeline(p, false);
	incetl_state_load_cursor(p, &ex.cursor);
	incetl_restore_role(&role, true);

	/* the work table of a keyed run, which only a run's own switch may make */
	if (p->strategy->keyed)
	{
		incetl_switch_role(&role, p->owner, INCETL_ROLE_ALLOW_TEMP);
		(void) incetl_work_create(p);
		incetl_work_ready(p, 0);
		incetl_restore_role(&role, true);
	}

	incetl_switch_role(&role, p->owner, 0);
	p->strategy->explain(&ex);
	if (p->strategy->keyed)
	{
		Oid		   *argtypes = palloc(sizeof(Oid) * 4);
		Datum	   *values = palloc(sizeof(Datum) * 4);
		int			nargs;
		char	   *sql;

		values[0] = Int64GetDatum(0);
		values[1] = Int64GetDatum(p->batch_size);
		values[2] = Int64GetDatum(0);	/* the run id */
		values[3] = TimestampTzGetDatum(GetCurrentTimestamp());	/* its start */
		sql = incetl_sql_keyed_batch(p, p->strategy->stores_hashes, false, &nargs, argtypes);
		incetl_explain_add(&ex, "apply", EXPLAIN_KEYED_BATCH, sql, nargs,
						   argtypes, values, NULL);
	}
	foreach(lc, ex.statements)
	{
		IncetlExplainStatement *st = lfirst(lc);
		Datum		out[3];
		bool		outnulls[3] = {false, false, false};

		out[0] = CStringGetTextDatum(st->step);
		out[1] = CStringGetTextDatum(st->sql);
		out[2] = CStringGetTextDatum(plan_text(p, st));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnulls);
	}
	incetl_restore_role(&role, true);
}

typedef struct ExplainArgs
{
	IncetlPipeline *p;
	ReturnSetInfo *rsinfo;
} ExplainArgs;

static void
explain_pipeline_cb(void *arg)
{
	ExplainArgs *a = arg;

	explain_pipeline(a->p, a->rsinfo);
}

/*
 * incetl.explain(name) returns table (step text, statement text, plan text)
 */
Datum
incetl_explain(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IncetlPipeline *p;
	ExplainArgs ex_args;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	p = incetl_load_owned_pipeline(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	/* all of it is undone: the work table, and whatever planning touched */
	ex_args.p = p;
	ex_args.rsinfo = rsinfo;
	incetl_call_rolled_back(explain_pipeline_cb, &ex_args);

	SPI_finish();
	return (Datum) 0;
}
