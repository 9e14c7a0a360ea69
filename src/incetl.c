/*-------------------------------------------------------------------------
 *
 * incetl.c
 *	  Module entry point: library magic and incetl's settings.
 *
 * src/incetl.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "incetl.h"

PG_MODULE_MAGIC;

/* how far below the oldest open transaction's start a run stops reading */
int			incetl_late_commit_margin_ms = 1000;

/* run_log rows older than this are pruned by runs; 0 keeps them for ever */
int			incetl_run_log_retention_s = 30 * 24 * 3600;

/* a 'trigger' run empties its queue by TRUNCATE from this many entries */
int			incetl_queue_truncate_min = 10000;

extern PGDLLEXPORT void _PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("incetl.late_commit_margin",
							"Safety margin below the start of the oldest open transaction that a timestamp run does not read past.",
							"A timestamp run reads only rows whose watermark is older than both the start of the oldest transaction still open in the database and the run's start minus this margin, so rows stamped by transactions that commit late are read by a later run.",
							&incetl_late_commit_margin_ms,
							1000, 0, 3600 * 1000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("incetl.run_log_retention",
							"How long rows of incetl.run_log are kept.",
							"Each run deletes finished run_log rows older than this. 0 keeps them for ever.",
							&incetl_run_log_retention_s,
							30 * 24 * 3600, 0, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("incetl.queue_truncate_min",
							"Fewest queue entries a trigger run empties its queue of by TRUNCATE.",
							"At its end a trigger run removes the entries it applied: by TRUNCATE when at least this many are left and the queue holds nothing else, else by deleting them.",
							&incetl_queue_truncate_min,
							10000, 0, INT_MAX,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("incetl");
}
