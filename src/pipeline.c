/*-------------------------------------------------------------------------
 *
 * pipeline.c
 *	  The SQL functions that define pipelines: create_pipeline,
 *	  alter_pipeline, drop_pipeline, set_watermark and reset_watermark;
 *	  and the event trigger that keeps a pipeline's history table from
 *	  being dropped.
 *
 * Each checks what the caller may do, validates as the pipeline's owner
 * (validation may run the owner's code: a domain's input function, say),
 * writes incetl's catalog as the extension owner (catalog.c, state.c), and
 * lets the strategy make or remove its own objects (strategy.h).
 *
 * src/pipeline.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "strategy.h"

INCETL_FUNCTION(incetl_create_pipeline);
INCETL_FUNCTION(incetl_alter_pipeline);
INCETL_FUNCTION(incetl_drop_pipeline);
INCETL_FUNCTION(incetl_set_watermark);
INCETL_FUNCTION(incetl_reset_watermark);
INCETL_FUNCTION(incetl_history_table_dropped);

/*
 * Connect SPI and load a pipeline that the caller may change, once no run
 * of it is going on (alter, drop, set and reset the watermark).
 */
static IncetlPipeline *
open_idle_pipeline(const char *name)
{
	IncetlPipeline *p;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	p = incetl_load_owned_pipeline(name);
	incetl_lock_idle_pipeline(p);
	return p;
}

static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *dflt)
{
	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return dflt ? pstrdup(dflt) : NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}


/*
 * The options of sections 5 and 6 of the contract, arguments 16 to 19 of
 * create_pipeline and alter_pipeline: history_table, history_ignore_columns,
 * max_retained_wal, freshness_target.  NULL leaves an option as it is
 * (create_pipeline starts from none); alter_pipeline clears
 * history_table with 0, history_ignore_columns with '{}', max_retained_wal with '' and
 * freshness_target with '0'.
 */
static void
ops_args(FunctionCallInfo fcinfo, IncetlPipeline *p)
{
	/* the functions of an older script, before ALTER EXTENSION UPDATE */
	if (PG_NARGS() < 20)
		return;
	/*
	 * history_table => 0 (or '-') clears it, and history_ignore_columns with
	 * it; validation (validate.c) checks the table.
	 */
	if (!PG_ARGISNULL(16))
	{
		p->history_table = PG_GETARG_OID(16);
		if (!OidIsValid(p->history_table))
			p->history_ignore_columns = NIL;
	}
	if (!PG_ARGISNULL(17))
	{
		p->history_ignore_columns =
			incetl_key_list_from_array(PG_GETARG_ARRAYTYPE_P(17), "history_ignore_columns");
	}
	if (!PG_ARGISNULL(18))
	{
		char	   *s = text_arg(fcinfo, 18, NULL);

		if (s[0] == '\0')
		{
			p->max_retained_wal = NULL;
			p->max_retained_wal_bytes = -1;
		}
		else
		{
			p->max_retained_wal_bytes = incetl_parse_wal_size(s);
			p->max_retained_wal = s;
		}
	}
	if (!PG_ARGISNULL(19))
	{
		Interval   *iv = PG_GETARG_INTERVAL_P(19);
		Interval	zero = {0};

		if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(iv),
											  IntervalPGetDatum(&zero))) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("freshness_target of pipeline \"%s\" must not be negative", p->name)));
		p->freshness_target = iv->time == 0 && iv->day == 0 && iv->month == 0 ? NULL : iv;
	}
	if (p->max_retained_wal && strcmp(p->strategy_name, "logical") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_retained_wal applies only to 'logical' pipelines, and \"%s\" is '%s'",
						p->name, p->strategy_name)));
}

/*
 * incetl.create_pipeline(name, source, target, ...) returns integer
 */
Datum
incetl_create_pipeline(PG_FUNCTION_ARGS)
{
	IncetlPipeline *p = palloc0(sizeof(IncetlPipeline));
	char	   *s;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("source and target of pipeline \"%s\" must not be null",
						text_arg(fcinfo, 0, NULL))));

	p->name = text_arg(fcinfo, 0, NULL);
	if (p->name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline name must not be empty")));
	p->source = PG_GETARG_OID(1);
	p->target = PG_GETARG_OID(2);
	p->strategy_name = text_arg(fcinfo, 3, "timestamp");
	p->strategy = incetl_strategy_by_name(p->strategy_name);
	if (!PG_ARGISNULL(4))
		p->key_columns = incetl_key_list_from_array(PG_GETARG_ARRAYTYPE_P(4), "key_columns");
	p->watermark_column = text_arg(fcinfo, 5, NULL);
	if (PG_ARGISNULL(6))
		p->lookback = palloc0(sizeof(Interval));
	else
		p->lookback = PG_GETARG_INTERVAL_P(6);
	p->sequence_column = text_arg(fcinfo, 7, NULL);
	p->delete_detection = incetl_parse_delete_detection(text_arg(fcinfo, 8, "none"));
	p->delete_flag_column = text_arg(fcinfo, 9, NULL);
	p->soft_delete = incetl_parse_delete_mode(text_arg(fcinfo, 10, "hard"));
	p->soft_delete_column = text_arg(fcinfo, 11, "is_deleted");
	s = text_arg(fcinfo, 12, "hash64");
	incetl_check_hash_algorithm(s);
	p->hash_algorithm = s;
	p->batch_size = PG_ARGISNULL(13) ? 50000 : PG_GETARG_INT32(13);
	p->on_schema_change = incetl_parse_schema_change(text_arg(fcinfo, 14, "fail"));
	p->enabled = PG_ARGISNULL(15) ? true : PG_GETARG_BOOL(15);
	p->owner = GetUserId();
	p->max_retained_wal_bytes = -1;
	ops_args(fcinfo, p);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (incetl_load_pipeline(p->name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("pipeline \"%s\" already exists", p->name),
				 errhint("Choose another name, or change the pipeline with incetl.alter_pipeline.")));

	incetl_resolve_and_follow(p, true, true);
	incetl_check_privileges(p);
	if (p->strategy->check)
		p->strategy->check(p, true);

	/*
	 * Without statistics the planner guesses a foreign source is small and
	 * sorts locally; with them it sends ORDER BY ... LIMIT to the remote
	 * server with the cursor.  (ANALYZE only warns if we may not.)
	 */
	if (p->src_relkind == RELKIND_FOREIGN_TABLE)
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(p->source));

		if (HeapTupleIsValid(tup))
		{
			bool		never = ((Form_pg_class) GETSTRUCT(tup))->reltuples < 0;

			ReleaseSysCache(tup);
			if (never && SPI_execute(psprintf("ANALYZE %s", p->src_qname), false, 0) != SPI_OK_UTILITY)
				elog(ERROR, "incetl: could not analyze the source");
		}
	}

	incetl_store_pipeline(p, true);
	incetl_state_create(p->id);
	incetl_state_save_source_shape(p);
	if (p->strategy->setup)
		p->strategy->setup(p);

	SPI_finish();

	PG_RETURN_INT32(p->id);
}

/*
 * incetl.alter_pipeline(name, <option> => value, ...): NULL leaves an option
 * unchanged; an empty string clears an optional column name.
 */
Datum
incetl_alter_pipeline(PG_FUNCTION_ARGS)
{
	IncetlRoleSwitch role;
	IncetlPipeline *p;
	char	   *name;
	bool		reset_cursor = false;
	bool		reset_state = false;
	bool		reset_target = false;
	char	   *s;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));
	name = text_arg(fcinfo, 0, NULL);

	p = open_idle_pipeline(name);

	if (!PG_ARGISNULL(1) && PG_GETARG_OID(1) != p->source)
	{
		p->source = PG_GETARG_OID(1);
		reset_cursor = true;
	}
	if (!PG_ARGISNULL(2) && PG_GETARG_OID(2) != p->target)
	{
		/* a new target holds none of what the cursor says was loaded */
		p->target = PG_GETARG_OID(2);
		reset_target = true;
	}
	if (!PG_ARGISNULL(3))
	{
		s = text_arg(fcinfo, 3, NULL);
		if (incetl_strategy_by_name(s) != incetl_strategy(p))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot change the strategy of pipeline \"%s\"", p->name),
					 errhint("Drop the pipeline and create it again with the new strategy.")));
	}
	if (!PG_ARGISNULL(4))
	{
		p->key_columns = incetl_key_list_from_array(PG_GETARG_ARRAYTYPE_P(4), "key_columns");
		reset_cursor = true;
	}
	if (!PG_ARGISNULL(5))
	{
		s = text_arg(fcinfo, 5, NULL);
		p->watermark_column = s[0] ? s : NULL;
		reset_cursor = true;
	}
	if (!PG_ARGISNULL(6))
		p->lookback = PG_GETARG_INTERVAL_P(6);
	if (!PG_ARGISNULL(7))
	{
		s = text_arg(fcinfo, 7, NULL);
		p->sequence_column = s[0] ? s : NULL;
	}
	if (!PG_ARGISNULL(8))
		p->delete_detection = incetl_parse_delete_detection(text_arg(fcinfo, 8, NULL));
	if (!PG_ARGISNULL(9))
	{
		s = text_arg(fcinfo, 9, NULL);
		p->delete_flag_column = s[0] ? s : NULL;
	}
	if (!PG_ARGISNULL(10))
		p->soft_delete = incetl_parse_delete_mode(text_arg(fcinfo, 10, NULL));
	if (!PG_ARGISNULL(11))
		p->soft_delete_column = text_arg(fcinfo, 11, NULL);
	if (!PG_ARGISNULL(12))
	{
		s = text_arg(fcinfo, 12, NULL);
		incetl_check_hash_algorithm(s);
		if (strcmp(s, p->hash_algorithm) != 0)
			reset_state = true;
		p->hash_algorithm = s;
	}
	if (!PG_ARGISNULL(13))
		p->batch_size = PG_GETARG_INT32(13);
	if (!PG_ARGISNULL(14))
		p->on_schema_change = incetl_parse_schema_change(text_arg(fcinfo, 14, NULL));
	if (!PG_ARGISNULL(15))
		p->enabled = PG_GETARG_BOOL(15);
	ops_args(fcinfo, p);

	if (reset_cursor && incetl_strategy(p)->captures)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot change the source or key of pipeline \"%s\", which has the '%s' strategy",
						p->name, p->strategy_name),
				 errhint("Drop the pipeline and create it again.")));
	/*
	 * Validate as the owner, whose rights the pipeline's runs have, and
	 * because validation may run the owner's code (on_schema_change
	 * 'add_columns' adds columns of its types to the target): a superuser
	 * altering someone's pipeline must not run that code as a superuser.
	 * An error restores the role with the (sub)transaction.
	 */
	incetl_switch_role(&role, p->owner, 0);
	incetl_resolve_and_follow(p, true, true);
	incetl_check_privileges(p);
	if (p->strategy->check)
		p->strategy->check(p, false);
	incetl_restore_role(&role, true);
	incetl_store_pipeline(p, false);
	incetl_state_save_source_shape(p);
	/*
	 * The stored hashes no longer describe the rows: start afresh.  Only the
	 * 'hash' strategy keeps them; a 'trigger' pipeline's queue holds changes
	 * not applied yet and stays whatever changed (reconcile is the only user
	 * of hash_algorithm there).
	 */
	if (p->strategy->reset && (reset_cursor || reset_state || reset_target))
		p->strategy->reset(p);

	/*
	 * A 'trigger' or 'logical' pipeline whose watermark is empty compares
	 * the whole source with the target at its next run, and goes on from
	 * its queue or slot as before.
	 */
	if (reset_cursor || reset_target)
	{
		incetl_state_reset_watermark(p);
		ereport(NOTICE,
				(errmsg("watermark of pipeline \"%s\" was reset", p->name),
				 errdetail("The source, key, watermark column or target changed, so the next run loads everything.")));
	}

	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * incetl.drop_pipeline(name)
 */
Datum
incetl_drop_pipeline(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	IncetlPipeline *p;
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];

	p = open_idle_pipeline(name);

	values[0] = Int32GetDatum(p->id);
	incetl_spi_exec_owner("DELETE FROM incetl.pipelines WHERE id OPERATOR(pg_catalog.=) $1",
						  1, argtypes, values, NULL, SPI_OK_DELETE);
	/* a slot cannot be dropped transactionally: it goes when we commit */
	if (incetl_strategy(p)->teardown)
		p->strategy->teardown(p);

	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * incetl.set_watermark(name, value): value is read in the caller's session
 * settings (it is what the caller typed) and stored canonically.  The next
 * run reads rows whose watermark is above value.
 */
Datum
incetl_set_watermark(PG_FUNCTION_ARGS)
{
	IncetlRoleSwitch role;
	IncetlPipeline *p;
	char	   *value;
	Datum		d;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));
	p = open_idle_pipeline(text_to_cstring(PG_GETARG_TEXT_PP(0)));

	/*
	 * As the owner: the watermark type's input function may be a domain's,
	 * whose CHECK is the owner's code (an error restores the role).
	 */
	incetl_switch_role(&role, p->owner, 0);
	incetl_resolve_pipeline(p, false);
	if (!OidIsValid(p->wm_type))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline \"%s\" has no watermark column", p->name)));

	if (PG_ARGISNULL(1))
		incetl_state_save_cursor(p, NULL, NULL);
	else
	{
		Oid			in;
		Oid			ioparam;

		value = text_to_cstring(PG_GETARG_TEXT_PP(1));
		getTypeInputInfo(p->wm_type, &in, &ioparam);
		d = OidInputFunctionCall(in, value, ioparam, -1);
		incetl_state_save_cursor(p, incetl_canonical_text(d, p->wm_type), NULL);
	}
	incetl_restore_role(&role, true);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * incetl.reset_watermark(name): the next run loads everything.
 */
Datum
incetl_reset_watermark(PG_FUNCTION_ARGS)
{
	IncetlPipeline *p;

	p = open_idle_pipeline(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	incetl_state_save_cursor(p, NULL, NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Event trigger on sql_drop: a statement that drops a pipeline's history
 * table fails, as a DROP of a table a view depends on does.  The history
 * is what nothing else can give back, and a pipeline left pointing at a
 * dropped table fails every run (or, should a new table get the old OID,
 * would write into it).  The hint says what to do first: stop keeping
 * history (alter_pipeline(name, history_table => 0)), move it to another
 * table, or drop the pipeline.  incetl's catalog is read as the extension
 * owner (the dropper may not read it); with incetl itself being dropped
 * there is nothing to check.
 */
Datum
incetl_history_table_dropped(PG_FUNCTION_ARGS)
{
	Oid			nsp;
	int			n;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("incetl._history_table_dropped() must be called as an event trigger")));
	nsp = get_namespace_oid("incetl", true);
	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("pipelines", nsp)))
		PG_RETURN_VOID();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n = incetl_spi_exec_owner("SELECT p.name, d.object_identity "
							  "FROM pg_catalog.pg_event_trigger_dropped_objects() AS d "
							  "JOIN incetl.pipelines AS p "
							  "ON CAST(p.history_table AS pg_catalog.oid) OPERATOR(pg_catalog.=) d.objid "
							  "WHERE d.classid OPERATOR(pg_catalog.=) "
							  "CAST('pg_catalog.pg_class' AS pg_catalog.regclass) "
							  "AND d.objsubid OPERATOR(pg_catalog.=) 0 "
							  "ORDER BY p.name LIMIT 1",
							  0, NULL, NULL, NULL, SPI_OK_SELECT);
	if (n > 0)
	{
		char	   *name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *table = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop table %s because pipeline \"%s\" keeps its history in it",
						table, name),
				 errhint("Stop keeping history first with SELECT incetl.alter_pipeline(%s, history_table => 0), "
						 "or drop the pipeline.", quote_literal_cstr(name))));
	}
	SPI_finish();
	PG_RETURN_VOID();
}
