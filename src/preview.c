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

#include "access/xlogdefs.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "incetl.h"

PG_FUNCTION_INFO_V1(incetl_preview);

Datum
incetl_preview(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	IncetlRoleSwitch role;
	IncetlPipeline *p;
	IncetlCursor cur;
	IncetlBatchShape shape;
	Oid		   *argtypes;
	Datum	   *values;
	char	   *nulls;
	int			nargs;
	int			np = 0;
	char	   *sql;
	int			rc;

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
	p = incetl_load_pipeline(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	incetl_check_owner(p);

	/* like a run, look at the data as the pipeline's owner */
	incetl_switch_role(&role, p->owner, 0);
	incetl_resolve_pipeline(p, false);
	incetl_load_cursor(p, &cur);

	if (p->strategy != STRATEGY_TIMESTAMP)
	{
		char	   *keys;
		bool		truncated = false;
		Datum		changes = (Datum) 0;
		bool		initial;
		bool		isnull;

		/* has a capture pipeline loaded everything yet? */
		{
			Oid			types[1] = {INT4OID};
			Datum		vals[1] = {Int32GetDatum(p->id)};

			incetl_spi_exec_owner("SELECT watermark IS NULL FROM incetl.state "
								  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
								  1, types, vals, NULL, SPI_OK_SELECT);
			initial = SPI_processed == 1 &&
				DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
		}

		if (p->strategy == STRATEGY_HASH)
			keys = incetl_hash_state_empty(p) ? incetl_sql_hash_initial_keys(p) :
				incetl_sql_diff_keys(p, false);
		else if (initial)
			keys = incetl_sql_diff_keys(p, true);
		else if (p->strategy == STRATEGY_TRIGGER)
			keys = incetl_sql_queue_keys(p);
		else
		{
			char	   *slot;
			XLogRecPtr	applied;

			/*
			 * A run uses the slot while it holds the pipeline's lock: wait
			 * for it (a slot serves one session at a time).
			 */
			incetl_lock_wait(p->id, INCETL_LOCK_RUN, ShareLock);
			if (incetl_logical_slot(p, false, &slot, &applied))
			{
				changes = incetl_logical_peek_json(p, slot, applied, &truncated);
				keys = incetl_sql_change_keys(p);
			}
			else				/* no slot for it: the run compares everything */
				keys = incetl_sql_diff_keys(p, true);
		}
		if (p->strategy == STRATEGY_TRIGGER && !initial)
		{
			/* as the pipeline's owner, like the rest of a preview */
			if (SPI_execute(psprintf("SELECT 1 FROM incetl.queue_%d WHERE op OPERATOR(pg_catalog.=) 'T' LIMIT 1",
									 p->id), true, 0) != SPI_OK_SELECT)
				elog(ERROR, "incetl: could not read the queue");
			truncated = SPI_processed > 0;
		}
		sql = incetl_sql_keyed_preview(p, keys);

		/*
		 * After a TRUNCATE the run's compare pass deletes the target keys
		 * the source lacks, except those its keyed pass deleted already:
		 * a key both name is one delete.
		 */
		if (truncated)
			sql = psprintf("%s UNION ALL (SELECT * FROM (%s) AS c EXCEPT ALL (%s))",
						   sql, incetl_sql_compare_deletes(p, true), sql);
		argtypes = palloc(sizeof(Oid));
		values = palloc(sizeof(Datum));
		nulls = NULL;
		nargs = 0;
		if (changes != (Datum) 0)
		{
			argtypes[0] = JSONBOID;
			values[0] = changes;
			nargs = 1;
		}
		goto execute;
	}

	argtypes = palloc(sizeof(Oid) * INCETL_MAX_PARAMS(p));
	values = palloc(sizeof(Datum) * INCETL_MAX_PARAMS(p));
	nulls = palloc(INCETL_MAX_PARAMS(p));
	memset(nulls, ' ', INCETL_MAX_PARAMS(p));
	memset(&shape, 0, sizeof(shape));
	shape.preview = true;

	if (!cur.valid)
		shape.lower = LOWER_NONE;
	else if (p->lookback->month != 0 || p->lookback->day != 0 || p->lookback->time != 0)
	{
		shape.lower = LOWER_GE;
		values[np++] = incetl_lookback_start(p, cur.wm, &shape.lower_type);
	}
	else if (cur.keys == NULL)
	{
		shape.lower = LOWER_GT;
		shape.lower_type = p->wm_type;
		values[np++] = cur.wm;
	}
	else
	{
		shape.lower = LOWER_AFTER;
		values[np++] = cur.wm;
		for (int i = 0; i < p->nkeys; i++)
		{
			nulls[np] = cur.key_nulls[i] ? 'n' : ' ';
			values[np++] = cur.keys[i];
		}
	}
	if (incetl_is_time_type(p->wm_type))
	{
		shape.upper = UPPER_LT;
		shape.upper_type = p->wm_type;
		values[np++] = incetl_bound_for_column(p, incetl_late_commit_bound());
	}

	sql = incetl_sql_batch(p, &shape, &nargs, argtypes);
	if (p->delete_detection == DELETE_DETECT_COMPARE)
		sql = psprintf("%s UNION ALL (%s)", sql, incetl_sql_compare_deletes(p, true));

execute:
	if (!PG_ARGISNULL(1))
		sql = psprintf("%s LIMIT " INT64_FORMAT, sql, PG_GETARG_INT64(1));

	rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, true, 0);
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
	incetl_restore_role(&role, true);
	SPI_finish();
	return (Datum) 0;
}
