/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  incetl.run_log: one row per run, backfill and reconcile, updated
 *	  after every committed batch so other sessions can watch progress.
 *
 * Rows are written as the extension owner; run_by records the role that
 * called the run.  The end of a run also sends its alerts (alert.c).
 *
 * src/audit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "incetl.h"

const char *
incetl_run_kind_name(IncetlRunKind kind)
{
	switch (kind)
	{
		case RUN_KIND_RUN:
			return "run";
		case RUN_KIND_BACKFILL:
			return "backfill";
		case RUN_KIND_RECONCILE:
			return "reconcile";
	}
	return "run";
}

/*
 * The row of a run under way.  A run reserves its run_id when it starts
 * and writes its row with its first progress (a committed batch, its
 * estimate) or, for a run with nothing to do, once, at its end: a run
 * that finds nothing writes one row instead of an INSERT and an UPDATE,
 * which in a fresh session (a pg_cron job's) is most of what it costs.
 * Nobody could see the row before the run's first commit after its start
 * anyway, and that commit writes nothing else (the row appears with the
 * first batch's commit, as its progress did).  "inserted" says this
 * session inserted it; the transaction that did may have rolled back
 * since, so an UPDATE that finds no row inserts it (log_update).
 */
typedef struct RunRow
{
	int64		run_id;
	bool		inserted;
	int32		pipeline_id;
	char	   *pipeline;
	IncetlRunKind kind;
	char	   *watermark_before;
	NameData	run_by;
	TimestampTz started_at;
	struct RunRow *next;
} RunRow;

static RunRow *run_rows = NULL;

static RunRow *
find_run_row(int64 run_id)
{
	for (RunRow *r = run_rows; r; r = r->next)
		if (r->run_id == run_id)
			return r;
	return NULL;
}

static void
forget_run_row(int64 run_id)
{
	RunRow	  **link = &run_rows;

	while (*link)
	{
		RunRow	   *r = *link;

		if (r->run_id == run_id)
		{
			*link = r->next;
			pfree(r->pipeline);
			if (r->watermark_before)
				pfree(r->watermark_before);
			pfree(r);
			return;
		}
		link = &r->next;
	}
}

static RunRow *
remember_run_row(int64 run_id, bool inserted, IncetlPipeline *p, const char *pipeline_name,
				 IncetlRunKind kind, const char *watermark_before, TimestampTz started_at)
{
	RunRow	   *r = MemoryContextAllocZero(TopMemoryContext, sizeof(RunRow));
	int			n = 0;

	/*
	 * The rows of the last runs of this session (an ended run's row stays
	 * until then: see incetl_log_finish); a run under way is among them
	 * unless 16 others began inside it.
	 */
	for (RunRow *o = run_rows; o; o = o->next)
		if (++n >= 16 && o->next)
		{
			forget_run_row(o->next->run_id);
			break;
		}
	r->run_id = run_id;
	r->inserted = inserted;
	r->pipeline_id = p->id;
	r->pipeline = MemoryContextStrdup(TopMemoryContext, pipeline_name);
	r->kind = kind;
	r->watermark_before = watermark_before ?
		MemoryContextStrdup(TopMemoryContext, watermark_before) : NULL;
	namestrcpy(&r->run_by, GetUserNameFromId(GetUserId(), false));
	r->started_at = started_at;
	r->next = run_rows;
	run_rows = r;
	return r;
}

/*
 * Insert run_log's row of columns names[] (values of types[], 'n' in nulls
 * for null) and the defaults of the others, as the INSERT statement of
 * insert_run_row would, without parsing and planning it: through
 * ExecSimpleRelationInsert (constraints, indexes), as the extension owner.
 * It is the one statement a run with nothing to do would run otherwise.
 * Returns false, having done nothing, where the statement must do it:
 * run_log has triggers or forced row security (a statement's rules), or a
 * column is missing or of another type (a catalog older than the library).
 */
static bool
insert_run_row_direct(int n, const char **names, Oid *types, Datum *values,
					  const char *nulls)
{
	Oid			relid = get_relname_relid("run_log", get_namespace_oid("incetl", false));
	Relation	rel;
	TupleDesc	desc;
	AttrNumber *attnums;
	IncetlRoleSwitch save;

	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	attnums = palloc(sizeof(AttrNumber) * n);
	for (int i = 0; i < n; i++)
	{
		Form_pg_attribute att;

		attnums[i] = attnameAttNum(rel, names[i], false);
		att = attnums[i] > 0 ? TupleDescAttr(desc, attnums[i] - 1) : NULL;

		/*
		 * The statement would coerce to a typmod (varchar(n), say): only a
		 * column without one takes the value as it is.
		 */
		if (att == NULL || att->atttypid != types[i] || att->atttypmod != -1)
		{
			table_close(rel, RowExclusiveLock);
			return false;
		}
	}
	/*
	 * Rules (an INSTEAD rule would replace the statement) and the INSERT
	 * privilege the statement's owner would need are the statement's too.
	 */
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		rel->trigdesc != NULL || rel->rd_rel->relforcerowsecurity ||
		rel->rd_rel->relhasrules ||
		pg_class_aclcheck(relid, incetl_extension_owner(), ACL_INSERT) != ACLCHECK_OK)
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}

	incetl_switch_role(&save, incetl_extension_owner(), INCETL_ROLE_PIN_PATH);
	PG_TRY();
	{
		EState	   *estate = CreateExecutorState();
		RangeTblEntry *rte = makeNode(RangeTblEntry);
		ResultRelInfo *rri = makeNode(ResultRelInfo);
		TupleTableSlot *slot;
		ExprContext *econtext;

		rte->rtekind = RTE_RELATION;
		rte->relid = relid;
		rte->relkind = rel->rd_rel->relkind;
		rte->rellockmode = RowExclusiveLock;
		ExecInitRangeTable(estate, list_make1(rte));
		InitResultRelInfo(rri, rel, 1, NULL, 0);
		ExecOpenIndices(rri, false);
		econtext = GetPerTupleExprContext(estate);
		slot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
		ExecClearTuple(slot);
		for (int a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);
			int			given = -1;

			for (int i = 0; i < n && given < 0; i++)
				if (attnums[i] == a + 1)
					given = i;
			slot->tts_isnull[a] = true;
			slot->tts_values[a] = (Datum) 0;
			if (given >= 0)
			{
				slot->tts_isnull[a] = nulls[given] == 'n';
				slot->tts_values[a] = nulls[given] == 'n' ? (Datum) 0 : values[given];
			}
			else if (!att->attisdropped)
			{
				Node	   *def = build_column_default(rel, a + 1);

				if (def != NULL)
				{
					ExprState  *es = ExecPrepareExpr((Expr *) def, estate);

					slot->tts_values[a] = ExecEvalExprSwitchContext(es, econtext,
																	&slot->tts_isnull[a]);
				}
			}
		}
		ExecStoreVirtualTuple(slot);
		/* a snapshot, as the statement would have */
		PushActiveSnapshot(GetTransactionSnapshot());
		ExecSimpleRelationInsert(rri, estate, slot);
		PopActiveSnapshot();
		ExecCloseIndices(rri);
		ExecResetTupleTable(estate->es_tupleTable, false);
		FreeExecutorState(estate);
	}
	PG_CATCH();
	{
		incetl_restore_role(&save, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	incetl_restore_role(&save, true);
	/* what follows in the transaction sees the row, as after a statement */
	CommandCounterIncrement();
	table_close(rel, NoLock);
	return true;
}

/*
 * Insert a run's row with what it has done so far: status NULL (running)
 * or its end, and its estimate when rows_estimated >= 0.
 */
static void
insert_run_row(RunRow *r, const char *status, IncetlCounts *c,
			   const char *watermark_after, const char *error, int64 rows_estimated)
{
	const char *names[19] = {"run_id", "pipeline", "pipeline_id", "kind", "status",
		"watermark_before", "watermark_after", "run_by", "started_at", "batches",
		"rows_extracted", "rows_inserted", "rows_updated", "rows_deleted",
	"rows_unchanged", "error", "finished_at"};
	Oid			argtypes[19] = {INT8OID, TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID,
		TEXTOID, NAMEOID, TIMESTAMPTZOID, INT4OID, INT8OID, INT8OID, INT8OID, INT8OID,
	INT8OID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[19];
	char		nulls[19];
	int			n = 17;
	StringInfoData sql;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(r->run_id);
	values[1] = CStringGetTextDatum(r->pipeline);
	values[2] = Int32GetDatum(r->pipeline_id);
	values[3] = CStringGetTextDatum(incetl_run_kind_name(r->kind));
	values[4] = CStringGetTextDatum(status ? status : "running");
	if (r->watermark_before)
		values[5] = CStringGetTextDatum(r->watermark_before);
	else
		nulls[5] = 'n';
	if (watermark_after)
		values[6] = CStringGetTextDatum(watermark_after);
	else if (r->watermark_before)
		values[6] = values[5];
	else
		nulls[6] = 'n';
	values[7] = NameGetDatum(&r->run_by);
	values[8] = TimestampTzGetDatum(r->started_at);
	values[9] = Int32GetDatum(c->batches);
	values[10] = Int64GetDatum(c->extracted);
	values[11] = Int64GetDatum(c->inserted);
	values[12] = Int64GetDatum(c->updated);
	values[13] = Int64GetDatum(c->deleted);
	values[14] = Int64GetDatum(c->unchanged);
	if (error)
		values[15] = CStringGetTextDatum(error);
	else
		nulls[15] = 'n';
	if (status)
		values[16] = TimestampTzGetDatum(GetCurrentTimestamp());
	else
		nulls[16] = 'n';

	/*
	 * history_versions and rows_estimated (0.3) only when there is one to
	 * write: a 0.2 catalog lacks the columns.
	 */
	if (c->history_versions != 0)
	{
		names[n] = "history_versions";
		argtypes[n] = INT8OID;
		values[n++] = Int64GetDatum(c->history_versions);
	}
	if (rows_estimated >= 0)
	{
		names[n] = "rows_estimated";
		argtypes[n] = INT8OID;
		values[n++] = Int64GetDatum(rows_estimated);
	}

	/* without a statement where that is the same, else the INSERT */
	if (!insert_run_row_direct(n, names, argtypes, values, nulls))
	{
		initStringInfo(&sql);
		appendStringInfoString(&sql, "INSERT INTO incetl.run_log (");
		for (int i = 0; i < n; i++)
			appendStringInfo(&sql, "%s%s", i ? ", " : "", names[i]);
		appendStringInfoString(&sql, ") VALUES (");
		for (int i = 0; i < n; i++)
			appendStringInfo(&sql, "%s$%d", i ? ", " : "", i + 1);
		appendStringInfoChar(&sql, ')');
		incetl_spi_exec_owner(sql.data, n, argtypes, values, nulls, SPI_OK_INSERT);
	}
	r->inserted = true;
}

/* insert a run's row as running, with its estimate when rows_estimated >= 0 */
static void
insert_running_row(RunRow *r, int64 rows_estimated)
{
	IncetlCounts none;

	memset(&none, 0, sizeof(none));
	insert_run_row(r, NULL, &none, NULL, NULL, rows_estimated);
}

/*
 * Record a run that did not take place: another session holds the
 * pipeline's lock.
 */
void
incetl_log_skipped(IncetlPipeline *p, const char *pipeline_name,
				   IncetlRunKind kind, const char *watermark_before)
{
	Oid			argtypes[5] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, NAMEOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	NameData	runby;

	namestrcpy(&runby, GetUserNameFromId(GetUserId(), false));
	values[0] = CStringGetTextDatum(pipeline_name);
	values[1] = Int32GetDatum(p->id);
	values[2] = CStringGetTextDatum(incetl_run_kind_name(kind));
	if (watermark_before)
		values[3] = CStringGetTextDatum(watermark_before);
	else
		nulls[3] = 'n';
	values[4] = NameGetDatum(&runby);

	incetl_spi_exec_owner("INSERT INTO incetl.run_log (pipeline, pipeline_id, kind, status, "
						  "watermark_before, watermark_after, run_by, finished_at) "
						  "VALUES ($1, $2, $3, 'skipped', $4, $4, $5, pg_catalog.clock_timestamp())",
						  5, argtypes, values, nulls, SPI_OK_INSERT);
}

static void
log_update(int64 run_id, const char *status, IncetlCounts *c,
		   const char *watermark_after, const char *error)
{
	Oid			argtypes[11] = {INT8OID, TEXTOID, INT4OID, INT8OID, INT8OID,
	INT8OID, INT8OID, INT8OID, TEXTOID, TEXTOID, INT8OID};
	Datum		values[11];
	char		nulls[11];
	RunRow	   *r = find_run_row(run_id);

	if (r != NULL && !r->inserted)
	{
		insert_run_row(r, status, c, watermark_after, error, -1);
		return;
	}

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(run_id);
	if (status)
		values[1] = CStringGetTextDatum(status);
	else
		nulls[1] = 'n';
	values[2] = Int32GetDatum(c->batches);
	values[3] = Int64GetDatum(c->extracted);
	values[4] = Int64GetDatum(c->inserted);
	values[5] = Int64GetDatum(c->updated);
	values[6] = Int64GetDatum(c->deleted);
	values[7] = Int64GetDatum(c->unchanged);
	if (watermark_after)
		values[8] = CStringGetTextDatum(watermark_after);
	else
		nulls[8] = 'n';
	if (error)
		values[9] = CStringGetTextDatum(error);
	else
		nulls[9] = 'n';

	/*
	 * history_versions (0.3) only when a history table opened some: only a
	 * 0.3 catalog has history tables, and a 0.2 one lacks the column.
	 */
	values[10] = Int64GetDatum(c->history_versions);
	incetl_spi_exec_owner(c->history_versions == 0 ?
						  "UPDATE incetl.run_log SET status = COALESCE($2, status), "
						  "batches = $3, rows_extracted = $4, rows_inserted = $5, "
						  "rows_updated = $6, rows_deleted = $7, rows_unchanged = $8, "
						  "watermark_after = COALESCE($9, watermark_after), error = $10, "
						  "finished_at = CASE WHEN $2 IS NULL THEN NULL "
						  "ELSE pg_catalog.clock_timestamp() END "
						  "WHERE run_id OPERATOR(pg_catalog.=) $1" :
						  "UPDATE incetl.run_log SET status = COALESCE($2, status), "
						  "batches = $3, rows_extracted = $4, rows_inserted = $5, "
						  "rows_updated = $6, rows_deleted = $7, rows_unchanged = $8, "
						  "watermark_after = COALESCE($9, watermark_after), error = $10, "
						  "finished_at = CASE WHEN $2 IS NULL THEN NULL "
						  "ELSE pg_catalog.clock_timestamp() END, "
						  "history_versions = $11 "
						  "WHERE run_id OPERATOR(pg_catalog.=) $1",
						  c->history_versions == 0 ? 10 : 11,
						  argtypes, values, nulls, SPI_OK_UPDATE);
	/* inserted in a transaction that rolled back since */
	if (SPI_processed == 0 && r != NULL)
		insert_run_row(r, status, c, watermark_after, error, -1);
}

/*
 * Write a run's row now if it is still deferred (RunRow), and say whether
 * it did: a run that commits per batch shows as running (the engine
 * commits it) before anything that may take time, so that incetl.status
 * watches it while it reads, and a run killed then leaves a row that
 * status shows as interrupted and the next run closes out (SPEC: one row
 * per run).  The engine defers it only across the one-row probe that
 * tells a run with nothing to do (engine.c, run_locked).  Inside a
 * transaction block nobody sees the row before the caller commits anyway,
 * and a kill takes it back: there the row waits for the run's first
 * progress or its end.
 */
bool
incetl_log_running(int64 run_id)
{
	RunRow	   *r = find_run_row(run_id);

	if (r == NULL || r->inserted)
		return false;
	insert_running_row(r, -1);
	return true;
}

void
incetl_log_progress(int64 run_id, IncetlCounts *c, const char *watermark_after)
{
	log_update(run_id, NULL, c, watermark_after, NULL);
}

/*
 * The end of a run.  A failure sends an alert, and the pipeline's
 * freshness is checked (alert.c); both go out when the transaction that
 * records the end commits.
 */
void
incetl_log_finish(int64 run_id, const char *status, IncetlCounts *c,
				  const char *watermark_after, const char *error)
{
	TupleDesc	desc;
	HeapTuple	tup;
	bool		isnull;
	bool		no_id;
	int32		pipeline_id;
	RunRow	   *r;

	log_update(run_id, status, c, watermark_after, error);

	r = find_run_row(run_id);
	if (r != NULL)
	{
		if (strcmp(status, "failed") == 0)
			incetl_alert("failed", r->pipeline, run_id, status, error);
		incetl_check_freshness(r->pipeline_id);

		/*
		 * Kept (remember_run_row keeps the last few): when the commit of
		 * this end fails, the run records its failure, and the row this
		 * end inserted went with the rollback.
		 */
		return;
	}
	tup = incetl_catalog_row("run_log", "run_id", F_INT8EQ, Int64GetDatum(run_id), &desc);
	if (tup == NULL)
		return;
	pipeline_id = DatumGetInt32(incetl_catalog_col(tup, desc, "pipeline_id", &no_id));
	if (strcmp(status, "failed") == 0)
		incetl_alert("failed",
					 TextDatumGetCString(incetl_catalog_col(tup, desc, "pipeline", &isnull)),
					 run_id, status, error);
	if (!no_id)
		incetl_check_freshness(pipeline_id);
}

/*
 * A run's estimate of the rows it has to read, from which incetl.status
 * shows its progress.
 */
void
incetl_log_estimate(int64 run_id, int64 rows)
{
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		values[2];
	RunRow	   *r;

	/* a catalog older than the library has no such column */
	if (get_attnum(get_relname_relid("run_log", get_namespace_oid("incetl", false)),
				   "rows_estimated") == InvalidAttrNumber)
		return;
	r = find_run_row(run_id);
	if (r != NULL && !r->inserted)
	{
		insert_running_row(r, rows);
		return;
	}
	values[0] = Int64GetDatum(run_id);
	values[1] = Int64GetDatum(rows);
	incetl_spi_exec_owner("UPDATE incetl.run_log SET rows_estimated = $2 "
						  "WHERE run_id OPERATOR(pg_catalog.=) $1",
						  2, argtypes, values, NULL, SPI_OK_UPDATE);
}

/*
 * run_log's run_id sequence (the bigserial's), or InvalidOid when the
 * catalog has none of that name: the run then inserts its row at once.
 */
static Oid
run_log_sequence(void)
{
	Oid			nsp = get_namespace_oid("incetl", false);
	Oid			seq = get_relname_relid("run_log_run_id_seq", nsp);

	if (!OidIsValid(seq) || get_rel_relkind(seq) != RELKIND_SEQUENCE)
		return InvalidOid;
	return seq;
}

/*
 * Whether the start of a run has housekeeping to do: a row of this
 * pipeline left 'running' by a session that is gone (one of kinds), or a
 * row older than the retention.  Read directly through run_log's indexes
 * (the partial index of running rows, the index on started_at), which
 * costs nothing next to planning the statement that does the work; almost
 * every run has none to do.
 */
static bool
run_log_housekeeping_due(int32 pipeline_id, IncetlRunKind kind)
{
	Oid			nsp = get_namespace_oid("incetl", false);
	Oid			running_idx = get_relname_relid("run_log_running_idx", nsp);
	Oid			started_idx = get_relname_relid("run_log_started_at_idx", nsp);
	Relation	rel;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		due = false;

	Oid			run_log = get_relname_relid("run_log", nsp);

	/*
	 * A catalog older than the library, or indexes of those names that are
	 * not run_log's: let the statement do everything.
	 */
	if (!OidIsValid(running_idx) || !OidIsValid(started_idx) ||
		IndexGetRelation(running_idx, true) != run_log ||
		IndexGetRelation(started_idx, true) != run_log)
		return true;

	rel = table_open(run_log, AccessShareLock);
	PushActiveSnapshot(GetTransactionSnapshot());

	ScanKeyInit(&skey, get_attnum(RelationGetRelid(rel), "pipeline_id"),
				BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(pipeline_id));
	scan = systable_beginscan(rel, running_idx, true, GetActiveSnapshot(), 1, &skey);
	while (!due && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		char	   *k = TextDatumGetCString(incetl_catalog_col(tup, RelationGetDescr(rel),
															   "kind", &isnull));

		/* runs and reconciles share one lock, backfills have their own */
		due = (kind == RUN_KIND_BACKFILL) == (strcmp(k, "backfill") == 0);
	}
	systable_endscan(scan);

	if (!due && incetl_run_log_retention_s > 0)
	{
		Relation	index = index_open(started_idx, AccessShareLock);
		SysScanDesc oscan = systable_beginscan_ordered(rel, index, GetActiveSnapshot(),
													   0, NULL);

		tup = systable_getnext_ordered(oscan, ForwardScanDirection);
		if (HeapTupleIsValid(tup))
		{
			bool		isnull;
			TimestampTz oldest = DatumGetTimestampTz(incetl_catalog_col(tup, RelationGetDescr(rel),
																		 "started_at", &isnull));

			due = oldest < GetCurrentTimestamp() -
				(TimestampTz) incetl_run_log_retention_s * USECS_PER_SEC;
		}
		systable_endscan_ordered(oscan);
		index_close(index, AccessShareLock);
	}

	PopActiveSnapshot();
	table_close(rel, AccessShareLock);
	return due;
}

/*
 * The start of a run in one statement: close out runs of this pipeline
 * left 'running' by a session that is gone (we hold the lock they would
 * hold), prune finished rows older than incetl.run_log_retention (a row
 * closed out here goes with the next run: one statement cannot both update
 * and delete a row), and insert the run's 'running' row.  Returns its
 * run_id.  Pruning skips rows another transaction has locked (a run of
 * another pipeline in an open transaction block, pruning too): a run never
 * waits for another pipeline's.
 */
int64
incetl_log_begin_run(IncetlPipeline *p, const char *pipeline_name,
					 IncetlRunKind kind, const char *watermark_before)
{
	Oid			argtypes[7] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, NAMEOID,
	TEXTARRAYOID, FLOAT8OID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	NameData	runby;
	int64		run_id;

	namestrcpy(&runby, GetUserNameFromId(GetUserId(), false));
	values[0] = CStringGetTextDatum(pipeline_name);
	values[1] = Int32GetDatum(p->id);
	values[2] = CStringGetTextDatum(incetl_run_kind_name(kind));
	if (watermark_before)
		values[3] = CStringGetTextDatum(watermark_before);
	else
		nulls[3] = 'n';
	values[4] = NameGetDatum(&runby);
	/* runs and reconciles share one lock, backfills have their own */
	values[5] = OidInputFunctionCall(F_ARRAY_IN,
									 kind == RUN_KIND_BACKFILL ? "{backfill}" : "{run,reconcile}",
									 TEXTOID, -1);
	if (incetl_run_log_retention_s > 0)
		values[6] = Float8GetDatum((double) incetl_run_log_retention_s);
	else
		nulls[6] = 'n';

	if (!run_log_housekeeping_due(p->id, kind))
	{
		Oid			seq = run_log_sequence();

		/* the row is written later (RunRow) */
		if (OidIsValid(seq))
		{
			run_id = nextval_internal(seq, false);
			remember_run_row(run_id, false, p, pipeline_name, kind, watermark_before,
							 GetCurrentTimestamp());
			return run_id;
		}
		incetl_spi_exec_owner("INSERT INTO incetl.run_log (pipeline, pipeline_id, kind, status, "
							  "watermark_before, watermark_after, run_by) "
							  "VALUES ($1, $2, $3, 'running', $4, $4, $5) RETURNING run_id",
							  5, argtypes, values, nulls, SPI_OK_INSERT_RETURNING);
	}
	else
		incetl_spi_exec_owner("WITH closed AS (UPDATE incetl.run_log SET status = 'failed', "
							  "finished_at = pg_catalog.clock_timestamp(), "
							  "error = 'interrupted: the session running it ended (terminated backend or server crash)' "
							  "WHERE pipeline_id OPERATOR(pg_catalog.=) $2 "
							  "AND kind OPERATOR(pg_catalog.=) ANY ($6) "
							  "AND status OPERATOR(pg_catalog.=) 'running' RETURNING 1), "
							  "pruned AS (DELETE FROM incetl.run_log WHERE run_id OPERATOR(pg_catalog.=) ANY "
							  "(ARRAY(SELECT o.run_id FROM incetl.run_log o WHERE $7 IS NOT NULL "
							  "AND o.started_at OPERATOR(pg_catalog.<) "
							  "(pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $7)) "
							  "AND o.status OPERATOR(pg_catalog.<>) 'running' "
							  "FOR UPDATE SKIP LOCKED)) RETURNING 1) "
							  "INSERT INTO incetl.run_log (pipeline, pipeline_id, kind, status, "
							  "watermark_before, watermark_after, run_by) "
							  "VALUES ($1, $2, $3, 'running', $4, $4, $5) RETURNING run_id",
							  7, argtypes, values, nulls, SPI_OK_INSERT_RETURNING);
	run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	remember_run_row(run_id, true, p, pipeline_name, kind, watermark_before,
					 GetCurrentTimestamp());
	return run_id;
}
