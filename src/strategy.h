/*-------------------------------------------------------------------------
 *
 * strategy.h
 *	  The seam between "what changed" (a strategy) and "apply it" (the
 *	  engine).
 *
 * A strategy is one file that fills in an IncetlStrategyRoutine, the way a
 * table access method fills in a TableAmRoutine: the engine (engine.c),
 * create/alter/drop (pipeline.c) and preview call these callbacks without
 * knowing which strategy they hold.  A NULL callback means "nothing to do".
 * Adding a strategy means writing its file and adding one line to the
 * table in strategy.c.
 *
 * A run's change set takes one of two forms:
 *	- keyed: the strategy fills the run's work table with the keys that
 *	  changed (rows numbered 1..n, with an op); the engine applies them a
 *	  batch of numbers at a time, reading each key's current source row.
 *	- range: the strategy names bounds on (watermark, key) and the engine
 *	  reads and applies the source rows between them, a batch at a time, in
 *	  that order.  Only the 'timestamp' strategy works this way.
 * Reconcile is always keyed, whatever the strategy: the engine fills the
 * work table by comparing the whole source with the whole target.
 *
 * src/strategy.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef INCETL_STRATEGY_H
#define INCETL_STRATEGY_H

#include "access/xlogdefs.h"
#include "catalog/pg_class.h"
#include "incetl.h"

/* the passes of a run, in order */
typedef enum IncetlPass
{
	PASS_LOOKBACK,				/* range: re-read [cursor - lookback, cursor] */
	PASS_FORWARD,				/* range: read above the cursor, move it */
	PASS_BACKFILL,				/* range: read [start, end) chunk by chunk */
	PASS_KEYED,					/* keyed: apply the keys of the work table */
	PASS_COMPARE,				/* delete target keys gone from the source */
	PASS_DONE
} IncetlPass;

/*
 * One run (or backfill, or reconcile) of one pipeline: what the engine and
 * the strategy share.  Lives in the run's memory context (cxt), which
 * outlives the run's commits.
 */
typedef struct IncetlRun
{
	const char *name;
	IncetlPipeline *p;
	const struct IncetlStrategyRoutine *strategy;
	IncetlRunKind kind;
	bool		nonatomic;		/* commits after every batch */
	int64		run_id;
	IncetlCounts counts;
	MemoryContext cxt;
	TimestampTz run_start;

	IncetlCursor cursor;		/* saved cursor at the start */
	char	   *wm_before;		/* as stored */
	char	   *wm_after;		/* canonical */
	bool		bounded;		/* the late-commit bound applies */
	TimestampTz bound;

	IncetlPass	pass;
	bool		first_in_pass;

	/* range passes: the last row of the previous batch */
	bool		fast_load;		/* first load into an empty target */
	bool		edges;			/* batches end at a probed edge (engine.c) */
	bool		have_last;
	Datum		last_wm;
	Datum	   *last_keys;
	bool	   *last_key_nulls;

	/* backfill: [bf_start, bf_end) in chunks */
	Oid			bf_type;		/* TIMESTAMPTZOID or INT8OID */
	Datum		bf_start;
	Datum		bf_end;
	Interval   *bf_chunk_iv;
	int64		bf_chunk_int;
	Datum		chunk_lo;
	Datum		chunk_hi;
	Datum		bf_after_nobegin;	/* first row after those at -infinity */

	/* keyed passes: rows (work_pos, work_total] of the work table are left */
	bool		compare_all;	/* the strategy cannot tell what changed */
	int64		work_pos;
	int64		work_total;
	bool		need_compare;	/* then delete target keys the source lacks */
	bool		work_rows_only; /* 'logical': every work table row has its
								 * decoded row (incetl_sql_keyed_batch) */

	void	   *private;		/* the strategy's own state */
} IncetlRun;

/* what preview shows: a query of (op text, key jsonb) and its parameters */
typedef struct IncetlPreview
{
	IncetlPipeline *p;
	IncetlCursor cursor;
	char	   *sql;
	int			nargs;
	Oid		   *argtypes;
	Datum	   *values;
	char	   *nulls;
} IncetlPreview;

/* what explain shows: the next run's statements, with their parameters */
typedef struct IncetlExplain
{
	IncetlPipeline *p;
	IncetlCursor cursor;
	List	   *statements;		/* IncetlExplainStatement * */
} IncetlExplain;

typedef enum IncetlExplainKind
{
	EXPLAIN_PLAIN,			/* planned with the session's settings */
	EXPLAIN_RANGE_BATCH,		/* a batch of a range pass */
	EXPLAIN_KEYED_BATCH			/* a batch of the work table's keys */
} IncetlExplainKind;

typedef struct IncetlExplainStatement
{
	const char *step;
	IncetlExplainKind kind;		/* the settings the run plans it with */
	char	   *sql;
	int			nargs;
	Oid		   *argtypes;
	Datum	   *values;
	char	   *nulls;
} IncetlExplainStatement;

typedef struct IncetlStrategyRoutine
{
	const char *name;

	/* changes come as keys in the work table (else as watermark ranges) */
	bool		keyed;

	/*
	 * Changes are captured from the moment the pipeline exists (trigger,
	 * logical): the first run compares the whole source with the target,
	 * the watermark is the start of the last run, and the source and key
	 * cannot change.
	 */
	bool		captures;

	/* the engine keeps the hash of every applied row (hash) */
	bool		stores_hashes;

	/*
	 * Options and objects this strategy needs, on a resolved pipeline: at
	 * create and alter time (at_create) and at each run.  Privileges are
	 * checked as the current user.
	 */
	void		(*check) (IncetlPipeline *p, bool at_create);

	/* create_pipeline: the strategy's objects (hash state, queue, triggers) */
	void		(*setup) (IncetlPipeline *p);

	/* drop_pipeline: remove them */
	void		(*teardown) (IncetlPipeline *p);

	/* alter_pipeline changed what stored state means: start it afresh */
	void		(*reset) (IncetlPipeline *p);

	/* a run, before it writes anything (a slot cannot be made after) */
	void		(*begin_run) (IncetlRun *run);

	/*
	 * Keyed runs and reconciles, before the change set is filled: put
	 * capture in place; set run->compare_all when changes may have been
	 * missed.
	 */
	void		(*prepare) (IncetlRun *run);

	/*
	 * Fill the run's change set: keyed strategies number keys into the work
	 * table (run->work_total; what a full compare against the target finds
	 * first when run->compare_all), range strategies choose their first
	 * pass.  Not called for reconcile.  As the pipeline's owner.
	 */
	void		(*fill_changes) (IncetlRun *run);

	/*
	 * Range strategies: the bounds of the next batch (shape and parameters;
	 * returns how many parameters it set, the engine adds the run id), and
	 * what comes after a batch that read nread rows (run->pass).
	 */
	int			(*range_bounds) (IncetlRun *run, IncetlBatchShape *shape,
								 Datum *values, char *nulls);
	void		(*range_advance) (IncetlRun *run, int64 nread);

	/* in each batch's transaction, around its statement */
	void		(*before_batch) (IncetlRun *run);
	void		(*after_batch) (IncetlRun *run);

	/* the last batch of the keyed (or compare) pass was applied */
	void		(*pass_done) (IncetlRun *run, IncetlPass pass);

	/* after the last batch, in its transaction */
	void		(*finish_run) (IncetlRun *run);

	/* after the run's last commit (outside a transaction block only) */
	void		(*after_commit) (IncetlRun *run);

	/*
	 * Preview: set pv->sql to the query of (op, key) the next run would
	 * apply, with its parameters.  As the pipeline's owner.
	 */
	void		(*preview) (IncetlPreview *pv);

	/*
	 * Explain: add (incetl_explain_add) the statements that fill the next
	 * run's change set, or, for a range strategy, every statement of its
	 * first batches.  Writes nothing.  As the pipeline's owner.
	 */
	void		(*explain) (IncetlExplain *ex);
} IncetlStrategyRoutine;

/* strategy.c */
extern const IncetlStrategyRoutine *incetl_strategy_by_name(const char *name);
extern const IncetlStrategyRoutine *incetl_strategy(IncetlPipeline *p);
extern IncetlPipeline *incetl_load_owned_pipeline(const char *name);

/* changeset.c: the work table of a keyed change set */
extern Oid	incetl_work_create(IncetlPipeline *p);
extern void incetl_work_drop(Oid relid);
extern void incetl_work_fill_compare(IncetlRun *run, bool against_target);
extern void incetl_work_ready(IncetlPipeline *p, int64 rows);
extern void incetl_stage_fill(IncetlPipeline *p, int64 rows);
extern void incetl_preview_keyed(IncetlPreview *pv, const char *keys_sql,
								 bool truncated);

/* the strategies */
extern const IncetlStrategyRoutine incetl_timestamp_strategy;
extern const IncetlStrategyRoutine incetl_hash_strategy;
extern const IncetlStrategyRoutine incetl_trigger_strategy;
extern const IncetlStrategyRoutine incetl_logical_strategy;

/* strategy_logical.c: what CALL incetl.guard() finds of a pipeline's slot */
typedef enum IncetlSlotCheck
{
	SLOT_HEALTHY,				/* within the limit, or no limit */
	SLOT_NONE,					/* no slot */
	SLOT_LOST,					/* invalidated */
	SLOT_NOT_OURS,				/* its name is taken by something else */
	SLOT_OVER_LIMIT,			/* over max_retained_wal (not dropped) */
	SLOT_IN_USE,				/* over it, but a session is using it */
	SLOT_DROPPED				/* over it, and dropped */
} IncetlSlotCheck;

extern IncetlSlotCheck incetl_logical_check_slot(int32 pipeline_id, const char *stored,
												 int64 limit, bool drop, int64 *retained);

/* add a statement to what explain shows */
static inline void
incetl_explain_add(IncetlExplain *ex, const char *step, IncetlExplainKind kind,
				   char *sql, int nargs, Oid *argtypes, Datum *values, char *nulls)
{
	IncetlExplainStatement *st = palloc0(sizeof(IncetlExplainStatement));

	st->step = step;
	st->kind = kind;
	st->sql = sql;
	st->nargs = nargs;
	st->argtypes = argtypes;
	st->values = values;
	st->nulls = nulls;
	ex->statements = lappend(ex->statements, st);
}

/*
 * Whether the engine first probes a range batch for emptiness (one row of
 * the range, instead of planning the batch): the forward pass's first
 * batch, but not a first load nor a foreign source (one more remote round
 * trip).  The engine and explain both ask here.
 */
static inline bool
incetl_range_probe_applies(IncetlRun *run, bool fast_load)
{
	return run->pass == PASS_FORWARD && run->first_in_pass && !fast_load &&
		run->p->src_relkind != RELKIND_FOREIGN_TABLE;
}

#endif							/* INCETL_STRATEGY_H */
