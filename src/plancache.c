/*-------------------------------------------------------------------------
 *
 * plancache.c
 *	  Prepared batch statements, kept across batches and runs.
 *
 * Like ri_triggers.c's query cache: a hash table keyed by (pipeline,
 * statement kind, variant), each entry a plan made with SPI_prepare and
 * SPI_keepplan.  An entry is used only while SPI_plan_is_valid() says its
 * plan is, and while the statement's text is the one it was made from:
 * alter_pipeline, a changed source or target, or a new work table (each
 * keyed run makes its own) make it prepare afresh.
 *
 * src/plancache.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "executor/instrument.h"
#include "executor/spi.h"
#include "nodes/execnodes.h"
#include "nodes/params.h"
#include "tcop/dest.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/snapmgr.h"

#include "incetl.h"

typedef struct PlanEntry
{
	IncetlPlanKey key;			/* hash key: must be first */
	char	   *sql;			/* in TopMemoryContext */
	SPIPlanPtr	plan;
} PlanEntry;

static HTAB *plan_cache = NULL;

static void
init_plan_cache(void)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(IncetlPlanKey);
	ctl.entrysize = sizeof(PlanEntry);
	plan_cache = hash_create("incetl plan cache", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS);
}

/*
 * The plan of sql under key, prepared (with cursor_options) when there is
 * none yet, when the statement changed, or when the plan was invalidated.
 * The key must be zeroed before it is filled in (it is hashed as bytes).
 */
SPIPlanPtr
incetl_plan_get(const IncetlPlanKey *key, const char *sql, int nargs,
				Oid *argtypes, int cursor_options)
{
	PlanEntry  *entry;
	bool		found;
	SPIPlanPtr	plan;

	if (plan_cache == NULL)
		init_plan_cache();
	entry = hash_search(plan_cache, key, HASH_ENTER, &found);
	if (found && entry->plan != NULL)
	{
		if (strcmp(entry->sql, sql) == 0 && SPI_plan_is_valid(entry->plan))
			return entry->plan;
		SPI_freeplan(entry->plan);
		pfree(entry->sql);
	}
	entry->plan = NULL;
	entry->sql = NULL;

	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);
	if (plan == NULL)
		elog(ERROR, "incetl: SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "incetl: SPI_keepplan failed");
	entry->sql = MemoryContextStrdup(TopMemoryContext, sql);
	entry->plan = plan;
	return plan;
}

/*
 * Execute a prepared MERGE, or INSERT (one statement, no RETURNING), with parameters
 * values[0..nargs-1] (nulls as SPI_execute_plan takes them, or NULL), and
 * tell how many rows it joined (its source rows: the MERGE's join emits
 * each once) and how many its actions inserted, updated and deleted.  In
 * PostgreSQL 15 a MERGE returns no rows and SPI reports only their sum, so
 * the statement runs through the executor here, as SPI_execute_plan would
 * run it (a new command id, a fresh snapshot, the plan cache choosing a
 * custom or generic plan), and the counts are read from its ModifyTable
 * node, where EXPLAIN ANALYZE reads them (rows inserted from the command
 * tag's count: see below).
 */
void
incetl_plan_execute_counted(SPIPlanPtr plan, int nargs, const Oid *argtypes,
						  Datum *values, const char *nulls, int64 *read,
						  int64 *inserted, int64 *updated, int64 *deleted)
{
	List	   *sources = SPI_plan_get_plan_sources(plan);
	CachedPlanSource *source;
	ParamListInfo params;
	CachedPlan *cplan;
	PlannedStmt *stmt;
	QueryDesc  *qd;
	ModifyTableState *mt;
	PlanState  *joined;

	if (list_length(sources) != 1)
		elog(ERROR, "incetl: a MERGE batch must be one statement");
	source = linitial(sources);

	params = makeParamList(nargs);
	for (int i = 0; i < nargs; i++)
	{
		params->params[i].value = values[i];
		params->params[i].isnull = nulls != NULL && nulls[i] == 'n';
		params->params[i].pflags = PARAM_FLAG_CONST;
		params->params[i].ptype = argtypes[i];
	}

	cplan = GetCachedPlan(source, params, CurrentResourceOwner, NULL);
	if (list_length(cplan->stmt_list) != 1)
		elog(ERROR, "incetl: a MERGE batch must be one statement");
	stmt = linitial_node(PlannedStmt, cplan->stmt_list);
	if (stmt->commandType != CMD_MERGE && stmt->commandType != CMD_INSERT)
		elog(ERROR, "incetl: a counted batch must be a MERGE or an INSERT");

	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	qd = CreateQueryDesc(stmt, source->query_string, GetActiveSnapshot(),
						 InvalidSnapshot, None_Receiver, params, NULL, 0);
	ExecutorStart(qd, 0);

	/*
	 * Count the rows the join feeds the MERGE (or the query feeds the
	 * INSERT): row counting on that node only (ExecProcNode picks its
	 * instrumented form at the first call).  An INSERT leaves the merge
	 * counts at zero.
	 */
	if (!IsA(qd->planstate, ModifyTableState) ||
		outerPlanState(qd->planstate) == NULL)
		elog(ERROR, "incetl: a counted batch must be planned as a ModifyTable node");
	mt = (ModifyTableState *) qd->planstate;
	joined = outerPlanState(mt);
	joined->instrument = InstrAlloc(1, INSTRUMENT_ROWS, false);

	ExecutorRun(qd, ForwardScanDirection, 0L, true);
	InstrEndLoop(joined->instrument);
	*read = (int64) joined->instrument->ntuples;
	*updated = (int64) mt->mt_merge_updated;
	*deleted = (int64) mt->mt_merge_deleted;

	/*
	 * mt_merge_inserted counts every INSERT action taken, also those a
	 * BEFORE ROW trigger cancels (ExecMergeNotMatched adds one whatever
	 * ExecInsert did), where the CTE form's RETURNING counts only the rows
	 * written.  es_processed (the command tag's count) counts only rows
	 * written (ExecInsert adds one after its BEFORE ROW triggers; a merged
	 * update or delete adds one where mt_merge_updated/deleted do); the
	 * bounds keep a release that counted otherwise within reason.
	 * (sql/50_review_merge.)
	 */
	*inserted = (int64) qd->estate->es_processed - *updated - *deleted;
	if (stmt->commandType == CMD_MERGE && *inserted > (int64) mt->mt_merge_inserted)
		*inserted = (int64) mt->mt_merge_inserted;
	if (*inserted < 0)
		*inserted = 0;
	ExecutorFinish(qd);
	ExecutorEnd(qd);
	FreeQueryDesc(qd);
	PopActiveSnapshot();
	ReleaseCachedPlan(cplan, CurrentResourceOwner);
	CommandCounterIncrement();
}
