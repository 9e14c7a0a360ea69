/*-------------------------------------------------------------------------
 *
 * engine.c
 *	  The apply engine: one run, backfill or reconcile of one pipeline, in
 *	  batches.
 *
 * A run takes the pipeline's lock without waiting, logs itself, lets the
 * strategy (strategy.h) find what changed, then applies it in batches.
 * Each batch is one set-based statement plus the watermark and run_log
 * updates, all in one subtransaction; when the procedure was called by
 * CALL outside a transaction block (it is non-atomic) every batch then
 * commits, so a failure loses at most the batch in flight.  Inside a
 * transaction block everything stays in the caller's transaction.
 *
 * The engine knows two forms of change set: a range of the source (the
 * strategy names the bounds of each batch; the statement reads, compares
 * and applies the rows between them and returns the last row's watermark
 * and key, which becomes the cursor) and a set of keys in the run's work
 * table (each batch applies rows (pos, pos + batch_size] of it).  A
 * compare pass (delete the target keys the source lacks) can follow
 * either.  The statements come from deparse.c; their plans are kept in
 * plancache.c.
 *
 * Every step runs in a subtransaction of its own (protected_step) and, but
 * for the steps that only read incetl's catalog, as the pipeline's owner in
 * a security-restricted operation (role.c).  Errors are caught so that the
 * run can be recorded as 'failed' before the error is raised again (or,
 * for run_all, reported as a WARNING while the other pipelines go on).
 *
 * src/engine.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "replication/slot.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "engine.h"

/* what the engine keeps of a run besides what strategies see */
typedef struct EngineRun
{
	IncetlRun	run;			/* must be first */

	/* what the last commit made durable, for when a later one fails */
	IncetlCounts committed_counts;
	char	   *committed_wm;

	IncetlStateRow state;		/* read by step_load, under the lock */
	bool		prepared;		/* step_prepare succeeded */
	MemoryContext batch_cxt;	/* reset before each batch */
	Oid			work_relid;		/* this run's work table, dropped by OID */
	bool		history_empty;	/* the history table was empty at the start */
	bool		wrote_target;	/* in the current transaction */
	bool		any_target_write;	/* in the whole run */
	int64		fast_read;		/* rows the last plain INSERT read */
	int64		fast_inserted;	/* and inserted */

	/*
	 * The run's run_log row waits (audit.c's RunRow) across the one-row
	 * probe of its first batch, which is all a run with nothing to do does;
	 * when the probe finds rows, the batch steps back (probe_found) for the
	 * row to be committed first.
	 */
	bool		probe_first;
	bool		probe_found;
} EngineRun;

typedef void (*RunStep) (EngineRun *er);

/* as whom a step runs */
typedef enum StepRole
{
	AS_CALLER,					/* no switch: reads incetl's catalog, checks
								 * the caller's rights */
	AS_OWNER,					/* the pipeline's owner, security-restricted */
	AS_OWNER_TEMP				/* the owner, to create the work table */
} StepRole;

static ErrorData *protected_step(EngineRun *er, RunStep step, StepRole as);
static void step_batch(EngineRun *er);
static void constraints_immediate(IncetlRun *run);

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
protected_step(EngineRun *er, RunStep step, StepRole as)
{
	IncetlRun  *run = &er->run;
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	IncetlRoleSwitch role;
	volatile bool switched = false;

	MemoryContext volatile stepcxt = oldcxt;

	/*
	 * A batch allocates in a context of its own, reset before the next one,
	 * so that a run of many batches stays flat; what must outlive a batch is
	 * copied into run->cxt.
	 */
	if (step == step_batch)
	{
		if (er->batch_cxt == NULL)
			er->batch_cxt = AllocSetContextCreate(run->cxt, "incetl batch",
												  ALLOCSET_DEFAULT_SIZES);
		else
			MemoryContextReset(er->batch_cxt);
		stepcxt = er->batch_cxt;
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
			incetl_switch_role(&role, run->p->owner,
							   as == AS_OWNER_TEMP ? INCETL_ROLE_ALLOW_TEMP : 0);
			switched = true;
		}
		step(er);
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
		MemoryContextSwitchTo(run->cxt);
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
commit_if(EngineRun *er)
{
	IncetlRun  *run = &er->run;

	if (run->nonatomic)
	{
		if (!er->wrote_target)
			(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
									 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
		er->wrote_target = false;
		SPI_commit();
		/* SPI_commit leaves us in the SPI procedure context: keep ours */
		MemoryContextSwitchTo(run->cxt);
	}
	er->committed_counts = run->counts;
	if (er->committed_wm != run->wm_after)
	{
		if (er->committed_wm && er->committed_wm != run->wm_before)
			pfree(er->committed_wm);
		er->committed_wm = run->wm_after;
	}
}

/*
 * Write the run's run_log row if it still waits and commit it, when the
 * run commits per batch, unless the run is still before the probe of its
 * first batch (EngineRun.probe_first).
 */
static void
show_run_row(EngineRun *er)
{
	if (!er->run.nonatomic || er->probe_first)
		return;
	if (incetl_log_running(er->run.run_id))
		commit_if(er);
}

/*
 * commit_if, returning the error of a commit that failed (a deferred
 * constraint or trigger of the target fires at commit) instead of raising
 * it.  SPI_commit has then rolled back and started a new transaction: the
 * batch, its watermark and its progress row are undone, and so is what
 * the run counts.
 */
static ErrorData *
commit_or_error(EngineRun *er)
{
	IncetlRun  *run = &er->run;
	ErrorData  *volatile edata = NULL;

	PG_TRY();
	{
		commit_if(er);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(run->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		run->counts = er->committed_counts;
		run->wm_after = er->committed_wm;
		er->wrote_target = false;
	}
	PG_END_TRY();
	return edata;
}

/*
 * Settings for a batch statement, undone by incetl_end_batch_settings().
 * A batch is at most batch_size rows and its joins go to the target (or
 * source) through a unique index: index lookups beat hashing or sorting the
 * whole table, which is what the planner picks when it overestimates the
 * batch (its rows are newer than the statistics).  A keyed batch reads the
 * source by key, which only a unique index on it makes a lookup.
 * postgres_fdw ships ORDER BY ... LIMIT with the cursor only on a plan that
 * sorts remotely; the planner prefers a local sort when it thinks few rows
 * lie above the cursor, and then every batch would fetch everything above
 * it.  JIT compiling such a statement costs more than it saves.
 * Materialised batches should stay in memory.  explain.c plans with the
 * same settings.
 */
/*
 * A keyed batch joins its keys to the source by lookups through the key.
 * Not to a Citus table: Citus brings its rows to the coordinator as an
 * intermediate result, which has no index, and a nested loop over it would
 * cost keys times rows.
 */
static bool
keyed_lookups_only(IncetlPipeline *p)
{
	return p->src_key_unique && p->src_citus == '\0' &&
		(p->src_relkind == RELKIND_RELATION ||
		 p->src_relkind == RELKIND_PARTITIONED_TABLE ||
		 p->src_relkind == RELKIND_MATVIEW);
}

int
incetl_begin_batch_settings(IncetlPipeline *p, bool keyed)
{
	int			nest = NewGUCNestLevel();
	bool		lookups_only = !keyed || keyed_lookups_only(p);

	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (lookups_only)
	{
		(void) set_config_option("enable_hashjoin", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		(void) set_config_option("enable_mergejoin", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}

	/*
	 * A keyed batch probes the source and the target by key.  A target
	 * analyzed while empty (a first hash run after VACUUM ANALYZE) looks free
	 * to scan whole, and a nested loop over a scan of it, rescanned per key
	 * while the statement inserts into it, cost 11.6 s instead of ~1.5 s for
	 * 100k keys: the keys' lookups go through the indexes.
	 */
	if (keyed && lookups_only)
		(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	if (!keyed && p->src_relkind == RELKIND_FOREIGN_TABLE)
		(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	if (work_mem < 32 * 1024)
		(void) set_config_option("work_mem", "32MB", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

void
incetl_end_batch_settings(int nest)
{
	AtEOXact_GUC(true, nest);
}

/*
 * The plan cache's key of a statement of a range batch of this shape:
 * its bounds, and "what" (bits 8 and up) for which statement of it.
 */
static void
range_key(IncetlPlanKey *key, IncetlPipeline *p, IncetlBatchShape *shape, int what)
{
	memset(key, 0, sizeof(IncetlPlanKey));
	key->pipeline_id = p->id;
	key->kind = PLAN_RANGE_BATCH;
	key->variant = shape->lower | shape->upper << 4 | what;
	key->type1 = shape->lower_type;
	key->type2 = shape->upper_type;
}

/* the plan of a range batch of this shape */
static SPIPlanPtr
range_plan(IncetlPipeline *p, IncetlBatchShape *shape, int *nargs, Oid *argtypes)
{
	char	   *sql = incetl_sql_batch(p, shape, nargs, argtypes);
	IncetlPlanKey key;

	range_key(&key, p, shape, (shape->fast_load ? 1 << 8 : 0) | (shape->edge ? 1 << 9 : 0));
	return incetl_plan_get(&key, sql, *nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN);
}

/*
 * A range batch through a Citus target's stage (deparse_batch_rows): its
 * rows first go to the stage, with the batch's parameters, over one
 * connection per worker.  Citus copies rows into a hash-distributed table
 * over a connection per shard up to citus.max_adaptive_executor_pool_size
 * per worker, and each of those connections then prepares and commits its
 * own part of the transaction: a batch's few rows need one.  The upsert
 * from the stage reuses those connections (Citus keeps a transaction's
 * accesses to a shard on one connection), and so does the stage's DELETE.
 * In the batch's settings nest (incetl_begin_batch_settings).  Returns
 * the rows copied.
 */
static int64
fill_tstage(IncetlPipeline *p, IncetlBatchShape *shape, int nargs, Oid *argtypes,
			Datum *values, char *nulls)
{
	IncetlPlanKey key;
	SPIPlanPtr	plan;

	(void) set_config_option("citus.max_adaptive_executor_pool_size", "1",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	range_key(&key, p, shape, (shape->edge ? 1 << 9 : 0) | 1 << 11);
	plan = incetl_plan_get(&key, shape->stage_fill, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN);
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "incetl: could not fill the stage %s", shape->stage);
	return (int64) SPI_processed;
}

/* the plan of the edge probe of a range batch of this shape */
static SPIPlanPtr
range_edge_plan(IncetlPipeline *p, IncetlBatchShape *shape, int *nargs, Oid *argtypes)
{
	char	   *sql = incetl_sql_range_edge(p, shape, nargs, argtypes);
	IncetlPlanKey key;

	range_key(&key, p, shape, 1 << 10);
	return incetl_plan_get(&key, sql, *nargs, argtypes, 0);
}

/* the canonical text[] literal of key values */
static char *
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
step_load(EngineRun *er)
{
	IncetlRun  *run = &er->run;
	IncetlPipeline *was = run->p;

	run->p = incetl_load_pipeline(run->name, false);
	if (was && was->id != run->p->id)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" was dropped and created again while the %s started",
						run->name, incetl_run_kind_name(run->kind)),
				 errhint("Run it again.")));
	run->strategy = incetl_strategy(run->p);
	if (GetUserNameFromId(run->p->owner, true) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the role that owns pipeline \"%s\" no longer exists", run->name),
				 errhint("A superuser can drop the pipeline and create it again as its new owner.")));
	incetl_check_owner(run->p);
	if (run->kind == RUN_KIND_RUN && !run->p->enabled)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" is disabled", run->name),
				 errhint("Enable it with SELECT incetl.alter_pipeline(%s, enabled => true);",
						 quote_literal_cstr(run->name))));
	incetl_state_read(run->p, &er->state);
	run->wm_before = er->state.watermark;
	run->wm_after = run->wm_before;
}

/* validate, read the cursor */
static void
step_validate(EngineRun *er)
{
	IncetlRun  *run = &er->run;
	IncetlPipeline *p = run->p;

	if (!run->nonatomic && IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline \"%s\" cannot run in a %s transaction", p->name,
						IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errdetail("A snapshot taken before the run could hide rows that the run's watermark then passes."),
				 errhint("Call it outside a transaction block, or in a READ COMMITTED transaction.")));

	incetl_resolve_and_follow(p, false, true);
	incetl_check_privileges(p);
	if (run->strategy->check)
		run->strategy->check(p, false);
	/* columns the source gained since are fine: remember them too */
	if (!incetl_state_shape_unchanged(p, &er->state) &&
		!incetl_state_check_source_shape(p))
		incetl_state_save_source_shape(p);

	incetl_state_cursor(p, &er->state, &run->cursor);
	run->bounded = incetl_is_time_type(p->wm_type);
}

/* a run's keys go to the work table; is this run keyed? */
static bool
run_is_keyed(IncetlRun *run)
{
	return run->kind == RUN_KIND_RECONCILE || run->strategy->keyed;
}

/* the strategy finds what changed: the work table's keys, or the first pass */
static void
step_prepare(EngineRun *er)
{
	IncetlRun  *run = &er->run;
	IncetlPipeline *p = run->p;
	const IncetlStrategyRoutine *strategy = run->strategy;

	run->run_start = GetCurrentTimestamp();
	if (p->hist_qname)
	{
		bool		isnull;

		if (SPI_execute(incetl_sql_history_empty(p), true, 1) != SPI_OK_SELECT)
			elog(ERROR, "incetl: could not look at the history table");
		er->history_empty = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (run->kind == RUN_KIND_BACKFILL && strategy->keyed)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("backfill needs a pipeline with the 'timestamp' strategy"),
				 errhint("Use incetl.reconcile to repair the target of pipeline \"%s\".",
						 p->name)));

	if (run_is_keyed(run))
	{
		/*
		 * A strategy that captures changes compares everything at its first
		 * run, which loads what the source holds once capture is in place;
		 * reconcile always does.
		 */
		run->compare_all = run->kind == RUN_KIND_RECONCILE || !strategy->captures ||
			run->wm_before == NULL;
		if (strategy->prepare)
			strategy->prepare(run);
		if (run->kind == RUN_KIND_RECONCILE)
			incetl_work_fill_compare(run, true);
		else
			strategy->fill_changes(run);
		incetl_work_ready(p, run->work_total);
		/* deparse_keyed_batch: a 'hash' batch on Citus reads the stage */
		if (strategy->stores_hashes && run->work_total > 0 && incetl_stage_qname(p))
			incetl_stage_fill(p, run->work_total);
		run->work_pos = 0;
		run->pass = run->work_total > 0 ? PASS_KEYED :
			run->need_compare ? PASS_COMPARE : PASS_DONE;
	}
	else
		strategy->fill_changes(run);
	run->first_in_pass = true;
	run->have_last = false;
	er->prepared = true;
}

/*
 * The versions a batch opened in the history table (its history_versions
 * column); a 'logical' pipeline's keyed batches open theirs in statements
 * of their own (history_layers, history_settle).
 */
static int64
history_count(EngineRun *er, HeapTuple tup, TupleDesc desc, bool keyed)
{
	bool		isnull;
	int			col;

	if (er->run.p->hist_qname == NULL || (keyed && incetl_history_layers(er->run.p)))
		return 0;
	col = SPI_fnumber(desc, "history_versions");
	if (col <= 0)
		elog(ERROR, "incetl: batch statement has no history_versions");
	return DatumGetInt64(SPI_getbinval(tup, desc, col, &isnull));
}

/*
 * Add a batch's counts (the first four columns of its statement's one row:
 * read, inserted, updated, deleted) to the run's; returns the rows read.
 */
static void count_batch(EngineRun *er, int64 n, int64 ni, int64 nu, int64 nd);

static int64
account_batch(EngineRun *er, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	int64		n = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	int64		ni = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	int64		nu = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	int64		nd = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));

	count_batch(er, n, ni, nu, nd);
	er->run.counts.history_versions += history_count(er, tup, desc,
													 er->run.pass == PASS_KEYED);
	return n;
}

/* a batch read n rows or keys, inserted ni, updated nu, deleted nd */
static void
count_batch(EngineRun *er, int64 n, int64 ni, int64 nu, int64 nd)
{
	IncetlCounts *c = &er->run.counts;

	c->batches++;
	c->extracted += n;
	c->inserted += ni;
	c->updated += nu;
	c->deleted += nd;
	c->unchanged += n - ni - nu - nd;
	if (ni + nu + nd > 0)
		er->wrote_target = er->any_target_write = true;
}

/*
 * Whether a first load's plain INSERT runs through the counted executor
 * path (plancache.c), which needs the plan PostgreSQL itself makes: not
 * where Citus plans it (a Citus source or target).
 */
static bool
fast_load_counted(IncetlPipeline *p, IncetlBatchShape *shape)
{
	return shape->edge && p->hist_qname == NULL && p->tgt_merge_ok &&
		p->src_citus == '\0';
}

/*
 * Run the plain-INSERT statement of a first load; if a key turns up twice
 * (a row that moved while the run read: the unique index says so), undo it
 * and return -1: the batch, and the rest of the run, go the usual way.
 */
static int
execute_fast_load(EngineRun *er, IncetlBatchShape *shape, SPIPlanPtr plan,
				  int nargs, Oid *argtypes, Datum *values, char *nulls)
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
		nest = incetl_begin_batch_settings(er->run.p, false);
		if (fast_load_counted(er->run.p, shape))
		{
			/*
			 * The plain INSERT: its rows read and written, which differ
			 * where a target trigger cancels some
			 */
			int64		nu,
						nd;

			incetl_plan_execute_counted(plan, nargs, argtypes, values, nulls,
										&er->fast_read, &er->fast_inserted, &nu, &nd);
			rc = SPI_OK_INSERT;
		}
		else
			rc = SPI_execute_plan(plan, values, nulls, false, 0);
		incetl_end_batch_settings(nest);
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
		/* the caller redoes the batch the usual way */
		er->run.fast_load = false;
		shape->fast_load = false;
		return -1;
	}
	return rc;
}

/*
 * Keep the last row of a range batch (its watermark wm and key keys[],
 * nulls[]) in the run's memory; it is the next batch's lower bound, and,
 * in the forward pass, the cursor saved with this batch.
 */
static void
remember_last_row(EngineRun *er, Datum wm, Datum *keys, bool *nulls)
{
	IncetlRun  *run = &er->run;
	IncetlPipeline *p = run->p;
	MemoryContext oldcxt = MemoryContextSwitchTo(run->cxt);
	char	  **ktexts;
	char	   *wm_text;
	char	   *keys_text;

	if (run->have_last && !get_typbyval(p->wm_type))
		pfree(DatumGetPointer(run->last_wm));
	run->last_wm = datumCopy(wm, get_typbyval(p->wm_type), get_typlen(p->wm_type));
	if (run->last_keys == NULL)
	{
		run->last_keys = palloc(sizeof(Datum) * p->nkeys);
		run->last_key_nulls = palloc0(sizeof(bool) * p->nkeys);
	}
	for (int i = 0; i < p->nkeys; i++)
	{
		Oid			t = p->keys[i]->src_type;

		/* the previous batch's copy goes */
		if (!run->last_key_nulls[i] && !get_typbyval(t) && run->have_last &&
			DatumGetPointer(run->last_keys[i]) != NULL)
			pfree(DatumGetPointer(run->last_keys[i]));
		run->last_key_nulls[i] = nulls[i];
		run->last_keys[i] = nulls[i] ? (Datum) 0 :
			datumCopy(keys[i], get_typbyval(t), get_typlen(t));
	}
	run->have_last = true;
	MemoryContextSwitchTo(oldcxt);

	if (run->pass != PASS_FORWARD)
		return;

	/* text forms in the batch's memory; only the watermark is kept */
	ktexts = palloc(sizeof(char *) * p->nkeys);
	for (int i = 0; i < p->nkeys; i++)
		ktexts[i] = run->last_key_nulls[i] ? NULL :
			incetl_canonical_text(run->last_keys[i], p->keys[i]->src_type);
	wm_text = incetl_canonical_text(run->last_wm, p->wm_type);
	keys_text = incetl_keys_text(p->nkeys, ktexts, run->last_key_nulls);
	if (run->wm_after != run->wm_before && run->wm_after != er->committed_wm)
		pfree(run->wm_after);
	run->wm_after = MemoryContextStrdup(run->cxt, wm_text);

	/* the watermark moves in the same transaction as the data */
	incetl_state_save_cursor(p, wm_text, keys_text);
}

/*
 * Whether index (of the source) can answer the probe of (watermark, key) >
 * cursor AND watermark < bound itself: a valid btree index, neither partial
 * nor on expressions, whose first columns are the watermark and the key
 * columns in that order, each ascending, through its type's default btree
 * operator class (whose family's operators the probe's statement uses:
 * deparse_cursor_compare; the default class of exactly that input type is
 * the one the type cache finds), of a type without collation.  attnums[]
 * and types[] are the ncols columns'.
 */
static bool
index_fits_probe(Relation index, int ncols, AttrNumber *attnums, Oid *types)
{
	Form_pg_index form = index->rd_index;
	oidvector  *indclass;
	bool		isnull;

	if (index->rd_rel->relam != BTREE_AM_OID || !form->indisvalid ||
		!form->indisready || !form->indislive || form->indcheckxmin ||
		form->indnkeyatts < ncols ||
		!heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) ||
		!heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, NULL))
		return false;
	indclass = (oidvector *) DatumGetPointer(SysCacheGetAttr(INDEXRELID, index->rd_indextuple,
															 Anum_pg_index_indclass,
															 &isnull));
	if (isnull)
		return false;
	for (int i = 0; i < ncols; i++)
	{
		HeapTuple	ctup;
		Form_pg_opclass opc;
		bool		fits;

		if (form->indkey.values[i] != attnums[i] ||
			index->rd_indoption[i] != 0 ||
			OidIsValid(index->rd_indcollation[i]) ||
			OidIsValid(get_typcollation(types[i])) ||
			index->rd_opcintype[i] != types[i])
			return false;
		ctup = SearchSysCache1(CLAOID, ObjectIdGetDatum(indclass->values[i]));
		if (!HeapTupleIsValid(ctup))
			return false;
		opc = (Form_pg_opclass) GETSTRUCT(ctup);
		fits = opc->opcmethod == BTREE_AM_OID && opc->opcdefault &&
			opc->opcintype == types[i] && opc->opcfamily == index->rd_opfamily[i];
		ReleaseSysCache(ctup);
		if (!fits)
			return false;
	}
	return true;
}

/*
 * The probe of range_is_empty through the source's (watermark, key) index
 * itself, without a statement, where it reads what the statement would:
 * the source is a plain table (no child tables, no row security, not
 * Citus's), the range is (watermark, key) > the cursor (no key null) and,
 * for a time watermark, watermark < the late-commit bound of the same
 * type, and an index fits (index_fits_probe).  The scan is what the
 * statement's plan would be, an index scan whose row comparison is the
 * index qual, under a snapshot taken now (as the statement's), in the
 * same step, as the pipeline's owner.  Returns 1 when the range holds a
 * row, 0 when it holds none, -1 when it cannot tell (the statement then
 * probes).  Parsing and planning even that small statement is most of
 * what a run with nothing to do costs in a fresh session.
 */
static int
direct_range_probe(IncetlPipeline *p, IncetlBatchShape *shape, Datum *values,
				   char *nulls)
{
	int			ncols = p->nkeys + 1;
	AttrNumber *attnums;
	Oid		   *types;
	Relation	rel;
	Oid			indexoid = InvalidOid;
	List	   *indexes;
	ListCell   *lc;
	int			found = -1;

	if (p->src_relkind != RELKIND_RELATION || p->src_citus != '\0' ||
		shape->lower != LOWER_AFTER || shape->edge ||
		(shape->upper != UPPER_NONE &&
		 (shape->upper != UPPER_LT || shape->upper_type != p->wm_type)))
		return -1;
	attnums = palloc(sizeof(AttrNumber) * ncols);
	types = palloc(sizeof(Oid) * ncols);
	types[0] = p->wm_type;
	attnums[0] = get_attnum(p->source, p->watermark_column);
	for (int i = 0; i < p->nkeys; i++)
	{
		types[i + 1] = p->keys[i]->src_type;
		attnums[i + 1] = get_attnum(p->source, p->keys[i]->name);
	}
	for (int i = 0; i < ncols; i++)
	{
		if (attnums[i] == InvalidAttrNumber || nulls[i] == 'n')
			return -1;
		if (get_atttype(p->source, attnums[i]) != types[i])
			return -1;
	}

	/*
	 * The statement would need SELECT on the columns it reads: an owner who
	 * lacks it must meet its error, not a scan that needs no privilege.
	 */
	if (pg_class_aclcheck(p->source, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
	{
		for (int i = 0; i < ncols; i++)
			if (pg_attribute_aclcheck(p->source, attnums[i], GetUserId(),
									  ACL_SELECT) != ACLCHECK_OK)
				return -1;
	}

	rel = table_open(p->source, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relhassubclass ||
		rel->rd_rel->relrowsecurity)
	{
		table_close(rel, NoLock);
		return -1;
	}
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		bool		fits = index_fits_probe(index, ncols, attnums, types);

		index_close(index, NoLock);
		if (fits)
		{
			indexoid = lfirst_oid(lc);
			break;
		}
	}
	list_free(indexes);

	if (OidIsValid(indexoid))
	{
		Relation	index = index_open(indexoid, AccessShareLock);
		ScanKeyData *members = palloc0(sizeof(ScanKeyData) * ncols);
		ScanKeyData keys[2];
		int			nkeys = 1;
		Snapshot	snapshot;
		IndexScanDesc scan;
		TupleTableSlot *slot;

		/* (watermark, key...) > cursor, as ExecIndexBuildScanKeys builds it */
		for (int i = 0; i < ncols; i++)
		{
			Oid			opf = index->rd_opfamily[i];
			Oid			cmp = get_opfamily_proc(opf, types[i], types[i], BTORDER_PROC);

			if (!OidIsValid(cmp))
				elog(ERROR, "incetl: no btree comparison for type %u", types[i]);
			ScanKeyEntryInitialize(&members[i],
								   SK_ROW_MEMBER | (i == ncols - 1 ? SK_ROW_END : 0),
								   i + 1, BTGreaterStrategyNumber, types[i],
								   InvalidOid, cmp, values[i]);
		}
		MemSet(&keys[0], 0, sizeof(ScanKeyData));
		keys[0].sk_flags = SK_ROW_HEADER;
		keys[0].sk_attno = 1;
		keys[0].sk_strategy = BTGreaterStrategyNumber;
		keys[0].sk_argument = PointerGetDatum(members);
		if (shape->upper == UPPER_LT)
		{
			Oid			lt = get_opfamily_member(index->rd_opfamily[0], types[0], types[0],
												 BTLessStrategyNumber);

			if (!OidIsValid(lt))
				elog(ERROR, "incetl: no btree < for type %u", types[0]);
			ScanKeyEntryInitialize(&keys[nkeys++], 0, 1, BTLessStrategyNumber, types[0],
								   InvalidOid, get_opcode(lt), values[ncols]);
		}

		/*
		 * a snapshot of its own, as the batch's statement would take, after
		 * the CommandCounterIncrement SPI does before a statement: what the
		 * run's transaction wrote so far is seen as the statement sees it
		 */
		CommandCounterIncrement();
		snapshot = RegisterSnapshot(GetTransactionSnapshot());
		slot = table_slot_create(rel, NULL);
		scan = index_beginscan(rel, index, snapshot, nkeys, 0);
		index_rescan(scan, keys, nkeys, NULL, 0);
		found = index_getnext_slot(scan, ForwardScanDirection, slot) ? 1 : 0;
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		UnregisterSnapshot(snapshot);
		/* the locks are kept to the transaction's end, as a statement's */
		index_close(index, NoLock);
	}
	table_close(rel, NoLock);
	return found;
}

/*
 * Whether the first batch of the forward pass would read nothing: a run
 * with nothing to do (the common case of a frequent schedule) then runs a
 * one-row index probe instead of planning the batch statement, which in a
 * fresh session costs more than everything else the run does.  Not for
 * foreign sources (one more remote round trip) nor a first load.
 */
static bool
range_is_empty(EngineRun *er, IncetlBatchShape *shape, Datum *values, char *nulls,
			   bool fast_load)
{
	IncetlRun  *run = &er->run;
	IncetlPipeline *p = run->p;
	Oid		   *argtypes = palloc(sizeof(Oid) * INCETL_MAX_PARAMS(p));
	IncetlPlanKey key;
	SPIPlanPtr	plan;
	char	   *sql;
	int			nargs;
	int			rc;

	if (!incetl_range_probe_applies(run, fast_load))
		return false;
	rc = direct_range_probe(p, shape, values, nulls);
	if (rc >= 0)
		return rc == 0;
	sql = incetl_sql_range_probe(p, shape, &nargs, argtypes);
	memset(&key, 0, sizeof(key));
	key.pipeline_id = p->id;
	key.kind = PLAN_RANGE_PROBE;
	key.variant = shape->lower | shape->upper << 4;
	key.type1 = shape->lower_type;
	key.type2 = shape->upper_type;
	plan = incetl_plan_get(&key, sql, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN);
	/* a snapshot of its own, as the batch's statement would take */
	rc = SPI_execute_plan(plan, values, nulls, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "incetl: range probe returned %s", SPI_result_code_string(rc));
	return SPI_processed == 0;
}

/*
 * The edge of a range batch whose bounds (shape, values[0..np)) are set:
 * run its probe (deparse_range_edge) and, when the range holds a row, put
 * the edge's (watermark, key) after the bounds and make shape an edge
 * batch.  Returns the number of parameters now set, and in *found whether
 * the range holds a row at all and in *full whether it holds batch_size of
 * them (or more: ties with the edge).  A NULL key in the edge leaves the
 * batch as it was (its row comparison would not say "up to the edge").
 */
static int
probe_edge(EngineRun *er, IncetlBatchShape *shape, Datum *values, char *nulls,
		   int np, bool *found, bool *full)
{
	IncetlPipeline *p = er->run.p;
	Oid		   *argtypes = palloc(sizeof(Oid) * INCETL_MAX_PARAMS(p));
	int			nargs;
	SPIPlanPtr	plan = range_edge_plan(p, shape, &nargs, argtypes);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum	   *edge;
	bool	   *edge_nulls;

	Assert(nargs == np);
	/* a snapshot of its own, as the batch's statement takes right after */
	if (SPI_execute_plan(plan, values, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "incetl: edge probe failed");
	*found = SPI_processed == 1;
	*full = false;
	if (!*found)
		return np;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*full = DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull));
	edge = palloc(sizeof(Datum) * (p->nkeys + 1));
	edge_nulls = palloc(sizeof(bool) * (p->nkeys + 1));
	for (int i = 0; i <= p->nkeys; i++)
	{
		Oid			t = i == 0 ? p->wm_type : p->keys[i - 1]->src_type;

		edge[i] = SPI_getbinval(tup, desc, 2 + i, &edge_nulls[i]);
		if (edge_nulls[i])
			return np;
		edge[i] = datumCopy(edge[i], get_typbyval(t), get_typlen(t));
	}
	for (int i = 0; i <= p->nkeys; i++)
	{
		nulls[np] = ' ';
		values[np++] = edge[i];
	}
	shape->edge = true;
	shape->limit = false;
	return np;
}

/*
 * One batch of a range pass: the strategy names its bounds; run it,
 * account for it, move the cursor.
 *
 * When the strategy says the source has an index on (watermark, key)
 * (run->edges), a probe of that index first finds the batch's last row
 * (its edge), and the batch reads every row between the bounds and the
 * edge: in the physical order of the source, without sorting them or
 * walking the index to their rows one by one, and without materialising
 * them to find the last one (a first load writes them with a plain
 * INSERT).  The rows read are the same as ORDER BY ... FETCH FIRST
 * batch_size ROWS WITH TIES would read: the edge is the batch_size-th row
 * and the range includes its ties.  The cursor saved is the edge, read in
 * the same transaction; no row below the late-commit bound can appear
 * between the probe and the read (every writer that could stamp one has
 * ended before the run's first snapshot), so the cursor is exactly as far
 * as the rows applied.  Without such an index a probe would be a second
 * scan, and the batch reads in order as before.
 */
static void
range_batch(EngineRun *er)
{
	IncetlRun  *run = &er->run;
	IncetlPipeline *p = run->p;
	IncetlBatchShape shape;
	Oid		   *argtypes = palloc(sizeof(Oid) * INCETL_MAX_PARAMS(p));
	Datum	   *values = palloc(sizeof(Datum) * INCETL_MAX_PARAMS(p));
	char	   *nulls = palloc(INCETL_MAX_PARAMS(p));
	int			nargs;
	int			np;
	SPIPlanPtr	plan;
	int			rc;
	int64		n;
	bool		found = true;
	bool		full = false;
	int			nbounds;

	memset(&shape, 0, sizeof(shape));
	memset(nulls, ' ', INCETL_MAX_PARAMS(p));
	shape.limit = true;
	np = run->strategy->range_bounds(run, &shape, values, nulls);
	nbounds = np;
	if (range_is_empty(er, &shape, values, nulls,
					   run->fast_load && run->pass == PASS_FORWARD))
		found = false;
	else if (er->probe_first)
	{
		/* the run's row first (run_locked): nothing done yet */
		er->probe_first = false;
		er->probe_found = true;
		return;
	}
	else if (run->edges)
		np = probe_edge(er, &shape, values, nulls, np, &found, &full);

	er->probe_first = false;
	if (!found)
	{
		/* nothing between the bounds: an empty batch */
		run->counts.batches++;
		run->strategy->range_advance(run, 0);
		return;
	}
	/* before the batch writes (step_batch) */
	if (run->strategy->before_batch == NULL)
		constraints_immediate(run);

	values[np++] = Int64GetDatum(run->run_id);
	if (p->hist_qname)
		values[np++] = TimestampTzGetDatum(run->run_start);
	shape.fast_load = run->fast_load && run->pass == PASS_FORWARD;
	if (!shape.fast_load)
		shape.stage = incetl_tstage_qname(p);
	plan = range_plan(p, &shape, &nargs, argtypes);
	if (shape.stage_fill && shape.edge)
	{
		/* the rows the batch reads, which its copy to the stage tells */
		nulls[np] = ' ';
		values[np++] = Int64GetDatum(0);
	}
	Assert(nargs == np);

	rc = -1;
	if (shape.fast_load)
	{
		/* (a first load that falls back to the usual batch is not staged) */
		rc = execute_fast_load(er, &shape, plan, nargs, argtypes, values, nulls);
		if (rc < 0)
			plan = range_plan(p, &shape, &nargs, argtypes);
	}
	if (rc >= 0)
		;						/* done */
	else if (incetl_range_batch_merges(p, &shape))
	{
		int			nest = incetl_begin_batch_settings(p, false);
		int64		ni,
					nu,
					nd;

		incetl_plan_execute_counted(plan, nargs, argtypes, values, nulls,
								  &n, &ni, &nu, &nd);
		incetl_end_batch_settings(nest);
		count_batch(er, n, ni, nu, nd);
		rc = SPI_OK_MERGE;
	}
	else
	{
		int			nest = incetl_begin_batch_settings(p, false);

		if (shape.stage_fill)
		{
			int64		staged = fill_tstage(p, &shape, nargs, argtypes, values, nulls);

			if (shape.edge)
				values[nargs - 1] = Int64GetDatum(staged);
		}
		rc = SPI_execute_plan(plan, values, nulls, false, 0);
		incetl_end_batch_settings(nest);
	}

	if (rc == SPI_OK_MERGE)
		;						/* counted above */
	else if (rc == SPI_OK_INSERT && shape.fast_load && shape.edge && !p->hist_qname)
	{
		/*
		 * A plain INSERT: the rows it read, and those it wrote (counted
		 * through the executor; where that cannot be, a Citus target, SPI's
		 * count of the rows written)
		 */
		if (!fast_load_counted(p, &shape))
			er->fast_read = er->fast_inserted = (int64) SPI_processed;
		n = er->fast_read;
		run->counts.batches++;
		run->counts.extracted += n;
		run->counts.inserted += er->fast_inserted;
		run->counts.unchanged += n - er->fast_inserted;
		if (er->fast_inserted > 0)
			er->wrote_target = er->any_target_write = true;
	}
	else
	{
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "incetl: batch statement returned %s",
				 SPI_result_code_string(rc));
		n = account_batch(er, SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	}

	if (shape.edge)
	{
		bool	   *key_nulls = palloc0(sizeof(bool) * p->nkeys);

		/* the range up to the edge is done, whatever it held by now */
		remember_last_row(er, values[nbounds], &values[nbounds + 1], key_nulls);
		/* more rows may follow the edge of a full batch */
		if (full && n < p->batch_size)
			n = p->batch_size;
	}
	else if (n > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		wm;
		Datum	   *keys = palloc(sizeof(Datum) * p->nkeys);
		bool	   *key_nulls = palloc(sizeof(bool) * p->nkeys);
		bool		isnull;

		/* columns 5.. of its result: the last row's watermark and key */
		wm = SPI_getbinval(tup, desc, 5, &isnull);
		for (int i = 0; i < p->nkeys; i++)
			keys[i] = SPI_getbinval(tup, desc, 6 + i, &key_nulls[i]);
		remember_last_row(er, wm, keys, key_nulls);
	}

	/* the stage is empty again at every commit */
	if (shape.stage_fill)
	{
		IncetlPlanKey key;

		range_key(&key, p, &shape, 1 << 12);
		if (SPI_execute_plan(incetl_plan_get(&key, psprintf("DELETE FROM %s", shape.stage),
											 0, NULL, 0),
							 NULL, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "incetl: could not empty the stage %s", shape.stage);
	}
	run->strategy->range_advance(run, n);
}

/* the last batch of a keyed or compare pass was applied */
static void
pass_done(IncetlRun *run, IncetlPass pass)
{
	if (run->strategy->pass_done)
		run->strategy->pass_done(run, pass);
	run->pass = pass == PASS_KEYED && run->need_compare ? PASS_COMPARE : PASS_DONE;
}

/*
 * $1..$4 of the statements over one batch of the work table: rows rn in
 * ($1, $2], the run id, the run's start.
 */
static void
keyed_batch_params(IncetlRun *run, Datum *values)
{
	values[0] = Int64GetDatum(run->work_pos);
	values[1] = Int64GetDatum(run->work_pos + run->p->batch_size);
	values[2] = Int64GetDatum(run->run_id);
	values[3] = TimestampTzGetDatum(run->run_start);
}

/*
 * 'logical' history (SPEC 5): before a keyed batch's statement, in its
 * transaction, the versions its keys' decoded changes committed, one
 * transaction of each key at a time (deparse_history_layer), in commit
 * order.  A batch of keys a comparison found has none.  Returns the
 * versions opened.
 */
static int64
history_layers(EngineRun *er)
{
	IncetlRun  *run = &er->run;
	IncetlPipeline *p = run->p;
	Oid			argtypes[5] = {INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID};
	Datum		values[5];
	IncetlPlanKey key;
	SPIPlanPtr	plan;
	int64		opened = 0;

	memset(&key, 0, sizeof(key));
	key.pipeline_id = p->id;
	key.kind = PLAN_HISTORY_LAYER;
	plan = incetl_plan_get(&key, incetl_sql_history_layer(p), 5, argtypes, 0);
	keyed_batch_params(run, values);
	for (int64 layer = 1;; layer++)
	{
		bool		isnull;
		int64		keys;

		CHECK_FOR_INTERRUPTS();
		values[4] = Int64GetDatum(layer);
		if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "incetl: history layer failed");
		keys = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										   1, &isnull));
		if (keys == 0)
			break;
		opened += DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											  2, &isnull));
	}
	return opened;
}

/*
 * 'logical' history, after a keyed batch's statement, in its transaction:
 * the current versions of its keys become what the target holds where
 * the layers left them otherwise (deparse_history_settle).  Returns the
 * versions opened.
 */
static int64
history_settle(EngineRun *er)
{
	IncetlRun  *run = &er->run;
	IncetlPipeline *p = run->p;
	Oid			argtypes[4] = {INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID};
	Datum		values[4];
	IncetlPlanKey key;
	SPIPlanPtr	plan;
	bool		isnull;
	int			nest;
	int			rc;

	memset(&key, 0, sizeof(key));
	key.pipeline_id = p->id;
	key.kind = PLAN_HISTORY_SETTLE;
	plan = incetl_plan_get(&key, incetl_sql_history_settle(p), 4, argtypes, 0);
	keyed_batch_params(run, values);
	/* the target and the history by key, as the batch's statement */
	nest = incetl_begin_batch_settings(p, true);
	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	incetl_end_batch_settings(nest);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "incetl: history settle failed");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									   &isnull));
}

/* one batch of keys from the work table */
static void
keyed_batch(EngineRun *er)
{
	IncetlRun  *run = &er->run;
	IncetlPipeline *p = run->p;
	Oid			argtypes[4];
	Datum		values[4];
	int			nargs;
	SPIPlanPtr	plan;
	int			rc;
	IncetlPlanKey key;
	char	   *sql;
	int64		opened = 0;

	sql = incetl_sql_keyed_batch(p, run->strategy->stores_hashes, run->work_rows_only,
								 &nargs, argtypes);
	memset(&key, 0, sizeof(key));
	key.pipeline_id = p->id;
	key.kind = PLAN_KEYED_BATCH;
	key.variant = (run->strategy->stores_hashes ? 1 : 0) | (run->work_rows_only ? 2 : 0);
	plan = incetl_plan_get(&key, sql, nargs, argtypes, 0);
	keyed_batch_params(run, values);
	if (incetl_keyed_batch_merges(p, run->strategy->stores_hashes))
	{
		/* one MERGE, which joins each key of the batch once (no history) */
		int			nest = incetl_begin_batch_settings(p, true);
		int64		n,
					ni,
					nu,
					nd;

		incetl_plan_execute_counted(plan, nargs, argtypes, values, NULL,
								  &n, &ni, &nu, &nd);
		incetl_end_batch_settings(nest);
		count_batch(er, n, ni, nu, nd);
	}
	else
	{
		int			nest;

		if (run->kind == RUN_KIND_RUN && incetl_history_layers(p))
			opened = history_layers(er);
		nest = incetl_begin_batch_settings(p, true);
		rc = SPI_execute_plan(plan, values, NULL, false, 0);
		incetl_end_batch_settings(nest);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "incetl: keyed batch returned %s", SPI_result_code_string(rc));
		(void) account_batch(er, SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
		if (incetl_history_layers(p))
			opened += history_settle(er);
		run->counts.history_versions += opened;
		if (opened > 0)
			er->wrote_target = er->any_target_write = true;
	}

	run->work_pos += p->batch_size;
	if (run->work_pos >= run->work_total)
		pass_done(run, PASS_KEYED);
}

/* one batch of target keys gone from the source */
static void
compare_batch(EngineRun *er)
{
	IncetlRun  *run = &er->run;
	IncetlPipeline *p = run->p;
	Oid			argtypes[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];
	int			rc;
	bool		isnull;
	int64		nd;
	IncetlPlanKey key;
	SPIPlanPtr	plan;
	int			nest;

	memset(&key, 0, sizeof(key));
	key.pipeline_id = p->id;
	key.kind = PLAN_COMPARE_DELETES;
	plan = incetl_plan_get(&key, incetl_sql_compare_deletes(p, false),
						   p->hist_qname ? 2 : 1, argtypes, 0);
	values[0] = Int64GetDatum(run->run_id);
	values[1] = TimestampTzGetDatum(run->run_start);

	/*
	 * An anti-join of the whole target against the whole source: hashing is
	 * what it should do, so joins keep their choice; but JIT compiling it
	 * costs more than it saves, and its hash tables should stay in memory.
	 */
	nest = NewGUCNestLevel();
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (work_mem < 32 * 1024)
		(void) set_config_option("work_mem", "32MB", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	incetl_end_batch_settings(nest);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "incetl: compare deletes returned %s", SPI_result_code_string(rc));
	nd = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									 1, &isnull));
	run->counts.batches++;
	run->counts.deleted += nd;
	run->counts.history_versions += history_count(er, SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, false);
	if (nd > 0)
		er->wrote_target = er->any_target_write = true;
	if (nd < p->batch_size)
		pass_done(run, PASS_COMPARE);
}

/* SET CONSTRAINTS ALL IMMEDIATE, when the run commits per batch (step_batch) */
static void
constraints_immediate(IncetlRun *run)
{
	if (run->nonatomic &&
		SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "incetl: SET CONSTRAINTS failed");
}

static void
step_batch(EngineRun *er)
{
	IncetlRun  *run = &er->run;

	/* a run's and a backfill's batches never apply concurrently (lock.c) */
	incetl_lock_wait(run->p->id, INCETL_LOCK_APPLY, ExclusiveLock);

	/*
	 * Deferred triggers of the target (a deferrable foreign key, say) must
	 * fire while we are still the owner: at COMMIT they would fire as the
	 * caller, which is why PostgreSQL refuses to queue them inside a
	 * security-restricted operation.  A batch has its own transaction when
	 * the run commits per batch, so checking them at the end of its
	 * statement is what COMMIT would have done.  Inside the caller's
	 * transaction block they stay deferred, and such a target fails with
	 * PostgreSQL's "cannot fire deferred trigger" error.  A range batch
	 * does it once it knows it has rows (range_batch): one that finds none
	 * writes nothing.
	 */
	if (run->strategy->before_batch || run->pass == PASS_KEYED ||
		run->pass == PASS_COMPARE)
		constraints_immediate(run);

	if (run->strategy->before_batch)
		run->strategy->before_batch(run);
	switch (run->pass)
	{
		case PASS_KEYED:
			keyed_batch(er);
			break;
		case PASS_COMPARE:
			compare_batch(er);
			break;
		default:
			range_batch(er);
			break;
	}
	if (run->strategy->after_batch)
		run->strategy->after_batch(run);
}

/*
 * Reconcile, after its keyed pass (and a run that found the history table
 * empty, after its last batch): repair the history table's current
 * versions against the target, which now equals the source
 * (deparse_history_repair), in the last batch's transaction.
 */
static void
step_history_repair(EngineRun *er)
{
	IncetlRun  *run = &er->run;
	Oid			argtypes[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		isnull;
	int64		opened;

	incetl_lock_wait(run->p->id, INCETL_LOCK_APPLY, ExclusiveLock);
	values[0] = Int64GetDatum(run->run_id);
	values[1] = TimestampTzGetDatum(run->run_start);
	if (SPI_execute_with_args(incetl_sql_history_repair(run->p), 2, argtypes, values,
							  NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "incetl: history repair failed");
	opened = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										 1, &isnull));
	run->counts.history_versions += opened;
	er->wrote_target = er->any_target_write = true;
}

/* a run's strategy steps, as protected steps */
static void
step_begin_run(EngineRun *er)
{
	er->run.strategy->begin_run(&er->run);
}

static void
step_finish_run(EngineRun *er)
{
	er->run.strategy->finish_run(&er->run);
}

static void
step_after_commit(EngineRun *er)
{
	er->run.strategy->after_commit(&er->run);
}

/* the run's temporary work table */
static void
step_work_table(EngineRun *er)
{
	er->work_relid = incetl_work_create(er->run.p);
}

/*
 * The OID stays known: a failed final commit rolls the drop back, and the
 * work table must then be dropped again.
 */
static void
step_drop_work_table(EngineRun *er)
{
	incetl_work_drop(er->work_relid);
}

/*
 * Drop the work table, if the run made one; the run's outcome is already
 * known, so a failure to drop it changes nothing (it is a temporary table).
 */
static void
drop_work(EngineRun *er)
{
	ErrorData  *cleanup_error;

	if (!OidIsValid(er->work_relid))
		return;
	cleanup_error = protected_step(er, step_drop_work_table, AS_CALLER);
	if (cleanup_error)
		FreeErrorData(cleanup_error);
}

/*
 * The run's estimate of the rows it will read, from which incetl.status
 * shows its progress: the keys a keyed run found, or the source's size
 * (its statistics) for a first load.  Unknown otherwise, and not written.
 */
static void
log_estimate(IncetlRun *run)
{
	int64		rows = -1;

	if (run_is_keyed(run))
		rows = run->work_total;
	else if (run->kind == RUN_KIND_RUN && !run->cursor.valid)
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(run->p->source));

		if (HeapTupleIsValid(tup))
		{
			rows = (int64) ((Form_pg_class) GETSTRUCT(tup))->reltuples;
			ReleaseSysCache(tup);
		}
	}
	if (rows > 0)
		incetl_log_estimate(run->run_id, rows);
}

/*
 * The part of a run that holds the pipeline's lock.
 */
static ErrorData *
run_locked(EngineRun *er)
{
	IncetlRun  *run = &er->run;
	ErrorData  *edata;
	const char *name = run->name;
	IncetlRunKind kind = run->kind;
	bool		begin;
	bool		is_run = kind == RUN_KIND_RUN;

	/* what we read before the lock may have changed since: read again */
	edata = protected_step(er, step_load, AS_CALLER);
	if (edata)
		return edata;

	/*
	 * What a strategy does before the run writes (create a slot) happens
	 * inside a transaction block before the run_log row; else in the
	 * transaction that follows its commit, so that the run shows as running
	 * meanwhile.
	 */
	begin = is_run && run->strategy->begin_run != NULL;
	if (begin && !run->nonatomic)
		edata = protected_step(er, step_begin_run, AS_OWNER);

	/* also closes out interrupted runs and prunes old rows */
	run->run_id = incetl_log_begin_run(run->p, name, kind, run->wm_before);
	run->wm_after = run->wm_before;

	/*
	 * Committed per batch, others see the run as running from its start,
	 * except across the probe that tells a timestamp run with nothing to do
	 * (a frequent schedule's common case), which then writes its row once,
	 * at its end (show_run_row).
	 */
	er->probe_first = run->nonatomic && kind == RUN_KIND_RUN &&
		!run->strategy->keyed && run->wm_before != NULL;
	if (run->nonatomic && !er->probe_first)
		(void) incetl_log_running(run->run_id);
	commit_if(er);

	/*
	 * In a fresh transaction with no snapshot yet: every transaction that
	 * started below the bound has ended before any snapshot of this run
	 * is taken.
	 */
	run->bound = incetl_late_commit_bound();

	if (begin && run->nonatomic)
		edata = protected_step(er, step_begin_run, AS_OWNER);
	if (edata == NULL)
		edata = protected_step(er, step_validate, AS_OWNER);
	if (edata == NULL && run_is_keyed(run))
		edata = protected_step(er, step_work_table, AS_OWNER_TEMP);
	if (edata == NULL)
		edata = protected_step(er, step_prepare, AS_OWNER);
	if (edata == NULL)
		log_estimate(run);
	while (edata == NULL && run->pass != PASS_DONE)
	{
		CHECK_FOR_INTERRUPTS();
		/* only a range batch probes */
		if (run->pass == PASS_KEYED || run->pass == PASS_COMPARE)
			er->probe_first = false;
		show_run_row(er);
		edata = protected_step(er, step_batch, AS_OWNER);
		if (edata == NULL && er->probe_found)
		{
			/* the probe found rows: the batch again, once the row is shown */
			er->probe_found = false;
			continue;
		}
		/* the last batch commits with the run's end, below */
		if (edata == NULL && run->pass != PASS_DONE)
		{
			/* in the batch's memory, reset with the next batch */
			MemoryContextSwitchTo(er->batch_cxt);
			incetl_log_progress(run->run_id, &run->counts, run->wm_after);
			edata = commit_or_error(er);
			MemoryContextSwitchTo(run->cxt);
		}
	}

	/*
	 * Reconcile repairs the history's current versions; so does the first
	 * run that finds the history table empty (a first load, or a history
	 * table just given to a pipeline): rows the target already held and
	 * the run did not write get their versions too.
	 */
	if (edata == NULL && run->p->hist_qname &&
		(kind == RUN_KIND_RECONCILE || er->history_empty))
		edata = protected_step(er, step_history_repair, AS_OWNER);

	if (edata == NULL && is_run && run->strategy->finish_run)
	{
		edata = protected_step(er, step_finish_run, AS_OWNER);
		if (edata == NULL && run->strategy->captures)
			run->wm_after = incetl_canonical_text(TimestampTzGetDatum(run->run_start),
												  TIMESTAMPTZOID);
	}

	drop_work(er);

	if (edata)
	{
		/* the generated statement is no help to the reader: say where */
		MemoryContextSwitchTo(run->cxt);
		edata->context = er->prepared ?
			psprintf("incetl %s of pipeline \"%s\", batch %d",
					 incetl_run_kind_name(kind), name, run->counts.batches + 1) :
			psprintf("incetl %s of pipeline \"%s\", before the first batch",
					 incetl_run_kind_name(kind), name);
		edata->internalquery = NULL;
		edata->internalpos = 0;
		incetl_log_finish(run->run_id, "failed", &run->counts, run->wm_after,
						  edata->message);
	}
	else
		incetl_log_finish(run->run_id, "succeeded", &run->counts, run->wm_after,
						  NULL);
	/* the outcome of a run that moved data is worth a flush */
	er->wrote_target = er->wrote_target || er->any_target_write;
	if (edata == NULL)
	{
		/* the last batch commits here: its deferred checks fire now */
		edata = commit_or_error(er);
		if (edata)
		{
			edata->context = psprintf("incetl %s of pipeline \"%s\", at the commit of batch %d",
									  incetl_run_kind_name(kind), name,
									  run->counts.batches + 1);
			incetl_log_finish(run->run_id, "failed", &run->counts, run->wm_after,
							  edata->message);
			/* the rollback brought the work table back */
			drop_work(er);
			commit_if(er);
		}
	}
	else
		commit_if(er);

	/*
	 * Only now, with the run committed, what must follow its commit (confirm
	 * a slot).  In a transaction block the caller may still roll back, so
	 * that waits for the next run.
	 */
	if (edata == NULL && run->nonatomic && is_run && run->strategy->after_commit)
	{
		ErrorData  *after_error = protected_step(er, step_after_commit, AS_OWNER);

		/* the next run does it: nothing is lost, the run succeeded */
		if (after_error)
		{
			ereport(WARNING,
					(errcode(after_error->sqlerrcode),
					 errmsg("pipeline \"%s\": %s", name, after_error->message),
					 errdetail("The run succeeded; the next run finishes this step.")));
			FreeErrorData(after_error);
		}
		commit_if(er);
	}
	return edata;
}

/*
 * Run a pipeline.  Returns NULL on success (or when skipped), else the
 * error, after recording it in run_log; the error and all the run's memory
 * live in cxt.  Must be called inside an SPI connection (non-atomic when
 * nonatomic).  args, when given, holds the backfill's bounds.
 */
ErrorData *
incetl_run_pipeline(const char *name, bool nonatomic, IncetlRunKind kind,
					const IncetlRun *args, MemoryContext cxt)
{
	EngineRun  *er;
	IncetlRun  *run;
	ErrorData  *volatile edata = NULL;
	IncetlLockKind lock = kind == RUN_KIND_BACKFILL ? INCETL_LOCK_BACKFILL : INCETL_LOCK_RUN;
	int32		id;
	MemoryContext oldcxt;

	oldcxt = MemoryContextSwitchTo(cxt);
	er = palloc0(sizeof(EngineRun));
	run = &er->run;
	if (args)
		memcpy(run, args, sizeof(IncetlRun));
	run->cxt = cxt;
	run->name = pstrdup(name);
	run->kind = kind;
	run->nonatomic = nonatomic;

	edata = protected_step(er, step_load, AS_CALLER);
	if (edata)
	{
		MemoryContextSwitchTo(oldcxt);
		return edata;
	}

	/*
	 * Outside a transaction block the run commits per batch and holds its
	 * lock across those commits; inside one, until that transaction ends.
	 */
	id = run->p->id;
	if (!incetl_lock_try(id, lock, nonatomic))
	{
		incetl_log_skipped(run->p, name, kind, run->wm_before);
		commit_if(er);
		ereport(NOTICE,
				(errmsg("pipeline \"%s\" is already running, %s skipped", name,
						incetl_run_kind_name(kind)),
				 errdetail("Another session holds the pipeline's lock.")));
		MemoryContextSwitchTo(oldcxt);
		return NULL;
	}

	PG_TRY();
	{
		edata = run_locked(er);
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
