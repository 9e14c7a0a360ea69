/*-------------------------------------------------------------------------
 *
 * changeset.c
 *	  The work table of a keyed change set.
 *
 * A keyed run (every strategy but 'timestamp', and every reconcile) first
 * collects the keys it will apply in a temporary work table of this
 * session, numbered 1..n, then applies them a batch of numbers at a time.
 * Strategies fill it (strategy_*.c); this file creates, fills by
 * comparison, analyzes and drops it, and builds the preview of such a
 * change set.
 *
 * The table cannot be created in a security-restricted operation
 * (matview.c has the same problem with its diff table): the engine creates
 * it in the one unrestricted role switch (INCETL_ROLE_ALLOW_TEMP).  Its
 * definition is ours alone: key columns, a row number, an op; no user code
 * runs there.
 *
 * src/changeset.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/dependency.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "strategy.h"

/* the OID of this session's work table of a pipeline, or InvalidOid */
static Oid
work_relid(IncetlPipeline *p)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;
	Datum		d;

	values[0] = CStringGetTextDatum(incetl_work_table_name(p));
	if (SPI_execute_with_args("SELECT pg_catalog.to_regclass($1)::pg_catalog.oid", 1,
							  argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not look up the work table");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? InvalidOid : DatumGetObjectId(d);
}

/*
 * Create the run's work table (dropping one an earlier run of this session
 * left behind) and return its OID.
 */
Oid
incetl_work_create(IncetlPipeline *p)
{
	Oid			old = work_relid(p);

	/*
	 * A table of that name that the owner does not own is the session's
	 * own (the caller's): not ours to drop.
	 */
	if (OidIsValid(old) && !pg_class_ownercheck(old, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_TABLE),
				 errmsg("relation \"%s\" already exists in this session's temporary schema",
						get_rel_name(old)),
				 errdetail("Pipeline \"%s\" keeps the keys a run applies in a temporary table of that name.",
						   p->name),
				 errhint("Drop or rename that table, or run the pipeline in another session.")));
	if (OidIsValid(old))
		incetl_work_drop(old);
	if (SPI_execute(incetl_sql_create_work_table(p), false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "incetl: could not create the work table");
	return work_relid(p);
}

/*
 * Drop the work table, by OID: the owner's code may have renamed it (to
 * shadow a name in the caller's pg_temp), and we must not leave it behind
 * under any name.
 */
void
incetl_work_drop(Oid relid)
{
	ObjectAddress obj;

	if (!OidIsValid(relid) ||
		!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return;
	ObjectAddressSet(obj, RelationRelationId, relid);

	/*
	 * Deleting catalog rows may need to read TOAST data, which needs a
	 * snapshot; after a run's last commit there is none active.
	 */
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		performDeletion(&obj, DROP_CASCADE, PERFORM_DELETION_INTERNAL |
						PERFORM_DELETION_QUIETLY);
		PopActiveSnapshot();
	}
	else
		performDeletion(&obj, DROP_CASCADE, PERFORM_DELETION_INTERNAL |
						PERFORM_DELETION_QUIETLY);
}

/*
 * Fill the (empty) work table with the keys whose row differs: against
 * the target (reconcile, the first run of a capture strategy), or against
 * the stored row hashes (a hash run).
 */
void
incetl_work_fill_compare(IncetlRun *run, bool against_target)
{
	Assert(run->work_total == 0);
	if (SPI_execute(incetl_sql_fill_work(run->p, against_target), false, 0) != SPI_OK_INSERT)
		elog(ERROR, "incetl: could not fill the work table");
	run->work_total = (int64) SPI_processed;
}

/*
 * The index the batches read the work table by, built once it is filled
 * (a third of what filling 100k rows costs when it is maintained row by
 * row), and, when it holds rows, statistics for the batches' joins: the
 * keyed pass starts.
 */
void
incetl_work_ready(IncetlPipeline *p, int64 rows)
{
	if (SPI_execute(psprintf("CREATE INDEX ON %s (rn)", incetl_work_table_name(p)),
					false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "incetl: could not index the work table");
	if (rows > 0)
	{
		/*
		 * The batches need the row count and rough ranges, not a 30,000-row
		 * sample: 3,000 rows cost 4 ms where the default cost 35-70 ms for
		 * 100k keys.
		 */
		int			nest = NewGUCNestLevel();
		StringInfoData sql;

		(void) set_config_option("default_statistics_target", "10", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

		/* not a 'logical' run's rows (v1..vm): no batch plan looks at them */
		initStringInfo(&sql);
		appendStringInfo(&sql, "ANALYZE %s", incetl_work_table_name(p));
		if (incetl_logical_rows(p))
		{
			appendStringInfoString(&sql, " (rn");
			for (int i = 0; i < p->nkeys; i++)
				appendStringInfo(&sql, ", k%d", i + 1);
			appendStringInfoChar(&sql, ')');
		}
		if (SPI_execute(sql.data, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "incetl: could not analyze the work table");
		AtEOXact_GUC(true, nest);
	}
}

/*
 * A 'hash' pipeline on Citus (strategy_hash.c): its keyed batches read
 * their keys from the stage, a table distributed with the source.  Once
 * the work table holds the run's keys, the stage gets them instead of
 * what an earlier run (perhaps one that failed) left there.
 */
void
incetl_stage_fill(IncetlPipeline *p, int64 rows)
{
	if (SPI_execute(psprintf("DELETE FROM %s", incetl_stage_name(p)), false, 0) != SPI_OK_DELETE)
		elog(ERROR, "incetl: could not empty the stage");
	if (rows > 0 &&
		(SPI_execute(incetl_sql_fill_stage(p), false, 0) != SPI_OK_INSERT ||
		 (int64) SPI_processed != rows))
		elog(ERROR, "incetl: could not fill the stage");
}

/*
 * The preview of a keyed change set: keys_sql yields the keys k1..kn, each
 * classified against the source and the target exactly as a keyed batch
 * would apply it.  After a TRUNCATE (truncated) the run's compare pass
 * deletes the target keys the source lacks, except those its keyed pass
 * deleted already: a key both name is one delete.
 */
void
incetl_preview_keyed(IncetlPreview *pv, const char *keys_sql, bool truncated)
{
	pv->sql = incetl_sql_keyed_preview(pv->p, keys_sql);
	if (truncated)
		pv->sql = psprintf("%s UNION ALL (SELECT * FROM (%s) AS c EXCEPT ALL (%s))",
						   pv->sql, incetl_sql_compare_deletes(pv->p, true), pv->sql);
}
