/*-------------------------------------------------------------------------
 *
 * strategy_timestamp.c
 *	  The 'timestamp' strategy: changes are the source rows whose
 *	  (watermark, key) lies above the saved cursor.
 *
 * Its change set is a range, not a set of keys: the engine reads and
 * applies the rows between the bounds this file names, a batch at a time in
 * (watermark, key) order, and saves the cursor (the last row's watermark
 * and key) with each batch.  A run makes up to three passes: the lookback
 * (re-read [cursor - lookback, cursor], for rows that arrived late), the
 * forward pass (above the cursor, below the late-commit bound), and, with
 * delete_detection 'compare', the compare pass (target keys the source
 * lacks).  A backfill makes one pass over [start, end), chunk by chunk.
 *
 * The bounds of a batch are built by incetl_range_bounds() for runs,
 * backfills and previews alike.
 *
 * src/strategy_timestamp.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "strategy.h"

static bool
has_lookback(IncetlPipeline *p)
{
	return p->lookback->month != 0 || p->lookback->day != 0 || p->lookback->time != 0;
}

static void
timestamp_check(IncetlPipeline *p, bool at_create)
{
	if (p->watermark_column == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("pipeline \"%s\" needs a watermark_column", p->name),
				 errhint("The 'timestamp' strategy reads rows by a timestamp, date or integer column of the source; name it with watermark_column, or choose the 'hash' strategy.")));
}

/* the first and last watermark of the rows in [lo, end); false: none */
static bool
backfill_rows_range(IncetlRun *run, Datum lo, Datum *first, Datum *last)
{
	Oid			argtypes[2] = {run->bf_type, run->bf_type};
	Datum		values[2] = {lo, run->bf_end};
	bool		isnull;

	if (SPI_execute_with_args(incetl_sql_backfill_range(run->p, run->bf_type), 2,
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
clamp_backfill_range(IncetlRun *run)
{
	Datum		first;
	Datum		last;

	if (!backfill_rows_range(run, run->bf_start, &first, &last))
		return false;
	/* both int64 (microseconds or integers); last < end: no overflow */
	run->bf_start = first;
	run->bf_end = Int64GetDatum(DatumGetInt64(last) + 1);
	run->bf_after_nobegin = run->bf_end;
	if (run->bf_type == TIMESTAMPTZOID &&
		TIMESTAMP_IS_NOBEGIN(DatumGetTimestampTz(first)) &&
		backfill_rows_range(run, TimestampTzGetDatum(DT_NOBEGIN + 1), &first, &last))
		run->bf_after_nobegin = first;
	return true;
}

/*
 * Whether batches may end at a probed edge (engine.c, range_batch): the
 * source is a local table (or materialized view, or partitioned table)
 * with a valid btree index that leads with the watermark column, as the
 * README asks for, so the probe is an index scan.  A view or a foreign
 * table reads its batches in order, as one statement each.
 */
static bool
edges_apply(IncetlPipeline *p)
{
	Relation	rel;
	List	   *indexes;
	ListCell   *lc;
	AttrNumber	wm_att;
	bool		found = false;

	if (p->src_relkind != RELKIND_RELATION && p->src_relkind != RELKIND_MATVIEW &&
		p->src_relkind != RELKIND_PARTITIONED_TABLE)
		return false;
	wm_att = get_attnum(p->source, p->watermark_column);
	if (wm_att == InvalidAttrNumber)
		return false;
	rel = relation_open(p->source, AccessShareLock);
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ind = idx->rd_index;

		found = idx->rd_rel->relam == BTREE_AM_OID && ind->indisvalid &&
			ind->indnkeyatts >= 1 && ind->indkey.values[0] == wm_att &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL);
		index_close(idx, AccessShareLock);
		if (found)
			break;
	}
	list_free(indexes);
	relation_close(rel, AccessShareLock);
	return found;
}

/* choose the first pass; a first load into an empty target needs no compare */
static void
timestamp_fill_changes(IncetlRun *run)
{
	IncetlPipeline *p = run->p;

	run->edges = edges_apply(p);

	if (run->kind == RUN_KIND_BACKFILL)
	{
		if (run->bf_type == TIMESTAMPTZOID && !incetl_is_time_type(p->wm_type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("watermark column \"%s\" of pipeline \"%s\" is not a time column",
							p->watermark_column, p->name),
					 errhint("Use the bigint form: incetl.backfill(name, start_at bigint, end_at bigint, chunk bigint).")));
		if (run->bf_type == INT8OID && incetl_is_time_type(p->wm_type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("watermark column \"%s\" of pipeline \"%s\" is a time column",
							p->watermark_column, p->name),
					 errhint("Use the timestamptz form: incetl.backfill(name, start_at timestamptz, end_at timestamptz, chunk interval).")));
		run->pass = clamp_backfill_range(run) ? PASS_BACKFILL : PASS_DONE;
		run->chunk_lo = run->bf_start;
		run->chunk_hi = (Datum) 0;
		return;
	}

	run->pass = run->cursor.valid && has_lookback(p) ? PASS_LOOKBACK : PASS_FORWARD;

	if (run->pass == PASS_FORWARD && !run->cursor.valid &&
		p->delete_detection != DELETE_DETECT_FLAG && p->src_key_unique &&
		(p->src_relkind == RELKIND_RELATION || p->src_relkind == RELKIND_MATVIEW ||
		 p->src_relkind == RELKIND_PARTITIONED_TABLE))
	{
		bool		isnull;

		if (SPI_execute(incetl_sql_target_empty(p),
						true, 0) != SPI_OK_SELECT)
			elog(ERROR, "incetl: could not look at the target");
		run->fast_load = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 1, &isnull));
	}
}

/* end of the current backfill chunk, clamped to the end */
static Datum
chunk_end(IncetlRun *run, Datum lo)
{
	Datum		hi;

	if (run->bf_type == TIMESTAMPTZOID)
	{
		/* rows at -infinity are a chunk of their own */
		if (TIMESTAMP_IS_NOBEGIN(DatumGetTimestampTz(lo)))
			hi = run->bf_after_nobegin;
		else
			hi = DirectFunctionCall2(timestamptz_pl_interval, lo,
									 IntervalPGetDatum(run->bf_chunk_iv));
		if (DatumGetTimestampTz(hi) > DatumGetTimestampTz(run->bf_end))
			hi = run->bf_end;
	}
	else
	{
		int64		l = DatumGetInt64(lo);
		int64		h;

		if (pg_add_s64_overflow(l, run->bf_chunk_int, &h) ||
			h > DatumGetInt64(run->bf_end))
			h = DatumGetInt64(run->bf_end);
		hi = Int64GetDatum(h);
	}
	return hi;
}

static bool
datum_lt(IncetlRun *run, Datum a, Datum b)
{
	if (run->bf_type == TIMESTAMPTZOID)
		return DatumGetTimestampTz(a) < DatumGetTimestampTz(b);
	return DatumGetInt64(a) < DatumGetInt64(b);
}

/* $n... = (watermark, key...) of a cursor or of the last row read */
static int
push_row(IncetlPipeline *p, Datum wm, Datum *keys, bool *key_nulls,
		 Datum *values, char *nulls, int np)
{
	values[np++] = wm;
	for (int i = 0; i < p->nkeys; i++)
	{
		nulls[np] = key_nulls[i] ? 'n' : ' ';
		values[np++] = keys[i];
	}
	return np;
}

/*
 * The bounds of the next batch of a range pass: fills shape->lower/upper
 * and their parameters, returns how many it set.  The caller adds the run
 * id.  whole (preview): the lookback and forward passes as one range, from
 * the lookback's start to the late-commit bound.
 */
static int
incetl_range_bounds(IncetlRun *run, IncetlBatchShape *shape, Datum *values,
					char *nulls, bool whole)
{
	IncetlPipeline *p = run->p;
	IncetlCursor *cur = &run->cursor;
	int			np = 0;

	/* lower bound */
	if (run->have_last && !run->first_in_pass)
	{
		shape->lower = LOWER_AFTER;
		np = push_row(p, run->last_wm, run->last_keys, run->last_key_nulls,
					  values, nulls, np);
	}
	else if (run->pass == PASS_LOOKBACK)
	{
		shape->lower = LOWER_GE;
		values[np++] = incetl_lookback_start(p, cur->wm, &shape->lower_type);
	}
	else if (run->pass == PASS_BACKFILL)
	{
		shape->lower = LOWER_GE;
		shape->lower_type = run->bf_type;
		values[np++] = run->chunk_lo;
	}
	else if (!cur->valid)
		shape->lower = LOWER_NONE;
	else if (cur->keys == NULL)
	{
		shape->lower = LOWER_GT;
		shape->lower_type = p->wm_type;
		values[np++] = cur->wm;
	}
	else
	{
		shape->lower = LOWER_AFTER;
		np = push_row(p, cur->wm, cur->keys, cur->key_nulls, values, nulls, np);
	}

	/* upper bound */
	if (run->pass == PASS_LOOKBACK && !whole && cur->keys == NULL)
	{
		/* a watermark set by hand: rows up to and including it are done */
		shape->upper = UPPER_LE;
		shape->upper_type = p->wm_type;
		values[np++] = cur->wm;
	}
	else if (run->pass == PASS_LOOKBACK && !whole)
	{
		shape->upper = UPPER_LE_CURSOR;
		np = push_row(p, cur->wm, cur->keys, cur->key_nulls, values, nulls, np);
	}
	else if (run->pass == PASS_BACKFILL)
	{
		if (run->first_in_pass || run->chunk_hi == (Datum) 0)
			run->chunk_hi = chunk_end(run, run->chunk_lo);
		shape->upper = UPPER_LT;
		shape->upper_type = run->bf_type;
		values[np++] = run->chunk_hi;
	}
	else if (run->bounded)
	{
		shape->upper = UPPER_LT;
		shape->upper_type = p->wm_type;
		values[np++] = incetl_bound_for_column(p, run->bound);
	}
	return np;
}

static int
timestamp_range_bounds(IncetlRun *run, IncetlBatchShape *shape, Datum *values,
					   char *nulls)
{
	return incetl_range_bounds(run, shape, values, nulls, false);
}

/* a batch read nread rows: what comes next */
static void
timestamp_range_advance(IncetlRun *run, int64 nread)
{
	IncetlPipeline *p = run->p;

	run->first_in_pass = false;
	if (nread >= p->batch_size)
		return;
	run->have_last = false;
	run->first_in_pass = true;
	if (run->pass == PASS_LOOKBACK)
		run->pass = PASS_FORWARD;
	else if (run->pass == PASS_BACKFILL)
	{
		run->chunk_lo = run->chunk_hi;
		run->chunk_hi = (Datum) 0;
		if (!datum_lt(run, run->chunk_lo, run->bf_end))
			run->pass = PASS_DONE;
	}
	else if (p->delete_detection == DELETE_DETECT_COMPARE)
		run->pass = PASS_COMPARE;
	else
		run->pass = PASS_DONE;
}

/*
 * Preview: the rows of the next run's lookback and forward passes, in one
 * statement built like a batch's, and with delete_detection 'compare' the
 * target keys the source lacks.
 */
static void
timestamp_preview(IncetlPreview *pv)
{
	IncetlPipeline *p = pv->p;
	IncetlRun	run;
	IncetlBatchShape shape;
	int			np PG_USED_FOR_ASSERTS_ONLY;

	memset(&run, 0, sizeof(run));
	run.p = p;
	run.cursor = pv->cursor;
	run.pass = run.cursor.valid && has_lookback(p) ? PASS_LOOKBACK : PASS_FORWARD;
	run.first_in_pass = true;
	run.bounded = incetl_is_time_type(p->wm_type);
	if (run.bounded)
		run.bound = incetl_late_commit_bound();

	pv->argtypes = palloc(sizeof(Oid) * INCETL_MAX_PARAMS(p));
	pv->values = palloc(sizeof(Datum) * INCETL_MAX_PARAMS(p));
	pv->nulls = palloc(INCETL_MAX_PARAMS(p));
	memset(pv->nulls, ' ', INCETL_MAX_PARAMS(p));
	memset(&shape, 0, sizeof(shape));
	shape.preview = true;
	np = incetl_range_bounds(&run, &shape, pv->values, pv->nulls, true);
	pv->sql = incetl_sql_batch(p, &shape, &pv->nargs, pv->argtypes);
	Assert(pv->nargs == np);
	if (p->delete_detection == DELETE_DETECT_COMPARE)
		pv->sql = psprintf("%s UNION ALL (%s)", pv->sql,
						   incetl_sql_compare_deletes(p, true));
}

/*
 * Explain the edge probe of a batch (engine.c, range_batch) and run it, as
 * the run would, so that the batch is shown with its edge: adds the edge
 * to values[*np...] and makes shape an edge batch.  False: the range holds
 * no row, and the run would read nothing.
 */
static bool
explain_edge(IncetlExplain *ex, IncetlRun *run, IncetlBatchShape *shape,
			 Datum *values, char *nulls, int *np)
{
	IncetlPipeline *p = run->p;
	Oid		   *argtypes = palloc(sizeof(Oid) * INCETL_MAX_PARAMS(p));
	Datum	   *pvalues = palloc(sizeof(Datum) * INCETL_MAX_PARAMS(p));
	char	   *pnulls = palloc(INCETL_MAX_PARAMS(p));
	int			nargs;
	char	   *sql = incetl_sql_range_edge(p, shape, &nargs, argtypes);
	HeapTuple	tup;
	TupleDesc	desc;

	Assert(nargs == *np);
	memcpy(pvalues, values, sizeof(Datum) * nargs);
	memcpy(pnulls, nulls, nargs);
	incetl_explain_add(ex, run->pass == PASS_LOOKBACK ? "lookback edge" : "forward edge",
					   EXPLAIN_PLAIN, sql, nargs, argtypes, pvalues, pnulls);
	if (SPI_execute_with_args(sql, nargs, argtypes, values, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "incetl: edge probe failed");
	if (SPI_processed != 1)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	for (int i = 0; i <= p->nkeys; i++)
	{
		Oid			t = i == 0 ? p->wm_type : p->keys[i - 1]->src_type;
		bool		isnull;
		Datum		d = SPI_getbinval(tup, desc, 2 + i, &isnull);

		/* a NULL key: the batch is read in order (engine.c) */
		if (isnull)
			return true;
		values[*np + i] = datumCopy(d, get_typbyval(t), get_typlen(t));
		nulls[*np + i] = ' ';
	}
	*np += p->nkeys + 1;
	shape->edge = true;
	shape->limit = false;
	return true;
}

/*
 * Explain: the first batch of each pass the next run makes, with the
 * bounds it would use (and the probe of its edge before it), and with
 * delete_detection 'compare' the compare pass's statement.
 */
static void
timestamp_explain(IncetlExplain *ex)
{
	IncetlPipeline *p = ex->p;
	IncetlRun	run;

	memset(&run, 0, sizeof(run));
	run.p = p;
	run.kind = RUN_KIND_RUN;
	run.cursor = ex->cursor;
	run.bounded = incetl_is_time_type(p->wm_type);
	if (run.bounded)
		run.bound = incetl_late_commit_bound();
	timestamp_fill_changes(&run);

	while (run.pass == PASS_LOOKBACK || run.pass == PASS_FORWARD)
	{
		IncetlBatchShape shape;
		Oid		   *argtypes = palloc(sizeof(Oid) * INCETL_MAX_PARAMS(p));
		Datum	   *values = palloc(sizeof(Datum) * INCETL_MAX_PARAMS(p));
		char	   *nulls = palloc(INCETL_MAX_PARAMS(p));
		int			nargs;
		int			np;
		char	   *sql;

		memset(&shape, 0, sizeof(shape));
		memset(nulls, ' ', INCETL_MAX_PARAMS(p));
		shape.limit = true;
		run.first_in_pass = true;
		np = incetl_range_bounds(&run, &shape, values, nulls, false);
		if (incetl_range_probe_applies(&run, run.fast_load))
		{
			Oid		   *pargtypes = palloc(sizeof(Oid) * INCETL_MAX_PARAMS(p));
			Datum	   *pvalues = palloc(sizeof(Datum) * np);
			char	   *pnulls = palloc(np);
			int			pargs;
			char	   *psql = incetl_sql_range_probe(p, &shape, &pargs, pargtypes);

			Assert(pargs == np);
			memcpy(pvalues, values, sizeof(Datum) * np);
			memcpy(pnulls, nulls, np);
			incetl_explain_add(ex, "forward probe", EXPLAIN_PLAIN, psql, pargs,
							   pargtypes, pvalues, pnulls);
		}
		if (run.edges && !explain_edge(ex, &run, &shape, values, nulls, &np))
		{
			/* the range is empty: the run stops at the probe */
			run.pass = run.pass == PASS_LOOKBACK ? PASS_FORWARD : PASS_DONE;
			continue;
		}
		values[np++] = Int64GetDatum(0);	/* the run id */
		if (p->hist_qname)
			values[np++] = TimestampTzGetDatum(GetCurrentTimestamp());	/* its start */
		shape.fast_load = run.fast_load && run.pass == PASS_FORWARD;
		if (!shape.fast_load)
			shape.stage = incetl_tstage_qname(p);
		sql = incetl_sql_batch(p, &shape, &nargs, argtypes);
		if (shape.stage_fill && shape.edge)
		{
			/* the rows read, which the copy to the stage tells (engine.c) */
			nulls[np] = ' ';
			values[np++] = Int64GetDatum(0);
		}
		Assert(nargs == np);
		/* into a Citus target through its stage: the rows go there first */
		if (shape.stage_fill)
			incetl_explain_add(ex, run.pass == PASS_LOOKBACK ? "lookback stage" : "forward stage",
							   EXPLAIN_RANGE_BATCH, shape.stage_fill, nargs, argtypes,
							   values, nulls);
		incetl_explain_add(ex, run.pass == PASS_LOOKBACK ? "lookback" : "forward",
						   EXPLAIN_RANGE_BATCH, sql, nargs, argtypes, values, nulls);
		run.pass = run.pass == PASS_LOOKBACK ? PASS_FORWARD : PASS_DONE;
	}
	if (p->delete_detection == DELETE_DETECT_COMPARE)
	{
		Oid		   *argtypes = palloc(sizeof(Oid) * 2);
		Datum	   *values = palloc(sizeof(Datum) * 2);

		argtypes[0] = INT8OID;
		values[0] = Int64GetDatum(0);
		argtypes[1] = TIMESTAMPTZOID;
		values[1] = TimestampTzGetDatum(GetCurrentTimestamp());
		incetl_explain_add(ex, "compare", EXPLAIN_PLAIN, incetl_sql_compare_deletes(p, false),
						   p->hist_qname ? 2 : 1, argtypes, values, NULL);
	}
}

/*
 * Into a hash-distributed Citus target from a local table: the stage the
 * batches carry their rows through (incetl_sql_create_tstage), made by the
 * extension owner in incetl's schema and distributed with the target, so
 * that its shards live and move with the target's.  It stays the
 * extension owner's (Citus creates a moved shard as the table's owner, who
 * would need CREATE on incetl's schema); the pipeline's owner gets what a
 * batch does with it.
 */
static void
timestamp_setup(IncetlPipeline *p)
{
	char	   *sql = incetl_sql_create_tstage(p);
	Oid			extowner = incetl_extension_owner();

	if (sql == NULL)
		return;
	incetl_exec_utility_as(extowner, sql);

	/* REPLICA IDENTITY FULL: the stage is empty at every commit, it costs nothing */
	incetl_distribute_with(incetl_tstage_relname(p->id),
						   psprintf("c%d", p->tgt_dist_col + 1), p->tgt_qname, true);
	incetl_exec_utility_as(extowner,
						   psprintf("GRANT SELECT, INSERT, DELETE ON %s TO %s",
									incetl_tstage_name(p),
									quote_identifier(GetUserNameFromId(p->owner, false))));
	incetl_depend_on_extension(incetl_tstage_relname(p->id));
}

static void
timestamp_teardown(IncetlPipeline *p)
{
	incetl_drop_own_table(incetl_tstage_relname(p->id));
}

const IncetlStrategyRoutine incetl_timestamp_strategy = {
	.name = "timestamp",
	.keyed = false,
	.setup = timestamp_setup,
	.teardown = timestamp_teardown,
	.check = timestamp_check,
	.fill_changes = timestamp_fill_changes,
	.range_bounds = timestamp_range_bounds,
	.range_advance = timestamp_range_advance,
	.preview = timestamp_preview,
	.explain = timestamp_explain,
};
