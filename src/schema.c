/*-------------------------------------------------------------------------
 *
 * schema.c
 *	  on_schema_change 'add_columns': the target follows the source's new
 *	  columns.
 *
 * Validation (validate.c) only reads: it lists the source columns the
 * target lacks.  Runs, create_pipeline and alter_pipeline then add them
 * here, as the pipeline's owner (the column's type may be the owner's
 * domain, whose DEFAULT and CHECK are the owner's code), and validate
 * again.  A preview adds them too, in a subtransaction it rolls back, so
 * that it shows what the run will do to the new columns.
 *
 * src/schema.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "incetl.h"

/*
 * Validate the pipeline (incetl_resolve_pipeline); add the columns the
 * target lacks, if on_schema_change says so, and validate again.  As the
 * pipeline's owner, inside SPI.
 */
void
incetl_resolve_and_follow(IncetlPipeline *p, bool at_create, bool notice)
{
	ListCell   *lc;

	incetl_resolve_pipeline(p, at_create);
	if (p->missing_columns == NIL)
		return;

	foreach(lc, p->missing_columns)
	{
		IncetlColumn *c = lfirst(lc);
		char	   *sql;
		int			rc;

		sql = psprintf("ALTER TABLE %s ADD COLUMN %s %s",
					   p->tgt_qname, quote_identifier(c->name), c->src_typename);
		rc = SPI_execute(sql, false, 0);
		if (rc != SPI_OK_UTILITY)
			elog(ERROR, "incetl: could not add column: %s", SPI_result_code_string(rc));
		if (notice)
			ereport(NOTICE,
					(errmsg("added column \"%s\" to target \"%s\" of pipeline \"%s\"",
							c->name, get_rel_name(p->target), p->name)));
	}
	CommandCounterIncrement();
	incetl_resolve_pipeline(p, at_create);
	Assert(p->missing_columns == NIL);
}
