/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  The 'trigger' strategy: capture triggers on the source queue the keys
 *	  of changed rows; a run drains them.
 *
 * The queue, incetl.queue_<id> (seq, k1..kn, op), belongs to the extension
 * owner, like incetl's catalog; the pipeline's owner may only read it.
 * Every entry has a number of its own, seq: a capture statement takes one
 * value of the queue's sequence, incetl.queue_<id>_seq, and numbers its
 * rows within the block of QUEUE_BLOCK values that value stands for (a row
 * past the block takes a block of its own), so writers pay for one
 * nextval() per statement, not per row, and the queue needs no index.  Its
 * key columns have the base types of the source's key columns (never a
 * domain, whose CHECK would run on insert), it has no trigger, rule,
 * policy, constraint or default of anyone else's, so writing it runs no
 * user code: the capture writes it as its owner in the writer's session,
 * and writers of the source need no privilege on incetl's objects.
 *
 * Triggers, on the source and on every partition or inheritance child of
 * it (statement-level triggers fire only for the table a statement names,
 * so a statement aimed at a partition fires that partition's):
 *
 * - incetl_capture_<id>_insert, _update, _delete: AFTER ... FOR EACH
 *	 STATEMENT with transition tables, so a statement that changes 100,000
 *	 rows queues their keys in one trigger call: read from the transition
 *	 tables and written into the queue by table_multi_insert, as COPY
 *	 writes (an update that kept its keys queues only the new ones; one
 *	 that moved some also queues the old keys its new rows lack, with an
 *	 INSERT ... SELECT planned for its size).  A queue not of incetl's
 *	 exact layout is written by INSERTs instead.  Enabled in origin and
 *	 local sessions (ENABLE, 'O').
 * - incetl_capture_<id>_row (tables with storage): AFTER INSERT OR UPDATE
 *	 OR DELETE FOR EACH ROW, enabled only under session_replication_role =
 *	 replica (ENABLE REPLICA, 'R'): a logical replication apply worker fires
 *	 row triggers but no statement triggers, and a session that sets
 *	 replica skips 'O' triggers.  Every mode captures each change exactly
 *	 once.
 * - incetl_capture_<id>_truncate: AFTER TRUNCATE, ENABLE ALWAYS ('A'); it
 *	 queues a marker, and the run that sees it deletes every target row
 *	 whose key the source lacks.  TRUNCATE of a parent fires it too.
 *
 * A source that is itself a partition (or an inheritance child) is written
 * through its parent as well, whose statements fire none of its statement
 * triggers: it gets no statement-level insert, update and delete triggers,
 * and its row triggers fire always ('A').
 *
 * Statement triggers are not cloned to partitions created or attached
 * later, so every run checks, at its start and around each batch, that
 * every member of the source's inheritance tree carries them
 * (incetl_capture_cover): a new member gets them, and the keys of its rows
 * are queued (its rows, attached or written before it had triggers, were
 * never captured).  So does a member whose triggers were dropped, with a
 * TRUNCATE marker for the deletes that went uncaptured.  Members that left (detached, dropped, no longer
 * inheriting) took their rows out of the source: a TRUNCATE marker has the
 * run delete what the target holds of them.  incetl.state.capture_relations
 * remembers the members covered.
 *
 * A run copies the distinct queued keys, with the tuple id and the seq of
 * every entry it saw, into its work table, and applies them in keyed
 * batches.  The entries it copied go in the transaction of the batch that
 * applied them or of a later one (every FORGET_BATCHES batches, and the
 * rest at the run's end), once the batches that applied them have
 * committed or commit with them: an entry it copied was committed before
 * the copy, so the change it stands for is in the source rows a batch read;
 * an entry it did not see stays for the next run.  A run that fails leaves
 * the entries of the batches since the last deletion, and the next run
 * applies those keys once more: harmless, applying a key loads its current
 * row.  Nothing is lost, and nothing is applied twice.
 *
 * When, at the run's end, at least incetl.queue_truncate_min entries are
 * left and the queue holds nothing but those, the run empties it with
 * TRUNCATE, which costs nothing per entry: it takes the queue's ACCESS
 * EXCLUSIVE lock only if no one holds any lock on it (a writer whose
 * entries are not committed yet holds one until it ends, so it never
 * waits and no writer waits long: just for the end of the run), then
 * counts the queue's entries with a snapshot taken after the lock.  Only
 * the extension owner, and runs, which exclude each other, delete entries,
 * so as many entries as the run left are exactly those.  Otherwise (fewer
 * entries, a writer in flight, entries committed since the copy, a run
 * inside a transaction block, which would hold the lock until its caller
 * ends) it deletes exactly the entries it copied: by tuple id (a TID scan, no
 * index), and only where the seq there is one it copied.  VACUUM FULL,
 * CLUSTER or pg_repack move entries to other tuple ids: the seq check
 * keeps it from deleting whatever now sits at an old one, and an entry
 * that moved stays for the next run.
 *
 * src/capture.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "common/int.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/primnodes.h"
#include "parser/parse_func.h"
#include "port/pg_bitutils.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "bulkinsert.h"
#include "strategy.h"

INCETL_FUNCTION(incetl_capture);

/* the capture machinery, used by this file's callbacks */
#define CAPTURE_COVER_CREATE		0x01	/* create_pipeline */
#define CAPTURE_COVER_PREPARE		0x02	/* the start of a run */
#define CAPTURE_COVER_FULL_RUN		0x04	/* the run compares everything */
#define CAPTURE_COVER_QUEUE_KEYS	0x08	/* queue keys of new members */
#define CAPTURE_COVER_AFTER_READ	0x10	/* after a batch read the source */

static void incetl_capture_check_privileges(IncetlPipeline *p);
static bool incetl_capture_cover(IncetlPipeline *p, int flags);
static void incetl_capture_teardown(IncetlPipeline *p);
static char *incetl_sql_fill_from_queue(IncetlPipeline *p);
/* queue entries a run copied: tid[] and int8[] (seq), or both 0 */
typedef struct IncetlQueueEntries
{
	Datum		tids;
	Datum		seqs;
} IncetlQueueEntries;

static void incetl_capture_markers(IncetlPipeline *p, IncetlQueueEntries *e);
static void incetl_capture_batch_entries(IncetlPipeline *p, int64 from, int64 to,
										 IncetlQueueEntries *e);
static int64 incetl_capture_forget(IncetlPipeline *p, IncetlQueueEntries *e);
static void forget_rows(struct IncetlRun *run, int64 to);


/* the capture triggers a pipeline puts on one relation */
typedef enum CaptureKind
{
	CAPTURE_INSERT,
	CAPTURE_UPDATE,
	CAPTURE_DELETE,
	CAPTURE_TRUNCATE,
	CAPTURE_ROW,
	CAPTURE_NKINDS
} CaptureKind;

static const char *const kind_names[CAPTURE_NKINDS] =
{"insert", "update", "delete", "truncate", "row"};

/*
 * A statement's transition tables are planned as having as many rows as
 * they had when the statement was prepared, and a plan without parameters
 * is kept for good: prepared after a 1-row UPDATE, the anti-join of an
 * update's old and new keys stays a nested loop, quadratic in a later
 * statement's rows (a 20,000-row UPDATE took 7 s instead of 0.2).  So each
 * trigger keeps one plan per size class, the number of rows rounded down
 * to a power of 4: a plan is used only for statements within 4 times the
 * size it was made for.
 */
#define CAPTURE_SIZE_CLASSES 32

/*
 * Statements that changed at most this many rows never run the set-based
 * INSERT ... SELECT: the capture reads their keys from the transition
 * tables itself, compares an update's old keys with its new ones in
 * memory, and queues each through the queue writer (or, for a queue not
 * of incetl's layout, with the row trigger's prepared INSERT, whose plan is
 * a fraction of the other's to start and end).
 */
#define CAPTURE_SMALL_ROWS 4

/*
 * The prepared INSERTs of each capture trigger, by trigger OID: a writer
 * that changes one row per statement pays for executing one, not for
 * parsing and planning it.  The plans are revalidated by the plan cache
 * when the queue or the source changes.
 */
/*
 * What a statement trigger's set-based INSERT queues: the new keys (old
 * ones for a delete), and for an update the old keys its new rows lack
 * too, or those alone (the new ones were queued by the queue writer).
 */
typedef enum StatementKind
{
	STMT_NEW,
	STMT_NEW_OLD,
	STMT_OLD,
	STMT_NKINDS
} StatementKind;

typedef struct CapturePlan
{
	Oid			tgoid;			/* hash key */
	Oid			relid;			/* the trigger's table */
	int32		pipeline_id;
	bool		numbered;		/* the queue has seq (not a queue of 0.1) */
	/* the INSERT of one key ($1..$n, op $n+1): row triggers, small statements */
	SPIPlanPtr	plan;
	/* statement triggers: the set-based INSERT, by size class and kind */
	SPIPlanPtr	stmt_plans[CAPTURE_SIZE_CLASSES][STMT_NKINDS];
	/* the key columns and their types, as plan was prepared for */
	int			nkeys;
	AttrNumber *attnums;
	Oid		   *types;
	/* the queue's changed_at default last found to be now() (its adbin) */
	char	   *now_default;
} CapturePlan;

static HTAB *capture_plans = NULL;

static char *trigger_name(IncetlPipeline *p, CaptureKind kind);
static Oid	queue_relid(int32 pipeline_id);
static char wanted_mode(bool row_only, char relkind, CaptureKind kind);

/* the queue's name, qualified and quoted; its sequence is <name>_seq */
static char *
queue_qname(int32 pipeline_id)
{
	return quote_qualified_identifier("incetl", incetl_queue_relname(pipeline_id));
}

static char *
trigger_name(IncetlPipeline *p, CaptureKind kind)
{
	return psprintf("incetl_capture_%d_%s", p->id, kind_names[kind]);
}

static Oid
queue_relid(int32 pipeline_id)
{
	return get_relname_relid(incetl_queue_relname(pipeline_id),
							 get_namespace_oid("incetl", false));
}

static Oid
relation_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * The firing mode (pg_trigger.tgenabled) a kind of capture trigger must
 * have on a table of relkind, or '\0' where it must not be.  row_only: the
 * source has a parent (it is a partition or an inheritance child), whose
 * statements change its rows without firing its statement triggers, so
 * its changes are captured row by row, in every mode.
 */
static char
wanted_mode(bool row_only, char relkind, CaptureKind kind)
{
	switch (kind)
	{
		case CAPTURE_INSERT:
		case CAPTURE_UPDATE:
		case CAPTURE_DELETE:
			return row_only ? '\0' : TRIGGER_FIRES_ON_ORIGIN;
		case CAPTURE_TRUNCATE:
			return TRIGGER_FIRES_ALWAYS;
		case CAPTURE_ROW:
			if (relkind != RELKIND_RELATION)
				return '\0';
			return row_only ? TRIGGER_FIRES_ALWAYS : TRIGGER_FIRES_ON_REPLICA;
		default:
			break;
	}
	return '\0';
}

/* ALTER TABLE ... ENABLE <this> TRIGGER for a firing mode */
static const char *
mode_words(char mode)
{
	return mode == TRIGGER_FIRES_ALWAYS ? "ALWAYS " :
		mode == TRIGGER_FIRES_ON_REPLICA ? "REPLICA " : "";
}

/*
 * The type a key column has in the queue: its base type, never a domain,
 * with the column's (or the domain's) typmod: char(2) stays char(2).
 */
static char *
queue_type(Oid typid, int32 typmod)
{
	int32		tm = typmod;
	Oid			base = getBaseTypeAndTypmod(typid, &tm);

	return incetl_type_name(base, tm);
}

/*
 * seq = block * QUEUE_BLOCK + row number, block from the queue's sequence:
 * the first QUEUE_BLOCK - 1 rows of a statement share one nextval(), any
 * further row takes a block of its own.
 */
#define QUEUE_BLOCK "16777216"
#define QUEUE_BLOCK_ROWS INT64CONST(16777216)	/* the same, as a number */

static char *
queue_sequence(int32 pipeline_id)
{
	return psprintf("pg_catalog.nextval(%s::pg_catalog.regclass)",
					quote_literal_cstr(quote_qualified_identifier("incetl",
																  psprintf("%s_seq", incetl_queue_relname(pipeline_id)))));
}

/*
 * INSERT INTO the queue the rows of select, numbered.  select yields
 * columns k1..k<nkeys> and op.  A queue made by incetl 0.1, and not yet
 * rebuilt by ALTER EXTENSION UPDATE, has no seq: writes to the source must
 * still work meanwhile.
 */
static char *
numbered_insert(int32 pipeline_id, int nkeys, const char *select, bool numbered)
{
	char	   *next = queue_sequence(pipeline_id);
	StringInfoData cols;
	StringInfoData ycols;

	initStringInfo(&cols);
	initStringInfo(&ycols);
	for (int i = 0; i < nkeys; i++)
	{
		appendStringInfo(&cols, "k%d, ", i + 1);
		appendStringInfo(&ycols, "y.k%d, ", i + 1);
	}
	if (!numbered)
		return psprintf("INSERT INTO %s (%sop) %s", queue_qname(pipeline_id), cols.data, select);
	return psprintf("INSERT INTO %s (seq, %sop) "
					"SELECT CASE WHEN y.incetl_n OPERATOR(pg_catalog.<) " QUEUE_BLOCK
					" THEN y.incetl_b OPERATOR(pg_catalog.*) " QUEUE_BLOCK
					" OPERATOR(pg_catalog.+) y.incetl_n"
					" ELSE %s OPERATOR(pg_catalog.*) " QUEUE_BLOCK " END, %sy.op "
					"FROM (SELECT z.*, pg_catalog.row_number() OVER () AS incetl_n, "
					"(SELECT %s) AS incetl_b FROM (%s) AS z) AS y",
					queue_qname(pipeline_id), cols.data, next, ycols.data, next, select);
}

/* the OID of incetl._capture() */
static Oid
capture_function(void)
{
	return LookupFuncName(list_make2(makeString("incetl"), makeString("_capture")),
						  0, NULL, false);
}

/*
 * The source and everything that inherits from it (partitions at every
 * level, inheritance children), locked against being dropped meanwhile.
 */
static List *
capture_members(IncetlPipeline *p)
{
	return find_all_inheritors(p->source, AccessShareLock, NULL);
}

static void
refuse_foreign_member(IncetlPipeline *p, Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("partition \"%s\" of source \"%s\" of pipeline \"%s\" is a foreign table",
					get_rel_name(relid), get_rel_name(p->source), p->name),
			 errdetail("Writes to a foreign table happen on another server, where no trigger of this one sees them."),
			 errhint("Detach it, or use the 'hash' strategy for this source.")));
}

/*
 * What CREATE TRIGGER on the source would need of the caller: the TRIGGER
 * privilege on the source and, as for a row trigger on a partitioned table,
 * on each of its partitions (and inheritance children, which get triggers
 * of their own too).  Called by create_pipeline, as the caller, before
 * anything is written.
 */
static void
incetl_capture_check_privileges(IncetlPipeline *p)
{
	List	   *members = capture_members(p);
	ListCell   *lc;

	foreach(lc, members)
	{
		Oid			relid = lfirst_oid(lc);

		if (get_rel_relkind(relid) == RELKIND_FOREIGN_TABLE)
			refuse_foreign_member(p, relid);
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

/*
 * Create the queue, as the extension owner, readable by the pipeline's
 * owner (a run reads it as that owner).  changed_at is the writing
 * transaction's start (a history table's T, SPEC 5): a default of
 * incetl's own, a built-in function, so the capture's INSERT runs no code
 * but core's.  REPLICA IDENTITY FULL: the queue has no key, and in a
 * database with a FOR ALL TABLES publication a table without a replica
 * identity takes no DELETE.
 */
static void
create_queue(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE TABLE %s (seq pg_catalog.int8 NOT NULL, ",
					 incetl_queue_table_name(p));
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "k%d %s, ", i + 1, queue_type(p->keys[i]->src_type, p->keys[i]->src_typmod));
	appendStringInfo(&buf, "op pg_catalog.\"char\" NOT NULL, "
					 "changed_at pg_catalog.timestamptz DEFAULT pg_catalog.now()); "
					 "ALTER TABLE %s REPLICA IDENTITY FULL; "
					 "CREATE SEQUENCE %s_seq OWNED BY %s.seq; GRANT SELECT ON %s TO %s",
					 incetl_queue_table_name(p), incetl_queue_table_name(p),
					 incetl_queue_table_name(p), incetl_queue_table_name(p),
					 quote_identifier(GetUserNameFromId(p->owner, false)));
	incetl_exec_utility_as(incetl_extension_owner(), buf.data);
	incetl_depend_on_extension(incetl_queue_relname(p->id));
}

/* CREATE TRIGGER for one kind on one relation, then its firing mode */
static void
create_trigger(IncetlPipeline *p, Oid relid, CaptureKind kind, char mode)
{
	StringInfoData buf;
	char	   *rel = incetl_quote_qualified(relid);
	const char *name = quote_identifier(trigger_name(p, kind));
	static const char *const events[CAPTURE_NKINDS] =
	{"INSERT", "UPDATE", "DELETE", "TRUNCATE", "INSERT OR UPDATE OR DELETE"};
	static const char *const referencing[CAPTURE_NKINDS] =
	{"REFERENCING NEW TABLE AS incetl_new ",
		"REFERENCING OLD TABLE AS incetl_old NEW TABLE AS incetl_new ",
		"REFERENCING OLD TABLE AS incetl_old ", "", ""};

	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE TRIGGER %s AFTER %s ON %s %sFOR EACH %s "
					 "EXECUTE FUNCTION incetl._capture('%d'",
					 name, events[kind], rel, referencing[kind],
					 kind == CAPTURE_ROW ? "ROW" : "STATEMENT", p->id);
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, ", %s", quote_literal_cstr(p->keys[i]->name));
	appendStringInfoString(&buf, ")");
	if (mode != TRIGGER_FIRES_ON_ORIGIN)
		appendStringInfo(&buf, "; ALTER TABLE ONLY %s ENABLE %sTRIGGER %s",
						 rel, mode_words(mode), name);
	incetl_exec_utility_as(incetl_extension_owner(), buf.data);
}

/* give an existing capture trigger a firing mode, or drop it (mode '\0') */
static void
set_trigger_mode(IncetlPipeline *p, Oid relid, CaptureKind kind, char mode)
{
	const char *rel = incetl_quote_qualified(relid);
	const char *name = quote_identifier(trigger_name(p, kind));

	incetl_exec_utility_as(incetl_extension_owner(),
						   mode == '\0' ?
						   psprintf("DROP TRIGGER %s ON %s", name, rel) :
						   psprintf("ALTER TABLE ONLY %s ENABLE %sTRIGGER %s",
									rel, mode_words(mode), name));
}

/*
 * Which of the pipeline's capture triggers relid carries (by name and
 * function), and with which tgenabled ('\0': missing).
 */
static void
inspect_triggers(IncetlPipeline *p, Oid relid, Oid capture_fn,
				 char enabled[CAPTURE_NKINDS])
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TriggerDesc *desc = rel->trigdesc;

	memset(enabled, 0, CAPTURE_NKINDS);
	for (int i = 0; desc && i < desc->numtriggers; i++)
	{
		Trigger    *t = &desc->triggers[i];

		if (t->tgfoid != capture_fn)
			continue;
		for (int k = 0; k < CAPTURE_NKINDS; k++)
			if (strcmp(t->tgname, trigger_name(p, k)) == 0)
				enabled[k] = t->tgenabled;
	}
	relation_close(rel, NoLock);
}

/* drop the capture triggers of a pipeline from one relation */
static void
drop_triggers_on(IncetlPipeline *p, Oid relid, Oid capture_fn)
{
	StringInfoData buf;
	char	   *rel = incetl_quote_qualified(relid);
	char		enabled[CAPTURE_NKINDS];

	inspect_triggers(p, relid, capture_fn, enabled);
	initStringInfo(&buf);
	for (int k = 0; k < CAPTURE_NKINDS; k++)
		if (enabled[k] != '\0')
			appendStringInfo(&buf, "DROP TRIGGER %s ON %s; ",
							 quote_identifier(trigger_name(p, k)), rel);
	if (buf.len > 0)
		incetl_exec_utility_as(incetl_extension_owner(), buf.data);
}

static void
queue_marker(IncetlPipeline *p)
{
	incetl_spi_exec_owner(numbered_insert(p->id, 0, "SELECT 'T'::pg_catalog.\"char\" AS op", true),
						  0, NULL, NULL, NULL, SPI_OK_INSERT);
}

/*
 * Queue the keys of every row of a newly covered table (as the extension
 * owner, like the capture: the pipeline's owner may lack SELECT on the
 * partition itself).  A partition cannot be a view, the table carries our
 * triggers by now, and row_security is off, so reading it runs no user
 * code: a policy the extension owner does not bypass is an error instead.
 */
static void
queue_keys_of(IncetlPipeline *p, Oid relid)
{
	StringInfoData buf;
	IncetlRoleSwitch save;
	volatile int rc = 0;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "CAST(m.%s AS %s) AS k%d, ", quote_identifier(p->keys[i]->name),
						 queue_type(p->keys[i]->src_type, p->keys[i]->src_typmod), i + 1);
	appendStringInfo(&buf, "'u'::pg_catalog.\"char\" AS op FROM ONLY %s AS m", incetl_quote_qualified(relid));

	incetl_switch_role(&save, incetl_extension_owner(), INCETL_ROLE_PIN_PATH);
	PG_TRY();
	{
		(void) set_config_option("row_security", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		rc = SPI_execute(numbered_insert(p->id, p->nkeys, buf.data, true), false, 0);
	}
	PG_CATCH();
	{
		incetl_restore_role(&save, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	incetl_restore_role(&save, true);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "incetl: could not queue the keys of \"%s\": %s",
			 get_rel_name(relid), SPI_result_code_string(rc));
}

/*
 * Make sure the pipeline's queue exists and every member of the source's
 * inheritance tree carries its capture triggers; see the head of this file.
 * flags:
 *
 * - CAPTURE_COVER_CREATE: create_pipeline; create the queue and the
 *	 triggers, record nothing (the first run compares everything).
 * - CAPTURE_COVER_PREPARE: the start of a run; a missing queue is created,
 *	 and capture triggers found disabled or with another firing mode get
 *	 theirs back.  Either means changes may have gone uncaptured: the
 *	 function then returns true, and the run must compare the whole source
 *	 with the target.
 * - CAPTURE_COVER_FULL_RUN: this run compares the whole source with the
 *	 target after this check anyway: queue no keys and no marker.
 * - CAPTURE_COVER_QUEUE_KEYS: queue the keys of the rows of newly covered
 *	 members (unless the run compares everything anyway).
 * - CAPTURE_COVER_AFTER_READ: after a batch, which may have read rows of a
 *	 member that joined since the last check: its rows may have changed
 *	 uncaptured after that read, so also queue a TRUNCATE marker.
 */
static bool
incetl_capture_cover(IncetlPipeline *p, int flags)
{
	bool		full = false;
	bool		known = false;
	bool		lost = false;
	bool		row_only;
	Oid			capture_fn = capture_function();
	List	   *members;
	List	   *covered = NIL;
	List	   *added = NIL;
	List	   *gone;
	ListCell   *lc;

	Oid			queue = queue_relid(p->id);

	/*
	 * A queue of incetl 0.1 (restored from an old dump, say) belongs to the
	 * pipeline's owner and has no seq: replace it, without reading it.  So
	 * is any table of that name not made by us that a new pipeline finds:
	 * its capture would write it as its owner.
	 */
	if (OidIsValid(queue) && (flags & (CAPTURE_COVER_CREATE | CAPTURE_COVER_PREPARE)) &&
		(get_attnum(queue, "seq") == InvalidAttrNumber ||
		 relation_owner(queue) != incetl_extension_owner()))
	{
		incetl_exec_utility_as(incetl_extension_owner(),
							   psprintf("DROP TABLE %s CASCADE", incetl_queue_table_name(p)));
		queue = InvalidOid;
	}
	if (!OidIsValid(queue))
	{
		if ((flags & (CAPTURE_COVER_CREATE | CAPTURE_COVER_PREPARE)) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("capture queue of pipeline \"%s\" was dropped during the run", p->name),
					 errhint("Run the pipeline again: it creates the queue and compares the whole source with the target.")));
		create_queue(p);
		full = true;
	}

	members = capture_members(p);
	row_only = has_superclass(p->source);
	if ((flags & CAPTURE_COVER_CREATE) == 0)
		covered = incetl_state_capture_relations(p, &known);

	foreach(lc, members)
	{
		Oid			relid = lfirst_oid(lc);
		char		relkind = get_rel_relkind(relid);
		char		enabled[CAPTURE_NKINDS];
		bool		missing = false;

		if (relkind == RELKIND_FOREIGN_TABLE)
			refuse_foreign_member(p, relid);
		inspect_triggers(p, relid, capture_fn, enabled);
		for (int k = 0; k < CAPTURE_NKINDS; k++)
		{
			char		want = wanted_mode(row_only, relkind, k);

			if (want != '\0' && enabled[k] == '\0')
			{
				create_trigger(p, relid, k, want);
				missing = true;
			}
			else if (enabled[k] != want && (flags & CAPTURE_COVER_PREPARE))
			{
				/*
				 * Disabled (ALTER TABLE ... DISABLE TRIGGER ALL, pg_restore
				 * --disable-triggers), re-enabled by ENABLE TRIGGER ALL,
				 * which makes every trigger 'O', or made for a source that
				 * has since become a partition (or stopped being one): what
				 * happened meanwhile was not necessarily captured.
				 */
				set_trigger_mode(p, relid, k, want);
				full = true;
			}
		}
		if (missing)
		{
			added = lappend_oid(added, relid);
			/* one that carried them lost some: deletes went uncaptured */
			if (list_member_oid(covered, relid))
				lost = true;
		}
	}
	if (full && (flags & CAPTURE_COVER_PREPARE))
		ereport(NOTICE,
				(errmsg("pipeline \"%s\" compares the whole source with the target", p->name),
				 errdetail("Its capture queue or triggers were missing, disabled or changed, so changes may have gone uncaptured.")));

	if (flags & CAPTURE_COVER_CREATE)
		return full;

	/* members that left the source took their rows with them */
	gone = list_difference_oid(covered, members);
	foreach(lc, gone)
	{
		Oid			relid = lfirst_oid(lc);

		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
			drop_triggers_on(p, relid, capture_fn);
	}

	if (!full && (flags & CAPTURE_COVER_FULL_RUN) == 0)
	{
		if (flags & CAPTURE_COVER_QUEUE_KEYS)
			foreach(lc, added)
			{
				if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_RELATION)
					queue_keys_of(p, lfirst_oid(lc));
			}
		if (gone != NIL || !known || lost ||
			(added != NIL && (flags & CAPTURE_COVER_AFTER_READ)))
			queue_marker(p);
	}

	if (!known || gone != NIL || list_difference_oid(members, covered) != NIL)
		incetl_state_set_capture_relations(p, members);
	return full;
}

/*
 * Drop every capture trigger of the pipeline, wherever it is (the source,
 * its partitions, tables that left it), then the queue.
 */
static void
incetl_capture_teardown(IncetlPipeline *p)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	List	   *rels = NIL;
	ListCell   *lc;
	Oid			capture_fn = capture_function();

	values[0] = ObjectIdGetDatum(capture_fn);
	values[1] = CStringGetTextDatum(psprintf("incetl\\_capture\\_%d\\_%%", p->id));
	incetl_spi_exec_owner("SELECT DISTINCT t.tgrelid FROM pg_catalog.pg_trigger t "
						  "WHERE t.tgfoid OPERATOR(pg_catalog.=) $1 "
						  "AND t.tgname OPERATOR(pg_catalog.~~) $2",
						  2, argtypes, values, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		rels = lappend_oid(rels, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																SPI_tuptable->tupdesc,
																1, &isnull)));
	}
	foreach(lc, rels)
		drop_triggers_on(p, lfirst_oid(lc), capture_fn);
	incetl_exec_utility_as(incetl_extension_owner(),
						   psprintf("DROP TABLE IF EXISTS %s", incetl_queue_table_name(p)));
}

/* forget every plan of an entry */
static void
free_capture_plans(CapturePlan *entry)
{
	if (entry->plan)
		SPI_freeplan(entry->plan);
	entry->plan = NULL;
	for (int i = 0; i < CAPTURE_SIZE_CLASSES; i++)
		for (int j = 0; j < STMT_NKINDS; j++)
		{
			if (entry->stmt_plans[i][j])
				SPI_freeplan(entry->stmt_plans[i][j]);
			entry->stmt_plans[i][j] = NULL;
		}
}

/* the CapturePlan of a trigger, reset if the OID now means another one */
static CapturePlan *
capture_plan(Trigger *tg, Oid relid, int32 pipeline_id)
{
	CapturePlan *entry;
	bool		found;

	if (capture_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(CapturePlan);
		capture_plans = hash_create("incetl capture plans", 16, &ctl,
									HASH_ELEM | HASH_BLOBS);
	}
	entry = hash_search(capture_plans, &tg->tgoid, HASH_ENTER, &found);
	if (found && (entry->relid != relid || entry->pipeline_id != pipeline_id))
	{
		free_capture_plans(entry);
		if (entry->attnums)
			pfree(entry->attnums);
		if (entry->types)
			pfree(entry->types);
		if (entry->now_default)
			pfree(entry->now_default);
		found = false;
	}
	if (!found)
	{
		entry->relid = relid;
		entry->pipeline_id = pipeline_id;
		entry->numbered = true;
		entry->plan = NULL;
		memset(entry->stmt_plans, 0, sizeof(entry->stmt_plans));
		entry->nkeys = 0;
		entry->attnums = NULL;
		entry->types = NULL;
		entry->now_default = NULL;
	}
	return entry;
}

/* attribute number of a key column named by the trigger, or an error */
static AttrNumber
key_attnum(TupleDesc desc, Relation rel, const char *name)
{
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return a + 1;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_COLUMN),
			 errmsg("key column \"%s\" of an incetl pipeline no longer exists in \"%s\"",
					name, RelationGetRelationName(rel)),
			 errhint("Drop the pipeline, or alter its key columns.")));
	return InvalidAttrNumber;
}

/*
 * The statement of a statement-level capture trigger, of a kind: for an
 * update, STMT_NEW_OLD also queues the old keys its new rows lack,
 * STMT_OLD only those.
 */
static char *
statement_sql(TriggerData *td, int32 pipeline_id, bool numbered, StatementKind kind)
{
	Trigger    *tg = td->tg_trigger;
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	int			nkeys = tg->tgnargs - 1;
	StringInfoData sql;
	const char **keys = palloc(sizeof(char *) * nkeys);
	char	  **types = palloc(sizeof(char *) * nkeys);
	Oid		   *base = palloc(sizeof(Oid) * nkeys);

	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		return numbered_insert(pipeline_id, 0, "SELECT 'T'::pg_catalog.\"char\" AS op", numbered);

	for (int i = 0; i < nkeys; i++)
	{
		AttrNumber	att = key_attnum(desc, td->tg_relation, tg->tgargs[i + 1]);

		keys[i] = quote_identifier(tg->tgargs[i + 1]);
		base[i] = getBaseType(TupleDescAttr(desc, att - 1)->atttypid);
		types[i] = queue_type(TupleDescAttr(desc, att - 1)->atttypid,
							  TupleDescAttr(desc, att - 1)->atttypmod);
	}

	initStringInfo(&sql);
	if (kind != STMT_OLD || !TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		appendStringInfoString(&sql, "SELECT ");
		for (int i = 0; i < nkeys; i++)
			appendStringInfo(&sql, "CAST(x.%s AS %s) AS k%d, ", keys[i], types[i], i + 1);
		appendStringInfo(&sql, "'%c'::pg_catalog.\"char\" AS op FROM %s AS x",
						 TRIGGER_FIRED_BY_INSERT(td->tg_event) ? 'i' :
						 TRIGGER_FIRED_BY_DELETE(td->tg_event) ? 'd' : 'u',
						 TRIGGER_FIRED_BY_DELETE(td->tg_event) ? "incetl_old" : "incetl_new");
	}

	/*
	 * An update that changed a key also queues the old key.  Both sides are
	 * cast to the base type, so the operator is that type's own btree
	 * equality, matched exactly (no domain or user type to resolve it for).
	 */
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event) && kind != STMT_NEW)
	{
		appendStringInfoString(&sql, kind == STMT_OLD ? "SELECT " : " UNION ALL SELECT ");
		for (int i = 0; i < nkeys; i++)
			appendStringInfo(&sql, "CAST(o.%s AS %s) AS k%d, ", keys[i], types[i], i + 1);
		appendStringInfoString(&sql, "'d'::pg_catalog.\"char\" AS op FROM incetl_old AS o "
							   "WHERE NOT EXISTS (SELECT 1 FROM incetl_new AS n WHERE ");
		for (int i = 0; i < nkeys; i++)
			appendStringInfo(&sql, "%sCAST(n.%s AS %s) %s CAST(o.%s AS %s)", i ? " AND " : "",
							 keys[i], types[i], incetl_type_equality(base[i]), keys[i], types[i]);
		appendStringInfoChar(&sql, ')');
	}
	return numbered_insert(pipeline_id, nkeys, sql.data, numbered);
}

/*
 * The key columns of a row trigger's table, checked against what the
 * entry's plan was prepared for; false when they moved or changed type.
 */
static bool
row_keys_match(CapturePlan *entry, TupleDesc desc, Trigger *tg)
{
	if (entry->attnums == NULL || entry->nkeys != tg->tgnargs - 1)
		return false;
	for (int i = 0; i < entry->nkeys; i++)
	{
		Form_pg_attribute att;

		if (entry->attnums[i] < 1 || entry->attnums[i] > desc->natts)
			return false;
		att = TupleDescAttr(desc, entry->attnums[i] - 1);
		if (att->attisdropped || strcmp(NameStr(att->attname), tg->tgargs[i + 1]) != 0 ||
			getBaseType(att->atttypid) != entry->types[i])
			return false;
	}
	return true;
}

/*
 * The key columns of the trigger's table (their attribute numbers and base
 * types), unless they are still those entry knows; its prepared INSERT,
 * made for other ones, goes.
 */
static void
set_key_columns(CapturePlan *entry, TriggerData *td)
{
	Trigger    *tg = td->tg_trigger;
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	int			nkeys = tg->tgnargs - 1;

	if (row_keys_match(entry, desc, tg))
		return;
	if (entry->plan)
		SPI_freeplan(entry->plan);
	entry->plan = NULL;
	if (entry->attnums)
		pfree(entry->attnums);
	if (entry->types)
		pfree(entry->types);
	entry->attnums = MemoryContextAllocZero(TopMemoryContext, sizeof(AttrNumber) * nkeys);
	entry->types = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * nkeys);
	entry->nkeys = nkeys;
	for (int i = 0; i < nkeys; i++)
	{
		entry->attnums[i] = key_attnum(desc, td->tg_relation, tg->tgargs[i + 1]);
		entry->types[i] = getBaseType(TupleDescAttr(desc, entry->attnums[i] - 1)->atttypid);
	}
}

/*
 * Prepare the INSERT of one key, for the key columns set_key_columns set:
 * $1..$n the keys, $n+1 the op
 */
static void
prepare_row(CapturePlan *entry, const char *queue, bool numbered)
{
	int			nkeys = entry->nkeys;
	Oid		   *argtypes = palloc(sizeof(Oid) * (nkeys + 1));
	StringInfoData sql;
	SPIPlanPtr	plan;

	if (entry->plan)
		SPI_freeplan(entry->plan);
	entry->plan = NULL;

	initStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s (%s", queue, numbered ? "seq, " : "");
	for (int i = 0; i < nkeys; i++)
	{
		argtypes[i] = entry->types[i];
		appendStringInfo(&sql, "k%d, ", i + 1);
	}
	argtypes[nkeys] = CHAROID;
	appendStringInfoString(&sql, "op) VALUES (");
	if (numbered)
		appendStringInfo(&sql, "%s OPERATOR(pg_catalog.*) " QUEUE_BLOCK ", ",
						 queue_sequence(entry->pipeline_id));
	for (int i = 0; i <= nkeys; i++)
		appendStringInfo(&sql, "%s$%d", i ? ", " : "", i + 1);
	appendStringInfoChar(&sql, ')');

	plan = SPI_prepare(sql.data, nkeys + 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "incetl: could not prepare the capture: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "incetl: SPI_keepplan failed");
	entry->plan = plan;
}

/*
 * Writing the queue directly.  A capture statement's keys go into the
 * queue by table_multi_insert, as COPY writes a table (bulkinsert.c), in
 * batches of up to 1,000 rows: no executor, no plan, and one WAL record per
 * page of entries instead of one per entry (100,000 entries: about 4 MB of
 * WAL instead of 8.5).  A single entry goes by table_tuple_insert, as an
 * INSERT's would.  The rows are the ones the prepared INSERTs write: seq
 * numbered the same way, the keys' values as the source holds them, op,
 * and changed_at the transaction's start, now().
 *
 * Only a queue of exactly the layout incetl makes is written this way:
 * seq, k1..kn in the base types of the source's key columns, op,
 * changed_at whose default is now(), and nothing else: no index, trigger,
 * rule, policy, check constraint, partition constraint (a queue attached
 * as a partition) or NOT NULL key column, which the
 * executor's INSERT would have to maintain, check or run.  A queue that
 * differs in any way (made by an older incetl, or changed by hand) takes
 * the prepared INSERTs, which do whatever an INSERT does, errors included.
 */
typedef struct QueueWriter
{
	IncetlBulkInsert bulk;		/* into the queue, RowExclusiveLock */
	int			nkeys;
	Oid			seqrelid;		/* its sequence */
	int64		block;			/* the statement's nextval(), or -1 */
	int64		count;			/* rows numbered so far */
	Datum		changed_at;
} QueueWriter;

/*
 * Is attribute attnum of the queue changed_at, with pg_catalog.now() as its
 * default, which the executor would evaluate for it?  The default's text
 * verified last is kept in entry, so that a capture parses it once.
 */
static bool
queue_default_is_now(CapturePlan *entry, TupleDesc qdesc, int attnum)
{
	Form_pg_attribute att = TupleDescAttr(qdesc, attnum - 1);
	TupleConstr *constr = qdesc->constr;

	if (!incetl_bulk_column_takes(qdesc, attnum, "changed_at", TIMESTAMPTZOID, -1,
								  false, false) ||
		att->attnotnull || !att->atthasdef || constr == NULL)
		return false;
	for (int i = 0; i < constr->num_defval; i++)
	{
		const char *adbin = constr->defval[i].adbin;
		Node	   *expr;

		if (constr->defval[i].adnum != attnum)
			continue;
		if (entry->now_default != NULL && strcmp(entry->now_default, adbin) == 0)
			return true;
		expr = stringToNode(adbin);
		if (!IsA(expr, FuncExpr) || ((FuncExpr *) expr)->funcid != F_NOW ||
			((FuncExpr *) expr)->args != NIL)
			return false;
		if (entry->now_default != NULL)
			pfree(entry->now_default);
		entry->now_default = MemoryContextStrdup(TopMemoryContext, adbin);
		return true;
	}
	return false;
}

/*
 * Open the queue of entry's pipeline for writing it directly, or NULL when
 * it is not of incetl's layout, or the insert would need what the
 * executor does (see above).  As the queue's owner: the caller switched to
 * it, and the checks are the INSERT's and the nextval()'s.
 */
static QueueWriter *
queue_writer_open(CapturePlan *entry, TupleDesc srcdesc, Oid queue_rel)
{
	Relation	rel;
	TupleDesc	qdesc;
	int			nkeys = entry->nkeys;
	Oid			seqrelid;
	char		seqname[NAMEDATALEN];
	QueueWriter *w;

	/* the INSERT's errors for these (the executor's checks) */
	if (XactReadOnly || IsInParallelMode() ||
		pg_class_aclcheck(queue_rel, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		return NULL;
	snprintf(seqname, sizeof(seqname), "%s_seq", incetl_queue_relname(entry->pipeline_id));
	seqrelid = get_relname_relid(seqname, get_rel_namespace(queue_rel));
	if (!OidIsValid(seqrelid) || get_rel_relkind(seqrelid) != RELKIND_SEQUENCE)
		return NULL;

	rel = table_open(queue_rel, RowExclusiveLock);
	qdesc = RelationGetDescr(rel);
	if (!incetl_bulk_plain_table(rel) || qdesc->natts != nkeys + 3 ||
		!incetl_bulk_column_takes(qdesc, 1, "seq", INT8OID, -1, false, false) ||
		!incetl_bulk_column_takes(qdesc, nkeys + 2, "op", CHAROID, -1, false, false) ||
		!queue_default_is_now(entry, qdesc, nkeys + 3))
	{
		table_close(rel, NoLock);
		return NULL;
	}
	for (int i = 0; i < nkeys; i++)
	{
		Form_pg_attribute att = TupleDescAttr(srcdesc, entry->attnums[i] - 1);
		int32		typmod = att->atttypmod;
		Oid			base = getBaseTypeAndTypmod(att->atttypid, &typmod);
		char		name[NAMEDATALEN];

		snprintf(name, sizeof(name), "k%d", i + 1);
		if (base != entry->types[i] ||
			!incetl_bulk_column_takes(qdesc, i + 2, name, base, typmod, true, false))
		{
			table_close(rel, NoLock);
			return NULL;
		}
	}

	w = palloc0(sizeof(QueueWriter));
	incetl_bulk_begin(&w->bulk, rel);
	w->nkeys = nkeys;
	w->seqrelid = seqrelid;
	w->block = -1;
	w->changed_at = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	return w;
}

/*
 * The next seq: block * QUEUE_BLOCK + the row's number for the first
 * QUEUE_BLOCK - 1 rows of a statement, nextval() * QUEUE_BLOCK for any
 * further row, as numbered_insert's statement numbers them.
 */
static int64
queue_writer_seq(QueueWriter *w)
{
	int64		block;
	int64		seq;

	w->count++;
	if (w->count < QUEUE_BLOCK_ROWS)
	{
		if (w->block < 0)
			w->block = nextval_internal(w->seqrelid, true);
		block = w->block;
	}
	else
		block = nextval_internal(w->seqrelid, true);
	if (pg_mul_s64_overflow(block, QUEUE_BLOCK_ROWS, &seq) ||
		(w->count < QUEUE_BLOCK_ROWS && pg_add_s64_overflow(seq, w->count, &seq)))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	return seq;
}

/* add one entry: the values and isnull of its nkeys key columns, and op */
static void
queue_writer_add(QueueWriter *w, Datum *keys, bool *isnull, char op)
{
	TupleTableSlot *slot = incetl_bulk_next_slot(&w->bulk);

	slot->tts_values[0] = Int64GetDatum(queue_writer_seq(w));
	slot->tts_isnull[0] = false;
	for (int i = 0; i < w->nkeys; i++)
	{
		slot->tts_isnull[i + 1] = isnull[i];
		slot->tts_values[i + 1] = isnull[i] ? (Datum) 0 : keys[i];
	}
	slot->tts_values[w->nkeys + 1] = CharGetDatum(op);
	slot->tts_isnull[w->nkeys + 1] = false;
	slot->tts_values[w->nkeys + 2] = w->changed_at;
	slot->tts_isnull[w->nkeys + 2] = false;
	ExecStoreVirtualTuple(slot);
	/* its own copy of the keys (the caller's are the transition tables') */
	incetl_bulk_added(&w->bulk, slot);
}

/*
 * Write what is buffered and close the queue (its lock is kept); what
 * follows in the transaction sees the entries, as after the INSERT an SPI
 * statement would have run.
 */
static void
queue_writer_close(QueueWriter *w)
{
	incetl_bulk_end(&w->bulk);
	table_close(w->bulk.rel, NoLock);
	pfree(w);
}

/*
 * Queue one key, values and isnull of its nkeys columns: through the queue
 * writer w, or else with the prepared INSERT
 */
static void
queue_key(CapturePlan *entry, QueueWriter *w, Datum *keys, bool *isnull, char op)
{
	int			nkeys = entry->nkeys;
	Datum	   *values;
	char	   *nulls;
	int			rc;

	if (w != NULL)
	{
		queue_writer_add(w, keys, isnull, op);
		return;
	}
	values = palloc(sizeof(Datum) * (nkeys + 1));
	nulls = palloc(nkeys + 1);
	for (int i = 0; i < nkeys; i++)
	{
		values[i] = isnull[i] ? (Datum) 0 : keys[i];
		nulls[i] = isnull[i] ? 'n' : ' ';
	}
	values[nkeys] = CharGetDatum(op);
	nulls[nkeys] = ' ';
	rc = SPI_execute_plan(entry->plan, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "incetl: capture returned %s", SPI_result_code_string(rc));
	pfree(values);
	pfree(nulls);
}

/* queue the key of one row version */
static void
queue_row_key(CapturePlan *entry, QueueWriter *w, TupleTableSlot *slot, char op)
{
	Datum	   *keys = palloc(sizeof(Datum) * entry->nkeys);
	bool	   *isnull = palloc(sizeof(bool) * entry->nkeys);

	for (int i = 0; i < entry->nkeys; i++)
		keys[i] = slot_getattr(slot, entry->attnums[i], &isnull[i]);
	queue_key(entry, w, keys, isnull, op);
}

/*
 * The keys of every row of a small transition table (at most
 * CAPTURE_SMALL_ROWS rows), copied: keys[r * nkeys + i] is column i of row
 * r.  Read through a read pointer of our own, as a scan of it in a query
 * would.  Returns the number of rows.
 */
static int
read_small_table(CapturePlan *entry, Tuplestorestate *ts, TupleDesc desc,
				 Datum *keys, bool *isnull)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	int			nkeys = entry->nkeys;
	int			n = 0;

	tuplestore_select_read_pointer(ts, tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND));
	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		if (n >= CAPTURE_SMALL_ROWS)
			elog(ERROR, "incetl: transition table grew while the capture read it");
		for (int i = 0; i < nkeys; i++)
		{
			int16		typlen;
			bool		typbyval;
			Datum		d = slot_getattr(slot, entry->attnums[i], &isnull[n * nkeys + i]);

			get_typlenbyval(entry->types[i], &typlen, &typbyval);
			keys[n * nkeys + i] = isnull[n * nkeys + i] ? (Datum) 0 :
				datumCopy(d, typbyval, typlen);
		}
		n++;
	}
	tuplestore_select_read_pointer(ts, 0);
	ExecDropSingleTupleTableSlot(slot);
	return n;
}

/*
 * Are two keys the same, byte for byte (a false no costs one entry more)?
 * A null is never the same, as for the set-based statement's equality.
 */
static bool
same_key(CapturePlan *entry, Datum *a, bool *anull, Datum *b, bool *bnull)
{
	for (int i = 0; i < entry->nkeys; i++)
	{
		int16		typlen;
		bool		typbyval;

		if (anull[i] || bnull[i])
			return false;
		get_typlenbyval(entry->types[i], &typlen, &typbyval);
		if (!datumIsEqual(a[i], b[i], typbyval, typlen))
			return false;
	}
	return true;
}

/*
 * The capture of a statement that changed at most CAPTURE_SMALL_ROWS rows:
 * each new row's key ('i' or 'u'), each old row's key ('d') unless an
 * update left it in a new row, through the queue writer w (or one
 * prepared INSERT each).  What the
 * set-based statement queues, but for an old key that only an operator
 * other than byte equality finds among the new ones (numeric 1.0 and
 * 1.00, say), queued as 'd' too: a run applies a queued key by loading its
 * current row, so an entry more changes nothing.
 */
static void
capture_small(CapturePlan *entry, QueueWriter *w, TriggerData *td)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	int			nkeys = entry->nkeys;
	int			size = CAPTURE_SMALL_ROWS * nkeys;
	Datum	   *newkeys = palloc(sizeof(Datum) * size);
	bool	   *newnull = palloc(sizeof(bool) * size);
	Datum	   *oldkeys = palloc(sizeof(Datum) * size);
	bool	   *oldnull = palloc(sizeof(bool) * size);
	int			nnew = 0;
	int			nold = 0;
	bool		update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);

	if (td->tg_newtable)
		nnew = read_small_table(entry, td->tg_newtable, desc, newkeys, newnull);
	if (td->tg_oldtable)
		nold = read_small_table(entry, td->tg_oldtable, desc, oldkeys, oldnull);

	for (int r = 0; r < nnew; r++)
		queue_key(entry, w, &newkeys[r * nkeys], &newnull[r * nkeys], update ? 'u' : 'i');
	for (int r = 0; r < nold; r++)
	{
		bool		kept = false;

		for (int s = 0; update && !kept && s < nnew; s++)
			kept = same_key(entry, &oldkeys[r * nkeys], &oldnull[r * nkeys],
							&newkeys[s * nkeys], &newnull[s * nkeys]);
		if (!kept)
			queue_key(entry, w, &oldkeys[r * nkeys], &oldnull[r * nkeys], 'd');
	}
}

/*
 * Whether an old and a new row version have the same non-null keys, byte
 * for byte (update_kept_keys, capture_statement_direct)
 */
static bool
row_keys_kept(CapturePlan *entry, TupleDesc desc, TupleTableSlot *oslot,
			  TupleTableSlot *nslot)
{
	for (int i = 0; i < entry->nkeys; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, entry->attnums[i] - 1);
		bool		onull;
		bool		nnull;
		Datum		o = slot_getattr(oslot, entry->attnums[i], &onull);
		Datum		n = slot_getattr(nslot, entry->attnums[i], &nnull);

		if (onull || nnull || !datumIsEqual(o, n, att->attbyval, att->attlen))
			return false;
	}
	return true;
}

/*
 * Whether an UPDATE statement kept every row's key: its old and new
 * transition tables, read side by side, hold the same non-null keys, byte
 * for byte, row by row.  PostgreSQL adds an updated row's old and new
 * versions to them together, so they pair up; but whatever the order, a
 * pair that matches proves that its old key is among the new keys, so when
 * all do, the anti-join of the set-based statement would find no old key
 * to queue.  A no (a key changed, a null, equal values in other bytes)
 * only costs that anti-join.  Cheaper than it: no hash table of the new
 * keys, and most updates keep their keys.
 */
static bool
update_kept_keys(CapturePlan *entry, TriggerData *td)
{
	Tuplestorestate *olds = td->tg_oldtable;
	Tuplestorestate *news = td->tg_newtable;
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	TupleTableSlot *oslot;
	TupleTableSlot *nslot;
	int			optr;
	int			nptr;
	bool		kept = true;

	if (olds == NULL || news == NULL ||
		tuplestore_tuple_count(olds) != tuplestore_tuple_count(news))
		return false;

	oslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	nslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	optr = tuplestore_alloc_read_pointer(olds, EXEC_FLAG_REWIND);
	nptr = tuplestore_alloc_read_pointer(news, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(olds, optr);
	tuplestore_rescan(olds);
	tuplestore_select_read_pointer(news, nptr);
	tuplestore_rescan(news);
	while (kept)
	{
		bool		got_old = tuplestore_gettupleslot(olds, true, false, oslot);
		bool		got_new = tuplestore_gettupleslot(news, true, false, nslot);

		if (got_old != got_new)
			kept = false;
		if (!got_old || !got_new)
			break;
		kept = row_keys_kept(entry, desc, oslot, nslot);
		CHECK_FOR_INTERRUPTS();
	}
	tuplestore_select_read_pointer(olds, 0);
	tuplestore_select_read_pointer(news, 0);
	ExecDropSingleTupleTableSlot(oslot);
	ExecDropSingleTupleTableSlot(nslot);
	return kept;
}

/* the size class of a number of rows: log4, rounded down */
static int
size_class(int64 rows)
{
	return rows < 1 ? 0 : pg_leftmost_one_pos64((uint64) rows) / 2;
}

/*
 * Run the set-based INSERT of a kind for a statement that changed rows
 * rows, prepared for their size class the first time.  The trigger data
 * is registered with SPI.
 */
static void
capture_statement(CapturePlan *entry, TriggerData *td, int64 rows, StatementKind kind)
{
	int			sclass = size_class(rows);
	int			rc;

	if (entry->stmt_plans[sclass][kind] == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(statement_sql(td, entry->pipeline_id,
													 entry->numbered, kind),
									   0, NULL);

		if (plan == NULL)
			elog(ERROR, "incetl: could not prepare the capture: %s",
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "incetl: SPI_keepplan failed");
		entry->stmt_plans[sclass][kind] = plan;
	}
	rc = SPI_execute_plan(entry->stmt_plans[sclass][kind], NULL, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "incetl: capture returned %s", SPI_result_code_string(rc));
}

/*
 * The capture of a statement through the queue writer: each new row's key
 * ('i' or 'u'), each old row's for a delete ('d').  An update reads its old
 * rows alongside and compares their keys with the new rows', as
 * update_kept_keys does, in the same pass: true when some old key may be
 * missing among the new ones, for the caller to queue those (STMT_OLD).
 * Only the key columns of each row are read.
 */
static bool
capture_statement_direct(CapturePlan *entry, TriggerData *td, QueueWriter *w)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	bool		update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
	bool		delete = TRIGGER_FIRED_BY_DELETE(td->tg_event);
	Tuplestorestate *ts = delete ? td->tg_oldtable : td->tg_newtable;
	Tuplestorestate *olds = update ? td->tg_oldtable : NULL;
	char		op = update ? 'u' : delete ? 'd' : 'i';
	int			nkeys = entry->nkeys;
	Datum	   *keys = palloc(sizeof(Datum) * nkeys);
	bool	   *isnull = palloc(sizeof(bool) * nkeys);
	TupleTableSlot *slot;
	TupleTableSlot *oslot = NULL;
	bool		kept = update;

	if (ts == NULL)
		return update;
	if (update && (olds == NULL ||
				   tuplestore_tuple_count(olds) != tuplestore_tuple_count(ts)))
		kept = false;

	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_select_read_pointer(ts, tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND));
	tuplestore_rescan(ts);
	if (kept)
	{
		oslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
		tuplestore_select_read_pointer(olds, tuplestore_alloc_read_pointer(olds, EXEC_FLAG_REWIND));
		tuplestore_rescan(olds);
	}
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		for (int i = 0; i < nkeys; i++)
			keys[i] = slot_getattr(slot, entry->attnums[i], &isnull[i]);
		if (kept)
			kept = tuplestore_gettupleslot(olds, true, false, oslot) &&
				row_keys_kept(entry, desc, oslot, slot);
		queue_writer_add(w, keys, isnull, op);
		CHECK_FOR_INTERRUPTS();
	}
	if (kept && tuplestore_gettupleslot(olds, true, false, oslot))
		kept = false;

	tuplestore_select_read_pointer(ts, 0);
	ExecDropSingleTupleTableSlot(slot);
	if (oslot != NULL)
	{
		tuplestore_select_read_pointer(olds, 0);
		ExecDropSingleTupleTableSlot(oslot);
	}
	pfree(keys);
	pfree(isnull);
	return update && !kept;
}

/* did an update change the key (byte for byte: a false yes costs nothing) */
static bool
row_key_changed(CapturePlan *entry, TupleTableSlot *oldslot, TupleTableSlot *newslot)
{
	for (int i = 0; i < entry->nkeys; i++)
	{
		bool		oldnull;
		bool		newnull;
		Datum		o = slot_getattr(oldslot, entry->attnums[i], &oldnull);
		Datum		n = slot_getattr(newslot, entry->attnums[i], &newnull);
		int16		typlen;
		bool		typbyval;

		if (oldnull != newnull)
			return true;
		if (oldnull)
			continue;
		get_typlenbyval(entry->types[i], &typlen, &typbyval);
		if (!datumIsEqual(o, n, typbyval, typlen))
			return true;
	}
	return false;
}

/*
 * incetl._capture(): the capture trigger.  Arguments: the pipeline id,
 * then the names of the key columns.  AFTER ... FOR EACH STATEMENT with
 * transition tables, or AFTER ... FOR EACH ROW (the row trigger).
 */
Datum
incetl_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Trigger    *tg;
	IncetlRoleSwitch save;
	int32		pipeline_id;
	Oid			queue_rel;
	Oid			queue_owner;
	CapturePlan *entry;
	bool		row;
	bool		numbered;
	volatile int64 rows = 0;
	volatile bool small = false;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("incetl._capture() must be called as a trigger")));
	tg = td->tg_trigger;
	row = TRIGGER_FIRED_FOR_ROW(td->tg_event);
	if (!TRIGGER_FIRED_AFTER(td->tg_event) || tg->tgnargs < 2 ||
		(row && TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("incetl._capture() must be an AFTER trigger created by incetl")));

	pipeline_id = pg_strtoint32(tg->tgargs[0]);

	/*
	 * Writers of the source need no right on the queue: write it as its
	 * owner, the extension owner (or, for a queue made by incetl 0.1 and not
	 * yet rebuilt, the pipeline's owner), security-restricted, with a fixed
	 * search_path.  Nothing user-defined runs in that write: base-type
	 * columns, no trigger, rule, policy or default of anyone else's (the
	 * queue writer writes only a queue that has none at all).
	 */
	queue_rel = queue_relid(pipeline_id);
	if (!OidIsValid(queue_rel))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("capture queue of incetl pipeline %d does not exist", pipeline_id),
				 errhint("Drop the trigger \"%s\" or the pipeline.", tg->tgname)));
	queue_owner = relation_owner(queue_rel);

	entry = capture_plan(tg, RelationGetRelid(td->tg_relation), pipeline_id);
	numbered = get_attnum(queue_rel, "seq") != InvalidAttrNumber;
	if (entry->numbered != numbered)
		free_capture_plans(entry);
	entry->numbered = numbered;

	/*
	 * A numbered queue is ours: it belongs to the extension owner.  One that
	 * does not is not written as whoever owns it.
	 */
	if (numbered && queue_owner != incetl_extension_owner())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("capture queue \"%s\" of incetl pipeline %d is not owned by the extension owner",
						queue_qname(pipeline_id), pipeline_id),
				 errhint("Run the pipeline: it replaces the queue and compares the whole source with the target.")));

	/* a statement trigger: how many rows changed */
	if (!row && !TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		if (td->tg_oldtable)
			rows = Max(rows, tuplestore_tuple_count(td->tg_oldtable));
		if (td->tg_newtable)
			rows = Max(rows, tuplestore_tuple_count(td->tg_newtable));
		/* a statement that changed no row has nothing to queue */
		if (rows == 0)
			return PointerGetDatum(NULL);
		small = rows <= CAPTURE_SMALL_ROWS;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!row && !small && SPI_register_trigger_data(td) != SPI_OK_TD_REGISTER)
		elog(ERROR, "SPI_register_trigger_data failed");

	/* planned too as the queue's owner, with its search_path */
	incetl_switch_role(&save, queue_owner, INCETL_ROLE_PIN_PATH);
	PG_TRY();
	{
		QueueWriter *w = NULL;

		if (!TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		{
			set_key_columns(entry, td);
			if (numbered)
				w = queue_writer_open(entry, RelationGetDescr(td->tg_relation), queue_rel);
		}
		if (w == NULL && (row || small) && entry->plan == NULL)
			prepare_row(entry, queue_qname(pipeline_id), numbered);

		if (small)
			capture_small(entry, w, td);
		else if (!row && w != NULL)
		{
			bool		old_keys = capture_statement_direct(entry, td, w);

			queue_writer_close(w);
			w = NULL;
			if (old_keys)
				capture_statement(entry, td, rows, STMT_OLD);
		}
		else if (!row)
			capture_statement(entry, td, rows,
							  TRIGGER_FIRED_BY_UPDATE(td->tg_event) &&
							  !update_kept_keys(entry, td) ? STMT_NEW_OLD : STMT_NEW);
		else if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
			queue_row_key(entry, w, td->tg_trigslot, 'i');
		else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
			queue_row_key(entry, w, td->tg_trigslot, 'd');
		else
		{
			queue_row_key(entry, w, td->tg_newslot, 'u');
			if (row_key_changed(entry, td->tg_trigslot, td->tg_newslot))
				queue_row_key(entry, w, td->tg_trigslot, 'd');
		}
		if (w != NULL)
			queue_writer_close(w);
	}
	PG_CATCH();
	{
		incetl_restore_role(&save, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	incetl_restore_role(&save, true);

	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * INSERT INTO <work table> (rn, k1, ..., op, qtid, qseq)
 * SELECT $1 + dense_rank() OVER (ORDER BY q.k1, ...), q.k1, ..., 'u',
 *		  q.ctid, q.seq
 * FROM <queue> AS q WHERE q.op <> 'T'
 * AND NOT EXISTS (SELECT 1 FROM <work table> AS w WHERE w.k1 = q.k1 AND ...)
 *
 * Fill the work table with the queued keys not already in it, numbered
 * from offset $1 + 1 in key order: one row per queue entry (its tuple id
 * and seq), the entries of one key sharing its number.  A sort of the
 * entries, no grouping: an aggregate of every key's entries into arrays
 * costs twice as much.  A plain INSERT (not one in a WITH, whose RETURNING
 * would give the highest number): rules and triggers the owner's code put
 * on the work table meet the statement they met before.
 */
static char *
incetl_sql_fill_from_queue(IncetlPipeline *p)
{
	StringInfoData buf;
	StringInfoData keys;
	StringInfoData values;
	int			i;

	initStringInfo(&values);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&values, "%sq.k%d", i ? ", " : "", i + 1);

	/* ranked by the source's collations (incetl_key_collate) */
	initStringInfo(&keys);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&keys, "%sq.k%d%s", i ? ", " : "", i + 1,
						 incetl_key_collate(p->keys[i]));

	initStringInfo(&buf);
	appendStringInfo(&buf, "INSERT INTO %s (rn, ", incetl_work_table_name(p));
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "k%d, ", i + 1);
	appendStringInfo(&buf, "op, qtid, qseq) "
					 "SELECT $1 OPERATOR(pg_catalog.+) pg_catalog.dense_rank() OVER (ORDER BY %s), "
					 "%s, 'u'::pg_catalog.\"char\", q.ctid, q.seq "
					 "FROM %s AS q WHERE q.op OPERATOR(pg_catalog.<>) 'T' "
					 "AND NOT EXISTS (SELECT 1 FROM %s AS w WHERE ",
					 keys.data, values.data, incetl_queue_table_name(p),
					 incetl_work_table_name(p));
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%sw.k%d %s q.k%d%s", i ? " AND " : "", i + 1,
						 incetl_type_equality(p->keys[i]->src_type), i + 1,
						 incetl_key_collate(p->keys[i]));
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/* the tids and seqs in the first row of SPI_tuptable, copied */
static void
copy_entries(IncetlQueueEntries *e)
{
	bool		isnull;
	Datum		tids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	Datum		seqs;

	e->tids = e->seqs = (Datum) 0;
	if (isnull)
		return;
	seqs = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	e->tids = datumCopy(tids, false, -1);
	e->seqs = datumCopy(seqs, false, -1);
}

/*
 * The TRUNCATE markers in the queue (none: e->seqs == 0); read as the
 * pipeline's owner, copied into the caller's memory context.
 */
static void
incetl_capture_markers(IncetlPipeline *p, IncetlQueueEntries *e)
{
	if (SPI_execute(psprintf("SELECT pg_catalog.array_agg(ctid), pg_catalog.array_agg(seq) "
							 "FROM %s WHERE op OPERATOR(pg_catalog.=) 'T'",
							 incetl_queue_table_name(p)),
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not read the queue");
	copy_entries(e);
}

/* the queue entries drained into rows (from, to] of the work table */
static void
incetl_capture_batch_entries(IncetlPipeline *p, int64 from, int64 to,
							 IncetlQueueEntries *e)
{
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		values[2] = {Int64GetDatum(from), Int64GetDatum(to)};

	if (SPI_execute_with_args(psprintf("SELECT pg_catalog.array_agg(w.qtid), pg_catalog.array_agg(w.qseq) "
									   "FROM %s AS w "
									   "WHERE w.rn OPERATOR(pg_catalog.>) $1 "
									   "AND w.rn OPERATOR(pg_catalog.<=) $2 AND w.qtid IS NOT NULL",
									   incetl_work_table_name(p)),
							  2, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not read the work table");
	copy_entries(e);
}

/*
 * Delete queue entries a run copied, as the queue's owner (the extension
 * owner: the pipeline's owner may not change the queue, nor lock it against
 * writers): by tuple id, a TID scan, where the seq is one of those copied.
 * An entry moved since (VACUUM FULL, CLUSTER, pg_repack) is left for the
 * next run, and whatever now sits at its old tuple id is left alone.
 */
static int64
incetl_capture_forget(IncetlPipeline *p, IncetlQueueEntries *e)
{
	Oid			argtypes[2] = {TIDARRAYOID, INT8ARRAYOID};
	Datum		values[2];

	if (e->seqs == (Datum) 0)
		return 0;
	values[0] = e->tids;
	values[1] = e->seqs;
	incetl_spi_exec_owner(psprintf("DELETE FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY ($1) "
								   "AND seq OPERATOR(pg_catalog.=) ANY ($2)",
								   incetl_queue_table_name(p)),
						  2, argtypes, values, NULL, SPI_OK_DELETE);
	return (int64) SPI_processed;
}

/*
 * The strategy's callbacks.
 *
 * A run makes sure capture covers the source (every partition), drains
 * the queue into the work table, and deletes the entries each batch applied
 * in that batch's transaction: each was committed before the work table was
 * filled, so the change it stands for is in the source rows the batch
 * reads.  TRUNCATE markers ask for a compare pass, and go with its last
 * batch.
 */
typedef struct TriggerRun
{
	IncetlQueueEntries markers; /* TRUNCATE markers (seqs == 0: none) */
	int64		copied;			/* entries the run copied, markers included */
	int64		forgotten_to;	/* entries of work rows up to it deleted */
	int64		deleted;		/* how many */
} TriggerRun;

/*
 * A run deletes the entries it applied every FORGET_BATCHES batches, so a
 * run that fails applies again at most that many batches' keys the next
 * time (a long backlog whose runs are cut short still drains); the rest
 * go at its end, by TRUNCATE when at least incetl.queue_truncate_min are
 * left (fewer are cheaper to delete than a TRUNCATE, which rewrites the
 * queue's catalog row and makes every writer plan its capture again).
 */
#define FORGET_BATCHES			4

static TriggerRun *
trigger_run(IncetlRun *run)
{
	if (run->private == NULL)
		run->private = MemoryContextAllocZero(run->cxt, sizeof(TriggerRun));
	return run->private;
}

static void
trigger_check(IncetlPipeline *p, bool at_create)
{
	if (p->src_relkind != RELKIND_RELATION && p->src_relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source of pipeline \"%s\" must be a local table for the 'trigger' strategy",
						p->name),
				 errhint("Capture triggers can only be put on tables; for a view or a foreign table use the 'timestamp' or 'hash' strategy.")));
	incetl_check_not_citus_source(p);
	if (at_create)
		incetl_capture_check_privileges(p);
}

static void
trigger_setup(IncetlPipeline *p)
{
	(void) incetl_capture_cover(p, CAPTURE_COVER_CREATE);
}

/*
 * Capture triggers on every partition, before anything is read; a capture
 * that may have missed changes makes this run compare everything.
 */
static void
trigger_prepare(IncetlRun *run)
{
	if (incetl_capture_cover(run->p, CAPTURE_COVER_PREPARE |
							 (run->compare_all ? CAPTURE_COVER_FULL_RUN :
							  CAPTURE_COVER_QUEUE_KEYS)))
		run->compare_all = true;
}

static void
trigger_fill_changes(IncetlRun *run)
{
	TriggerRun *tr = trigger_run(run);
	Oid			argtypes[2] = {INT8OID};
	Datum		values[2];
	MemoryContext oldcxt;
	int			nest;
	int			rc;
	Datum		max_rn;
	bool		isnull;

	if (run->compare_all)
		incetl_work_fill_compare(run, true);

	oldcxt = MemoryContextSwitchTo(run->cxt);
	incetl_capture_markers(run->p, &tr->markers);
	MemoryContextSwitchTo(oldcxt);
	if (tr->markers.seqs != (Datum) 0)
	{
		ArrayType  *seqs = DatumGetArrayTypeP(tr->markers.seqs);

		run->need_compare = true;
		tr->copied += ArrayGetNItems(ARR_NDIM(seqs), ARR_DIMS(seqs));
	}

	/* the entries are sorted by key: in memory, as a batch would be */
	nest = NewGUCNestLevel();
	if (work_mem < 32 * 1024)
		(void) set_config_option("work_mem", "32MB", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	values[0] = Int64GetDatum(run->work_total);
	rc = SPI_execute_with_args(incetl_sql_fill_from_queue(run->p), 1, argtypes,
							   values, NULL, false, 0);
	AtEOXact_GUC(true, nest);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "incetl: could not drain the queue");
	tr->copied += (int64) SPI_processed;
	if (SPI_processed == 0)
		return;

	/*
	 * The highest number given, through the index on rn: no higher than
	 * the offset plus the entries inserted, whatever else the owner's code
	 * put in the table, so the keyed pass stays as long as what it drained.
	 */
	argtypes[1] = INT8OID;
	values[1] = Int64GetDatum(run->work_total + (int64) SPI_processed);
	if (SPI_execute_with_args(psprintf("SELECT pg_catalog.max(rn) FROM %s "
									   "WHERE rn OPERATOR(pg_catalog.>) $1 "
									   "AND rn OPERATOR(pg_catalog.<=) $2",
									   incetl_work_table_name(run->p)),
							  2, argtypes, values, NULL, false, 0) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "incetl: could not read the work table");
	max_rn = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		run->work_total = DatumGetInt64(max_rn);
}

/*
 * A partition attached since the last check gets its capture triggers
 * before this batch can read it.
 */
static void
trigger_before_batch(IncetlRun *run)
{
	(void) incetl_capture_cover(run->p, CAPTURE_COVER_QUEUE_KEYS);
}

/* one attached while the batch read gets them, and a compare next run */
static void
trigger_after_batch(IncetlRun *run)
{
	TriggerRun *tr = trigger_run(run);

	(void) incetl_capture_cover(run->p, CAPTURE_COVER_QUEUE_KEYS |
								CAPTURE_COVER_AFTER_READ);

	/*
	 * Every FORGET_BATCHES keyed batches, the entries they applied, in the
	 * transaction of the last of them; those of the run's last batches go
	 * at its end (trigger_forget_copied).
	 */
	if (tr->copied > 0 && run->work_pos < run->work_total &&
		run->work_pos - tr->forgotten_to >= (int64) FORGET_BATCHES * run->p->batch_size)
		forget_rows(run, run->work_pos);
}

/*
 * Delete the entries of work table rows (tr->forgotten_to, to], a batch's
 * worth at a time, so that the tuple ids held stay as many as a batch's.
 */
static void
forget_rows(IncetlRun *run, int64 to)
{
	TriggerRun *tr = trigger_run(run);
	IncetlQueueEntries e;

	for (int64 from = tr->forgotten_to; from < to; from += run->p->batch_size)
	{
		incetl_capture_batch_entries(run->p, from, Min(from + run->p->batch_size, to), &e);
		tr->deleted += incetl_capture_forget(run->p, &e);
		if (e.seqs != (Datum) 0)
		{
			pfree(DatumGetPointer(e.tids));
			pfree(DatumGetPointer(e.seqs));
		}
	}
	tr->forgotten_to = to;
}

/* the number of entries in the queue, seen with snapshot (or the current) */
static int64
count_queue(IncetlPipeline *p, Snapshot snapshot)
{
	SPIPlanPtr	plan;
	bool		isnull;
	int64		n;

	plan = SPI_prepare(psprintf("SELECT pg_catalog.count(*) FROM %s",
								incetl_queue_table_name(p)), 0, NULL);
	if (plan == NULL ||
		SPI_execute_snapshot(plan, NULL, NULL, snapshot, InvalidSnapshot,
							 true, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "incetl: could not count the queue");
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									&isnull));
	SPI_freeplan(plan);
	return n;
}

/*
 * Empty the queue with TRUNCATE if it holds exactly the `left` entries of
 * the run's that it has not deleted (see the file's header); false if it
 * may hold others.  A first count, without the lock, spares writers the
 * wait when it cannot match.  The lock is taken only if no one holds any:
 * a writer with entries in flight holds one until it ends, so its entries
 * are never cut off, and the count, with a snapshot taken after the lock,
 * sees every entry committed before.
 */
static bool
truncate_queue_if_copied(IncetlPipeline *p, int64 left)
{
	Oid			queue = queue_relid(p->id);

	if (!OidIsValid(queue) || count_queue(p, InvalidSnapshot) != left ||
		!ConditionalLockRelationOid(queue, AccessExclusiveLock))
		return false;
	if (count_queue(p, GetLatestSnapshot()) != left)
	{
		/* writers may go on while the run deletes what it copied */
		UnlockRelationOid(queue, AccessExclusiveLock);
		return false;
	}
	incetl_spi_exec_owner(psprintf("TRUNCATE %s", incetl_queue_table_name(p)),
						  0, NULL, NULL, NULL, SPI_OK_UTILITY);
	return true;
}

/*
 * After the last batch, in its transaction: the entries the run copied
 * and has not deleted yet are applied; delete them (see the file's
 * header).
 */
static void
trigger_forget_copied(IncetlRun *run)
{
	TriggerRun *tr = trigger_run(run);
	int64		left = tr->copied - tr->deleted;

	if (tr->copied == 0)
		return;
	if (run->nonatomic && left >= incetl_queue_truncate_min &&
		truncate_queue_if_copied(run->p, left))
		return;
	forget_rows(run, run->work_total);
	(void) incetl_capture_forget(run->p, &tr->markers);
}

static void
trigger_finish_run(IncetlRun *run)
{
	trigger_forget_copied(run);
	incetl_state_save_run_start(run->p,
								incetl_canonical_text(TimestampTzGetDatum(run->run_start),
													  TIMESTAMPTZOID));
}

static void
trigger_preview(IncetlPreview *pv)
{
	IncetlPipeline *p = pv->p;

	if (incetl_state_watermark(p->id) == NULL)
	{
		incetl_preview_keyed(pv, incetl_sql_diff_keys(p, true), false);
		return;
	}
	/* as the pipeline's owner, like the rest of a preview */
	if (SPI_execute(psprintf("SELECT 1 FROM %s WHERE op OPERATOR(pg_catalog.=) 'T' LIMIT 1",
							 incetl_queue_table_name(p)), true, 0) != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not read the queue");
	incetl_preview_keyed(pv, incetl_sql_queue_keys(p), SPI_processed > 0);
}

static void
trigger_explain(IncetlExplain *ex)
{
	Oid		   *argtypes = palloc(sizeof(Oid));
	Datum	   *values = palloc(sizeof(Datum));

	if (incetl_state_watermark(ex->p->id) == NULL)
		incetl_explain_add(ex, "fill", EXPLAIN_PLAIN, incetl_sql_fill_work(ex->p, true),
						   0, NULL, NULL, NULL);
	argtypes[0] = INT8OID;
	values[0] = Int64GetDatum(0);
	incetl_explain_add(ex, "drain queue", EXPLAIN_PLAIN, incetl_sql_fill_from_queue(ex->p),
					   1, argtypes, values, NULL);
}

const IncetlStrategyRoutine incetl_trigger_strategy = {
	.name = "trigger",
	.keyed = true,
	.captures = true,
	.check = trigger_check,
	.setup = trigger_setup,
	.teardown = incetl_capture_teardown,
	.prepare = trigger_prepare,
	.fill_changes = trigger_fill_changes,
	.before_batch = trigger_before_batch,
	.after_batch = trigger_after_batch,
	.finish_run = trigger_finish_run,
	.preview = trigger_preview,
	.explain = trigger_explain,
};
