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
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
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

	log_update(run_id, status, c, watermark_after, error);

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

	/* a catalog older than the library has no such column */
	if (get_attnum(get_relname_relid("run_log", get_namespace_oid("incetl", false)),
				   "rows_estimated") == InvalidAttrNumber)
		return;
	values[0] = Int64GetDatum(run_id);
	values[1] = Int64GetDatum(rows);
	incetl_spi_exec_owner("UPDATE incetl.run_log SET rows_estimated = $2 "
						  "WHERE run_id OPERATOR(pg_catalog.=) $1",
						  2, argtypes, values, NULL, SPI_OK_UPDATE);
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
		incetl_spi_exec_owner("INSERT INTO incetl.run_log (pipeline, pipeline_id, kind, status, "
							  "watermark_before, watermark_after, run_by) "
							  "VALUES ($1, $2, $3, 'running', $4, $4, $5) RETURNING run_id",
							  5, argtypes, values, nulls, SPI_OK_INSERT_RETURNING);
		return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	}
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
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
}
