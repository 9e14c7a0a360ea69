/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  incetl's own catalog: reading and writing incetl.pipelines and
 *	  incetl.state, and the SQL functions that define pipelines.
 *
 * The catalog tables are owned by the extension owner and not writable by
 * anyone else; the functions here check what the caller may do, then write
 * them as the extension owner (as pg_cron does).
 *
 * src/catalog.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "incetl.h"

PG_FUNCTION_INFO_V1(incetl_create_pipeline);
PG_FUNCTION_INFO_V1(incetl_alter_pipeline);
PG_FUNCTION_INFO_V1(incetl_drop_pipeline);

static char *text_arg(FunctionCallInfo fcinfo, int n, const char *dflt);
static List *key_list_from_array(ArrayType *arr, const char *argname);
static Datum key_array_from_list(List *keys);
static void store_pipeline(IncetlPipeline *p, bool insert);

static char *
copy_text_col(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Load a pipeline definition by name.  Must be called inside an SPI
 * connection; the result is allocated in the caller's memory context.
 */
IncetlPipeline *
incetl_load_pipeline(const char *name, bool missing_ok)
{
	MemoryContext callercxt = CurrentMemoryContext;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	IncetlPipeline *p;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	MemoryContext oldcxt;

	values[0] = CStringGetTextDatum(name);
	incetl_spi_exec_owner("SELECT id, name, source::pg_catalog.oid, target::pg_catalog.oid, "
						  "strategy, key_columns, watermark_column, lookback, "
						  "sequence_column, delete_detection, delete_flag_column, "
						  "delete_mode, soft_delete_column, hash_algorithm, batch_size, "
						  "on_schema_change, enabled, owner::pg_catalog.oid "
						  "FROM incetl.pipelines WHERE name OPERATOR(pg_catalog.=) $1",
						  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", name),
				 errhint("The pipelines are listed in incetl.pipelines.")));
	}

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	oldcxt = MemoryContextSwitchTo(callercxt);
	p = palloc0(sizeof(IncetlPipeline));
	p->id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	p->name = copy_text_col(tup, desc, 2);
	p->source = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
	p->target = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	p->strategy_name = copy_text_col(tup, desc, 5);
	p->strategy = incetl_parse_strategy(p->strategy_name);
	d = SPI_getbinval(tup, desc, 6, &isnull);
	p->key_columns = key_list_from_array(DatumGetArrayTypeP(d), "key_columns");
	p->watermark_column = copy_text_col(tup, desc, 7);
	d = SPI_getbinval(tup, desc, 8, &isnull);
	p->lookback = palloc(sizeof(Interval));
	memcpy(p->lookback, DatumGetIntervalP(d), sizeof(Interval));
	p->sequence_column = copy_text_col(tup, desc, 9);
	p->delete_detection = incetl_parse_delete_detection(copy_text_col(tup, desc, 10));
	p->delete_flag_column = copy_text_col(tup, desc, 11);
	p->soft_delete = incetl_parse_delete_mode(copy_text_col(tup, desc, 12));
	p->soft_delete_column = copy_text_col(tup, desc, 13);
	p->hash_algorithm = copy_text_col(tup, desc, 14);
	p->batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 15, &isnull));
	p->on_schema_change = incetl_parse_schema_change(copy_text_col(tup, desc, 16));
	p->enabled = DatumGetBool(SPI_getbinval(tup, desc, 17, &isnull));
	p->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 18, &isnull));
	MemoryContextSwitchTo(oldcxt);

	return p;
}

/*
 * Names of the enabled pipelines, in id order.
 */
List *
incetl_enabled_pipeline_names(void)
{
	MemoryContext callercxt = CurrentMemoryContext;
	List	   *names = NIL;
	uint64		i;

	incetl_spi_exec_owner("SELECT name, owner::pg_catalog.oid FROM incetl.pipelines "
						  "WHERE enabled ORDER BY id",
						  0, NULL, NULL, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[i],
									  SPI_tuptable->tupdesc, 1, &isnull);
		Oid			owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc,
														   2, &isnull));
		MemoryContext oldcxt;

		/* the pipelines the caller may run; others are not its business */
		if (!has_privs_of_role(GetUserId(), owner))
			continue;
		oldcxt = MemoryContextSwitchTo(callercxt);
		names = lappend(names, TextDatumGetCString(d));
		MemoryContextSwitchTo(oldcxt);
	}
	return names;
}

/*
 * Only the pipeline's owner, a member of the owning role, or a superuser
 * may run, alter or drop a pipeline, or move its watermark.
 */
void
incetl_check_owner(IncetlPipeline *p)
{
	if (!has_privs_of_role(GetUserId(), p->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of pipeline \"%s\"", p->name),
				 GetUserNameFromId(p->owner, true) ?
				 errdetail("Pipeline \"%s\" is owned by role \"%s\".", p->name,
						   GetUserNameFromId(p->owner, true)) :
				 errdetail("Pipeline \"%s\" is owned by a role with OID %u, which no longer exists.",
						   p->name, p->owner)));
}

static char *
text_arg(FunctionCallInfo fcinfo, int n, const char *dflt)
{
	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return dflt ? pstrdup(dflt) : NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

static List *
key_list_from_array(ArrayType *arr, const char *argname)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *keys = NIL;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", argname)));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain null values", argname)));
		keys = lappend(keys, TextDatumGetCString(elems[i]));
	}
	return keys;
}

static Datum
key_array_from_list(List *keys)
{
	int			n = list_length(keys);
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	int			i = 0;
	ListCell   *lc;

	foreach(lc, keys)
		elems[i++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false,
										   TYPALIGN_INT));
}

/*
 * Insert or update the catalog row of a pipeline, as the extension owner.
 */
static void
store_pipeline(IncetlPipeline *p, bool insert)
{
	Oid			argtypes[17] = {TEXTOID, REGCLASSOID, REGCLASSOID, TEXTOID,
		TEXTARRAYOID, TEXTOID, INTERVALOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTOID, BOOLOID, INT4OID};
	Datum		values[17];
	char		nulls[17];
	const char *dd_names[] = {"none", "flag", "compare"};
	const char *osc_names[] = {"fail", "ignore", "add_columns"};

	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(p->name);
	values[1] = ObjectIdGetDatum(p->source);
	values[2] = ObjectIdGetDatum(p->target);
	values[3] = CStringGetTextDatum(p->strategy_name);
	values[4] = key_array_from_list(p->key_columns);
	if (p->watermark_column)
		values[5] = CStringGetTextDatum(p->watermark_column);
	else
		nulls[5] = 'n';
	values[6] = IntervalPGetDatum(p->lookback);
	if (p->sequence_column)
		values[7] = CStringGetTextDatum(p->sequence_column);
	else
		nulls[7] = 'n';
	values[8] = CStringGetTextDatum(dd_names[p->delete_detection]);
	if (p->delete_flag_column)
		values[9] = CStringGetTextDatum(p->delete_flag_column);
	else
		nulls[9] = 'n';
	values[10] = CStringGetTextDatum(p->soft_delete ? "soft" : "hard");
	values[11] = CStringGetTextDatum(p->soft_delete_column);
	values[12] = CStringGetTextDatum(p->hash_algorithm);
	values[13] = Int32GetDatum(p->batch_size);
	values[14] = CStringGetTextDatum(osc_names[p->on_schema_change]);
	values[15] = BoolGetDatum(p->enabled);
	values[16] = Int32GetDatum(p->id);

	if (insert)
	{
		Oid			owner_type[1] = {OIDOID};
		Datum		owner_val[1];

		/* $17 is the owner when inserting, the id when updating */
		argtypes[16] = OIDOID;
		values[16] = ObjectIdGetDatum(p->owner);

		incetl_spi_exec_owner("INSERT INTO incetl.pipelines (name, source, target, strategy, "
							  "key_columns, watermark_column, lookback, sequence_column, "
							  "delete_detection, delete_flag_column, delete_mode, "
							  "soft_delete_column, hash_algorithm, batch_size, "
							  "on_schema_change, enabled, owner) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
							  "$13, $14, $15, $16, $17::pg_catalog.oid::pg_catalog.regrole) "
							  "RETURNING id",
							  17, argtypes, values, nulls, SPI_OK_INSERT_RETURNING);
		{
			bool		isnull;

			p->id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1,
												&isnull));
		}
		owner_val[0] = Int32GetDatum(p->id);
		owner_type[0] = INT4OID;
		incetl_spi_exec_owner("INSERT INTO incetl.state (pipeline_id) VALUES ($1)",
							  1, owner_type, owner_val, NULL, SPI_OK_INSERT);
	}
	else
	{
		incetl_spi_exec_owner("UPDATE incetl.pipelines SET name = $1, source = $2, "
							  "target = $3, strategy = $4, key_columns = $5, "
							  "watermark_column = $6, lookback = $7, sequence_column = $8, "
							  "delete_detection = $9, delete_flag_column = $10, "
							  "delete_mode = $11, soft_delete_column = $12, "
							  "hash_algorithm = $13, batch_size = $14, "
							  "on_schema_change = $15, enabled = $16 "
							  "WHERE id OPERATOR(pg_catalog.=) $17",
							  17, argtypes, values, nulls, SPI_OK_UPDATE);
	}
}

/*
 * The per-pipeline state a strategy keeps outside incetl.state: the 'hash'
 * strategy's table of row hashes.  It lives in schema incetl and belongs to
 * the pipeline's owner, whose runs write it in the same statement as the
 * target rows it describes.
 */
/*
 * A per-pipeline table depends on the extension (a normal dependency, not
 * membership, so pg_dump still dumps it with its rows): DROP EXTENSION
 * then names it, and DROP EXTENSION ... CASCADE removes it.
 */
void
incetl_depend_on_extension(const char *relname)
{
	Oid			nsp = get_namespace_oid("incetl", false);
	Oid			relid = get_relname_relid(relname, nsp);
	ObjectAddress rel;
	ObjectAddress ext;

	if (!OidIsValid(relid))
		elog(ERROR, "incetl: table incetl.%s was not created", relname);
	ObjectAddressSet(rel, RelationRelationId, relid);
	ObjectAddressSet(ext, ExtensionRelationId, get_extension_oid("incetl", false));
	recordDependencyOn(&rel, &ext, DEPENDENCY_NORMAL);
}

static void
setup_strategy(IncetlPipeline *p)
{
	const char *owner = quote_identifier(GetUserNameFromId(p->owner, false));

	if (p->strategy == STRATEGY_HASH)
	{
		incetl_exec_utility_as(incetl_extension_owner(), incetl_sql_create_hash_state(p));
		incetl_exec_utility_as(incetl_extension_owner(), psprintf("ALTER TABLE %s OWNER TO %s",
									   incetl_hash_state_name(p), owner));
		incetl_depend_on_extension(psprintf("hash_state_%d", p->id));
	}
	else if (p->strategy == STRATEGY_TRIGGER)
		(void) incetl_capture_cover(p, CAPTURE_COVER_CREATE);
	else if (p->strategy == STRATEGY_LOGICAL && p->slot_name)
	{
		Oid			argtypes[2] = {INT4OID, TEXTOID};
		Datum		values[2];

		values[0] = Int32GetDatum(p->id);
		values[1] = CStringGetTextDatum(p->slot_name);
		incetl_spi_exec_owner("UPDATE incetl.state SET slot_name = $2 "
							  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
							  2, argtypes, values, NULL, SPI_OK_UPDATE);
	}
}

static void
teardown_strategy(IncetlPipeline *p)
{
	if (p->strategy == STRATEGY_HASH)
		incetl_exec_utility_as(incetl_extension_owner(), psprintf("DROP TABLE IF EXISTS %s",
									   incetl_hash_state_name(p)));
	else if (p->strategy == STRATEGY_TRIGGER)
		incetl_capture_teardown(p);
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
	p->strategy = incetl_parse_strategy(p->strategy_name);
	if (!PG_ARGISNULL(4))
		p->key_columns = key_list_from_array(PG_GETARG_ARRAYTYPE_P(4), "key_columns");
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

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	if (incetl_load_pipeline(p->name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("pipeline \"%s\" already exists", p->name),
				 errhint("Choose another name, or change the pipeline with incetl.alter_pipeline.")));

	incetl_resolve_pipeline(p, true);
	incetl_check_privileges(p);
	if (p->strategy == STRATEGY_TRIGGER)
		incetl_capture_check_privileges(p);

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

	store_pipeline(p, true);
	/* the slot's name only: the first run creates the slot (logical.c) */
	if (p->strategy == STRATEGY_LOGICAL)
		p->slot_name = incetl_logical_slot_name(p);
	incetl_save_source_shape(p);
	setup_strategy(p);

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

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	p = incetl_load_pipeline(name, false);
	incetl_check_owner(p);
	incetl_lock_idle_pipeline(p);

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
		if (incetl_parse_strategy(s) != p->strategy)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot change the strategy of pipeline \"%s\"", p->name),
					 errhint("Drop the pipeline and create it again with the new strategy.")));
	}
	if (!PG_ARGISNULL(4))
	{
		p->key_columns = key_list_from_array(PG_GETARG_ARRAYTYPE_P(4), "key_columns");
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

	if (reset_cursor &&
		(p->strategy == STRATEGY_TRIGGER || p->strategy == STRATEGY_LOGICAL))
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
	incetl_resolve_pipeline(p, true);
	incetl_check_privileges(p);
	incetl_restore_role(&role, true);
	store_pipeline(p, false);
	incetl_save_source_shape(p);
	/*
	 * The stored hashes no longer describe the rows: start afresh.  Only the
	 * 'hash' strategy keeps them; a 'trigger' pipeline's queue holds changes
	 * not applied yet and stays whatever changed (reconcile is the only user
	 * of hash_algorithm there).
	 */
	if (p->strategy == STRATEGY_HASH && (reset_cursor || reset_state || reset_target))
	{
		teardown_strategy(p);
		setup_strategy(p);
	}

	/*
	 * A 'trigger' or 'logical' pipeline whose watermark is empty compares
	 * the whole source with the target at its next run, and goes on from
	 * its queue or slot as before.
	 */
	if (reset_cursor || reset_target)
	{
		Oid			argtypes[1] = {INT4OID};
		Datum		values[1] = {Int32GetDatum(p->id)};

		incetl_spi_exec_owner("UPDATE incetl.state SET watermark = NULL, watermark_key = NULL, "
							  "watermark_type = NULL, updated_at = pg_catalog.now() "
							  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, SPI_OK_UPDATE);
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

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	p = incetl_load_pipeline(name, false);
	incetl_check_owner(p);
	incetl_lock_idle_pipeline(p);
	/* a slot cannot be dropped transactionally: it goes when we commit */
	if (p->strategy == STRATEGY_LOGICAL)
		incetl_logical_drop_slot_at_commit(p);

	values[0] = Int32GetDatum(p->id);
	incetl_spi_exec_owner("DELETE FROM incetl.pipelines WHERE id OPERATOR(pg_catalog.=) $1",
						  1, argtypes, values, NULL, SPI_OK_DELETE);
	teardown_strategy(p);

	SPI_finish();
	PG_RETURN_VOID();
}
