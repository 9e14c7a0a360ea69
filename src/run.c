/*-------------------------------------------------------------------------
 *
 * run.c
 *	  The procedures that run pipelines: CALL incetl.run, run_all, backfill
 *	  and reconcile.
 *
 * Each connects SPI (non-atomic when it may commit: called by CALL outside
 * a transaction block), hands the pipeline to the engine (engine.c), and
 * raises the run's error again after the engine recorded it.
 *
 * src/run.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "engine.h"

INCETL_FUNCTION(incetl_run);
INCETL_FUNCTION(incetl_run_all);
INCETL_FUNCTION(incetl_backfill_time);
INCETL_FUNCTION(incetl_backfill_int);
INCETL_FUNCTION(incetl_reconcile);

/* called by CALL outside a transaction block: it may commit */
bool
incetl_call_is_nonatomic(FunctionCallInfo fcinfo)
{
	return fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
}

/*
 * The end of run_all and guard: check the freshness of every pipeline,
 * commit that with its alerts (before the error a procedure may raise
 * next, when it may commit), and close SPI.
 */
void
incetl_end_checking(bool nonatomic)
{
	incetl_check_freshness(0);
	if (nonatomic)
		SPI_commit();
	SPI_finish();
}

static void
connect_spi(bool nonatomic)
{
	if (SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/*
 * The procedures that run one pipeline: connect SPI (non-atomic when they
 * may commit), run, and raise the run's error again after it was logged.
 */
static void
call_pipeline(FunctionCallInfo fcinfo, IncetlRunKind kind, const IncetlRun *bf)
{
	bool		nonatomic = incetl_call_is_nonatomic(fcinfo);
	ErrorData  *edata;
	MemoryContext cxt;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));

	/*
	 * The run's memory, its error included, must outlive SPI_finish (and,
	 * non-atomic, the commits): the error is raised again after it.
	 */
	cxt = AllocSetContextCreate(nonatomic ? PortalContext : CurrentMemoryContext,
								"incetl run", ALLOCSET_DEFAULT_SIZES);
	connect_spi(nonatomic);
	edata = incetl_run_pipeline(text_to_cstring(PG_GETARG_TEXT_PP(0)), nonatomic,
						 kind, bf, cxt);
	SPI_finish();
	if (edata)
		ReThrowError(edata);
	MemoryContextDelete(cxt);
}

/*
 * CALL incetl.run(name)
 */
Datum
incetl_run(PG_FUNCTION_ARGS)
{
	call_pipeline(fcinfo, RUN_KIND_RUN, NULL);
	PG_RETURN_VOID();
}

/*
 * CALL incetl.run_all(): every enabled pipeline, one after another.  A
 * failure is a WARNING and the others go on; the call fails at the end if
 * any did, naming them.
 */
Datum
incetl_run_all(PG_FUNCTION_ARGS)
{
	bool		nonatomic = incetl_call_is_nonatomic(fcinfo);
	List	   *names;
	ListCell   *lc;
	StringInfoData failed;
	int			nfailed = 0;

	MemoryContext outer = nonatomic ? PortalContext : CurrentMemoryContext;
	MemoryContext old = MemoryContextSwitchTo(outer);

	initStringInfo(&failed);
	MemoryContextSwitchTo(old);
	connect_spi(nonatomic);
	/* in SPI's procedure memory, which outlives the runs' commits */
	names = incetl_enabled_pipeline_names();
	foreach(lc, names)
	{
		char	   *name = lfirst(lc);
		MemoryContext cxt = AllocSetContextCreate(outer, "incetl run",
												  ALLOCSET_DEFAULT_SIZES);
		ErrorData  *edata = incetl_run_pipeline(name, nonatomic, RUN_KIND_RUN, NULL, cxt);

		if (edata)
		{
			MemoryContext old = MemoryContextSwitchTo(outer);

			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("pipeline \"%s\" failed: %s", name, edata->message)));
			appendStringInfo(&failed, "%s\"%s\"", nfailed ? ", " : "", name);
			nfailed++;
			MemoryContextSwitchTo(old);
		}
		MemoryContextDelete(cxt);
	}

	/*
	 * The pipelines that did not run (disabled, or another role's) may have
	 * turned stale too.
	 */
	incetl_end_checking(nonatomic);

	if (nfailed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg_plural("%d pipeline failed: %s",
							   "%d pipelines failed: %s",
							   nfailed, nfailed, failed.data),
				 errhint("See incetl.run_log for the errors.")));
	PG_RETURN_VOID();
}

/*
 * CALL incetl.reconcile(name): compare all of the source with all of the
 * target by row hash and make the target equal to the source.
 */
Datum
incetl_reconcile(PG_FUNCTION_ARGS)
{
	call_pipeline(fcinfo, RUN_KIND_RECONCILE, NULL);
	PG_RETURN_VOID();
}

static void
backfill(FunctionCallInfo fcinfo, const IncetlRun *bf)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("arguments of incetl.backfill must not be null")));
	call_pipeline(fcinfo, RUN_KIND_BACKFILL, bf);
}

/*
 * CALL incetl.backfill(name, start_at timestamptz, end_at timestamptz,
 *						chunk interval DEFAULT '1 day')
 */
Datum
incetl_backfill_time(PG_FUNCTION_ARGS)
{
	IncetlRun	bf;
	Interval   *chunk;

	memset(&bf, 0, sizeof(bf));
	if (!PG_ARGISNULL(3))
	{
		chunk = PG_GETARG_INTERVAL_P(3);
		if (chunk->month < 0 || chunk->day < 0 || chunk->time < 0 ||
			(chunk->month == 0 && chunk->day == 0 && chunk->time == 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("backfill chunk must be a positive interval")));
		bf.bf_chunk_iv = chunk;
	}
	bf.bf_type = TIMESTAMPTZOID;
	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
	{
		bf.bf_start = PG_GETARG_DATUM(1);
		bf.bf_end = PG_GETARG_DATUM(2);
		if (PG_GETARG_TIMESTAMPTZ(1) >= PG_GETARG_TIMESTAMPTZ(2))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("backfill start_at must be before end_at")));
	}
	backfill(fcinfo, &bf);
	PG_RETURN_VOID();
}

/*
 * CALL incetl.backfill(name, start_at bigint, end_at bigint, chunk bigint)
 */
Datum
incetl_backfill_int(PG_FUNCTION_ARGS)
{
	IncetlRun	bf;

	memset(&bf, 0, sizeof(bf));
	bf.bf_type = INT8OID;
	if (!PG_ARGISNULL(3) && PG_GETARG_INT64(3) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("backfill chunk must be positive")));
	bf.bf_chunk_int = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3);
	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
	{
		bf.bf_start = PG_GETARG_DATUM(1);
		bf.bf_end = PG_GETARG_DATUM(2);
		if (PG_GETARG_INT64(1) >= PG_GETARG_INT64(2))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("backfill start_at must be before end_at")));
	}
	backfill(fcinfo, &bf);
	PG_RETURN_VOID();
}
