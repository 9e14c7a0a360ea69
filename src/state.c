/*-------------------------------------------------------------------------
 *
 * state.c
 *	  incetl.state: what a pipeline has done so far, in one place.
 *
 * Every read and write of incetl.state goes through this file: the cursor
 * (watermark and key of the last row a timestamp run applied, or the start
 * of the last capture run), the logical slot's name and the LSN the target
 * has applied, the relations a trigger pipeline's capture covers, and the
 * source's shape when the pipeline was defined, whether a 'logical'
 * pipeline needs a resync and since when a pipeline is stale (alert.c).  The table belongs to the
 * extension owner, so every statement runs as that owner (role.c); what it
 * reads is copied into the caller's memory context.
 *
 * src/state.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"

#include "incetl.h"

/*
 * Whether incetl.state has a column that an upgrade script added: the
 * library may be newer than the catalog until ALTER EXTENSION UPDATE.
 */
static bool
state_has(const char *column)
{
	Oid			state = get_relname_relid("state", get_namespace_oid("incetl", false));

	return get_attnum(state, column) != InvalidAttrNumber;
}

/* the row of a new pipeline */
void
incetl_state_create(int32 pipeline_id)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(pipeline_id)};

	incetl_spi_exec_owner("INSERT INTO incetl.state (pipeline_id) VALUES ($1)",
						  1, argtypes, values, NULL, SPI_OK_INSERT);
}

/* the stored watermark, as text (NULL: none, the next run loads everything) */
char *
incetl_state_watermark(int32 pipeline_id)
{
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	HeapTuple	tup = incetl_catalog_row("state", "pipeline_id", F_INT4EQ,
										 Int32GetDatum(pipeline_id), &desc);

	if (tup == NULL)
		return NULL;
	d = incetl_catalog_col(tup, desc, "watermark", &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Read a pipeline's row of incetl.state (directly, see
 * incetl_catalog_row): the watermark, its key and the source's remembered
 * shape, copied into the caller's memory context.  A run reads it once
 * (after it holds the pipeline's lock, nothing else writes the row) and
 * derives the rest from it.
 */
void
incetl_state_read(IncetlPipeline *p, IncetlStateRow *row)
{
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	memset(row, 0, sizeof(IncetlStateRow));
	tup = incetl_catalog_row("state", "pipeline_id", F_INT4EQ,
							 Int32GetDatum(p->id), &desc);
	if (tup == NULL)
		return;
	row->found = true;
	d = incetl_catalog_col(tup, desc, "watermark", &isnull);
	if (!isnull)
		row->watermark = TextDatumGetCString(d);
	d = incetl_catalog_col(tup, desc, "watermark_key", &isnull);
	if (!isnull)
		row->watermark_key = PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
	d = incetl_catalog_col(tup, desc, "source_columns", &isnull);
	if (!isnull)
		row->source_columns = DatumGetCString(DirectFunctionCall1(jsonb_out, d));
}

/*
 * The saved cursor of a pipeline, from its state row (allocations in the
 * caller's context).  The pipeline must be resolved (its watermark and key
 * types known).
 */
void
incetl_state_cursor(IncetlPipeline *p, IncetlStateRow *row, IncetlCursor *cur)
{
	if (!row->found)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("state of pipeline \"%s\" is missing", p->name),
				 errhint("Drop and create the pipeline again.")));
	memset(cur, 0, sizeof(IncetlCursor));
	if (row->watermark == NULL || !OidIsValid(p->wm_type))
		return;
	cur->valid = true;
	cur->wm_text = row->watermark;
	cur->wm = incetl_parse_canonical(cur->wm_text, p->wm_type);
	if (row->watermark_key != (Datum) 0)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(row->watermark_key), TEXTOID, -1, false,
						  TYPALIGN_INT, &elems, &nulls, &n);
		if (n == p->nkeys)
		{
			cur->nkeys = n;
			cur->keys = palloc(sizeof(Datum) * n);
			cur->key_nulls = palloc(sizeof(bool) * n);
			for (int i = 0; i < n; i++)
			{
				cur->key_nulls[i] = nulls[i];
				cur->keys[i] = nulls[i] ? (Datum) 0 :
					incetl_parse_canonical(TextDatumGetCString(elems[i]),
										   p->keys[i]->src_type);
			}
		}
	}
}

/* read the state row and the cursor in it */
void
incetl_state_load_cursor(IncetlPipeline *p, IncetlCursor *cur)
{
	IncetlStateRow row;

	incetl_state_read(p, &row);
	incetl_state_cursor(p, &row, cur);
}

/*
 * Whether the source has exactly the shape remembered in the state row
 * (compared as jsonb's canonical text, without a statement).  When not,
 * incetl_state_check_source_shape() tells a column that was dropped or
 * retyped (an error) from columns that were added.
 */
bool
incetl_state_shape_unchanged(IncetlPipeline *p, IncetlStateRow *row)
{
	char	   *now;

	if (row->source_columns == NULL || p->source_shape == NULL)
		return false;
	now = DatumGetCString(DirectFunctionCall1(jsonb_out,
											  DirectFunctionCall1(jsonb_in,
																  CStringGetDatum(p->source_shape))));
	return strcmp(now, row->source_columns) == 0;
}

/*
 * Save a cursor; keys_text is a text[] literal made by this file's callers
 * from canonical texts, or NULL.
 */
void
incetl_state_save_cursor(IncetlPipeline *p, const char *wm_text, const char *keys_text)
{
	Oid			argtypes[4] = {INT4OID, TEXTOID, TEXTARRAYOID, OIDOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = Int32GetDatum(p->id);
	if (wm_text)
		values[1] = CStringGetTextDatum(wm_text);
	else
		nulls[1] = 'n';
	if (keys_text)
		values[2] = OidInputFunctionCall(F_ARRAY_IN, (char *) keys_text, TEXTOID, -1);
	else
		nulls[2] = 'n';
	if (wm_text && OidIsValid(p->wm_type))
		values[3] = ObjectIdGetDatum(p->wm_type);
	else
		nulls[3] = 'n';
	incetl_spi_exec_owner("UPDATE incetl.state SET watermark = $2, watermark_key = $3, "
						  "watermark_type = $4::pg_catalog.oid::pg_catalog.regtype, "
						  "updated_at = pg_catalog.now() "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
						  4, argtypes, values, nulls, SPI_OK_UPDATE);
}

/*
 * A capture run's watermark: when the changes it applied were read (the
 * run's start), a timestamptz with no key.
 */
void
incetl_state_save_run_start(IncetlPipeline *p, const char *wm_text)
{
	Oid			argtypes[2] = {INT4OID, TEXTOID};
	Datum		values[2];

	values[0] = Int32GetDatum(p->id);
	values[1] = CStringGetTextDatum(wm_text);
	incetl_spi_exec_owner("UPDATE incetl.state SET watermark = $2, watermark_key = NULL, "
						  "watermark_type = 'pg_catalog.timestamptz'::pg_catalog.regtype, "
						  "updated_at = pg_catalog.now() "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
						  2, argtypes, values, NULL, SPI_OK_UPDATE);
}

/* forget the watermark: the next run loads (or compares) everything */
void
incetl_state_reset_watermark(IncetlPipeline *p)
{
	incetl_state_save_cursor(p, NULL, NULL);
}

/*
 * The slot a 'logical' pipeline last used, the LSN its target has applied,
 * and whether the pipeline has loaded anything yet (a watermark).
 */
void
incetl_state_read_slot(IncetlPipeline *p, IncetlSlotState *s)
{
	MemoryContext callercxt = CurrentMemoryContext;
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	bool		isnull;
	Datum		d;

	memset(s, 0, sizeof(IncetlSlotState));
	s->applied = InvalidXLogRecPtr;
	values[0] = Int32GetDatum(p->id);
	incetl_spi_exec_owner(state_has("needs_resync") ?
						  "SELECT slot_name, applied_lsn, watermark IS NOT NULL, needs_resync "
						  "FROM incetl.state "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1" :
						  "SELECT slot_name, applied_lsn, watermark IS NOT NULL, false "
						  "FROM incetl.state "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
						  1, types, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		s->slot_name = MemoryContextStrdup(callercxt, NameStr(*DatumGetName(d)));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	if (!isnull)
		s->applied = DatumGetLSN(d);
	s->loaded = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 3, &isnull));
	s->needs_resync = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												 SPI_tuptable->tupdesc, 4, &isnull));
}

void
incetl_state_set_slot_name(IncetlPipeline *p, const char *name)
{
	Oid			types[2] = {INT4OID, NAMEOID};
	Datum		values[2];

	values[0] = Int32GetDatum(p->id);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(name));
	incetl_spi_exec_owner("UPDATE incetl.state SET slot_name = $2 "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
						  2, types, values, NULL, SPI_OK_UPDATE);
}

/* the LSN up to which the target holds the slot's changes */
void
incetl_state_store_applied(IncetlPipeline *p, XLogRecPtr lsn)
{
	Oid			types[2] = {INT4OID, LSNOID};
	Datum		values[2];

	values[0] = Int32GetDatum(p->id);
	values[1] = LSNGetDatum(lsn);
	incetl_spi_exec_owner("UPDATE incetl.state SET applied_lsn = $2 "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
						  2, types, values, NULL, SPI_OK_UPDATE);
}

/* incetl.state.capture_relations; *known is false while it is NULL */
List *
incetl_state_capture_relations(IncetlPipeline *p, bool *known)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(p->id)};
	Oid			state = get_relname_relid("state", get_namespace_oid("incetl", false));
	List	   *covered = NIL;
	bool		isnull;
	Datum		d;

	if (get_attnum(state, "capture_relations") == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("incetl's catalog is older than its library"),
				 errdetail("Table incetl.state has no column capture_relations, which pipelines with the 'trigger' strategy need."),
				 errhint("Run ALTER EXTENSION incetl UPDATE.")));
	incetl_spi_exec_owner("SELECT capture_relations FROM incetl.state "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
						  1, argtypes, values, NULL, SPI_OK_SELECT);
	*known = false;
	if (SPI_processed != 1)
		return NIL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(d), REGCLASSOID, sizeof(Oid), true,
						  TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
			if (!nulls[i])
				covered = lappend_oid(covered, DatumGetObjectId(elems[i]));
		*known = true;
	}
	return covered;
}

void
incetl_state_set_capture_relations(IncetlPipeline *p, List *members)
{
	Oid			argtypes[2] = {INT4OID, REGCLASSARRAYOID};
	Datum		values[2];
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(members), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, members)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	values[0] = Int32GetDatum(p->id);
	values[1] = PointerGetDatum(construct_array(elems, n, REGCLASSOID, sizeof(Oid),
												true, TYPALIGN_INT));
	incetl_spi_exec_owner("UPDATE incetl.state SET capture_relations = $2 "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
						  2, argtypes, values, NULL, SPI_OK_UPDATE);
}

/*
 * A source column the pipeline was created with that is gone or has
 * another type now fails every run, whatever on_schema_change says: the
 * target's column would silently stop being maintained, or change
 * meaning.  incetl.alter_pipeline(name) accepts the source's new shape.
 */
bool
incetl_state_check_source_shape(IncetlPipeline *p)
{
	Oid			argtypes[2] = {INT4OID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	int			rc;

	values[0] = Int32GetDatum(p->id);
	values[1] = CStringGetTextDatum(p->source_shape);
	/* one row: nothing changed; else the first column gone or retyped */
	rc = SPI_execute_with_args("SELECT NULL, NULL, NULL FROM incetl.state s "
							   "WHERE s.pipeline_id OPERATOR(pg_catalog.=) $1 "
							   "AND s.source_columns OPERATOR(pg_catalog.=) $2::pg_catalog.jsonb "
							   "UNION ALL (SELECT o.key, o.value, n.value FROM incetl.state s, "
							   "pg_catalog.jsonb_each_text(s.source_columns) AS o "
							   "LEFT JOIN pg_catalog.jsonb_each_text($2::pg_catalog.jsonb) AS n "
							   "ON n.key OPERATOR(pg_catalog.=) o.key "
							   "WHERE s.pipeline_id OPERATOR(pg_catalog.=) $1 "
							   "AND (n.value IS NULL OR n.value OPERATOR(pg_catalog.<>) o.value) "
							   "ORDER BY o.key LIMIT 1) LIMIT 1",
							   2, argtypes, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not read the source shape");
	if (SPI_processed == 1 &&
		SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) == (Datum) 0 &&
		isnull)
		return true;			/* the same shape as remembered */
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *col = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *was = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		Datum		now = SPI_getbinval(tup, desc, 3, &isnull);

		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of source \"%s\" of pipeline \"%s\" was dropped",
							col, get_rel_name(p->source), p->name),
					 errdetail("Nothing was written."),
					 errhint("Restore the column, or accept the source's new shape with SELECT incetl.alter_pipeline(%s);",
							 quote_literal_cstr(p->name))));
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of source \"%s\" of pipeline \"%s\" changed type from %s to %s",
						col, get_rel_name(p->source), p->name, was, TextDatumGetCString(now)),
				 errdetail("Nothing was written."),
				 errhint("Restore the column's type, or accept the source's new shape with SELECT incetl.alter_pipeline(%s);",
						 quote_literal_cstr(p->name))));
	}
	return false;
}

void
incetl_state_save_source_shape(IncetlPipeline *p)
{
	Oid			argtypes[2] = {INT4OID, TEXTOID};
	Datum		values[2];

	values[0] = Int32GetDatum(p->id);
	values[1] = CStringGetTextDatum(p->source_shape);
	incetl_spi_exec_owner("UPDATE incetl.state SET source_columns = $2::pg_catalog.jsonb "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1 "
						  "AND source_columns IS DISTINCT FROM $2::pg_catalog.jsonb",
						  2, argtypes, values, NULL, SPI_OK_UPDATE);
}

/*
 * Mark a pipeline for a resync (its slot is gone, invalidated, or dropped
 * by max_retained_wal).  Returns true when it was not marked yet: the
 * caller then sends the alert, once per resync.
 */
bool
incetl_state_mark_resync(int32 pipeline_id)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1];

	if (!state_has("needs_resync"))
		return false;
	values[0] = Int32GetDatum(pipeline_id);
	incetl_spi_exec_owner("UPDATE incetl.state SET needs_resync = true "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1 AND NOT needs_resync",
						  1, types, values, NULL, SPI_OK_UPDATE);
	return SPI_processed == 1;
}

/* a run that compared the whole source is committing: resynced */
void
incetl_state_clear_resync(int32 pipeline_id)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1];

	if (!state_has("needs_resync"))
		return;
	values[0] = Int32GetDatum(pipeline_id);
	incetl_spi_exec_owner("UPDATE incetl.state SET needs_resync = false "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1 AND needs_resync",
						  1, types, values, NULL, SPI_OK_UPDATE);
}

/*
 * The 'logical' pipelines, for CALL incetl.guard(): every one in the
 * database, whoever asks (guard enforces each pipeline's own limit only),
 * with its owner, limit and slot state, in id order.
 */
List *
incetl_state_logical_pipelines(void)
{
	MemoryContext callercxt = CurrentMemoryContext;
	List	   *list = NIL;

	incetl_spi_exec_owner("SELECT p.id, p.name, p.owner::pg_catalog.oid, p.max_retained_wal, "
						  "s.slot_name, s.watermark IS NOT NULL, s.needs_resync "
						  "FROM incetl.pipelines p JOIN incetl.state s "
						  "ON s.pipeline_id OPERATOR(pg_catalog.=) p.id "
						  "WHERE p.strategy OPERATOR(pg_catalog.=) 'logical' ORDER BY p.id",
						  0, NULL, NULL, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MemoryContext oldcxt = MemoryContextSwitchTo(callercxt);
		IncetlGuardItem *g = palloc0(sizeof(IncetlGuardItem));
		bool		isnull;
		Datum		d;

		g->id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		g->name = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		g->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		g->max_retained_wal = isnull ? NULL : TextDatumGetCString(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		g->slot_name = isnull ? NULL : pstrdup(NameStr(*DatumGetName(d)));
		g->loaded = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
		g->needs_resync = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull));
		list = lappend(list, g);
		MemoryContextSwitchTo(oldcxt);
	}
	return list;
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
 * Record in incetl.state (stale_since) whether one pipeline (pipeline_id >
 * 0) or every pipeline (0) with a freshness_target is stale: its last
 * successful run or reconcile did not start within the target.  Returns
 * the pipelines that turned stale now (IncetlStaleTurn *, with their last
 * run, for the alert); a turn back to fresh clears stale_since and returns
 * nothing.  One pipeline is looked at directly first: only one with a
 * target, or marked stale, needs the statement.
 */
List *
incetl_state_record_freshness(int32 pipeline_id)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1];
	MemoryContext callercxt = CurrentMemoryContext;
	List	   *turns = NIL;

	/* a catalog older than the library: nothing to record */
	if (!state_has("stale_since"))
		return NIL;

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
			return NIL;
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

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;
		MemoryContext oldcxt;
		IncetlStaleTurn *t;

		if (!DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull)))
			continue;
		oldcxt = MemoryContextSwitchTo(callercxt);
		t = palloc0(sizeof(IncetlStaleTurn));
		t->pipeline = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		d = SPI_getbinval(tup, desc, 3, &isnull);
		t->run_id = isnull ? 0 : DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		t->status = isnull ? NULL : TextDatumGetCString(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		t->error = isnull ? NULL : TextDatumGetCString(d);
		turns = lappend(turns, t);
		MemoryContextSwitchTo(oldcxt);
	}
	return turns;
}
