/*-------------------------------------------------------------------------
 *
 * strategy_hash.c
 *	  The 'hash' strategy: changes are the rows whose hash differs from the
 *	  one stored at the last run.
 *
 * The hashes live in incetl.hash_state_<id>, a table of (key, hash) in
 * schema incetl that belongs to the pipeline's owner, whose runs write it
 * in the same statement as the target rows it describes (the engine's
 * keyed batch, since stores_hashes is set).  A run fills the work table
 * with every key whose source row hashes differently, every new key and
 * every key gone from the source.  hash_algorithm picks the hash:
 * incetl.row_hash (hash64) or a digest (hash.c).
 *
 * A run that finds no stored hashes (its first, or after
 * alter_pipeline(hash_algorithm)) first stores a placeholder for every live
 * target key, one that no source row hashes to: it then deletes the target
 * keys the source lacks and re-reads the others, and if it fails halfway,
 * the next run still finds what it did not reach.
 *
 * On Citus, a pipeline whose source is hash-distributed (by a column of a
 * unique key) keeps its hash state distributed with the source, so that a
 * run's comparison runs on each shard and only the changed keys reach the
 * coordinator, and a stage, incetl.stage_<id>, distributed with it too:
 * the run copies its keys there (engine.c) and each keyed batch reads its
 * source rows by a join on the shards (deparse_keyed_rows).  Both are made
 * at create (and at a reset) by the extension owner in incetl's schema,
 * where no other role can make or replace a table.  They stay the
 * extension owner's, the pipeline's owner gets SELECT, INSERT, UPDATE and
 * DELETE on them: Citus moves a shard by creating it on the other worker
 * as the table's owner, who would need CREATE on incetl's schema, and a
 * rebalance of the source's shards would fail.
 *
 * src/strategy_hash.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "strategy.h"

/* whether no hash is stored yet (as the pipeline's owner, inside SPI) */
static bool
hash_state_empty(IncetlPipeline *p)
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

/*
 * The table of stored hashes, made by the extension owner, given to the
 * owner; on a distributed source, that table and the stage, distributed
 * with the source, which the owner may read and write.
 */
static void
hash_setup(IncetlPipeline *p)
{
	const char *owner = quote_identifier(GetUserNameFromId(p->owner, false));
	Oid			extowner = incetl_extension_owner();

	incetl_exec_utility_as(extowner, incetl_sql_create_hash_state(p));
	if (p->src_dist_key < 0 || !p->src_key_unique)
	{
		incetl_exec_utility_as(extowner, psprintf("ALTER TABLE %s OWNER TO %s",
												  incetl_hash_state_name(p), owner));
		incetl_depend_on_extension(incetl_hash_state_relname(p->id));
		return;
	}
	incetl_exec_utility_as(extowner, incetl_sql_create_stage(p));

	/*
	 * By the key that distributes the source (k<dist>), colocated with it;
	 * the stage, without a key, with REPLICA IDENTITY FULL (the hash state
	 * has its primary key).
	 */
	incetl_distribute_with(incetl_hash_state_relname(p->id),
						   psprintf("k%d", p->src_dist_key + 1), p->src_qname, false);
	incetl_distribute_with(incetl_stage_relname(p->id),
						   psprintf("k%d", p->src_dist_key + 1), p->src_qname, true);
	incetl_exec_utility_as(extowner,
						   psprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON %s, %s TO %s",
									incetl_hash_state_name(p), incetl_stage_name(p), owner));
	incetl_depend_on_extension(incetl_hash_state_relname(p->id));
	incetl_depend_on_extension(incetl_stage_relname(p->id));
}

static void
hash_teardown(IncetlPipeline *p)
{
	incetl_exec_utility_as(incetl_extension_owner(),
						   psprintf("DROP TABLE IF EXISTS %s", incetl_hash_state_name(p)));
	/* the stage, where there is one */
	incetl_drop_own_table(incetl_stage_relname(p->id));
}

/* the stored hashes no longer describe the rows: start afresh */
static void
hash_reset(IncetlPipeline *p)
{
	hash_teardown(p);
	hash_setup(p);
}

/*
 * Runs and reconciles: an empty hash state (the first run, or the next run
 * or reconcile after alter_pipeline(hash_algorithm => ...) emptied it) is
 * seeded from the target first.  A run compares the source with the stored
 * hashes, and a reconcile stores the hashes of the keys it writes: without
 * the seed, a reconcile left a state holding only those, and the next run,
 * finding it not empty, never saw the keys the source lost after the
 * reconcile (080_differential seed 6713295; sql/55_hash_reconcile_state).
 */
static void
hash_prepare(IncetlRun *run)
{
	if (hash_state_empty(run->p) &&
		SPI_execute(incetl_sql_seed_hash_state(run->p), false, 0) != SPI_OK_INSERT)
		elog(ERROR, "incetl: could not fill the hash state");
}

static void
hash_fill_changes(IncetlRun *run)
{
	incetl_work_fill_compare(run, false);
}

static void
hash_preview(IncetlPreview *pv)
{
	incetl_preview_keyed(pv, hash_state_empty(pv->p) ?
						 incetl_sql_hash_initial_keys(pv->p) :
						 incetl_sql_diff_keys(pv->p, false), false);
}

static void
hash_explain(IncetlExplain *ex)
{
	if (hash_state_empty(ex->p))
		incetl_explain_add(ex, "seed hashes", EXPLAIN_PLAIN, incetl_sql_seed_hash_state(ex->p),
						   0, NULL, NULL, NULL);
	incetl_explain_add(ex, "fill", EXPLAIN_PLAIN, incetl_sql_fill_work(ex->p, false),
					   0, NULL, NULL, NULL);
}

const IncetlStrategyRoutine incetl_hash_strategy = {
	.name = "hash",
	.keyed = true,
	.stores_hashes = true,
	.setup = hash_setup,
	.teardown = hash_teardown,
	.reset = hash_reset,
	.prepare = hash_prepare,
	.fill_changes = hash_fill_changes,
	.preview = hash_preview,
	.explain = hash_explain,
};
