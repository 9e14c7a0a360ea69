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

#include "executor/spi.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

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
