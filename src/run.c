/*-------------------------------------------------------------------------
 *
 * run.c
 *	  CALL incetl.run, run_all and backfill: the batch loop.
 *
 * A run takes the pipeline's lock without waiting, logs itself, then works
 * in batches.  Each batch is one set-based statement plus the watermark and
 * run_log updates, all in one subtransaction; when the procedure was called
 * by CALL outside a transaction block (it is non-atomic) every batch then
 * commits, so a failure loses at most the batch in flight.  Inside a
 * transaction block everything stays in the caller's transaction.
 *
 * Errors inside a batch are caught so that the run can be recorded as
 * 'failed' before the error is raised again (or, for run_all, reported as
 * a WARNING while the other pipelines go on).
 *
 * src/run.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "replication/slot.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "incetl.h"

PG_FUNCTION_INFO_V1(incetl_run);
PG_FUNCTION_INFO_V1(incetl_run_all);
PG_FUNCTION_INFO_V1(incetl_backfill_time);
PG_FUNCTION_INFO_V1(incetl_backfill_int);
PG_FUNCTION_INFO_V1(incetl_reconcile);

/* the passes of a run, in order */
typedef enum RunPass
{
	PASS_LOOKBACK,				/* re-read [cursor - lookback, cursor] */
	PASS_FORWARD,				/* read above the cursor, move it */
	PASS_BACKFILL,				/* read [start, end) chunk by chunk */
	PASS_COMPARE,				/* delete target keys gone from the source */
	PASS_KEYED,					/* apply the keys of the work table */
	PASS_DONE
} RunPass;

typedef struct RunState
{
	const char *name;
	IncetlPipeline *p;
	IncetlRunKind kind;
	bool		nonatomic;
	int64		run_id;
	IncetlCounts counts;
	MemoryContext cxt;

	IncetlCursor cursor;		/* saved cursor at the start */
	char	   *wm_before;		/* as stored */
	char	   *wm_after;		/* canonical */
	bool		bounded;		/* late-commit bound applies */
	TimestampTz bound;

	/* what the last commit made durable, for when a later one fails */
	IncetlCounts committed_counts;
	char	   *committed_wm;

	RunPass		pass;
	bool		fast_load;		/* first load into an empty target */
	bool		prepared;		/* step_prepare succeeded */
	bool		first_in_pass;
	bool		have_last;		/* last row of the previous batch */
	Datum		last_wm;
	Datum	   *last_keys;
	bool	   *last_key_nulls;

	/* backfill */
	Oid			bf_type;		/* TIMESTAMPTZOID or INT8OID */
	Datum		bf_start;
	Datum		bf_end;
	Interval   *bf_chunk_iv;
	int64		bf_chunk_int;
	Datum		chunk_lo;
	Datum		chunk_hi;
	Datum		bf_after_nobegin;	/* first row after those at -infinity */

	/* keyed passes: rows (pos, total] of the work table are left */
	bool		have_work;
	int64		work_pos;
	int64		work_total;
	bool		need_compare;	/* then delete target keys the source lacks */
	TimestampTz run_start;

	MemoryContext batch_cxt;	/* reset before each batch */

	/* this run's temporary work table, dropped by OID at the end */
	Oid			work_relid;

	/* trigger: TRUNCATE markers seen in the queue (seqs == 0: none) */
	IncetlQueueEntries markers;

	bool		wrote_target;	/* in the current transaction */
	bool		any_target_write;	/* in the whole run */

	/* logical */
	char	   *slot;
	bool		slot_resumes;	/* else compare everything, like a first run */
	XLogRecPtr	applied;		/* stored LSN at the start */
	XLogRecPtr	last_lsn;		/* of the last change peeked */
	bool		lsn_stored;
} RunState;

/* prepared batch statements, kept across runs */
typedef struct PlanCacheEntry
{
	int32		pipeline_id;
	IncetlLower lower;
	IncetlUpper upper;
	Oid			lower_type;
	Oid			upper_type;
	bool		fast_load;
	char	   *sql;
	SPIPlanPtr	plan;
} PlanCacheEntry;

static List *plan_cache = NIL;

typedef void (*RunStep) (RunState *rs);

/* as whom a step runs */
typedef enum StepRole
{
	AS_CALLER,					/* no switch: reads incetl's catalog, checks
								 * the caller's rights */
	AS_OWNER,					/* the pipeline's owner, security-restricted */
	AS_OWNER_TEMP				/* the owner, to create the work table */
} StepRole;

static ErrorData *protected_step(RunState *rs, RunStep step, StepRole as);
static void step_load(RunState *rs);
static void step_validate(RunState *rs);
static void step_prepare(RunState *rs);
static void step_batch(RunState *rs);
static ErrorData *run_pipeline(const char *name, bool nonatomic,
							   IncetlRunKind kind, RunState *bf,
							   MemoryContext cxt);
static void commit_if(RunState *rs);

static bool
call_is_nonatomic(FunctionCallInfo fcinfo)
{
	return fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
}

static void
connect_spi(bool nonatomic)
{
	if (SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/*
 * Run step in a subtransaction; on error roll it back and return the error.
 *
 * Steps that touch the source, the target or the per-pipeline state run as
 * the pipeline's owner, whoever called: the caller is the owner, a member
 * of the owning role or a superuser, and a superuser must not run the
 * owner's triggers or functions with a superuser's rights.  The switch is
 * security-restricted (role.c), so nothing the owner's code does outlives
 * the step in the caller's session.
 */
static ErrorData *
protected_step(RunState *rs, RunStep step, StepRole as)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	IncetlRoleSwitch role;
	volatile bool switched = false;

	MemoryContext volatile stepcxt = oldcxt;

	/*
	 * A batch allocates in a context of its own, reset before the next one,
	 * so that a run of many batches stays flat; what must outlive a batch is
	 * copied into rs->cxt.
	 */
	if (step == step_batch)
	{
		if (rs->batch_cxt == NULL)
			rs->batch_cxt = AllocSetContextCreate(rs->cxt, "incetl batch",
												  ALLOCSET_DEFAULT_SIZES);
		else
			MemoryContextReset(rs->batch_cxt);
		stepcxt = rs->batch_cxt;
	}

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);

	PG_TRY();
	{
		/*
		 * A batch gets an SPI connection of its own: its SPI_finish frees the
		 * tuple tables of the batch's statements, which the run's non-atomic
		 * connection would otherwise keep until the run ends, and what was
		 * allocated after an SPI call (SPI returns to its procedure context).
		 * Other steps allocate what the run keeps, and use the run's.
		 */
		if (step == step_batch && SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		MemoryContextSwitchTo(stepcxt);
		if (as != AS_CALLER)
		{
			incetl_switch_role(&role, rs->p->owner,
							   as == AS_OWNER_TEMP ? INCETL_ROLE_ALLOW_TEMP : 0);
			switched = true;
		}
		step(rs);
		if (switched)
			incetl_restore_role(&role, true);
		if (step == step_batch && SPI_finish() != SPI_OK_FINISH)
			elog(ERROR, "SPI_finish failed");
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		if (switched)
			incetl_restore_role(&role, false);
		MemoryContextSwitchTo(rs->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		/* an abort leaves a slot acquired: only top-level cleanup frees it */
		if (MyReplicationSlot != NULL)
			ReplicationSlotRelease();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();

	return edata;
}

/*
 * Commit (when the run may).  A transaction that wrote no target row only
 * holds bookkeeping (run_log, and a cursor, hashes or queue entries that a
 * rerun would rebuild harmlessly): it commits without waiting for its WAL
 * flush; the next transaction that writes data flushes it anyway.  This is
 * what keeps a run with nothing to do in the low milliseconds.
 */
static void
commit_if(RunState *rs)
{
	if (rs->nonatomic)
	{
		if (!rs->wrote_target)
			(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
									 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
		rs->wrote_target = false;
		SPI_commit();
		/* SPI_commit leaves us in the SPI procedure context: keep ours */
		MemoryContextSwitchTo(rs->cxt);
	}
	rs->committed_counts = rs->counts;
	if (rs->committed_wm != rs->wm_after)
	{
		if (rs->committed_wm && rs->committed_wm != rs->wm_before)
			pfree(rs->committed_wm);
		rs->committed_wm = rs->wm_after;
	}
}

/*
 * commit_if, returning the error of a commit that failed (a deferred
 * constraint or trigger of the target fires at commit) instead of raising
 * it.  SPI_commit has then rolled back and started a new transaction: the
 * batch, its watermark and its progress row are undone, and so is what
 * the run counts.
 */
static ErrorData *
commit_or_error(RunState *rs)
{
	ErrorData  *volatile edata = NULL;

	PG_TRY();
	{
		commit_if(rs);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(rs->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		rs->counts = rs->committed_counts;
		rs->wm_after = rs->committed_wm;
		rs->wrote_target = false;
	}
	PG_END_TRY();
	return edata;
}

/*
 * Settings for a batch statement, undone by end_batch_settings().  A batch
 * is at most batch_size rows and its joins go to the target (or source)
 * through a unique index: index lookups beat hashing or sorting the whole
 * table, which is what the planner picks when it overestimates the batch
 * (its rows are newer than the statistics).  JIT compiling such a statement
 * costs more than it saves.  Materialised batches should stay in memory.
 */
static int
begin_batch_settings(bool lookups_only)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (lookups_only)
	{
		(void) set_config_option("enable_hashjoin", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_mergejoin", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	if (work_mem < 32 * 1024)
		(void) set_config_option("work_mem", "32MB", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

static void
end_batch_settings(int nest)
{
	AtEOXact_GUC(true, nest);
}

/* find or prepare the plan of a batch shape */
static SPIPlanPtr
get_plan(IncetlPipeline *p, IncetlBatchShape *shape, int *nargs, Oid *argtypes)
{
	char	   *sql = incetl_sql_batch(p, shape, nargs, argtypes);
	ListCell   *lc;
	PlanCacheEntry *entry = NULL;
	MemoryContext oldcxt;
	SPIPlanPtr	plan;

	foreach(lc, plan_cache)
	{
		PlanCacheEntry *e = lfirst(lc);

		if (e->pipeline_id == p->id && e->lower == shape->lower &&
			e->upper == shape->upper && e->lower_type == shape->lower_type &&
			e->upper_type == shape->upper_type && e->fast_load == shape->fast_load)
		{
			entry = e;
			break;
		}
	}
	if (entry && strcmp(entry->sql, sql) == 0)
		return entry->plan;

	/* new shape, or the definition changed: prepare afresh */
	plan = SPI_prepare_cursor(sql, *nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN);
	if (plan == NULL)
		elog(ERROR, "incetl: SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "incetl: SPI_keepplan failed");

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	if (entry == NULL)
	{
		entry = palloc0(sizeof(PlanCacheEntry));
		entry->pipeline_id = p->id;
		entry->lower = shape->lower;
		entry->upper = shape->upper;
		entry->lower_type = shape->lower_type;
		entry->upper_type = shape->upper_type;
		entry->fast_load = shape->fast_load;
		plan_cache = lappend(plan_cache, entry);
	}
	else
	{
		SPI_freeplan(entry->plan);
		pfree(entry->sql);
	}
	entry->sql = pstrdup(sql);
	entry->plan = plan;
	MemoryContextSwitchTo(oldcxt);
	return plan;
}

/* the canonical text[] literal of key values */
char *
incetl_keys_text(int n, char **texts, bool *nulls)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; i < n; i++)
	{
		if (i)
			appendStringInfoChar(&buf, ',');
		if (nulls[i])
			appendStringInfoString(&buf, "NULL");
		else
		{
			appendStringInfoChar(&buf, '"');
			for (const char *c = texts[i]; *c; c++)
			{
				if (*c == '"' || *c == '\\')
					appendStringInfoChar(&buf, '\\');
				appendStringInfoChar(&buf, *c);
			}
			appendStringInfoChar(&buf, '"');
		}
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* load the pipeline and check the caller may run it */
static void
step_load(RunState *rs)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	bool		isnull;
	Datum		d;

	IncetlPipeline *was = rs->p;

	rs->p = incetl_load_pipeline(rs->name, false);
	if (was && was->id != rs->p->id)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" was dropped and created again while the %s started",
						rs->name, incetl_run_kind_name(rs->kind)),
				 errhint("Run it again.")));
	if (GetUserNameFromId(rs->p->owner, true) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that owns pipeline \"%s\" no longer exists", rs->name),
				 errhint("A superuser can drop the pipeline and create it again as its new owner.")));
	incetl_check_owner(rs->p);
	if (rs->kind == RUN_KIND_RUN && !rs->p->enabled)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" is disabled", rs->name),
				 errhint("Enable it with SELECT incetl.alter_pipeline(%s, enabled => true);",
						 quote_literal_cstr(rs->name))));

	values[0] = Int32GetDatum(rs->p->id);
	incetl_spi_exec_owner("SELECT watermark FROM incetl.state WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
						  1, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			rs->wm_before = TextDatumGetCString(d);
	}
	rs->wm_after = rs->wm_before;
}

/* drop this session's work table of a pipeline, if there is one by name */
static void
drop_work_table(IncetlPipeline *p)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;

	values[0] = CStringGetTextDatum(incetl_work_table_name(p));
	if (SPI_execute_with_args("SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1,
							  argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not look up the work table");
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								   1, &isnull)))
		SPI_execute(psprintf("DROP TABLE %s", incetl_work_table_name(p)), false, 0);
}

/* the first and last watermark of the rows in [lo, end); false: none */
static bool
backfill_rows_range(RunState *rs, Datum lo, Datum *first, Datum *last)
{
	Oid			argtypes[2] = {rs->bf_type, rs->bf_type};
	Datum		values[2] = {lo, rs->bf_end};
	bool		isnull;

	if (SPI_execute_with_args(incetl_sql_backfill_range(rs->p, rs->bf_type), 2,
							  argtypes, values, NULL, true, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "incetl: could not read the backfill's range");
	*first = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return false;
	*last = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	return true;
}

/*
 * Narrow a backfill's [start, end) to the first and last watermark of the
 * rows in it, so that an infinite bound ('-infinity', 'infinity') or one
 * far beyond the data does not mean chunks without end.  Rows stamped
 * -infinity are a chunk of their own, followed by the first finite one.
 * False: no row in the range.
 */
static bool
clamp_backfill_range(RunState *rs)
{
	Datum		first;
	Datum		last;

	if (!backfill_rows_range(rs, rs->bf_start, &first, &last))
		return false;
	/* both int64 (microseconds or integers); last < end: no overflow */
	rs->bf_start = first;
	rs->bf_end = Int64GetDatum(DatumGetInt64(last) + 1);
	rs->bf_after_nobegin = rs->bf_end;
	if (rs->bf_type == TIMESTAMPTZOID &&
		TIMESTAMP_IS_NOBEGIN(DatumGetTimestampTz(first)) &&
		backfill_rows_range(rs, TimestampTzGetDatum(DT_NOBEGIN + 1), &first, &last))
		rs->bf_after_nobegin = first;
	return true;
}

/* validate, read the cursor */
static void
step_validate(RunState *rs)
{
	IncetlPipeline *p = rs->p;

	if (!rs->nonatomic && IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline \"%s\" cannot run in a %s transaction", p->name,
						IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errdetail("A snapshot taken before the run could hide rows that the run's watermark then passes."),
				 errhint("Call it outside a transaction block, or in a READ COMMITTED transaction.")));

	incetl_resolve_pipeline(p, false);
	incetl_check_privileges(p);
	/* columns the source gained since are fine: remember them too */
	if (!incetl_check_source_shape(p))
		incetl_save_source_shape(p);

	incetl_load_cursor(p, &rs->cursor);
	rs->bounded = incetl_is_time_type(p->wm_type);
}

/*
 * Whether a hash pipeline has no stored hashes.  As the pipeline's owner,
 * inside SPI.
 */
bool
incetl_hash_state_empty(IncetlPipeline *p)
{
	bool		isnull;
	bool		empty;

	if (SPI_execute(incetl_sql_hash_state_empty(p), true, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "incetl: could not read the hash state");
	empty = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
	return !isnull && empty;
}

/* choose the passes; fill the work table of keyed passes */
static void
step_prepare(RunState *rs)
{
	IncetlPipeline *p = rs->p;

	rs->run_start = GetCurrentTimestamp();
	if (rs->kind == RUN_KIND_BACKFILL && p->strategy != STRATEGY_TIMESTAMP)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("backfill needs a pipeline with the 'timestamp' strategy"),
				 errhint("Use incetl.reconcile to repair the target of pipeline \"%s\".",
						 p->name)));

	if (rs->kind == RUN_KIND_RECONCILE || p->strategy != STRATEGY_TIMESTAMP)
	{
		int64		total = 0;
		bool		capture = rs->kind == RUN_KIND_RUN &&
		(p->strategy == STRATEGY_TRIGGER || p->strategy == STRATEGY_LOGICAL);
		bool		compare_all = !capture || rs->wm_before == NULL ||
		(p->strategy == STRATEGY_LOGICAL && !rs->slot_resumes);

		/* the keys to apply go to the work table, numbered 1..total */
		Assert(rs->have_work);

		/*
		 * Capture triggers on every partition, before anything is read; a
		 * capture that may have missed changes makes this run compare all.
		 */
		if (p->strategy == STRATEGY_TRIGGER &&
			incetl_capture_cover(p, CAPTURE_COVER_PREPARE |
								 (compare_all ? CAPTURE_COVER_FULL_RUN :
								  CAPTURE_COVER_QUEUE_KEYS)))
			compare_all = true;

		/*
		 * Hashes against the stored state (hash), or rows against the target:
		 * reconcile, and the first run of a capture strategy, which loads
		 * everything the source holds once its capture is in place.
		 */
		if (compare_all)
		{
			bool		against_target = rs->kind == RUN_KIND_RECONCILE || capture;

			/*
			 * A hash run finds deletes through the stored hashes.  With none
			 * (its first run, or after alter_pipeline(hash_algorithm)) it
			 * first stores a placeholder for every live target key, one no
			 * source row hashes to: then it deletes the target keys the
			 * source lacks and re-reads the others, and if it fails
			 * halfway, the next run still finds what it did not reach.
			 */
			if (rs->kind == RUN_KIND_RUN && p->strategy == STRATEGY_HASH &&
				incetl_hash_state_empty(p) &&
				SPI_execute(incetl_sql_seed_hash_state(p), false, 0) != SPI_OK_INSERT)
				elog(ERROR, "incetl: could not fill the hash state");
			if (SPI_execute(incetl_sql_fill_work(p, against_target), false, 0) != SPI_OK_INSERT)
				elog(ERROR, "incetl: could not fill the work table");
			total = (int64) SPI_processed;
		}

		if (capture && p->strategy == STRATEGY_TRIGGER)
		{
			Oid			argtypes[1] = {INT8OID};
			Datum		values[1];
			MemoryContext oldcxt = MemoryContextSwitchTo(rs->cxt);

			incetl_capture_markers(p, &rs->markers);
			MemoryContextSwitchTo(oldcxt);
			if (rs->markers.seqs != (Datum) 0)
				rs->need_compare = true;
			values[0] = Int64GetDatum(total);
			if (SPI_execute_with_args(incetl_sql_fill_from_queue(p), 1, argtypes,
									  values, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "incetl: could not drain the queue");
			total += (int64) SPI_processed;
		}
		else if (capture && p->strategy == STRATEGY_LOGICAL)
		{
			bool		truncated;

			/*
			 * step_slot found the slot and where to resume; confirm what an
			 * earlier run applied but could not confirm
			 */
			incetl_logical_advance(rs->slot, rs->applied);
			incetl_logical_fill(p, rs->slot, rs->applied, total, &total,
								&rs->last_lsn, &truncated);
			if (truncated)
				rs->need_compare = true;
		}

		if (SPI_execute(psprintf("ANALYZE %s", incetl_work_table_name(p)),
						false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "incetl: could not analyze the work table");
		rs->work_total = total;
		rs->work_pos = 0;
		rs->pass = total > 0 ? PASS_KEYED : rs->need_compare ? PASS_COMPARE : PASS_DONE;
	}
	else if (rs->kind == RUN_KIND_BACKFILL)
	{
		if (rs->bf_type == TIMESTAMPTZOID && !incetl_is_time_type(p->wm_type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("watermark column \"%s\" of pipeline \"%s\" is not a time column",
							p->watermark_column, p->name),
					 errhint("Use the bigint form: incetl.backfill(name, start_at bigint, end_at bigint, chunk bigint).")));
		if (rs->bf_type == INT8OID && incetl_is_time_type(p->wm_type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("watermark column \"%s\" of pipeline \"%s\" is a time column",
							p->watermark_column, p->name),
					 errhint("Use the timestamptz form: incetl.backfill(name, start_at timestamptz, end_at timestamptz, chunk interval).")));
		rs->pass = clamp_backfill_range(rs) ? PASS_BACKFILL : PASS_DONE;
		rs->chunk_lo = rs->bf_start;
		rs->chunk_hi = (Datum) 0;
	}
	else if (rs->cursor.valid &&
			 (p->lookback->month != 0 || p->lookback->day != 0 ||
			  p->lookback->time != 0))
		rs->pass = PASS_LOOKBACK;
	else
		rs->pass = PASS_FORWARD;

	/* a first load into an empty target needs no comparison */
	if (rs->kind == RUN_KIND_RUN && rs->pass == PASS_FORWARD && !rs->cursor.valid &&
		p->strategy == STRATEGY_TIMESTAMP && p->delete_detection != DELETE_DETECT_FLAG &&
		p->src_key_unique &&
		(p->src_relkind == RELKIND_RELATION || p->src_relkind == RELKIND_MATVIEW ||
		 p->src_relkind == RELKIND_PARTITIONED_TABLE))
	{
		bool		isnull;

		if (SPI_execute(psprintf("SELECT NOT EXISTS (SELECT 1 FROM %s)", p->tgt_qname),
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "incetl: could not look at the target");
		rs->fast_load = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
	}
	rs->first_in_pass = true;
	rs->have_last = false;
	rs->prepared = true;
}

/* end of the current backfill chunk, clamped to the end */
static Datum
chunk_end(RunState *rs, Datum lo)
{
	Datum		hi;

	if (rs->bf_type == TIMESTAMPTZOID)
	{
		/* rows at -infinity are a chunk of their own */
		if (TIMESTAMP_IS_NOBEGIN(DatumGetTimestampTz(lo)))
			hi = rs->bf_after_nobegin;
		else
			hi = DirectFunctionCall2(timestamptz_pl_interval, lo,
									 IntervalPGetDatum(rs->bf_chunk_iv));
		if (DatumGetTimestampTz(hi) > DatumGetTimestampTz(rs->bf_end))
			hi = rs->bf_end;
	}
	else
	{
		int64		l = DatumGetInt64(lo);
		int64		h;

		if (pg_add_s64_overflow(l, rs->bf_chunk_int, &h) ||
			h > DatumGetInt64(rs->bf_end))
			h = DatumGetInt64(rs->bf_end);
		hi = Int64GetDatum(h);
	}
	return hi;
}

static bool
datum_lt(RunState *rs, Datum a, Datum b)
{
	if (rs->bf_type == TIMESTAMPTZOID)
		return DatumGetTimestampTz(a) < DatumGetTimestampTz(b);
	return DatumGetInt64(a) < DatumGetInt64(b);
}

/*
 * Add a batch's counts (the first four columns of its statement's one row:
 * read, inserted, updated, deleted) to the run's; returns the rows read.
 */
static int64
account_batch(RunState *rs, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	int64		n = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	int64		ni = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	int64		nu = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	int64		nd = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));

	rs->counts.batches++;
	rs->counts.extracted += n;
	rs->counts.inserted += ni;
	rs->counts.updated += nu;
	rs->counts.deleted += nd;
	rs->counts.unchanged += n - ni - nu - nd;
	if (ni + nu + nd > 0)
		rs->wrote_target = rs->any_target_write = true;
	return n;
}

/*
 * Run the plain-INSERT statement of a first load; if a key turns up twice
 * (a row that moved while the run read: the unique index says so), undo it
 * and run the batch the usual way, and the rest of the run too.
 */
static int
execute_fast_load(RunState *rs, IncetlBatchShape *shape, SPIPlanPtr plan,
				  Datum *values, char *nulls)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int rc = 0;
	volatile bool retry = false;
	int			nest;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		nest = begin_batch_settings(true);
		rc = SPI_execute_plan(plan, values, nulls, false, 0);
		end_batch_settings(nest);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		/* our subtransaction goes first, whatever happens next */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(edata);
		FreeErrorData(edata);
		retry = true;
	}
	PG_END_TRY();

	if (retry)
	{
		int			nargs;
		Oid		   *argtypes = palloc(sizeof(Oid) * INCETL_MAX_PARAMS(rs->p));
		SPIPlanPtr	slow;

		rs->fast_load = false;
		shape->fast_load = false;
		slow = get_plan(rs->p, shape, &nargs, argtypes);
		nest = begin_batch_settings(true);
		rc = SPI_execute_plan(slow, values, nulls, false, 0);
		end_batch_settings(nest);
	}
	return rc;
}

/*
 * One batch of a timestamp pass: build the shape of the statement, run it,
 * account for it, and move the cursor (forward pass only).
 */
static void
step_range_batch(RunState *rs)
{
	IncetlPipeline *p = rs->p;
	IncetlBatchShape shape;
	Oid		   *argtypes = palloc(sizeof(Oid) * INCETL_MAX_PARAMS(p));
	Datum	   *values = palloc(sizeof(Datum) * INCETL_MAX_PARAMS(p));
	char	   *nulls = palloc(INCETL_MAX_PARAMS(p));
	int			nargs;
	int			np = 0;
	SPIPlanPtr	plan;
	int			rc;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int64		n;
	MemoryContext oldcxt;

	memset(&shape, 0, sizeof(shape));
	memset(nulls, ' ', INCETL_MAX_PARAMS(p));
	shape.limit = true;

	/* lower bound */
	if (rs->have_last && !rs->first_in_pass)
	{
		shape.lower = LOWER_AFTER;
		values[np++] = rs->last_wm;
		for (int i = 0; i < p->nkeys; i++)
		{
			nulls[np] = rs->last_key_nulls[i] ? 'n' : ' ';
			values[np++] = rs->last_keys[i];
		}
	}
	else if (rs->pass == PASS_LOOKBACK)
	{
		shape.lower = LOWER_GE;
		values[np++] = incetl_lookback_start(p, rs->cursor.wm, &shape.lower_type);
	}
	else if (rs->pass == PASS_BACKFILL)
	{
		shape.lower = LOWER_GE;
		shape.lower_type = rs->bf_type;
		values[np++] = rs->chunk_lo;
	}
	else if (!rs->cursor.valid)
		shape.lower = LOWER_NONE;
	else if (rs->cursor.keys == NULL)
	{
		shape.lower = LOWER_GT;
		shape.lower_type = p->wm_type;
		values[np++] = rs->cursor.wm;
	}
	else
	{
		shape.lower = LOWER_AFTER;
		values[np++] = rs->cursor.wm;
		for (int i = 0; i < p->nkeys; i++)
		{
			nulls[np] = rs->cursor.key_nulls[i] ? 'n' : ' ';
			values[np++] = rs->cursor.keys[i];
		}
	}

	/* upper bound */
	if (rs->pass == PASS_LOOKBACK && rs->cursor.keys == NULL)
	{
		/* a watermark set by hand: rows up to and including it are done */
		shape.upper = UPPER_LE;
		shape.upper_type = p->wm_type;
		values[np++] = rs->cursor.wm;
	}
	else if (rs->pass == PASS_LOOKBACK)
	{
		shape.upper = UPPER_LE_CURSOR;
		values[np++] = rs->cursor.wm;
		for (int i = 0; i < p->nkeys; i++)
		{
			nulls[np] = rs->cursor.key_nulls[i] ? 'n' : ' ';
			values[np++] = rs->cursor.keys[i];
		}
	}
	else if (rs->pass == PASS_BACKFILL)
	{
		if (rs->first_in_pass || rs->chunk_hi == (Datum) 0)
			rs->chunk_hi = chunk_end(rs, rs->chunk_lo);
		shape.upper = UPPER_LT;
		shape.upper_type = rs->bf_type;
		values[np++] = rs->chunk_hi;
	}
	else if (rs->bounded)
	{
		shape.upper = UPPER_LT;
		shape.upper_type = p->wm_type;
		values[np++] = incetl_bound_for_column(p, rs->bound);
	}
	values[np++] = Int64GetDatum(rs->run_id);

	shape.fast_load = rs->fast_load && rs->pass == PASS_FORWARD;
	plan = get_plan(p, &shape, &nargs, argtypes);
	Assert(nargs == np);

	/*
	 * postgres_fdw ships ORDER BY ... LIMIT with the cursor only on a plan
	 * that sorts remotely; the planner prefers a local sort when it thinks
	 * few rows lie above the cursor (they are newer than the statistics), and
	 * then every batch would fetch everything above the cursor.
	 */
	if (shape.fast_load)
		rc = execute_fast_load(rs, &shape, plan, values, nulls);
	else
	{
		int			nest = begin_batch_settings(true);

		if (p->src_relkind == RELKIND_FOREIGN_TABLE)
			(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_SAVE, true, 0, false);
		rc = SPI_execute_plan(plan, values, nulls, false, 0);
		end_batch_settings(nest);
	}
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "incetl: batch statement returned %s",
			 SPI_result_code_string(rc));

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	n = account_batch(rs, tup, desc);

	if (n > 0)
	{
		char	  **ktexts = palloc(sizeof(char *) * p->nkeys);
		char	   *wm_text;
		char	   *keys_text;

		oldcxt = MemoryContextSwitchTo(rs->cxt);
		if (rs->have_last && !get_typbyval(p->wm_type))
			pfree(DatumGetPointer(rs->last_wm));
		rs->last_wm = datumCopy(SPI_getbinval(tup, desc, 5, &isnull),
								get_typbyval(p->wm_type), get_typlen(p->wm_type));
		if (rs->last_keys == NULL)
		{
			rs->last_keys = palloc(sizeof(Datum) * p->nkeys);
			rs->last_key_nulls = palloc(sizeof(bool) * p->nkeys);
		}
		for (int i = 0; i < p->nkeys; i++)
		{
			Oid			t = p->keys[i]->src_type;
			Datum		d = SPI_getbinval(tup, desc, 6 + i, &rs->last_key_nulls[i]);

			/* the previous batch's copy goes */
			if (!rs->last_key_nulls[i] && !get_typbyval(t) && rs->have_last &&
				DatumGetPointer(rs->last_keys[i]) != NULL)
				pfree(DatumGetPointer(rs->last_keys[i]));
			rs->last_keys[i] = rs->last_key_nulls[i] ? (Datum) 0 :
				datumCopy(d, get_typbyval(t), get_typlen(t));
		}
		rs->have_last = true;
		MemoryContextSwitchTo(oldcxt);

		/* text forms in the batch's memory; only the watermark is kept */
		for (int i = 0; i < p->nkeys; i++)
			ktexts[i] = rs->last_key_nulls[i] ? NULL :
				incetl_canonical_text(rs->last_keys[i], p->keys[i]->src_type);
		wm_text = incetl_canonical_text(rs->last_wm, p->wm_type);
		keys_text = incetl_keys_text(p->nkeys, ktexts, rs->last_key_nulls);
		if (rs->pass == PASS_FORWARD)
		{
			if (rs->wm_after != rs->wm_before && rs->wm_after != rs->committed_wm)
				pfree(rs->wm_after);
			rs->wm_after = MemoryContextStrdup(rs->cxt, wm_text);
		}

		/* the watermark moves in the same transaction as the data */
		if (rs->pass == PASS_FORWARD)
			incetl_save_cursor(p, wm_text, keys_text);
	}

	rs->first_in_pass = false;

	/* what comes next */
	if (n < p->batch_size)
	{
		rs->have_last = false;
		rs->first_in_pass = true;
		if (rs->pass == PASS_LOOKBACK)
			rs->pass = PASS_FORWARD;
		else if (rs->pass == PASS_BACKFILL)
		{
			rs->chunk_lo = rs->chunk_hi;
			rs->chunk_hi = (Datum) 0;
			if (!datum_lt(rs, rs->chunk_lo, rs->bf_end))
				rs->pass = PASS_DONE;
		}
		else if (p->delete_detection == DELETE_DETECT_COMPARE)
			rs->pass = PASS_COMPARE;
		else
			rs->pass = PASS_DONE;
	}
}

/* one batch of keys from the work table */
static void
step_keyed_batch(RunState *rs)
{
	IncetlPipeline *p = rs->p;
	Oid			argtypes[3];
	Datum		values[3];
	int			nargs;
	SPIPlanPtr	plan;
	int			rc;
	HeapTuple	tup;
	TupleDesc	desc;
	char	   *sql;
	IncetlQueueEntries drained = {0, 0};

	/*
	 * The queue entries drained into this batch: each was committed before
	 * the work table was filled, so the change it stands for is in the
	 * source rows this batch reads; they go in the batch's transaction.
	 */
	if (rs->kind == RUN_KIND_RUN && p->strategy == STRATEGY_TRIGGER)
		incetl_capture_batch_entries(p, rs->work_pos, rs->work_pos + p->batch_size,
									 &drained);
	sql = incetl_sql_keyed_batch(p, p->strategy == STRATEGY_HASH, &nargs, argtypes);
	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "incetl: SPI_prepare failed: %s",
			 SPI_result_code_string(SPI_result));
	values[0] = Int64GetDatum(rs->work_pos);
	values[1] = Int64GetDatum(rs->work_pos + p->batch_size);
	values[2] = Int64GetDatum(rs->run_id);
	{
		/* index lookups into the source need a unique index on the key */
		int			nest = begin_batch_settings(p->src_key_unique &&
												(p->src_relkind == RELKIND_RELATION ||
												 p->src_relkind == RELKIND_PARTITIONED_TABLE ||
												 p->src_relkind == RELKIND_MATVIEW));

		rc = SPI_execute_plan(plan, values, NULL, false, 0);
		end_batch_settings(nest);
	}
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "incetl: keyed batch returned %s", SPI_result_code_string(rc));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	(void) account_batch(rs, tup, desc);
	SPI_freeplan(plan);
	incetl_capture_forget(p, &drained);

	rs->work_pos += p->batch_size;
	if (rs->work_pos >= rs->work_total)
	{
		/*
		 * The applied LSN moves with the last batch's target writes, or,
		 * after a TRUNCATE, with the compare pass's last deletes: a run that
		 * fails before those must see the TRUNCATE again.
		 */
		if (rs->slot && rs->last_lsn != InvalidXLogRecPtr && !rs->need_compare)
		{
			incetl_logical_store_applied(p, rs->last_lsn);
			rs->lsn_stored = true;
		}
		rs->pass = rs->need_compare ? PASS_COMPARE : PASS_DONE;
	}
}

/* delete_detection 'compare': one batch of target keys gone from the source */
static void
step_compare_batch(RunState *rs)
{
	IncetlPipeline *p = rs->p;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	int			rc;
	bool		isnull;
	int64		nd;

	values[0] = Int64GetDatum(rs->run_id);
	rc = SPI_execute_with_args(incetl_sql_compare_deletes(p, false), 1, argtypes,
							   values, NULL, false, 0);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "incetl: compare deletes returned %s", SPI_result_code_string(rc));
	nd = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									 1, &isnull));
	rs->counts.batches++;
	rs->counts.deleted += nd;
	if (nd > 0)
		rs->wrote_target = rs->any_target_write = true;
	if (nd < p->batch_size)
	{
		/* the TRUNCATEs that asked for this pass are done */
		incetl_capture_forget(p, &rs->markers);
		if (rs->slot && rs->last_lsn != InvalidXLogRecPtr && !rs->lsn_stored)
		{
			incetl_logical_store_applied(p, rs->last_lsn);
			rs->lsn_stored = true;
		}
		rs->pass = PASS_DONE;
	}
}

/*
 * After the last batch of a capture run: the watermark shows when the
 * changes applied were read, and a logical run whose changes needed no
 * batch still stores its LSN.
 */
static void
step_finish_capture(RunState *rs)
{
	IncetlPipeline *p = rs->p;
	Oid			argtypes[2] = {INT4OID, TEXTOID};
	Datum		values[2];
	char	   *wm = incetl_canonical_text(TimestampTzGetDatum(rs->run_start),
										   TIMESTAMPTZOID);

	if (rs->slot && rs->last_lsn != InvalidXLogRecPtr && !rs->lsn_stored)
	{
		incetl_logical_store_applied(p, rs->last_lsn);
		rs->lsn_stored = true;
	}
	values[0] = Int32GetDatum(p->id);
	values[1] = CStringGetTextDatum(wm);
	incetl_spi_exec_owner("UPDATE incetl.state SET watermark = $2, watermark_key = NULL, "
						  "watermark_type = 'pg_catalog.timestamptz'::pg_catalog.regtype, "
						  "updated_at = pg_catalog.now() "
						  "WHERE pipeline_id OPERATOR(pg_catalog.=) $1",
						  2, argtypes, values, NULL, SPI_OK_UPDATE);
	rs->wm_after = MemoryContextStrdup(rs->cxt, wm);
}

static void
step_batch(RunState *rs)
{
	bool		trigger = rs->p->strategy == STRATEGY_TRIGGER;

	/* a run's and a backfill's batches never apply concurrently (lock.c) */
	incetl_lock_wait(rs->p->id, INCETL_LOCK_APPLY, ExclusiveLock);

	/*
	 * Deferred triggers of the target (a deferrable foreign key, say) must
	 * fire while we are still the owner: at COMMIT they would fire as the
	 * caller, which is why PostgreSQL refuses to queue them inside a
	 * security-restricted operation.  A batch has its own transaction when
	 * the run commits per batch, so checking them at the end of its
	 * statement is what COMMIT would have done.  Inside the caller's
	 * transaction block they stay deferred, and such a target fails with
	 * PostgreSQL's "cannot fire deferred trigger" error.
	 */
	if (rs->nonatomic &&
		SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "incetl: SET CONSTRAINTS failed");

	/*
	 * A partition attached since the last check gets its capture triggers
	 * before this batch can read it, and one attached while it read gets
	 * them (and a compare at the next run) in the same transaction.
	 */
	if (trigger)
		(void) incetl_capture_cover(rs->p, CAPTURE_COVER_QUEUE_KEYS);

	switch (rs->pass)
	{
		case PASS_KEYED:
			step_keyed_batch(rs);
			break;
		case PASS_COMPARE:
			step_compare_batch(rs);
			break;
		default:
			step_range_batch(rs);
			break;
	}

	if (trigger)
		(void) incetl_capture_cover(rs->p, CAPTURE_COVER_QUEUE_KEYS |
									CAPTURE_COVER_AFTER_READ);
}

/*
 * Create the work table of a keyed pass: a temporary table, which cannot be
 * created in a security-restricted operation (matview.c has the same
 * problem with its diff table).  Its definition is ours alone: key
 * columns, a row number, an op; no user code runs here.
 */
static void
step_work_table(RunState *rs)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;

	drop_work_table(rs->p);
	if (SPI_execute(incetl_sql_create_work_table(rs->p), false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "incetl: could not create the work table");
	values[0] = CStringGetTextDatum(incetl_work_table_name(rs->p));
	if (SPI_execute_with_args("SELECT pg_catalog.to_regclass($1)::pg_catalog.oid", 1,
							  argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not look up the work table");
	rs->work_relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull));
	rs->have_work = true;
}

/*
 * Drop the work table, by OID: the owner's code may have renamed it (to
 * shadow a name in the caller's pg_temp), and we must not leave it behind
 * under any name.  The run's outcome is already known.
 */
static void
step_cleanup(RunState *rs)
{
	ObjectAddress obj;

	if (!OidIsValid(rs->work_relid) ||
		!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rs->work_relid)))
		return;
	ObjectAddressSet(obj, RelationRelationId, rs->work_relid);
	performDeletion(&obj, DROP_CASCADE, PERFORM_DELETION_INTERNAL |
					PERFORM_DELETION_QUIETLY);
	rs->work_relid = InvalidOid;
}

/*
 * Drop the work table, if the run made one; the run's outcome is already
 * known, so a failure to drop it changes nothing (it is a temporary table).
 */
static void
drop_work(RunState *rs)
{
	ErrorData  *cleanup_error;

	if (!rs->have_work)
		return;
	cleanup_error = protected_step(rs, step_cleanup, AS_CALLER);
	if (cleanup_error)
		FreeErrorData(cleanup_error);
}

/*
 * 'logical': find the slot, or create it (a first run, a slot that is gone
 * or lost), before the run writes anything: PostgreSQL cannot create a
 * slot in a transaction that has written.
 */
static void
step_slot(RunState *rs)
{
	char	   *slot;

	rs->slot_resumes = incetl_logical_slot(rs->p, true, &slot, &rs->applied);
	rs->slot = MemoryContextStrdup(rs->cxt, slot);
}

/* 'logical': confirm the slot up to the applied LSN just committed */
static void
step_confirm(RunState *rs)
{
	incetl_logical_advance(rs->slot, rs->last_lsn);
}

/*
 * The part of a run that holds the pipeline's lock.
 */
static ErrorData *
run_locked(RunState *rs)
{
	ErrorData  *edata;
	const char *name = rs->name;
	IncetlRunKind kind = rs->kind;
	bool		logical;

	/* what we read before the lock may have changed since: read again */
	edata = protected_step(rs, step_load, AS_CALLER);
	if (edata)
		return edata;

	/*
	 * A slot must be made before the transaction writes: inside a
	 * transaction block, before the run_log row; else in the transaction
	 * that follows its commit, so that the run shows as running meanwhile.
	 */
	logical = kind == RUN_KIND_RUN && rs->p->strategy == STRATEGY_LOGICAL;
	if (logical && !rs->nonatomic)
		edata = protected_step(rs, step_slot, AS_OWNER);

	/* also closes out interrupted runs and prunes old rows */
	rs->run_id = incetl_log_begin_run(rs->p, name, kind, rs->wm_before);
	rs->wm_after = rs->wm_before;
	commit_if(rs);

	/*
	 * In a fresh transaction with no snapshot yet: every transaction that
	 * started below the bound has ended before any snapshot of this run
	 * is taken.
	 */
	rs->bound = incetl_late_commit_bound();

	if (logical && rs->nonatomic)
		edata = protected_step(rs, step_slot, AS_OWNER);
	if (edata == NULL)
		edata = protected_step(rs, step_validate, AS_OWNER);
	if (edata == NULL &&
		(rs->kind == RUN_KIND_RECONCILE || rs->p->strategy != STRATEGY_TIMESTAMP))
		edata = protected_step(rs, step_work_table, AS_OWNER_TEMP);
	if (edata == NULL)
		edata = protected_step(rs, step_prepare, AS_OWNER);
	while (edata == NULL && rs->pass != PASS_DONE)
	{
		CHECK_FOR_INTERRUPTS();
		edata = protected_step(rs, step_batch, AS_OWNER);
		/* the last batch commits with the run's end, below */
		if (edata == NULL && rs->pass != PASS_DONE)
		{
			/* in the batch's memory, reset with the next batch */
			MemoryContextSwitchTo(rs->batch_cxt);
			incetl_log_progress(rs->run_id, &rs->counts, rs->wm_after);
			edata = commit_or_error(rs);
			MemoryContextSwitchTo(rs->cxt);
		}
	}

	if (edata == NULL && rs->kind == RUN_KIND_RUN &&
		(rs->p->strategy == STRATEGY_TRIGGER || rs->p->strategy == STRATEGY_LOGICAL))
		edata = protected_step(rs, step_finish_capture, AS_OWNER);

	drop_work(rs);

	if (edata)
	{
		/* the generated statement is no help to the reader: say where */
		MemoryContextSwitchTo(rs->cxt);
		edata->context = rs->prepared ?
			psprintf("incetl %s of pipeline \"%s\", batch %d",
					 incetl_run_kind_name(kind), name, rs->counts.batches + 1) :
			psprintf("incetl %s of pipeline \"%s\", before the first batch",
					 incetl_run_kind_name(kind), name);
		edata->internalquery = NULL;
		edata->internalpos = 0;
		incetl_log_finish(rs->run_id, "failed", &rs->counts, rs->wm_after,
						  edata->message);
	}
	else
		incetl_log_finish(rs->run_id, "succeeded", &rs->counts, rs->wm_after,
						  NULL);
	/* the outcome of a run that moved data is worth a flush */
	rs->wrote_target = rs->wrote_target || rs->any_target_write;
	if (edata == NULL)
	{
		/* the last batch commits here: its deferred checks fire now */
		edata = commit_or_error(rs);
		if (edata)
		{
			edata->context = psprintf("incetl %s of pipeline \"%s\", at the commit of batch %d",
									  incetl_run_kind_name(kind), name,
									  rs->counts.batches + 1);
			incetl_log_finish(rs->run_id, "failed", &rs->counts, rs->wm_after,
							  edata->message);
			/* the rollback brought the work table back */
			drop_work(rs);
			commit_if(rs);
		}
	}
	else
		commit_if(rs);

	/*
	 * Only now, with the applied LSN committed, confirm the slot.  In a
	 * transaction block the caller may still roll back, so the slot waits
	 * for the next run to confirm.
	 */
	if (edata == NULL && rs->nonatomic && rs->slot && rs->lsn_stored)
	{
		ErrorData  *confirm_error = protected_step(rs, step_confirm, AS_OWNER);

		/* the next run confirms it: nothing is lost, the run succeeded */
		if (confirm_error)
		{
			ereport(WARNING,
					(errcode(confirm_error->sqlerrcode),
					 errmsg("pipeline \"%s\": could not confirm replication slot \"%s\": %s",
							name, rs->slot, confirm_error->message),
					 errdetail("The next run confirms it.")));
			FreeErrorData(confirm_error);
		}
		commit_if(rs);
	}
	return edata;
}

/*
 * Run a pipeline.  Returns NULL on success (or when skipped), else the
 * error, after recording it in run_log; the error and all the run's memory
 * live in cxt.  Must be called inside an SPI connection (non-atomic when
 * nonatomic).
 */
static ErrorData *
run_pipeline(const char *name, bool nonatomic, IncetlRunKind kind, RunState *bf,
			 MemoryContext cxt)
{
	RunState   *rs;
	ErrorData  *volatile edata = NULL;
	IncetlLockKind lock = kind == RUN_KIND_BACKFILL ? INCETL_LOCK_BACKFILL : INCETL_LOCK_RUN;
	int32		id;
	MemoryContext oldcxt;

	oldcxt = MemoryContextSwitchTo(cxt);
	rs = palloc0(sizeof(RunState));
	if (bf)
		memcpy(rs, bf, sizeof(RunState));
	rs->cxt = cxt;
	rs->name = pstrdup(name);
	rs->kind = kind;
	rs->nonatomic = nonatomic;

	edata = protected_step(rs, step_load, AS_CALLER);
	if (edata)
	{
		MemoryContextSwitchTo(oldcxt);
		return edata;
	}

	/*
	 * Outside a transaction block the run commits per batch and holds its
	 * lock across those commits; inside one, until that transaction ends.
	 */
	id = rs->p->id;
	if (!incetl_lock_try(id, lock, nonatomic))
	{
		incetl_log_skipped(rs->p, name, kind, rs->wm_before);
		commit_if(rs);
		ereport(NOTICE,
				(errmsg("pipeline \"%s\" is already running, %s skipped", name,
						incetl_run_kind_name(kind)),
				 errdetail("Another session holds the pipeline's lock.")));
		MemoryContextSwitchTo(oldcxt);
		return NULL;
	}

	PG_TRY();
	{
		edata = run_locked(rs);
	}
	PG_FINALLY();
	{
		/* a transaction-level lock goes with the caller's transaction */
		if (nonatomic)
			incetl_unlock(id, lock);
	}
	PG_END_TRY();

	MemoryContextSwitchTo(oldcxt);
	return edata;
}

/*
 * The procedures that run one pipeline: connect SPI (non-atomic when they
 * may commit), run, and raise the run's error again after it was logged.
 */
static void
call_pipeline(FunctionCallInfo fcinfo, IncetlRunKind kind, RunState *bf)
{
	bool		nonatomic = call_is_nonatomic(fcinfo);
	ErrorData  *edata;
	MemoryContext cxt;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));

	/*
	 * The run's memory, its error included, must outlive SPI_finish (and,
	 * non-atomic, the commits): the error is raised again after it.
	 */
	cxt = AllocSetContextCreate(nonatomic ? PortalContext : CurrentMemoryContext,
								"incetl run", ALLOCSET_DEFAULT_SIZES);
	connect_spi(nonatomic);
	edata = run_pipeline(text_to_cstring(PG_GETARG_TEXT_PP(0)), nonatomic,
						 kind, bf, cxt);
	SPI_finish();
	if (edata)
		ReThrowError(edata);
	MemoryContextDelete(cxt);
}

/*
 * CALL incetl.run(name)
 */
Datum
incetl_run(PG_FUNCTION_ARGS)
{
	call_pipeline(fcinfo, RUN_KIND_RUN, NULL);
	PG_RETURN_VOID();
}

/*
 * CALL incetl.run_all(): every enabled pipeline, one after another.  A
 * failure is a WARNING and the others go on; the call fails at the end if
 * any did, naming them.
 */
Datum
incetl_run_all(PG_FUNCTION_ARGS)
{
	bool		nonatomic = call_is_nonatomic(fcinfo);
	List	   *names;
	ListCell   *lc;
	StringInfoData failed;
	int			nfailed = 0;

	MemoryContext outer = nonatomic ? PortalContext : CurrentMemoryContext;
	MemoryContext old = MemoryContextSwitchTo(outer);

	initStringInfo(&failed);
	MemoryContextSwitchTo(old);
	connect_spi(nonatomic);
	/* in SPI's procedure memory, which outlives the runs' commits */
	names = incetl_enabled_pipeline_names();
	foreach(lc, names)
	{
		char	   *name = lfirst(lc);
		MemoryContext cxt = AllocSetContextCreate(outer, "incetl run",
												  ALLOCSET_DEFAULT_SIZES);
		ErrorData  *edata = run_pipeline(name, nonatomic, RUN_KIND_RUN, NULL, cxt);

		if (edata)
		{
			MemoryContext old = MemoryContextSwitchTo(outer);

			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("pipeline \"%s\" failed: %s", name, edata->message)));
			appendStringInfo(&failed, "%s\"%s\"", nfailed ? ", " : "", name);
			nfailed++;
			MemoryContextSwitchTo(old);
		}
		MemoryContextDelete(cxt);
	}
	SPI_finish();

	if (nfailed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg_plural("%d pipeline failed: %s",
							   "%d pipelines failed: %s",
							   nfailed, nfailed, failed.data),
				 errhint("See incetl.run_log for the errors.")));
	PG_RETURN_VOID();
}

/*
 * CALL incetl.reconcile(name): compare all of the source with all of the
 * target by row hash and make the target equal to the source.
 */
Datum
incetl_reconcile(PG_FUNCTION_ARGS)
{
	call_pipeline(fcinfo, RUN_KIND_RECONCILE, NULL);
	PG_RETURN_VOID();
}

static void
backfill(FunctionCallInfo fcinfo, RunState *bf)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("arguments of incetl.backfill must not be null")));
	call_pipeline(fcinfo, RUN_KIND_BACKFILL, bf);
}

/*
 * CALL incetl.backfill(name, start_at timestamptz, end_at timestamptz,
 *						chunk interval DEFAULT '1 day')
 */
Datum
incetl_backfill_time(PG_FUNCTION_ARGS)
{
	RunState	bf;
	Interval   *chunk;

	memset(&bf, 0, sizeof(bf));
	if (!PG_ARGISNULL(3))
	{
		chunk = PG_GETARG_INTERVAL_P(3);
		if (chunk->month < 0 || chunk->day < 0 || chunk->time < 0 ||
			(chunk->month == 0 && chunk->day == 0 && chunk->time == 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("backfill chunk must be a positive interval")));
		bf.bf_chunk_iv = chunk;
	}
	bf.bf_type = TIMESTAMPTZOID;
	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
	{
		bf.bf_start = PG_GETARG_DATUM(1);
		bf.bf_end = PG_GETARG_DATUM(2);
		if (PG_GETARG_TIMESTAMPTZ(1) >= PG_GETARG_TIMESTAMPTZ(2))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("backfill start_at must be before end_at")));
	}
	backfill(fcinfo, &bf);
	PG_RETURN_VOID();
}

/*
 * CALL incetl.backfill(name, start_at bigint, end_at bigint, chunk bigint)
 */
Datum
incetl_backfill_int(PG_FUNCTION_ARGS)
{
	RunState	bf;

	memset(&bf, 0, sizeof(bf));
	bf.bf_type = INT8OID;
	if (!PG_ARGISNULL(3) && PG_GETARG_INT64(3) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("backfill chunk must be positive")));
	bf.bf_chunk_int = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3);
	if (!PG_ARGISNULL(1) && !PG_ARGISNULL(2))
	{
		bf.bf_start = PG_GETARG_DATUM(1);
		bf.bf_end = PG_GETARG_DATUM(2);
		if (PG_GETARG_INT64(1) >= PG_GETARG_INT64(2))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("backfill start_at must be before end_at")));
	}
	backfill(fcinfo, &bf);
	PG_RETURN_VOID();
}
