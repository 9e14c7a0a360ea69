/*-------------------------------------------------------------------------
 *
 * preview.c
 *	  incetl.preview(name, max_rows): what the next run would do, writing
 *	  nothing.  Also the procedures whose strategies come later.
 *
 * src/preview.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlogdefs.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "replication/slot.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/tuplestore.h"

#include "strategy.h"

INCETL_FUNCTION(incetl_preview);

typedef struct PreviewArgs
{
	IncetlPipeline *p;
	ReturnSetInfo *rsinfo;
	int64		max_rows;
} PreviewArgs;

/* the rows of a preview of p into the result, as the pipeline's owner */
static void
preview_pipeline_cb(void *arg)
{
	PreviewArgs *a = arg;
	IncetlPipeline *p = a->p;
	ReturnSetInfo *rsinfo = a->rsinfo;
	int64		max_rows = a->max_rows;
	IncetlRoleSwitch rs;
	IncetlRoleSwitch *role = &rs;
	IncetlPreview pv;
	char	   *sql;
	int			rc;

	/* like a run, look at the data as the pipeline's owner */
	incetl_switch_role(role, p->owner, 0);
	incetl_resolve_and_follow(p, false, false);

	memset(&pv, 0, sizeof(pv));
	pv.p = p;
	incetl_state_load_cursor(p, &pv.cursor);
	pv.argtypes = palloc0(sizeof(Oid));
	pv.values = palloc0(sizeof(Datum));
	p->strategy->preview(&pv);

	sql = pv.sql;
	if (max_rows >= 0)
		sql = psprintf("%s LIMIT " INT64_FORMAT, sql, max_rows);

	rc = SPI_execute_with_args(sql, pv.nargs, pv.argtypes, pv.values, pv.nulls,
							   true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "incetl: preview returned %s", SPI_result_code_string(rc));

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		out[2];
		bool		outnulls[2];

		out[0] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &outnulls[0]);
		out[1] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &outnulls[1]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnulls);
	}
	incetl_restore_role(role, true);
}

Datum
incetl_preview(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IncetlPipeline *p;
	PreviewArgs pv_args;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));
	if (!PG_ARGISNULL(1) && PG_GETARG_INT64(1) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must not be negative")));

	InitMaterializedSRF(fcinfo, 0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	p = incetl_load_owned_pipeline(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	/*
	 * Everything happens in a subtransaction that is rolled back: the
	 * columns the run would add to the target (on_schema_change
	 * 'add_columns') are added, so that the preview shows what the run will
	 * do to them, and taken away again.
	 */
	pv_args.p = p;
	pv_args.rsinfo = rsinfo;
	pv_args.max_rows = PG_ARGISNULL(1) ? -1 : PG_GETARG_INT64(1);
	incetl_call_rolled_back(preview_pipeline_cb, &pv_args);
	SPI_finish();
	return (Datum) 0;
}
