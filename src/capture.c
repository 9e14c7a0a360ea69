/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  The 'trigger' strategy: a capture trigger on the source queues the
 *	  keys of changed rows; a run drains them.
 *
 * The capture function is statement-level with transition tables, so a
 * statement that changes 100,000 rows queues their keys with one
 * INSERT ... SELECT instead of 100,000 trigger calls.  It writes the queue
 * as the extension owner, so writers of the source need no privilege on
 * incetl's objects.
 *
 * The queue, incetl.queue_<id> (k1..kn, op), belongs to the pipeline's
 * owner.  A run copies the distinct queued keys into its work table and
 * applies them in keyed batches; each batch deletes the queue entries of
 * its keys in the same statement (so the same snapshot) that reads the
 * source rows for them.  An entry that batch could see was committed
 * before its snapshot, so the change it stands for is in the source rows
 * read; an entry it could not see stays for the next run.  Nothing is
 * lost, and since applying a key means loading its current source row,
 * nothing is applied twice.
 *
 * TRUNCATE of the source is captured too: it queues a marker, and the run
 * that sees it deletes every target row whose key the source lacks.
 *
 * src/capture.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/stratnum.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "incetl.h"

PG_FUNCTION_INFO_V1(incetl_capture);

/*
 * The prepared INSERT of each capture trigger, by trigger OID: a writer
 * that changes one row per statement pays for executing it, not for
 * parsing and planning it.  The plans are revalidated by the plan cache
 * when the queue or the source changes.
 */
typedef struct CapturePlan
{
	Oid			tgoid;			/* hash key */
	SPIPlanPtr	plan;
} CapturePlan;

static HTAB *capture_plans = NULL;

char *
incetl_queue_table_name(IncetlPipeline *p)
{
	return psprintf("incetl.queue_%d", p->id);
}

/*
 * What CREATE TRIGGER on the source would need of the caller: the TRIGGER
 * privilege on the source and, as for a row trigger on a partitioned table,
 * on each of its partitions (and inheritance children).  Called by
 * create_pipeline, as the caller, before anything is written.
 */
void
incetl_capture_check_privileges(IncetlPipeline *p)
{
	List	   *members = find_all_inheritors(p->source, AccessShareLock, NULL);
	ListCell   *lc;

	foreach(lc, members)
	{
		Oid			relid = lfirst_oid(lc);

		if (pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER) != ACLCHECK_OK)
		{
			char	   *qname = incetl_quote_qualified(relid);
			const char *role = quote_identifier(GetUserNameFromId(GetUserId(), false));

			if (relid == p->source)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied for source \"%s\" of pipeline \"%s\"",
								get_rel_name(relid), p->name),
						 errdetail("A 'trigger' pipeline puts capture triggers on its source, which needs the TRIGGER privilege on it, as CREATE TRIGGER does."),
						 errhint("Grant it (GRANT TRIGGER ON %s TO %s), or use the 'hash' strategy, which needs only SELECT.",
								 qname, role)));
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for partition \"%s\" of source \"%s\" of pipeline \"%s\"",
							get_rel_name(relid), get_rel_name(p->source), p->name),
					 errdetail("A 'trigger' pipeline puts capture triggers on its source and on each of its partitions, which needs the TRIGGER privilege on each, as CREATE TRIGGER ... FOR EACH ROW on a partitioned table does."),
					 errhint("Grant it (GRANT TRIGGER ON %s TO %s), or use the 'hash' strategy, which needs only SELECT.",
							 qname, role)));
		}
	}
}

char *
incetl_sql_create_queue(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE TABLE %s (", incetl_queue_table_name(p));
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "k%d %s, ", i + 1,
						 format_type_extended(p->keys[i]->src_type, -1,
											  FORMAT_TYPE_FORCE_QUALIFY));
	appendStringInfoString(&buf, "op \"char\" NOT NULL)");
	return buf.data;
}

/* the four capture triggers; every name and argument quoted */
char *
incetl_sql_create_triggers(IncetlPipeline *p)
{
	StringInfoData buf;
	StringInfoData args;
	static const char *const events[] = {"insert", "update", "delete", "truncate"};

	initStringInfo(&args);
	appendStringInfo(&args, "'%d'", p->id);
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&args, ", %s", quote_literal_cstr(p->keys[i]->name));

	initStringInfo(&buf);
	for (int e = 0; e < 4; e++)
	{
		appendStringInfo(&buf, "CREATE TRIGGER %s AFTER %s ON %s ",
						 quote_identifier(psprintf("incetl_capture_%d_%s", p->id, events[e])),
						 events[e], p->src_qname);
		if (e == 0)
			appendStringInfoString(&buf, "REFERENCING NEW TABLE AS incetl_new ");
		else if (e == 1)
			appendStringInfoString(&buf, "REFERENCING OLD TABLE AS incetl_old NEW TABLE AS incetl_new ");
		else if (e == 2)
			appendStringInfoString(&buf, "REFERENCING OLD TABLE AS incetl_old ");
		appendStringInfo(&buf, "FOR EACH STATEMENT EXECUTE FUNCTION incetl._capture(%s); ",
						 args.data);
	}
	return buf.data;
}

char *
incetl_sql_drop_triggers(IncetlPipeline *p)
{
	StringInfoData buf;
	static const char *const events[] = {"insert", "update", "delete", "truncate"};

	initStringInfo(&buf);
	if (!OidIsValid(get_rel_namespace(p->source)))
		return buf.data;		/* the source is gone, and its triggers */
	for (int e = 0; e < 4; e++)
		appendStringInfo(&buf, "DROP TRIGGER IF EXISTS %s ON %s; ",
						 quote_identifier(psprintf("incetl_capture_%d_%s", p->id, events[e])),
						 incetl_quote_qualified(p->source));
	return buf.data;
}

/*
 * incetl._capture(): statement-level AFTER trigger.  Arguments: the
 * pipeline id, then the names of the key columns.
 */
Datum
incetl_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Trigger    *tg;
	TupleDesc	desc;
	StringInfoData sql;
	StringInfoData cols;
	int			nkeys;
	IncetlRoleSwitch save;
	volatile int rc = 0;
	char	   *queue;
	int32		pipeline_id;
	CapturePlan *entry;
	bool		found;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("incetl._capture() must be called as a trigger")));
	tg = td->tg_trigger;
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) ||
		tg->tgnargs < 2)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("incetl._capture() must be an AFTER ... FOR EACH STATEMENT trigger created by incetl")));

	pipeline_id = pg_strtoint32(tg->tgargs[0]);
	queue = psprintf("incetl.queue_%d", pipeline_id);
	nkeys = tg->tgnargs - 1;
	desc = RelationGetDescr(td->tg_relation);

	if (capture_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CapturePlan);
		capture_plans = hash_create("incetl capture plans", 16, &ctl,
									HASH_ELEM | HASH_BLOBS);
	}
	entry = hash_search(capture_plans, &tg->tgoid, HASH_ENTER, &found);
	if (!found)
		entry->plan = NULL;

	initStringInfo(&cols);
	for (int i = 0; i < nkeys; i++)
		appendStringInfo(&cols, "k%d, ", i + 1);

	initStringInfo(&sql);
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		appendStringInfo(&sql, "INSERT INTO %s (op) VALUES ('T')", queue);
	else
	{
		const char *from = TRIGGER_FIRED_BY_DELETE(td->tg_event) ? "incetl_old" : "incetl_new";
		char		op = TRIGGER_FIRED_BY_INSERT(td->tg_event) ? 'i' :
		TRIGGER_FIRED_BY_DELETE(td->tg_event) ? 'd' : 'u';

		appendStringInfo(&sql, "INSERT INTO %s (%sop) SELECT ", queue, cols.data);
		for (int i = 0; i < nkeys; i++)
			appendStringInfo(&sql, "x.%s, ", quote_identifier(tg->tgargs[i + 1]));
		appendStringInfo(&sql, "'%c' FROM %s AS x", op, from);

		/* an update that changed a key also queues the old key */
		if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		{
			appendStringInfoString(&sql, " UNION ALL SELECT ");
			for (int i = 0; i < nkeys; i++)
				appendStringInfo(&sql, "o.%s, ", quote_identifier(tg->tgargs[i + 1]));
			appendStringInfoString(&sql, "'d' FROM incetl_old AS o WHERE NOT EXISTS (SELECT 1 FROM incetl_new AS n WHERE ");
			for (int i = 0; i < nkeys; i++)
			{
				const char *k = quote_identifier(tg->tgargs[i + 1]);
				AttrNumber	att = InvalidAttrNumber;

				for (int a = 0; a < desc->natts; a++)
					if (!TupleDescAttr(desc, a)->attisdropped &&
						strcmp(NameStr(TupleDescAttr(desc, a)->attname), tg->tgargs[i + 1]) == 0)
						att = a + 1;
				if (att == InvalidAttrNumber)
					ereport(ERROR,
							(errcode(ERRCODE_UNDEFINED_COLUMN),
							 errmsg("key column \"%s\" of an incetl pipeline no longer exists in \"%s\"",
									tg->tgargs[i + 1], RelationGetRelationName(td->tg_relation)),
							 errhint("Drop the pipeline, or alter its key columns.")));
				appendStringInfo(&sql, "%sn.%s %s o.%s", i ? " AND " : "", k,
								 incetl_type_equality(TupleDescAttr(desc, att - 1)->atttypid), k);
			}
			appendStringInfoChar(&sql, ')');
		}
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");
	if (entry->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql.data, 0, NULL);

		if (plan == NULL)
			elog(ERROR, "incetl: could not prepare the capture: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "incetl: SPI_keepplan failed");
		entry->plan = plan;
	}

	/*
	 * Writers of the source need no right on the queue: write it as its
	 * owner, the pipeline's owner (never as a more powerful role, which the
	 * queue's owner could subvert with a trigger of its own), with a fixed
	 * search_path.
	 */
	{
		Oid			queue_relid = get_relname_relid(psprintf("queue_%d", pipeline_id),
													get_namespace_oid("incetl", false));
		HeapTuple	ctup;
		Oid			queue_owner;

		if (!OidIsValid(queue_relid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("capture queue of incetl pipeline %d does not exist", pipeline_id),
					 errhint("Drop the trigger \"%s\" or the pipeline.", tg->tgname)));
		ctup = SearchSysCache1(RELOID, ObjectIdGetDatum(queue_relid));
		if (!HeapTupleIsValid(ctup))
			elog(ERROR, "cache lookup failed for relation %u", queue_relid);
		queue_owner = ((Form_pg_class) GETSTRUCT(ctup))->relowner;
		ReleaseSysCache(ctup);

		incetl_switch_role(&save, queue_owner, INCETL_ROLE_PIN_PATH);
		PG_TRY();
		{
			rc = SPI_execute_plan(entry->plan, NULL, NULL, false, 0);
		}
		PG_CATCH();
		{
			incetl_restore_role(&save, false);
			PG_RE_THROW();
		}
		PG_END_TRY();
		incetl_restore_role(&save, true);
	}
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "incetl: capture returned %s", SPI_result_code_string(rc));

	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * Fill the work table (numbered from offset + 1) with the distinct queued
 * keys not already in it.  Returns the highest rn.
 */
char *
incetl_sql_fill_from_queue(IncetlPipeline *p)
{
	StringInfoData buf;
	StringInfoData keys;
	int			i;

	initStringInfo(&keys);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&keys, "%sk%d", i ? ", " : "", i + 1);

	initStringInfo(&buf);
	appendStringInfo(&buf, "INSERT INTO %s (rn, %s, op, qtids) "
					 "SELECT $1 OPERATOR(pg_catalog.+) pg_catalog.row_number() OVER (ORDER BY %s), "
					 "%s, 'u'::\"char\", qtids FROM (SELECT %s, pg_catalog.array_agg(q.ctid) AS qtids "
					 "FROM %s AS q WHERE q.op OPERATOR(pg_catalog.<>) 'T' GROUP BY %s) AS x "
					 "WHERE NOT EXISTS (SELECT 1 FROM %s AS w WHERE ",
					 incetl_work_table_name(p), keys.data, keys.data, keys.data, keys.data,
					 incetl_queue_table_name(p), keys.data, incetl_work_table_name(p));
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%sw.k%d %s x.k%d", i ? " AND " : "", i + 1,
						 incetl_type_equality(p->keys[i]->src_type), i + 1);
	appendStringInfoChar(&buf, ')');
	return buf.data;
}
