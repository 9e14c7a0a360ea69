/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  incetl's own catalog: reading and writing incetl.pipelines, and the
 *	  per-pipeline tables that belong to the extension.
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
#include "catalog/pg_index.h"
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
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "incetl.h"

static Datum key_array_from_list(List *keys);

/*
 * The row of table incetl.<relname> whose column keycol equals key, found
 * through the table's unique index on that column, or NULL.  The row and
 * *descp are copied into the caller's memory context.
 *
 * Read directly, not through a statement: every run, preview and function
 * of incetl starts by reading its pipeline's row, and in a fresh session
 * (a pg_cron job) parsing and planning even that small statement costs more
 * than the read.  The tables belong to the extension; incetl reads them as
 * their owner would (row-level security is for users' SELECTs).
 */
HeapTuple
incetl_catalog_row(const char *relname, const char *keycol, RegProcedure eqproc,
				   Datum key, TupleDesc *descp)
{
	Oid			relid = get_relname_relid(relname, get_namespace_oid("incetl", false));
	Relation	rel;
	AttrNumber	attnum;
	Oid			indexoid = InvalidOid;
	List	   *indexes;
	ListCell   *lc;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	HeapTuple	result = NULL;

	if (!OidIsValid(relid))
		elog(ERROR, "incetl: table incetl.%s is missing", relname);
	rel = table_open(relid, AccessShareLock);
	attnum = get_attnum(relid, keycol);

	/*
	 * The index the install script made (its name is known: opening every
	 * index of the table to find it costs more than the read), else any
	 * unique index on the column.
	 */
	indexoid = get_relname_relid(strcmp(keycol, "name") == 0 ?
								 psprintf("%s_name_key", relname) :
								 psprintf("%s_pkey", relname),
								 RelationGetNamespace(rel));
	if (OidIsValid(indexoid))
	{
		HeapTuple	itup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
		Form_pg_index form;

		if (!HeapTupleIsValid(itup))
			elog(ERROR, "cache lookup failed for index %u", indexoid);
		form = (Form_pg_index) GETSTRUCT(itup);
		if (form->indrelid != relid || !form->indisunique || !form->indisvalid ||
			form->indnkeyatts != 1 || form->indkey.values[0] != attnum)
			indexoid = InvalidOid;
		ReleaseSysCache(itup);
	}
	indexes = OidIsValid(indexoid) ? NIL : RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;

		if (form->indisunique && form->indnkeyatts == 1 &&
			form->indkey.values[0] == attnum && form->indisvalid)
			indexoid = RelationGetRelid(index);
		index_close(index, AccessShareLock);
		if (OidIsValid(indexoid))
			break;
	}
	list_free(indexes);
	if (!OidIsValid(indexoid))
		elog(ERROR, "incetl: table incetl.%s has no unique index on %s", relname, keycol);

	/* what a statement would see: a snapshot taken now (READ COMMITTED) */
	PushActiveSnapshot(GetTransactionSnapshot());
	ScanKeyInit(&skey, attnum, BTEqualStrategyNumber, eqproc, key);
	scan = systable_beginscan(rel, indexoid, true, GetActiveSnapshot(), 1, &skey);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		result = heap_copytuple(tup);
	systable_endscan(scan);
	PopActiveSnapshot();
	*descp = CreateTupleDescCopy(RelationGetDescr(rel));
	table_close(rel, AccessShareLock);
	return result;
}

/* the value of column name of a row read by incetl_catalog_row() */
Datum
incetl_catalog_col(HeapTuple tup, TupleDesc desc, const char *name, bool *isnull)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return heap_getattr(tup, i + 1, desc, isnull);
	}
	elog(ERROR, "incetl: column \"%s\" is missing from incetl's catalog", name);
	return (Datum) 0;			/* keep compiler quiet */
}

static char *
text_col(HeapTuple tup, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		d = incetl_catalog_col(tup, desc, name, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * A column that a later version's script added: until ALTER EXTENSION
 * incetl UPDATE adds it, this library reads it as NULL.
 */
static Datum
added_col(HeapTuple tup, TupleDesc desc, const char *name, bool *isnull)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return heap_getattr(tup, i + 1, desc, isnull);
	}
	*isnull = true;
	return (Datum) 0;
}

/*
 * Load a pipeline definition by name; the result is allocated in the
 * caller's memory context.
 */
IncetlPipeline *
incetl_load_pipeline(const char *name, bool missing_ok)
{
	IncetlPipeline *p;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	tup = incetl_catalog_row("pipelines", "name", F_TEXTEQ,
							 CStringGetTextDatum(name), &desc);
	if (tup == NULL)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", name),
				 errhint("The pipelines are listed in incetl.pipelines.")));
	}

	p = palloc0(sizeof(IncetlPipeline));
	p->id = DatumGetInt32(incetl_catalog_col(tup, desc, "id", &isnull));
	p->name = text_col(tup, desc, "name");
	p->source = DatumGetObjectId(incetl_catalog_col(tup, desc, "source", &isnull));
	p->target = DatumGetObjectId(incetl_catalog_col(tup, desc, "target", &isnull));
	p->strategy_name = text_col(tup, desc, "strategy");
	d = incetl_catalog_col(tup, desc, "key_columns", &isnull);
	p->key_columns = incetl_key_list_from_array(DatumGetArrayTypeP(d), "key_columns");
	p->watermark_column = text_col(tup, desc, "watermark_column");
	d = incetl_catalog_col(tup, desc, "lookback", &isnull);
	p->lookback = palloc(sizeof(Interval));
	memcpy(p->lookback, DatumGetIntervalP(d), sizeof(Interval));
	p->sequence_column = text_col(tup, desc, "sequence_column");
	p->delete_detection = incetl_parse_delete_detection(text_col(tup, desc, "delete_detection"));
	p->delete_flag_column = text_col(tup, desc, "delete_flag_column");
	p->soft_delete = incetl_parse_delete_mode(text_col(tup, desc, "delete_mode"));
	p->soft_delete_column = text_col(tup, desc, "soft_delete_column");
	p->hash_algorithm = text_col(tup, desc, "hash_algorithm");
	p->batch_size = DatumGetInt32(incetl_catalog_col(tup, desc, "batch_size", &isnull));
	p->on_schema_change = incetl_parse_schema_change(text_col(tup, desc, "on_schema_change"));
	p->enabled = DatumGetBool(incetl_catalog_col(tup, desc, "enabled", &isnull));
	p->owner = DatumGetObjectId(incetl_catalog_col(tup, desc, "owner", &isnull));
	d = added_col(tup, desc, "history_table", &isnull);
	p->history_table = isnull ? InvalidOid : DatumGetObjectId(d);
	d = added_col(tup, desc, "history_ignore_columns", &isnull);
	if (!isnull)
		p->history_ignore_columns =
			incetl_key_list_from_array(DatumGetArrayTypeP(d), "history_ignore_columns");
	d = added_col(tup, desc, "max_retained_wal", &isnull);
	p->max_retained_wal = isnull ? NULL : TextDatumGetCString(d);
	p->max_retained_wal_bytes = p->max_retained_wal ?
		incetl_parse_wal_size(p->max_retained_wal) : -1;
	d = added_col(tup, desc, "freshness_target", &isnull);
	if (!isnull)
	{
		p->freshness_target = palloc(sizeof(Interval));
		memcpy(p->freshness_target, DatumGetIntervalP(d), sizeof(Interval));
	}
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

/* key_columns => ARRAY[...], as a List of char * */
List *
incetl_key_list_from_array(ArrayType *arr, const char *argname)
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
void
incetl_store_pipeline(IncetlPipeline *p, bool insert)
{
	Oid			argtypes[21] = {TEXTOID, REGCLASSOID, REGCLASSOID, TEXTOID,
		TEXTARRAYOID, TEXTOID, INTERVALOID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTOID, BOOLOID, INT4OID,
	REGCLASSOID, TEXTARRAYOID, TEXTOID, INTERVALOID};
	Datum		values[21];
	char		nulls[21];
	int			nargs;
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
	values[17] = ObjectIdGetDatum(p->history_table);
	if (!OidIsValid(p->history_table))
		nulls[17] = 'n';
	if (p->history_ignore_columns)
		values[18] = key_array_from_list(p->history_ignore_columns);
	else
		nulls[18] = 'n';
	if (p->max_retained_wal)
		values[19] = CStringGetTextDatum(p->max_retained_wal);
	else
		nulls[19] = 'n';
	if (p->freshness_target)
		values[20] = IntervalPGetDatum(p->freshness_target);
	else
		nulls[20] = 'n';

	/* before ALTER EXTENSION incetl UPDATE to 0.3: the 0.2 columns only */
	nargs = get_attnum(get_relname_relid("pipelines",
										 get_namespace_oid("incetl", false)),
					   "history_table") == InvalidAttrNumber ? 17 : 21;

	if (insert)
	{
		/* $17 is the owner when inserting, the id when updating */
		argtypes[16] = OIDOID;
		values[16] = ObjectIdGetDatum(p->owner);

		incetl_spi_exec_owner(nargs == 17 ?
							  "INSERT INTO incetl.pipelines (name, source, target, strategy, "
							  "key_columns, watermark_column, lookback, sequence_column, "
							  "delete_detection, delete_flag_column, delete_mode, "
							  "soft_delete_column, hash_algorithm, batch_size, "
							  "on_schema_change, enabled, owner) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
							  "$13, $14, $15, $16, $17::pg_catalog.oid::pg_catalog.regrole) "
							  "RETURNING id" :
							  "INSERT INTO incetl.pipelines (name, source, target, strategy, "
							  "key_columns, watermark_column, lookback, sequence_column, "
							  "delete_detection, delete_flag_column, delete_mode, "
							  "soft_delete_column, hash_algorithm, batch_size, "
							  "on_schema_change, enabled, owner, history_table, "
							  "history_ignore_columns, max_retained_wal, freshness_target) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
							  "$13, $14, $15, $16, $17::pg_catalog.oid::pg_catalog.regrole, "
							  "$18, $19, $20, $21) "
							  "RETURNING id",
							  nargs, argtypes, values, nulls, SPI_OK_INSERT_RETURNING);
		{
			bool		isnull;

			p->id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												SPI_tuptable->tupdesc, 1,
												&isnull));
		}
	}
	else
	{
		incetl_spi_exec_owner(nargs == 17 ?
							  "UPDATE incetl.pipelines SET name = $1, source = $2, "
							  "target = $3, strategy = $4, key_columns = $5, "
							  "watermark_column = $6, lookback = $7, sequence_column = $8, "
							  "delete_detection = $9, delete_flag_column = $10, "
							  "delete_mode = $11, soft_delete_column = $12, "
							  "hash_algorithm = $13, batch_size = $14, "
							  "on_schema_change = $15, enabled = $16 "
							  "WHERE id OPERATOR(pg_catalog.=) $17" :
							  "UPDATE incetl.pipelines SET name = $1, source = $2, "
							  "target = $3, strategy = $4, key_columns = $5, "
							  "watermark_column = $6, lookback = $7, sequence_column = $8, "
							  "delete_detection = $9, delete_flag_column = $10, "
							  "delete_mode = $11, soft_delete_column = $12, "
							  "hash_algorithm = $13, batch_size = $14, "
							  "on_schema_change = $15, enabled = $16, "
							  "history_table = $18, history_ignore_columns = $19, "
							  "max_retained_wal = $20, freshness_target = $21 "
							  "WHERE id OPERATOR(pg_catalog.=) $17",
							  nargs, argtypes, values, nulls, SPI_OK_UPDATE);
	}
}

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

/*
 * Distribute incetl.<relname> by column as the extension owner (Citus),
 * colocated with colocate_with (a quoted table name): its shards live,
 * and move, with that table's.  The extension owner keeps it: Citus
 * creates a moved shard as its table's owner, who must be able to create
 * it in incetl's schema.  identity_full: the table has no key, and gets
 * REPLICA IDENTITY FULL first: without a replica identity, Citus cannot
 * move its shards by logical replication (its default shard_transfer_mode,
 * and the rebalancer's), and so neither colocate_with's nor any table's
 * colocated with it.
 */
void
incetl_distribute_with(const char *relname, const char *column,
					   const char *colocate_with, bool identity_full)
{
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	char	   *qname = quote_qualified_identifier("incetl", relname);

	if (identity_full)
		incetl_exec_utility_as(incetl_extension_owner(),
							   psprintf("ALTER TABLE %s REPLICA IDENTITY FULL", qname));
	values[0] = CStringGetTextDatum(qname);
	values[1] = CStringGetTextDatum(column);
	values[2] = CStringGetTextDatum(colocate_with);
	(void) incetl_spi_exec_as(incetl_extension_owner(),
							  "SELECT pg_catalog.create_distributed_table($1::pg_catalog.regclass, $2, "
							  "colocate_with => $3)",
							  3, argtypes, values, NULL, SPI_OK_SELECT);
}

/*
 * Drop incetl.<relname> as the extension owner where there is one (no
 * NOTICE where there is none).
 */
void
incetl_drop_own_table(const char *relname)
{
	if (OidIsValid(get_relname_relid(relname, get_namespace_oid("incetl", false))))
		incetl_exec_utility_as(incetl_extension_owner(),
							   psprintf("DROP TABLE %s",
										quote_qualified_identifier("incetl", relname)));
}
