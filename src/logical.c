/*-------------------------------------------------------------------------
 *
 * logical.c
 *	  The 'logical' strategy: a logical replication slot decoded by
 *	  incetl's own output plugin (decode.c).
 *
 * create_pipeline creates the slot before it writes anything (a slot
 * cannot be created in a transaction that has written).  A run first
 * advances the slot to the LSN its last run stored, then peeks the
 * changes above that LSN into its work table, applies the keys in keyed
 * batches, stores the LSN of the last change applied in the same
 * transaction as the last batch's target writes, and only after that
 * commit confirms the slot.  A run that dies between applying and
 * confirming finds the stored LSN next time and skips what it applied.
 * Slot functions need the REPLICATION attribute, so they run as the
 * extension owner; the source rows are still read as the caller.
 *
 * src/logical.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/sysattr.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/pg_lsn.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "incetl.h"

/*
 * Refuse a logical pipeline the server or the source cannot serve.
 */
void
incetl_logical_check(IncetlPipeline *p)
{
	Relation	rel;
	char		ident;
	const char *plugins;

	if (wal_level < WAL_LEVEL_LOGICAL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" needs wal_level = logical", p->name),
				 errdetail("The 'logical' strategy reads changes through a logical replication slot; wal_level is \"%s\".",
						   GetConfigOption("wal_level", false, false)),
				 errhint("Set wal_level = logical (and max_replication_slots > 0) and restart the server, or use the 'trigger' strategy.")));

	/* some builds only let listed libraries be output plugins */
	plugins = GetConfigOption("output_plugin_libraries", true, false);
	if (plugins != NULL && strstr(plugins, "incetl") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" needs incetl in output_plugin_libraries", p->name),
				 errdetail("This server lets only these libraries decode logical replication slots: %s.",
						   plugins),
				 errhint("Add incetl to output_plugin_libraries in postgresql.conf, e.g. output_plugin_libraries = 'pgoutput, test_decoding, incetl', and reload.")));

	if (p->src_relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source \"%s\" of pipeline \"%s\" must be a table for the 'logical' strategy",
						get_rel_name(p->source), p->name),
				 errhint("Logical decoding sees changes of plain tables; for a partitioned table, a view or a foreign table use the 'timestamp' or 'hash' strategy.")));

	rel = relation_open(p->source, AccessShareLock);
	ident = rel->rd_rel->relreplident;
	if (ident == REPLICA_IDENTITY_NOTHING ||
		(ident == REPLICA_IDENTITY_DEFAULT && !OidIsValid(RelationGetReplicaIndex(rel))) ||
		(ident == REPLICA_IDENTITY_INDEX && !OidIsValid(RelationGetReplicaIndex(rel))))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("source \"%s\" of pipeline \"%s\" has no usable replica identity",
						RelationGetRelationName(rel), p->name),
				 errdetail("Deletes are decoded with the replica identity's columns only."),
				 errhint("Add a primary key to the source, or run ALTER TABLE %s REPLICA IDENTITY FULL.",
						 p->src_qname)));
	if (ident != REPLICA_IDENTITY_FULL)
	{
		Bitmapset  *idattrs = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);

		for (int i = 0; i < p->nkeys; i++)
		{
			AttrNumber	att = get_attnum(p->source, p->keys[i]->name);

			if (!bms_is_member(att - FirstLowInvalidHeapAttributeNumber, idattrs))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("key column \"%s\" of pipeline \"%s\" is not part of the replica identity of \"%s\"",
								p->keys[i]->name, p->name, RelationGetRelationName(rel)),
						 errhint("Make the key the source's primary key, or run ALTER TABLE %s REPLICA IDENTITY FULL.",
								 p->src_qname)));
		}
	}
	relation_close(rel, AccessShareLock);
}

static void
exec_as_owner(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	incetl_spi_exec_owner(sql, nargs, types, values, NULL, expected);
}

/*
 * Create the slot of a new pipeline; returns its name.
 */
char *
incetl_logical_create_slot(IncetlPipeline *p)
{
	char	   *slot = psprintf("incetl_%u_%llx", MyDatabaseId,
								(unsigned long long) GetCurrentTimestamp());
	Oid			types[1] = {NAMEOID};
	Datum		values[1];

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(slot));
	exec_as_owner("SELECT pg_catalog.pg_create_logical_replication_slot($1, 'incetl')",
				  1, types, values, SPI_OK_SELECT);
	return slot;
}

void
incetl_logical_drop_slot(const char *slot)
{
	Oid			types[1] = {NAMEOID};
	Datum		values[1];

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(slot));
	exec_as_owner("SELECT pg_catalog.pg_drop_replication_slot(slot_name) "
				  "FROM pg_catalog.pg_replication_slots "
				  "WHERE slot_name OPERATOR(pg_catalog.=) $1",
				  1, types, values, SPI_OK_SELECT);
}

/* confirm the slot up to lsn, if it is behind */
void
incetl_logical_advance(const char *slot, XLogRecPtr lsn)
{
	Oid			types[2] = {NAMEOID, LSNOID};
	Datum		values[2];

	if (lsn == InvalidXLogRecPtr)
		return;
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(slot));
	values[1] = LSNGetDatum(lsn);
	exec_as_owner("SELECT pg_catalog.pg_replication_slot_advance(slot_name, $2) "
				  "FROM pg_catalog.pg_replication_slots "
				  "WHERE slot_name OPERATOR(pg_catalog.=) $1 "
				  "AND confirmed_flush_lsn OPERATOR(pg_catalog.<) $2",
				  2, types, values, SPI_OK_SELECT);
}

/* the slot and applied LSN stored for a pipeline */
void
incetl_logical_state(IncetlPipeline *p, char **slot, XLogRecPtr *applied)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	bool		isnull;
	Datum		d;
	MemoryContext callercxt = CurrentMemoryContext;

	values[0] = Int32GetDatum(p->id);
	exec_as_owner("SELECT slot_name, applied_lsn FROM incetl.state "
				  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
				  1, types, values, SPI_OK_SELECT);
	*slot = NULL;
	*applied = InvalidXLogRecPtr;
	if (SPI_processed != 1)
		return;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		*slot = MemoryContextStrdup(callercxt, NameStr(*DatumGetName(d)));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
		*applied = DatumGetLSN(d);
	if (*slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" has no replication slot", p->name),
				 errhint("Drop the pipeline and create it again.")));
}

void
incetl_logical_store_applied(IncetlPipeline *p, XLogRecPtr lsn)
{
	Oid			types[2] = {INT4OID, LSNOID};
	Datum		values[2];

	values[0] = Int32GetDatum(p->id);
	values[1] = LSNGetDatum(lsn);
	exec_as_owner("UPDATE incetl.state SET applied_lsn = $2 "
				  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
				  2, types, values, SPI_OK_UPDATE);
}

/*
 * Peek the slot's changes above applied into the work table, numbered
 * from offset + 1.  Sets *max_rn (offset when nothing was added),
 * *last_lsn (InvalidXLogRecPtr when there was no change) and *truncated.
 */
void
incetl_logical_fill(IncetlPipeline *p, const char *slot, XLogRecPtr applied,
					int64 offset, int64 *max_rn, XLogRecPtr *last_lsn,
					bool *truncated)
{
	StringInfoData sql;
	Oid			types[4] = {NAMEOID, TEXTOID, LSNOID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	int			i;
	XLogRecPtr	flushed;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "WITH ch AS MATERIALIZED (SELECT c.lsn, c.data::pg_catalog.jsonb AS j "
						   "FROM pg_catalog.pg_logical_slot_peek_changes($1, NULL, NULL, 'relid', $2) AS c "
						   "WHERE $3 IS NULL OR c.lsn OPERATOR(pg_catalog.>) $3), ");
	appendStringInfo(&sql, "ins AS (INSERT INTO %s (rn, ", incetl_work_table_name(p));
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&sql, "k%d, ", i + 1);
	appendStringInfoString(&sql, "op) SELECT $4 OPERATOR(pg_catalog.+) pg_catalog.row_number() OVER (ORDER BY ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&sql, "%sk%d", i ? ", " : "", i + 1);
	appendStringInfoString(&sql, "), *, 'u'::\"char\" FROM (SELECT DISTINCT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&sql, "%sCAST(((ch.j OPERATOR(pg_catalog.->) 'k') OPERATOR(pg_catalog.->>) %s) AS %s) AS k%d",
						 i ? ", " : "", quote_literal_cstr(p->keys[i]->name),
						 p->keys[i]->src_typename,
						 i + 1);
	appendStringInfo(&sql, " FROM ch WHERE (ch.j OPERATOR(pg_catalog.->>) 'op') OPERATOR(pg_catalog.<>) 'T') AS x "
					 "WHERE NOT EXISTS (SELECT 1 FROM %s AS w WHERE ", incetl_work_table_name(p));
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&sql, "%sw.k%d %s x.k%d", i ? " AND " : "", i + 1,
						 incetl_type_equality(p->keys[i]->src_type), i + 1);
	appendStringInfoString(&sql, ") RETURNING rn) "
						   "SELECT (SELECT pg_catalog.max(rn) FROM ins), (SELECT pg_catalog.max(lsn) FROM ch), "
						   "EXISTS (SELECT 1 FROM ch WHERE (ch.j OPERATOR(pg_catalog.->>) 'op') OPERATOR(pg_catalog.=) 'T')");

	/*
	 * Everything committed up to the flush position read now is decoded by
	 * the peek below, so once its changes are applied the slot may move there
	 * even when this table had no change: a quiet source must not hold back
	 * the WAL that other tables write.
	 */
	incetl_spi_exec_owner("SELECT pg_catalog.pg_current_wal_flush_lsn()", 0, NULL, NULL, NULL,
						  SPI_OK_SELECT);
	flushed = DatumGetLSN(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										1, &isnull));

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(slot));
	values[1] = CStringGetTextDatum(psprintf("%u", p->source));
	if (applied == InvalidXLogRecPtr)
		nulls[2] = 'n';
	else
		values[2] = LSNGetDatum(applied);
	values[3] = Int64GetDatum(offset);
	incetl_spi_exec_owner(sql.data, 4, types, values, nulls, SPI_OK_SELECT);

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	d = SPI_getbinval(tup, desc, 1, &isnull);
	*max_rn = isnull ? offset : DatumGetInt64(d);
	d = SPI_getbinval(tup, desc, 2, &isnull);
	*last_lsn = isnull ? InvalidXLogRecPtr : DatumGetLSN(d);
	if (flushed > *last_lsn && flushed > applied)
		*last_lsn = flushed;
	d = SPI_getbinval(tup, desc, 3, &isnull);
	*truncated = !isnull && DatumGetBool(d);
}

/*
 * The pending changes as one jsonb array (for preview), as the extension
 * owner.  Returns a jsonb Datum in the caller's context.
 */
Datum
incetl_logical_peek_json(IncetlPipeline *p, const char *slot, XLogRecPtr applied,
						 bool *truncated)
{
	Oid			types[3] = {NAMEOID, TEXTOID, LSNOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		isnull;
	Datum		d;

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(slot));
	values[1] = CStringGetTextDatum(psprintf("%u", p->source));
	if (applied == InvalidXLogRecPtr)
		nulls[2] = 'n';
	else
		values[2] = LSNGetDatum(applied);
	incetl_spi_exec_owner("SELECT COALESCE(pg_catalog.jsonb_agg(c.data::pg_catalog.jsonb), '[]'), "
						  "pg_catalog.bool_or(c.data::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'op' OPERATOR(pg_catalog.=) 'T') "
						  "FROM pg_catalog.pg_logical_slot_peek_changes($1, NULL, NULL, 'relid', $2) AS c "
						  "WHERE $3 IS NULL OR c.lsn OPERATOR(pg_catalog.>) $3",
						  3, types, values, nulls, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	*truncated = !isnull && DatumGetBool(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return SPI_datumTransfer(d, false, -1);
}
