/*-------------------------------------------------------------------------
 *
 * logical.c
 *	  The 'logical' strategy: a logical replication slot decoded by
 *	  incetl's own output plugin (decode.c).
 *
 * The slot is named after the database and the pipeline
 * (incetl_<database oid>_<pipeline id>) and made by the run that needs it,
 * never by create_pipeline: a slot is not transactional, and a
 * create_pipeline that rolls back must leave nothing behind.  A run finds
 * its slot (or creates it, before its transaction writes anything: a slot
 * cannot be created after that), and it resumes from the LSN stored in
 * incetl.state only when the slot has not been confirmed past it; a slot
 * that is missing (the first run, a restore into another database or
 * cluster, a dropped slot), invalidated ('lost': max_slot_wal_keep_size),
 * or that was not made for the stored state (left by a run that rolled
 * back) makes the run compare the whole source with the target, like a
 * first run, so nothing is lost.
 *
 * A run first advances the slot to the LSN its last run stored, then peeks
 * the changes above that LSN into its work table, applies the keys in
 * keyed batches (and, after a TRUNCATE, deletes the target keys the source
 * lacks), stores the LSN of the last change applied in the same
 * transaction as the last of those writes, and only after that commit
 * confirms the slot.  A run that dies between applying and confirming
 * finds the stored LSN next time and skips what it applied.
 *
 * Everything here that touches the slot (create, peek, advance, drop a
 * lost slot), and the fill of the work table from the decoded keys (the
 * key types' operators and casts, a domain's CHECK among them, are the
 * owner's code), runs as the current user, which is the pipeline's owner
 * in a run or a preview; that owner must have the REPLICATION attribute,
 * as it would to use a slot by hand.  Only incetl.state is read and
 * written as the extension owner.
 *
 * drop_pipeline and DROP EXTENSION incetl drop slots when their
 * transaction commits (PRE_COMMIT), so a rolled-back drop keeps its slot;
 * a drop whose commit fails after that is healed by the next run, which
 * finds no slot.
 *
 * src/logical.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam_xlog.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xlogrecovery.h"
#include "access/xlogutils.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_oper.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/reorderbuffer.h"
#include "replication/slot.h"
#include "replication/snapbuild.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/pg_lsn.h"
#include "utils/rls.h"
#include "utils/queryenvironment.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplesort.h"
#include "utils/tuplestore.h"

#include "bulkinsert.h"
#include "decode.h"
#include "strategy.h"

INCETL_FUNCTION(incetl_drop_extension_slots);

/* slots, used by this file's callbacks */
static void incetl_logical_check(IncetlPipeline *p);
static void incetl_logical_check_owner(IncetlPipeline *p);
static char *incetl_logical_slot_name(IncetlPipeline *p);
static bool incetl_logical_slot(IncetlPipeline *p, bool create, int64 run_id,
								char **slot, XLogRecPtr *applied);
static void incetl_logical_drop_slot_at_commit(IncetlPipeline *p);
static void incetl_logical_advance(const char *slot, XLogRecPtr lsn);
static Datum incetl_logical_peek_json(IncetlPipeline *p, const char *slot,
									  XLogRecPtr applied, bool *truncated);

/*
 * What a run's read of its slot proposed for the slot's restart_lsn and
 * catalog_xmin (see incetl_logical_read): the latest of each, applied when
 * the run confirms.
 */
typedef struct SlotProposals
{
	XLogRecPtr	restart_valid;	/* once confirmed up to here ... */
	XLogRecPtr	restart_lsn;	/* ... decoding may restart here */
	XLogRecPtr	xmin_valid;		/* once confirmed up to here ... */
	TransactionId catalog_xmin; /* ... catalog rows older may go */
} SlotProposals;

static void complete_key_changes(IncetlPipeline *p);
static void incetl_logical_fill(IncetlPipeline *p, const char *slot, XLogRecPtr applied,
								int64 offset, int64 *max_rn, XLogRecPtr *last_lsn,
								bool *truncated, bool *rows_only,
								SlotProposals *proposals);
static void incetl_logical_confirm(const char *slot, XLogRecPtr lsn,
								   const SlotProposals *proposals);
static bool slot_is_ours(ReplicationSlot *s);


/*
 * A logical pipeline's owner needs the REPLICATION attribute, as it would
 * to create and read the slot by hand: incetl uses the slot as that owner.
 */
static void
incetl_logical_check_owner(IncetlPipeline *p)
{
	if (!has_rolreplication(p->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("owner of pipeline \"%s\" must have the REPLICATION attribute",
						p->name),
				 errdetail("A 'logical' pipeline reads changes through a replication slot that its owner, role \"%s\", creates and reads.",
						   GetUserNameFromId(p->owner, false)),
				 errhint("A superuser can grant it with ALTER ROLE %s REPLICATION; or use the 'trigger' strategy.",
						 quote_identifier(GetUserNameFromId(p->owner, false)))));
}

/*
 * Refuse a logical pipeline the server or the source cannot serve.
 */
static void
incetl_logical_check(IncetlPipeline *p)
{
	Relation	rel;
	char		ident;
	const char *plugins;

	incetl_logical_check_owner(p);
	incetl_check_not_citus_source(p);

	if (wal_level < WAL_LEVEL_LOGICAL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" needs wal_level = logical", p->name),
				 errdetail("The 'logical' strategy reads changes through a logical replication slot; wal_level is \"%s\".",
						   GetConfigOption("wal_level", false, false)),
				 errhint("Set wal_level = logical (and max_replication_slots > 0) and restart the server, or use the 'trigger' strategy.")));

	/* some builds only let listed libraries be output plugins */
	plugins = GetConfigOption("output_plugin_libraries", true, false);
	if (plugins != NULL && strstr(plugins, "incetl") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pipeline \"%s\" needs incetl in output_plugin_libraries", p->name),
				 errdetail("This server lets only these libraries decode logical replication slots: %s.",
						   plugins),
				 errhint("Add incetl to output_plugin_libraries in postgresql.conf, e.g. output_plugin_libraries = 'pgoutput, test_decoding, incetl', and reload.")));

	if (p->src_relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source \"%s\" of pipeline \"%s\" must be a table for the 'logical' strategy",
						get_rel_name(p->source), p->name),
				 errhint("Logical decoding sees changes of plain tables; for a partitioned table, a view or a foreign table use the 'timestamp' or 'hash' strategy.")));

	rel = relation_open(p->source, AccessShareLock);
	ident = rel->rd_rel->relreplident;
	if (ident == REPLICA_IDENTITY_NOTHING ||
		(ident == REPLICA_IDENTITY_DEFAULT && !OidIsValid(RelationGetReplicaIndex(rel))) ||
		(ident == REPLICA_IDENTITY_INDEX && !OidIsValid(RelationGetReplicaIndex(rel))))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("source \"%s\" of pipeline \"%s\" has no usable replica identity",
						RelationGetRelationName(rel), p->name),
				 errdetail("Deletes are decoded with the replica identity's columns only."),
				 errhint("Add a primary key to the source, or run ALTER TABLE %s REPLICA IDENTITY FULL.",
						 p->src_qname)));
	if (ident != REPLICA_IDENTITY_FULL)
	{
		Bitmapset  *idattrs = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_IDENTITY_KEY);

		for (int i = 0; i < p->nkeys; i++)
		{
			AttrNumber	att = get_attnum(p->source, p->keys[i]->name);

			if (!bms_is_member(att - FirstLowInvalidHeapAttributeNumber, idattrs))
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("key column \"%s\" of pipeline \"%s\" is not part of the replica identity of \"%s\"",
								p->keys[i]->name, p->name, RelationGetRelationName(rel)),
						 errhint("Make the key the source's primary key, or run ALTER TABLE %s REPLICA IDENTITY FULL.",
								 p->src_qname)));
		}
	}
	relation_close(rel, AccessShareLock);
}


/* the slot name incetl gives a pipeline in this database */
static char *
incetl_logical_slot_name(IncetlPipeline *p)
{
	return psprintf("incetl_%u_%d", MyDatabaseId, p->id);
}

/* what pg_replication_slots says about a slot */
typedef struct SlotInfo
{
	bool		found;
	bool		ours;			/* logical, this database, incetl's plugin */
	bool		lost;			/* invalidated: it can no longer be read */
	XLogRecPtr	confirmed;		/* confirmed_flush_lsn */
	int64		retained;		/* bytes of WAL it holds; -1: none, or lost */
} SlotInfo;

static void
look_up_slot(const char *name, SlotInfo *info)
{
	Oid			types[2] = {NAMEOID, OIDOID};
	Datum		values[2];
	bool		isnull;
	Datum		d;

	memset(info, 0, sizeof(SlotInfo));
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(name));
	values[1] = ObjectIdGetDatum(MyDatabaseId);
	if (SPI_execute_with_args("SELECT s.slot_type OPERATOR(pg_catalog.=) 'logical' "
							  "AND s.datoid OPERATOR(pg_catalog.=) $2 "
							  "AND s.plugin OPERATOR(pg_catalog.=) 'incetl', "
							  "s.wal_status IS NOT DISTINCT FROM 'lost'"
#if PG_VERSION_NUM >= 170000
							  " OR s.invalidation_reason IS NOT NULL"
#elif PG_VERSION_NUM >= 160000
							  " OR s.conflicting IS TRUE"
#endif
							  ", s.confirmed_flush_lsn, "
							  "pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), "
							  "s.restart_lsn)::pg_catalog.int8 "
							  "FROM pg_catalog.pg_replication_slots AS s "
							  "WHERE s.slot_name OPERATOR(pg_catalog.=) $1",
							  2, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not look up replication slot \"%s\"", name);
	if (SPI_processed != 1)
		return;
	info->found = true;
	info->ours = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
	info->lost = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 2, &isnull));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	info->confirmed = isnull ? InvalidXLogRecPtr : DatumGetLSN(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	info->retained = isnull ? -1 : DatumGetInt64(d);
}

/* run a slot function on slot name as the current user */
static void
slot_function(const char *sql, const char *name)
{
	Oid			types[1] = {NAMEOID};
	Datum		values[1];

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(name));
	if (SPI_execute_with_args(sql, 1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "incetl: \"%s\" failed", sql);
}

/*
 * The slot a pipeline reads, and where a run resumes from.
 *
 * Returns true when the run may resume from the applied LSN stored in
 * incetl.state (*applied); false when it must compare the whole source with
 * the target and read the whole slot (*applied is then InvalidXLogRecPtr).
 * The slot serves the stored state only if it has not been confirmed past
 * the stored LSN: it then still holds every change committed after it.
 *
 * create (a run): a lost slot, or one that holds more WAL than
 * max_retained_wal, is dropped and a missing one created, as the current
 * user, before the transaction writes anything; a slot that must be read
 * from its start marks the pipeline for a resync (until the run that
 * compares everything commits) and sends the 'resync' alert, once.
 * Otherwise (a preview) *slot is NULL when there is no slot to read.
 */
static bool
incetl_logical_slot(IncetlPipeline *p, bool create, int64 run_id, char **slot,
					XLogRecPtr *applied)
{
	MemoryContext callercxt = CurrentMemoryContext;
	IncetlSlotState state;
	char	   *stored;
	XLogRecPtr	stored_lsn;
	bool		loaded;
	char	   *name = NULL;
	const char *why = NULL;
	SlotInfo	info;

	incetl_logical_check_owner(p);

	incetl_state_read_slot(p, &state);
	stored = state.slot_name;
	stored_lsn = state.applied;
	loaded = state.loaded;

	/*
	 * The stored name, when it is a slot of ours in this database (pipelines
	 * made before slots were named by id keep theirs); else the pipeline's
	 * own name.  A stored name of another database is a restored copy's.
	 */
	if (stored != NULL)
	{
		look_up_slot(stored, &info);
		if (info.found && info.ours)
			name = stored;
	}
	if (name == NULL)
	{
		name = incetl_logical_slot_name(p);
		look_up_slot(name, &info);
		if (info.found && !info.ours)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("replication slot \"%s\" of pipeline \"%s\" belongs to something else",
							name, p->name),
					 errdetail("It is not a slot of the incetl plugin in this database."),
					 errhint("Drop that slot with pg_drop_replication_slot(%s) if nothing needs it.",
							 quote_literal_cstr(name))));
	}

	if (info.found && info.lost)
	{
		if (!create)
		{
			*slot = NULL;
			*applied = InvalidXLogRecPtr;
			return false;
		}
		slot_function("SELECT pg_catalog.pg_drop_replication_slot($1)", name);
		info.found = false;
		why = "was invalidated";
		name = incetl_logical_slot_name(p);
	}
	else if (create && info.found && p->max_retained_wal_bytes >= 0 &&
			 info.retained > p->max_retained_wal_bytes)
	{
		/* the run checks the limit too, as guard does */
		slot_function("SELECT pg_catalog.pg_drop_replication_slot($1)", name);
		info.found = false;
		why = psprintf("held more WAL than max_retained_wal (%s)", p->max_retained_wal);
		name = incetl_logical_slot_name(p);
	}

	if (!info.found)
	{
		if (!create)
		{
			*slot = NULL;
			*applied = InvalidXLogRecPtr;
			return false;
		}
		if (GetTopTransactionIdIfAny() != InvalidTransactionId)
			ereport(ERROR,
					(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
					 errmsg("pipeline \"%s\" needs a new replication slot, which cannot be created in a transaction that has written",
							p->name),
					 errdetail("The first run of a 'logical' pipeline, and a run that finds its slot gone, creates the slot."),
					 errhint("Call incetl.run(%s) outside a transaction block, or before anything else in it.",
							 quote_literal_cstr(p->name))));
		if (loaded && why == NULL)
			why = "is gone";
		slot_function("SELECT pg_catalog.pg_create_logical_replication_slot($1, 'incetl')",
					  name);
		incetl_state_set_slot_name(p, name);
	}
	else if (loaded && (stored_lsn == InvalidXLogRecPtr || info.confirmed > stored_lsn))
		why = "was not made for the position the pipeline has applied";
	else if (loaded && state.needs_resync)
		why = "was dropped or lost earlier (the pipeline is marked for a resync)";

	*slot = MemoryContextStrdup(callercxt, name);
	if (why == NULL && loaded && info.found)
	{
		*applied = stored_lsn;
		return true;
	}
	if (why != NULL && create)
	{
		ereport(NOTICE,
				(errmsg("the replication slot of pipeline \"%s\" %s", p->name, why),
				 errdetail("Slot \"%s\" is read from its start, and this run compares the whole source with the target, as a first run does.",
						   name)));
		if (incetl_state_mark_resync(p->id))
			incetl_alert("resync", p->name, run_id, "running",
						 psprintf("the replication slot of pipeline \"%s\" %s", p->name, why));
	}
	*applied = InvalidXLogRecPtr;
	return false;
}

/* confirm the slot up to lsn, if it is behind */
static void
incetl_logical_advance(const char *slot, XLogRecPtr lsn)
{
	Oid			types[2] = {NAMEOID, LSNOID};
	Datum		values[2];

	if (lsn == InvalidXLogRecPtr)
		return;
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(slot));
	values[1] = LSNGetDatum(lsn);
	if (SPI_execute_with_args("SELECT pg_catalog.pg_replication_slot_advance(slot_name, $2) "
							  "FROM pg_catalog.pg_replication_slots "
							  "WHERE slot_name OPERATOR(pg_catalog.=) $1 "
							  "AND confirmed_flush_lsn OPERATOR(pg_catalog.<) $2",
							  2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not advance replication slot \"%s\"", slot);
}

/*
 * Flush the WAL written so far and return the flush position.  Logical
 * decoding through SQL reads only up to the flush position, and a commit
 * with synchronous_commit = off is visible before its WAL is flushed: what
 * committed before a run started must be decoded by that run.
 */
static XLogRecPtr
flush_wal(void)
{
	XLogRecPtr	upto;

	if (RecoveryInProgress())
		return GetXLogReplayRecPtr(NULL);

	/*
	 * When the last record ends a page, the insert position points past the
	 * next page's header, where nothing is written yet, and XLogFlush()
	 * fails on it: flush up to the end of the last record instead.
	 */
	upto = GetXLogInsertRecPtr();
	if (XLogSegmentOffset(upto, wal_segment_size) == SizeOfXLogLongPHD)
		upto -= SizeOfXLogLongPHD;
	else if (upto % XLOG_BLCKSZ == SizeOfXLogShortPHD)
		upto -= SizeOfXLogShortPHD;
	XLogFlush(upto);
	return GetFlushRecPtr(NULL);
}

/*
 * The name under which a run's read of its slot is visible to the fill
 * statement: an ephemeral named relation (as a trigger's transition
 * tables are), which an unqualified name finds before any table.
 */
#define INCETL_CHANGES_ENR "incetl_slot_changes"

/*
 * What a read of the slot collects, as the output plugin writes it: JSON
 * text (lsn pg_lsn, data text, o int8), or, typed, the changes above
 * "above" as the pipeline's keys (lsn pg_lsn, op "char", k1 .. kn, o
 * int8), a TRUNCATE only noted.
 */
typedef struct SlotRead
{
	Tuplestorestate *store;
	TupleDesc	desc;
	bool		typed;
	int64		rows;
	XLogRecPtr	above;			/* changes at or below it are applied */
	XLogRecPtr	last_lsn;		/* the highest LSN of a change above it */
	bool		truncated;		/* a TRUNCATE above it */
	Datum	   *values;			/* typed: a row being put */
	bool	   *nulls;
	int			ncols;			/* typed: the rows' columns (hr, v1 .. vm) */
	int64		rowless;		/* keep_last_changes: keys kept without a row */
} SlotRead;

static void
slot_read_prepare_write(LogicalDecodingContext *ctx, XLogRecPtr lsn,
						TransactionId xid, bool last_write)
{
	resetStringInfo(ctx->out);
}

static void
slot_read_write(LogicalDecodingContext *ctx, XLogRecPtr lsn,
				TransactionId xid, bool last_write)
{
	SlotRead   *r = (SlotRead *) ctx->output_writer_private;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	text	   *data;

	/* decode.c hands a typed read's changes to slot_read_put */
	if (r->typed)
		elog(ERROR, "incetl: unexpected text output in a typed read of a replication slot");
	data = cstring_to_text_with_len(ctx->out->data, ctx->out->len);
	if (lsn > r->above)
	{
		if (lsn > r->last_lsn)
			r->last_lsn = lsn;
		/* decode.c writes a TRUNCATE as exactly this */
		if (ctx->out->len == 10 && memcmp(ctx->out->data, "{\"op\":\"T\"}", 10) == 0)
			r->truncated = true;
	}
	values[0] = LSNGetDatum(lsn);
	values[1] = PointerGetDatum(data);
	values[2] = Int64GetDatum(++r->rows);
	tuplestore_putvalues(r->store, r->desc, values, nulls);
	pfree(data);
}

/*
 * A typed read's change from decode.c (IncetlDecodePut): a row of the
 * store when it is above the applied LSN (what the fill of a JSON read
 * leaves out in SQL), the copies of its key datums in the store's memory,
 * and, for a read that takes rows, whether the change brought its new row
 * and that row's values.
 */
static void
slot_read_put(IncetlDecodeSink *sink, XLogRecPtr lsn, char op, Datum *values,
			  bool *nulls, bool has_row, Datum *rowvalues, bool *rownulls)
{
	SlotRead   *r = (SlotRead *) sink->arg;
	int			n = sink->nkeys;

	if (lsn <= r->above)
		return;
	if (lsn > r->last_lsn)
		r->last_lsn = lsn;
	if (op == 'T')
	{
		r->truncated = true;
		return;
	}
	r->values[0] = LSNGetDatum(lsn);
	r->values[1] = CharGetDatum(op);
	memcpy(&r->values[2], values, sizeof(Datum) * n);
	memcpy(&r->nulls[2], nulls, sizeof(bool) * n);
	r->values[n + 2] = Int64GetDatum(++r->rows);
	if (r->ncols > 0)
	{
		/*
		 * A row whose key has a NULL (a nullable unique key, REPLICA
		 * IDENTITY FULL) is no key's row: the batch would insert it anew
		 * each time (no target key equals NULL), where reading the source
		 * by key skips it, as keyed runs always did.
		 */
		for (int i = 0; has_row && i < n; i++)
			if (nulls[i])
				has_row = false;
		r->values[n + 3] = BoolGetDatum(has_row);
		r->nulls[n + 3] = false;
		if (has_row)
		{
			memcpy(&r->values[n + 4], rowvalues, sizeof(Datum) * r->ncols);
			memcpy(&r->nulls[n + 4], rownulls, sizeof(bool) * r->ncols);
		}
		else
			memset(&r->nulls[n + 4], true, sizeof(bool) * r->ncols);
	}
	tuplestore_putvalues(r->store, r->desc, r->values, r->nulls);
}

/* the file (relfilenode) of a table now */
static Oid
relation_file(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			file;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	file = ((Form_pg_class) GETSTRUCT(tup))->relfilenode;
	ReleaseSysCache(tup);
	return file;
}

/*
 * Take what the decoder proposed for the slot since the last look: the
 * slot keeps only the first proposal made after its confirmed position
 * (logical.c's LogicalIncrease*ForSlot), so a reader that confirms once,
 * after its transaction commits, would move restart_lsn only to the first
 * snapshot after the previous run.  Taking each proposal out as it is
 * made lets the next one in, and the run confirms with the latest.
 */
static void
take_proposals(SlotProposals *proposals)
{
	ReplicationSlot *s = MyReplicationSlot;

	/*
	 * Called after every record, and nearly every time there is nothing to
	 * take: only the process that holds the slot, this one, proposes, so a
	 * look without the lock sees what it proposed.
	 */
	if (s->candidate_restart_valid == InvalidXLogRecPtr &&
		s->candidate_xmin_lsn == InvalidXLogRecPtr)
		return;
	SpinLockAcquire(&s->mutex);
	if (s->candidate_restart_valid != InvalidXLogRecPtr)
	{
		proposals->restart_valid = s->candidate_restart_valid;
		proposals->restart_lsn = s->candidate_restart_lsn;
		s->candidate_restart_valid = InvalidXLogRecPtr;
		s->candidate_restart_lsn = InvalidXLogRecPtr;
	}
	if (s->candidate_xmin_lsn != InvalidXLogRecPtr)
	{
		proposals->xmin_valid = s->candidate_xmin_lsn;
		proposals->catalog_xmin = s->candidate_catalog_xmin;
		s->candidate_xmin_lsn = InvalidXLogRecPtr;
		s->candidate_catalog_xmin = InvalidTransactionId;
	}
	SpinLockRelease(&s->mutex);
}

/* skip_other_relation's decision for one relfilenode */
typedef struct OtherRelation
{
	RelFileNode node;			/* hash key */
	bool		skip;
} OtherRelation;

static bool skip_other_relation(LogicalDecodingContext *ctx, HTAB *seen,
								Oid source, TransactionId horizon);
static void decide_other_relation(HTAB *seen, RelFileNode *node, Oid source,
								  TransactionId horizon);

/*
 * Decode the slot's changes to the source, from its restart_lsn up to
 * end_of_wal, without confirming anything: what pg_logical_slot_peek_changes
 * does (noting the last LSN and any TRUNCATE above the LSN "above"),
 * collected into a tuplestore in the caller's memory context, and with the
 * decoder's proposals for the slot kept (take_proposals) so that
 * confirming after the commit needs no second decoding of the same WAL
 * (pg_replication_slot_advance decodes from restart_lsn again).  Runs as
 * the current user (the pipeline's owner), with the same checks as the SQL
 * functions; the output plugin is the slot's (incetl's decode.c).
 */
static SlotRead *
incetl_logical_read(IncetlPipeline *p, const char *slot, XLogRecPtr above,
					XLogRecPtr end_of_wal, bool typed, SlotProposals *proposals)
{
	MemoryContext callercxt = CurrentMemoryContext;
	ResourceOwner old_resowner = CurrentResourceOwner;
	SlotRead   *r = palloc0(sizeof(SlotRead));
	List	   *options = NIL;
	LogicalDecodingContext *ctx;
	IncetlDecodeSink sink;
	HTAB	   *seen;
	HASHCTL		hctl;
	TransactionId horizon;

	CheckSlotPermissions();
	CheckLogicalDecodingRequirements();

	r->typed = typed;
	if (typed)
	{
		ListCell   *lc;
		int			n = p->nkeys + 3;
		int			j = 0;

		memset(&sink, 0, sizeof(sink));

		/*
		 * The new rows themselves (incetl_logical_rows), unless row-level
		 * security would filter what the owner reads of the source: then
		 * every key's row is read from the source, through its policies.
		 */
		if (incetl_logical_rows(p) &&
			check_enable_rls(p->source, InvalidOid, true) != RLS_ENABLED)
			r->ncols = list_length(p->columns);

		/*
		 * Each key column in its source type and typmod, a domain's in its
		 * base type and typmod: the fill casts it to the domain
		 * (logical_fill_sql), which runs the domain's CHECK as the JSON
		 * path's cast did.  Then o, and with rows hr, v1 .. vm.
		 */
		r->desc = CreateTemplateTupleDesc(n + (r->ncols > 0 ? 1 + r->ncols : 0));
		TupleDescInitEntry(r->desc, (AttrNumber) 1, "lsn", PG_LSNOID, -1, 0);
		TupleDescInitEntry(r->desc, (AttrNumber) 2, "op", CHAROID, -1, 0);
		for (int i = 0; i < p->nkeys; i++)
		{
			int32		typmod = p->keys[i]->src_typmod;
			Oid			type = getBaseTypeAndTypmod(p->keys[i]->src_type, &typmod);

			TupleDescInitEntry(r->desc, (AttrNumber) (i + 3), psprintf("k%d", i + 1),
							   type, typmod, 0);
		}
		TupleDescInitEntry(r->desc, (AttrNumber) n, "o", INT8OID, -1, 0);
		r->values = palloc0(sizeof(Datum) * r->desc->natts);
		r->nulls = palloc0(sizeof(bool) * r->desc->natts);

		if (r->ncols > 0)
		{
			TupleDescInitEntry(r->desc, (AttrNumber) (n + 1), "hr", BOOLOID, -1, 0);
			sink.ncols = r->ncols;
			sink.colnames = palloc(sizeof(char *) * r->ncols);
			sink.colattnums = palloc(sizeof(AttrNumber) * r->ncols);
			sink.coltypes = palloc(sizeof(Oid) * r->ncols);
			sink.coltypmods = palloc(sizeof(int32) * r->ncols);
			foreach(lc, p->columns)
			{
				IncetlColumn *c = lfirst(lc);

				TupleDescInitEntry(r->desc, (AttrNumber) (n + 2 + j), psprintf("v%d", j + 1),
								   c->src_type, c->src_typmod, 0);
				sink.colnames[j] = c->name;
				sink.colattnums[j] = get_attnum(p->source, c->name);
				sink.coltypes[j] = c->src_type;
				sink.coltypmods[j] = c->src_typmod;
				j++;
			}
			sink.relfilenode = relation_file(p->source);
		}
		sink.relid = p->source;
		sink.nkeys = p->nkeys;
		sink.names = palloc(sizeof(char *) * Max(p->nkeys, 1));
		sink.types = palloc(sizeof(Oid) * Max(p->nkeys, 1));
		sink.typmods = palloc(sizeof(int32) * Max(p->nkeys, 1));
		for (int i = 0; i < p->nkeys; i++)
		{
			sink.names[i] = p->keys[i]->name;
			sink.types[i] = p->keys[i]->src_type;
			sink.typmods[i] = p->keys[i]->src_typmod;
		}
		sink.put = slot_read_put;
		sink.arg = r;
	}
	else
	{
		r->desc = CreateTemplateTupleDesc(3);
		TupleDescInitEntry(r->desc, (AttrNumber) 1, "lsn", PG_LSNOID, -1, 0);
		TupleDescInitEntry(r->desc, (AttrNumber) 2, "data", TEXTOID, -1, 0);
		TupleDescInitEntry(r->desc, (AttrNumber) 3, "o", INT8OID, -1, 0);
	}
	r->store = tuplestore_begin_heap(false, false, work_mem);
	r->above = above;

	options = lappend(options, makeDefElem("relid",
										   (Node *) makeString(psprintf("%u", p->source)), -1));
	if (p->hist_qname != NULL)
	{
		options = lappend(options, makeDefElem("times", (Node *) makeString("on"), -1));
		options = lappend(options, makeDefElem("values", (Node *) makeString("on"), -1));
	}

	ReplicationSlotAcquire(slot, true);
	PG_TRY();
	{
		/* for the decoding context made now only (decode.c claims it) */
		if (typed)
			incetl_decode_sink = &sink;
		ctx = CreateDecodingContext(InvalidXLogRecPtr, options, false,
									XL_ROUTINE(.page_read = read_local_xlog_page,
											   .segment_open = wal_segment_open,
											   .segment_close = wal_segment_close),
									slot_read_prepare_write, slot_read_write, NULL);
		if (XLogRecPtrIsInvalid(MyReplicationSlot->data.restart_lsn))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("can no longer get changes from replication slot \"%s\"", slot),
					 errdetail("This slot has never previously reserved WAL, or it has been invalidated.")));
		MemoryContextSwitchTo(callercxt);
		ctx->output_writer_private = r;
		if (typed)
		{
			incetl_decode_sink = NULL;
			/* not the plugin that takes a sink: not a run's slot to read typed */
			if (!sink.claimed)
				sink.failed = true;
		}

		/* proposals made before this read are the decoder's, not ours */
		take_proposals(proposals);
		memset(proposals, 0, sizeof(SlotProposals));

		horizon = MyReplicationSlot->data.catalog_xmin;
		hctl.keysize = sizeof(RelFileNode);
		hctl.entrysize = sizeof(OtherRelation);
		hctl.hcxt = CurrentMemoryContext;
		seen = hash_create("incetl other relations", 64, &hctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

		XLogBeginRead(ctx->reader, MyReplicationSlot->data.restart_lsn);
		InvalidateSystemCaches();
		while (ctx->reader->EndRecPtr < end_of_wal && !(typed && sink.failed))
		{
			XLogRecord *record;
			char	   *errm = NULL;

			record = XLogReadRecord(ctx->reader, &errm);
			if (errm)
				elog(ERROR, "could not find record for logical decoding: %s", errm);
			if (record != NULL &&
				!skip_other_relation(ctx, seen, p->source, horizon))
			{
				LogicalDecodingProcessRecord(ctx, ctx->reader);
				take_proposals(proposals);
			}
			CHECK_FOR_INTERRUPTS();
		}
		CurrentResourceOwner = old_resowner;
		FreeDecodingContext(ctx);
		ReplicationSlotRelease();
		InvalidateSystemCaches();
	}
	PG_CATCH();
	{
		incetl_decode_sink = NULL;
		InvalidateSystemCaches();
		CurrentResourceOwner = old_resowner;

		/*
		 * Transaction abort does not release a slot (a walsender holds its
		 * slot across transactions); a run that catches this error in a
		 * subtransaction must find the slot free again.
		 */
		if (MyReplicationSlot != NULL)
			ReplicationSlotRelease();
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(callercxt);

	/*
	 * A change the typed read could not hand over (decode.c): read it all
	 * again as JSON, which the fill casts as it always did.  Rare: a key
	 * column dropped, renamed or altered while the slot held changes.
	 */
	if (typed && sink.failed)
	{
		elog(DEBUG1, "incetl: reading replication slot \"%s\" again as JSON: its changes to \"%s\" have other key columns than the pipeline's now",
			 slot, get_rel_name(p->source));
		tuplestore_end(r->store);
		return incetl_logical_read(p, slot, above, end_of_wal, false, proposals);
	}
	return r;
}

/* the first pg_class row that matches skey, copied, and how many match */
static HeapTuple
pg_class_row(Relation pgclass, Oid indexid, bool indexok, int nkeys,
			 ScanKey skey, int *found)
{
	SysScanDesc scan;
	HeapTuple	tuple;
	HeapTuple	copy = NULL;

	*found = 0;
	scan = systable_beginscan(pgclass, indexid, indexok, NULL, nkeys, skey);
	while ((tuple = systable_getnext(scan)) != NULL)
	{
		if ((*found)++ == 0)
			copy = heap_copytuple(tuple);
	}
	systable_endscan(scan);
	return copy;
}

/* a pg_class row's xmin frozen, or before horizon */
static bool
pg_class_row_settled(HeapTuple tuple, TransactionId horizon)
{
	TransactionId xmin = HeapTupleHeaderGetXmin(tuple->t_data);

	return xmin == FrozenTransactionId ||
		(TransactionIdIsNormal(xmin) && TransactionIdPrecedes(xmin, horizon));
}

/* skip_other_relation's decision for the relfilenode of a pg_class row */
static void
decide_relfilenode(HTAB *seen, HeapTuple tuple, bool skip)
{
	Form_pg_class form = (Form_pg_class) GETSTRUCT(tuple);
	RelFileNode node;
	OtherRelation *entry;

	if (!OidIsValid(form->relfilenode))
		return;
	node.spcNode = OidIsValid(form->reltablespace) ? form->reltablespace :
		MyDatabaseTableSpace;
	node.dbNode = MyDatabaseId;
	node.relNode = form->relfilenode;
	entry = hash_search(seen, &node, HASH_ENTER, NULL);
	entry->skip = skip;
}

/*
 * The pg_class row of the table whose TOAST table is toastoid, copied, or
 * NULL.  pg_class has no index on reltoastrelid, and a scan of it per TOAST
 * table let any role that writes a TOASTed row to each of thousands of
 * tables of hers make every logical run in the database read pg_class that
 * many times (quadratic: 6,000 such tables, 42,000 pg_class rows, 9.5 s
 * for one read; sql/64_attacks_owner5).  A TOAST table depends on its
 * table (DEPENDENCY_INTERNAL, recorded by create_toast_table): pg_depend's
 * index on the dependent finds it, and the table's own row, read by its
 * oid, must name this TOAST table.
 */
static HeapTuple
toast_owner_row(Relation pgclass, Oid toastoid)
{
	Relation	depend = table_open(DependRelationId, AccessShareLock);
	ScanKeyData skey[2];
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			owner = InvalidOid;
	int			owners = 0;
	int			found;

	ScanKeyInit(&skey[0], Anum_pg_depend_classid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(RelationRelationId));
	ScanKeyInit(&skey[1], Anum_pg_depend_objid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(toastoid));
	scan = systable_beginscan(depend, DependDependerIndexId, true, NULL, 2, skey);
	while ((tuple = systable_getnext(scan)) != NULL)
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tuple);

		if (dep->deptype == DEPENDENCY_INTERNAL && dep->refclassid == RelationRelationId)
		{
			owner = dep->refobjid;
			owners++;
		}
	}
	systable_endscan(scan);
	table_close(depend, AccessShareLock);
	if (owners != 1)
		return NULL;

	ScanKeyInit(&skey[0], Anum_pg_class_oid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(owner));
	tuple = pg_class_row(pgclass, ClassOidIndexId, true, 1, skey, &found);
	if (found != 1 || ((Form_pg_class) GETSTRUCT(tuple))->reltoastrelid != toastoid)
		return NULL;
	return tuple;
}

/*
 * For skip_other_relation: decide for the relation that now has
 * relfilenode "node", and for its table and that table's TOAST table
 * together.  A table's changes are left out only where it is an ordinary
 * table or materialized view other than the source, not a catalog, and
 * both its pg_class row and its TOAST table's are older than "horizon";
 * its TOAST chunks are left out exactly where its row changes are.  The
 * reorder buffer keeps a transaction's TOAST chunks until it replays that
 * transaction's next row change, and takes them for that change's: the
 * chunks of a row it never saw would go to the next source change (an
 * error, or a crash for a DELETE; sql/63_review6_toast_delete).  Deciding
 * for both at once keeps them together even when the catalog changes
 * during the read.
 *
 * Read from pg_class with systable scans of the current catalog, not
 * through RelidByRelfilenode or the syscache: the decoder looks relations
 * up through those caches under its historic snapshots, and an entry made
 * now would stand for the relation's current state there (a relfilenode
 * that no longer maps to anything, cached as such, is one the decoder must
 * still map to the source's past).
 */
static void
decide_other_relation(HTAB *seen, RelFileNode *node, Oid source,
					  TransactionId horizon)
{
	Relation	rel;
	ScanKeyData skey[2];
	HeapTuple	tuple;
	HeapTuple	table = NULL;
	HeapTuple	toast = NULL;
	Form_pg_class form;
	int			found;
	bool		skip = false;
	OtherRelation *entry;

	entry = hash_search(seen, node, HASH_ENTER, NULL);
	entry->skip = false;
	if (HistoricSnapshotActive())
		return;
	rel = table_open(RelationRelationId, AccessShareLock);
	ScanKeyInit(&skey[0], Anum_pg_class_reltablespace, BTEqualStrategyNumber,
				F_OIDEQ,
				ObjectIdGetDatum(node->spcNode == MyDatabaseTableSpace ?
								 InvalidOid : node->spcNode));
	ScanKeyInit(&skey[1], Anum_pg_class_relfilenode, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(node->relNode));
	tuple = pg_class_row(rel, ClassTblspcRelfilenodeIndexId, true, 2, skey, &found);
	if (found == 1)
	{
		form = (Form_pg_class) GETSTRUCT(tuple);
		if (form->relkind == RELKIND_TOASTVALUE)
		{
			/* a TOAST table: its table (toast_owner_row) */
			toast = tuple;
			table = toast_owner_row(rel, form->oid);
		}
		else
		{
			table = tuple;
			if (OidIsValid(form->reltoastrelid))
			{
				ScanKeyInit(&skey[0], Anum_pg_class_oid, BTEqualStrategyNumber,
							F_OIDEQ, ObjectIdGetDatum(form->reltoastrelid));
				toast = pg_class_row(rel, ClassOidIndexId, true, 1, skey, &found);
				if (found != 1)
					table = NULL;
			}
		}
	}
	if (table != NULL)
	{
		form = (Form_pg_class) GETSTRUCT(table);
		skip = form->oid != source && form->oid >= FirstNormalObjectId &&
			(form->relkind == RELKIND_RELATION ||
			 form->relkind == RELKIND_MATVIEW) &&
			OidIsValid(form->reltoastrelid) == (toast != NULL) &&
			pg_class_row_settled(table, horizon) &&
			(toast == NULL || pg_class_row_settled(toast, horizon));
		decide_relfilenode(seen, table, skip);
		if (toast != NULL)
			decide_relfilenode(seen, toast, skip);
	}
	table_close(rel, AccessShareLock);
}

/*
 * A data change of another relation's, which the plugin would only discard
 * (decode.c emits the source's changes only): record, as
 * LogicalDecodingProcessRecord and heap_decode would, the transaction's
 * subtransaction, its first LSN and its base snapshot, and leave its tuple
 * out of the reorder buffer.  The reorder buffer would otherwise copy every
 * row every other table's transactions wrote (a run's own previous writes to
 * its target among them), hold them in memory or spill them to disk, and
 * look up each one's relation at commit only to drop it.
 *
 * Only a change that is certainly not the source's is left out: a plain
 * INSERT, UPDATE, DELETE or multi-insert (no speculative insertion, no
 * TRUNCATE) in this database, to a block of a relation that now has this
 * relfilenode and is, or is the TOAST table of, an ordinary table or
 * materialized view that is not the source nor a catalog, and whose
 * pg_class row, and its TOAST table's, have not changed since before the
 * slot's catalog_xmin: then no transaction that committed in the WAL the
 * slot still reads gave either relfilenode to another relation, so the
 * change is that table's, whatever a rewrite, TRUNCATE or pg_repack did to
 * the source's files since.  Anything else goes the ordinary way.
 * Decisions are kept per relfilenode in "seen" for this read
 * (decide_other_relation).
 */
static bool
skip_other_relation(LogicalDecodingContext *ctx, HTAB *seen, Oid source,
					TransactionId horizon)
{
	XLogReaderState *record = ctx->reader;
	uint8		rmid = XLogRecGetRmid(record);
	uint8		info = XLogRecGetInfo(record) & XLOG_HEAP_OPMASK;
	TransactionId xid = XLogRecGetXid(record);
	TransactionId topxid = XLogRecGetTopXid(record);
	RelFileNode node;
	OtherRelation *entry;

	if (rmid == RM_HEAP_ID)
	{
		if (info == XLOG_HEAP_INSERT)
		{
			if (((xl_heap_insert *) XLogRecGetData(record))->flags & XLH_INSERT_IS_SPECULATIVE)
				return false;
		}
		else if (info == XLOG_HEAP_DELETE)
		{
			if (((xl_heap_delete *) XLogRecGetData(record))->flags & XLH_DELETE_IS_SUPER)
				return false;
		}
		else if (info != XLOG_HEAP_UPDATE && info != XLOG_HEAP_HOT_UPDATE)
			return false;
	}
	else if (rmid != RM_HEAP2_ID || info != XLOG_HEAP2_MULTI_INSERT)
		return false;
	if (!TransactionIdIsNormal(horizon) || !TransactionIdIsValid(xid) ||
		!XLogRecGetBlockTagExtended(record, 0, &node, NULL, NULL, NULL) ||
		node.dbNode != MyDatabaseId)
		return false;

	entry = hash_search(seen, &node, HASH_FIND, NULL);
	if (entry == NULL)
	{
		decide_other_relation(seen, &node, source, horizon);
		entry = hash_search(seen, &node, HASH_FIND, NULL);
	}
	if (!entry->skip)
		return false;

	/* LogicalDecodingProcessRecord and heap_decode, without the decoding */
	if (TransactionIdIsValid(topxid))
		ReorderBufferAssignChild(ctx->reorder, topxid, xid, record->ReadRecPtr);
	ReorderBufferProcessXid(ctx->reorder, xid, record->ReadRecPtr);
	if (SnapBuildCurrentState(ctx->snapshot_builder) >= SNAPBUILD_FULL_SNAPSHOT)
		(void) SnapBuildProcessChange(ctx->snapshot_builder, xid, record->ReadRecPtr);
	return true;
}

/*
 * Confirm the slot up to lsn after the run's commit: its confirmed_flush
 * moves there, and its restart_lsn and catalog_xmin to what the read
 * proposed for a position at or below lsn, as LogicalConfirmReceivedLocation
 * does for a walsender's feedback.  Nothing is decoded.  Runs as the
 * current user (the pipeline's owner), with the SQL functions' check.
 */
static void
incetl_logical_confirm(const char *slot, XLogRecPtr lsn, const SlotProposals *proposals)
{
	ReplicationSlot *s;

	if (lsn == InvalidXLogRecPtr)
		return;
	CheckSlotPermissions();
	ReplicationSlotAcquire(slot, true);
	s = MyReplicationSlot;

	/*
	 * Still the slot the run read: a slot dropped since and made again under
	 * its name by someone else (physical, another database's, another
	 * plugin's) is not ours to move.  The next run finds it not ours.
	 */
	if (!slot_is_ours(s))
	{
		ReplicationSlotRelease();
		return;
	}
	if (s->data.confirmed_flush < lsn)
	{
		SpinLockAcquire(&s->mutex);
		if (proposals->restart_valid != InvalidXLogRecPtr &&
			proposals->restart_valid <= lsn &&
			proposals->restart_lsn > s->data.restart_lsn)
		{
			s->candidate_restart_valid = proposals->restart_valid;
			s->candidate_restart_lsn = proposals->restart_lsn;
		}
		if (proposals->xmin_valid != InvalidXLogRecPtr &&
			proposals->xmin_valid <= lsn &&
			TransactionIdIsNormal(proposals->catalog_xmin) &&
			TransactionIdPrecedes(s->data.catalog_xmin, proposals->catalog_xmin))
		{
			s->candidate_xmin_lsn = proposals->xmin_valid;
			s->candidate_catalog_xmin = proposals->catalog_xmin;
		}
		SpinLockRelease(&s->mutex);
		LogicalConfirmReceivedLocation(lsn);
		/* as pg_logical_slot_get_changes: saved at the next checkpoint */
		ReplicationSlotMarkDirty();
		ReplicationSlotsComputeRequiredLSN();
	}
	ReplicationSlotRelease();
}

/*
 *  WHERE NOT EXISTS (SELECT 1 FROM <work table> AS w WHERE w.k1 = x.k1 ...)
 *
 * The keys of x the work table does not hold yet (a fill after the first).
 */
static void
append_not_in_work(StringInfo sql, IncetlPipeline *p)
{
	appendStringInfo(sql, " WHERE NOT EXISTS (SELECT 1 FROM %s AS w WHERE ",
					 incetl_work_table_name(p));
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(sql, "%sw.k%d %s x.k%d", i ? " AND " : "", i + 1,
						 incetl_type_equality(p->keys[i]->src_type), i + 1);
	appendStringInfoChar(sql, ')');
}

/*
 * The statement that peeks a slot's changes to the source ($1 slot, $2 the
 * source's OID as text, $3 the applied LSN or NULL) into the work table
 * (from_read: reads them from what incetl_logical_read collected, the
 * relation INCETL_CHANGES_ENR; else from pg_logical_slot_peek_changes,
 * which EXPLAIN shows), numbered from $4 + 1, and returns the highest
 * number added, the last LSN peeked, whether a TRUNCATE was among the
 * changes (from_read: NULL and false, the read knows them) and how many
 * rows of key changes lack values (co, history pipelines only).  first:
 * the work table is empty.  A typed read's fill is logical_fill_typed_sql's.
 */
static char *
logical_fill_sql(IncetlPipeline *p, bool from_read, bool first)
{
	StringInfoData sql;
	int			i;

	/*
	 * With a history table (SPEC 5) each change also carries its commit
	 * time and new row (decode.c's options "times" and "values"), and the
	 * work table gets one row per change, a key's rows sharing its number:
	 * ct (commit time), cl (commit LSN), cs (order of the change), cv (the
	 * new row, as jsonb), cop (I, U or D) and co: for the U of an update
	 * that changed the key, the cs of the old key's D, which decode.c
	 * writes right before it (its "o"; with REPLICA IDENTITY FULL every
	 * update has one, so only where a key column of the pipeline differs).
	 * The engine records each committed version from them
	 * (deparse_history_layer), once the key changes' rows have the values
	 * they left out (deparse_history_key_changes).
	 */
	bool		times = p->hist_qname != NULL;

	initStringInfo(&sql);
	if (from_read)
		appendStringInfo(&sql, "WITH ch AS MATERIALIZED (SELECT c.lsn, c.data::pg_catalog.jsonb AS j, c.o "
						 "FROM %s AS c WHERE $3 IS NULL OR c.lsn OPERATOR(pg_catalog.>) $3), ",
						 INCETL_CHANGES_ENR);
	else
		appendStringInfo(&sql, "WITH ch AS MATERIALIZED (SELECT c.lsn, c.data::pg_catalog.jsonb AS j, c.o "
						 "FROM pg_catalog.pg_logical_slot_peek_changes($1, NULL, NULL, 'relid', $2%s) "
						 "WITH ORDINALITY AS c (lsn, xid, data, o) "
						 "WHERE $3 IS NULL OR c.lsn OPERATOR(pg_catalog.>) $3), ",
						 times ? ", 'times', 'on', 'values', 'on'" : "");
	appendStringInfo(&sql, "ins AS (INSERT INTO %s (rn, ", incetl_work_table_name(p));
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&sql, "k%d, ", i + 1);
	appendStringInfo(&sql, "op%s) SELECT $4 OPERATOR(pg_catalog.+) pg_catalog.%s() OVER (ORDER BY ",
					 times ? ", ct, cl, cs, cv, cop, co" : "", times ? "dense_rank" : "row_number");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&sql, "%sk%d", i ? ", " : "", i + 1);
	appendStringInfo(&sql, "), * FROM (SELECT %s", times ? "" : "DISTINCT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&sql, "%sCAST(((ch.j OPERATOR(pg_catalog.->) 'k') OPERATOR(pg_catalog.->>) %s) AS %s)%s AS k%d",
						 i ? ", " : "", quote_literal_cstr(p->keys[i]->name),
						 p->keys[i]->src_typename, incetl_key_collate(p->keys[i]),
						 i + 1);
	appendStringInfoString(&sql, ", 'u'::pg_catalog.\"char\" AS op");
	if (times)
		appendStringInfoString(&sql, ", '2000-01-01 00:00:00+00'::pg_catalog.timestamptz "
							   "OPERATOR(pg_catalog.+) (CAST(ch.j OPERATOR(pg_catalog.->>) 't' AS pg_catalog.int8) "
							   "OPERATOR(pg_catalog.*) '00:00:00.000001'::pg_catalog.interval) AS ct, "
							   "ch.lsn AS cl, ch.o AS cs, ch.j OPERATOR(pg_catalog.->) 'n' AS cv, "
							   "CAST(ch.j OPERATOR(pg_catalog.->>) 'op' AS pg_catalog.\"char\") AS cop");
	if (times)
	{
		appendStringInfoString(&sql, ", CASE WHEN ch.j OPERATOR(pg_catalog.?) 'o' AND NOT (true");
		for (i = 0; i < p->nkeys; i++)
		{
			char	   *lit = quote_literal_cstr(p->keys[i]->name);

			appendStringInfo(&sql, " AND ((ch.j OPERATOR(pg_catalog.->) 'o') OPERATOR(pg_catalog.->) %s) "
							 "OPERATOR(pg_catalog.=) ((ch.j OPERATOR(pg_catalog.->) 'k') "
							 "OPERATOR(pg_catalog.->) %s)", lit, lit);
		}
		appendStringInfoString(&sql, ") THEN ch.o OPERATOR(pg_catalog.-) 1 END AS co");
	}
	appendStringInfoString(&sql, " FROM ch WHERE (ch.j OPERATOR(pg_catalog.->>) 'op') OPERATOR(pg_catalog.<>) 'T'");
	appendStringInfoString(&sql, ") AS x");
	/* a work table that is still empty holds no key to skip */
	if (!(from_read && first))
	{
		append_not_in_work(&sql, p);
	}
	appendStringInfo(&sql, " RETURNING rn%s) SELECT (SELECT pg_catalog.max(rn) FROM ins)",
					 times ? ", co" : "");
	/* the read counted the last LSN and the TRUNCATEs as it collected them */
	if (from_read)
		appendStringInfoString(&sql, ", NULL::pg_catalog.pg_lsn, false");
	else
		appendStringInfoString(&sql, ", (SELECT pg_catalog.max(lsn) FROM ch), "
							   "EXISTS (SELECT 1 FROM ch WHERE (ch.j OPERATOR(pg_catalog.->>) 'op') OPERATOR(pg_catalog.=) 'T')");
	/* the key changes whose rows lack values (deparse_history_key_changes) */
	appendStringInfoString(&sql, times ? ", (SELECT pg_catalog.count(ins.co) FROM ins)" :
						   ", 0::pg_catalog.int8");

	return sql.data;
}

/*
 * Key i of a typed read's row c: as read, or cast to the key's domain,
 * with the source's collation (incetl_key_collate), by which the fill
 * groups and ranks the keys
 */
static char *
typed_key(IncetlPipeline *p, int i)
{
	if (get_typtype(p->keys[i]->src_type) == TYPTYPE_DOMAIN)
		return psprintf("CAST(c.k%d AS %s)%s", i + 1, p->keys[i]->src_typename,
						incetl_key_collate(p->keys[i]));
	return psprintf("c.k%d%s", i + 1, incetl_key_collate(p->keys[i]));
}

/*
 * The fill of a typed read (incetl_logical_read): its rows are the changes
 * above the applied LSN, no TRUNCATE, with the keys typed (lsn, op, k1 ..
 * kn, o), so there is no JSON to parse and nothing to cast but a domain
 * key, from its base type (what the read collected) to the domain.  Each
 * key once, numbered from $4 + 1 in key order (the batches read the
 * source in that order); the rows inserted are the numbers added, so the
 * statement returns nothing.  first: the work table is empty.
 *
 * INSERT INTO <work table> (rn, k1, ..., op)
 * SELECT $4 + row_number() OVER (ORDER BY k1, ...), x.k1, ..., 'u'
 * FROM (SELECT DISTINCT c.k1, ... FROM incetl_slot_changes AS c) AS x
 * [WHERE NOT EXISTS (SELECT 1 FROM <work table> AS w WHERE w.k1 = x.k1 ...)]
 *
 * With ncols > 0, the rows' hr, v1 .. vm too, and each key's last change
 * (DISTINCT ON (k1, ...) ... ORDER BY k1, ..., c.o DESC); last_only: the
 * read kept those already (keep_last_changes), and they go in as they are.
 */
static char *
logical_fill_typed_sql(IncetlPipeline *p, bool first, int ncols, bool last_only)
{
	StringInfoData sql;
	StringInfoData keys;
	int			i;

	Assert(p->hist_qname == NULL);
	Assert(!last_only || (first && ncols > 0));

	initStringInfo(&keys);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&keys, "%s%s", i ? ", " : "", typed_key(p, i));

	initStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s (rn, ", incetl_work_table_name(p));
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&sql, "k%d, ", i + 1);
	appendStringInfoString(&sql, "op");
	if (ncols > 0)
		appendStringInfoString(&sql, ", hr");
	for (i = 0; i < ncols; i++)
		appendStringInfo(&sql, ", v%d", i + 1);

	/*
	 * The read's rows are each key's last change already, in key order,
	 * numbered by o (keep_last_changes): insert them as they are.
	 */
	if (last_only)
	{
		appendStringInfo(&sql, ") SELECT $4 OPERATOR(pg_catalog.+) c.o, %s, "
						 "'u'::pg_catalog.\"char\", c.hr", keys.data);
		for (i = 0; i < ncols; i++)
			appendStringInfo(&sql, ", c.v%d", i + 1);
		appendStringInfo(&sql, " FROM %s AS c", INCETL_CHANGES_ENR);
		return sql.data;
	}

	appendStringInfoString(&sql, ") SELECT $4 OPERATOR(pg_catalog.+) pg_catalog.row_number() OVER (ORDER BY ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&sql, "%sx.k%d", i ? ", " : "", i + 1);
	appendStringInfoString(&sql, ")");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&sql, ", x.k%d", i + 1);
	appendStringInfoString(&sql, ", 'u'::pg_catalog.\"char\"");
	if (ncols > 0)
		appendStringInfoString(&sql, ", x.hr");
	for (i = 0; i < ncols; i++)
		appendStringInfo(&sql, ", x.v%d", i + 1);

	/*
	 * With rows, each key's last change: the row it left (the source's row
	 * as of the read), or none (a delete, a change without its row).
	 */
	if (ncols > 0)
		appendStringInfo(&sql, " FROM (SELECT DISTINCT ON (%s) ", keys.data);
	else
		appendStringInfoString(&sql, " FROM (SELECT DISTINCT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&sql, "%s%s AS k%d", i ? ", " : "", typed_key(p, i), i + 1);
	if (ncols > 0)
		appendStringInfoString(&sql, ", c.hr");
	for (i = 0; i < ncols; i++)
		appendStringInfo(&sql, ", c.v%d", i + 1);
	appendStringInfo(&sql, " FROM %s AS c", INCETL_CHANGES_ENR);
	if (ncols > 0)
		appendStringInfo(&sql, " ORDER BY %s, c.o DESC", keys.data);
	appendStringInfoString(&sql, ") AS x");
	/* a work table that is still empty holds no key to skip */
	if (!first)
	{
		append_not_in_work(&sql, p);
	}
	return sql.data;
}

/*
 * 'logical' history: give the rows of the key changes just read the values
 * their new rows left out (deparse_history_key_changes), one pass per link
 * of the longest chain of key changes, until a pass completes none.  The
 * old keys' history values are written as text, with the settings that
 * shape output functions pinned as decode.c pins them
 * (incetl_pin_output_settings), so that the layers
 * read them back as they read a decoded value.  As the current user (the
 * pipeline's owner), who reads the history table.
 */
static void
complete_key_changes(IncetlPipeline *p)
{
	char	   *sql = incetl_sql_history_key_changes(p);
	int			nest = incetl_pin_output_settings();

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (SPI_execute(sql, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "incetl: could not complete the key changes read");
		if (SPI_processed == 0)
			break;
	}
	AtEOXact_GUC(true, nest);
}

/* whether two rows of a typed read have the same key (keep_last_changes) */
static bool
same_key(int nkeys, TupleTableSlot *a, TupleTableSlot *b, FmgrInfo *eq, Oid *colls)
{
	for (int i = 0; i < nkeys; i++)
	{
		bool		anull;
		bool		bnull;
		Datum		av = slot_getattr(a, i + 3, &anull);
		Datum		bv = slot_getattr(b, i + 3, &bnull);

		if (anull != bnull)
			return false;
		if (!anull && !DatumGetBool(FunctionCall2Coll(&eq[i], colls[i], av, bv)))
			return false;
	}
	return true;
}

/*
 * Writing the work table directly.  A typed read's kept rows
 * (keep_last_changes) go into the work table by table_multi_insert, as
 * COPY writes a table (bulkinsert.c: batches of 1,000 rows or 64 kB of
 * them, so that wide rows are not held a thousand at a time), instead of
 * through a tuplestore and an INSERT ... SELECT that forms, projects and
 * inserts each row again, one by one: the same rows, rn numbered from the
 * fill's offset, op 'u', hr and v1..vm as read.
 *
 * Only into the work table as the run made it (deparse_create_work_table),
 * in this session's temporary schema, still without its index
 * (incetl_work_ready builds that once it is filled), not a partition: no
 * trigger, rule, policy, check constraint, NOT NULL, default or generated
 * column, which an INSERT would run or fill, each column written of exactly
 * the read's type and typmod, and the columns written NULL of the types
 * the run gave them (not a domain, whose DEFAULT and CHECK an INSERT
 * runs).  Otherwise (changed by the owner's code, which runs in this
 * session) the INSERT does it.
 */
typedef struct WorkWriter
{
	IncetlBulkInsert bulk;		/* into the work table, RowExclusiveLock */
	int			nkeys;
	int			ncols;			/* v1..vm */
} WorkWriter;

/*
 * A column of the work table written directly (incetl_bulk_column_takes):
 * NULLs may go into any, and none has a default, as the run made them.
 */
static bool
work_column_takes(TupleDesc wdesc, int attnum, const char *name, Oid type, int32 typmod)
{
	return incetl_bulk_column_takes(wdesc, attnum, name, type, typmod, true, true);
}

/*
 * Open p's work table to write r's kept rows into it directly, or NULL
 * when it is not as the run made it (see above).
 */
static WorkWriter *
work_writer_open(IncetlPipeline *p, SlotRead *r)
{
	int			nkeys = p->nkeys;
	int			n = nkeys + 3;	/* o in r->desc; hr, v1.. follow */
	int			natts = 1 + nkeys + 9 + 1 + r->ncols;
	/* qtid, qseq, ct, cl, cs, cv, cop, co: written NULL */
	static const Oid nulltypes[8] = {TIDOID, INT8OID, TIMESTAMPTZOID, PG_LSNOID,
	INT8OID, JSONBOID, CHAROID, INT8OID};
	RangeVar   *rv;
	Oid			relid;
	Relation	rel;
	TupleDesc	wdesc;
	bool		ok;
	int			i;
	WorkWriter *w;

	if (IsInParallelMode())
		return NULL;
	rv = makeRangeVarFromNameList(stringToQualifiedNameList(incetl_work_table_name(p)));
	relid = RangeVarGetRelid(rv, RowExclusiveLock, true);
	if (!OidIsValid(relid))
		return NULL;
	rel = table_open(relid, NoLock);
	wdesc = RelationGetDescr(rel);
	ok = incetl_bulk_plain_table(rel) &&
		rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP &&
		rel->rd_rel->relowner == GetUserId() && wdesc->natts == natts &&
		work_column_takes(wdesc, 1, "rn", INT8OID, -1) &&
		work_column_takes(wdesc, nkeys + 2, "op", CHAROID, -1) &&
		work_column_takes(wdesc, nkeys + 11, "hr", BOOLOID, -1);
	for (i = 0; ok && i < nkeys; i++)
		ok = work_column_takes(wdesc, i + 2, psprintf("k%d", i + 1),
							   TupleDescAttr(r->desc, i + 2)->atttypid,
							   TupleDescAttr(r->desc, i + 2)->atttypmod);
	for (i = 0; ok && i < 8; i++)
		ok = work_column_takes(wdesc, nkeys + 3 + i, NULL, nulltypes[i], -1);
	for (i = 0; ok && i < r->ncols; i++)
		ok = work_column_takes(wdesc, nkeys + 12 + i, psprintf("v%d", i + 1),
							   TupleDescAttr(r->desc, n + 1 + i)->atttypid,
							   TupleDescAttr(r->desc, n + 1 + i)->atttypmod);
	if (!ok)
	{
		table_close(rel, NoLock);
		return NULL;
	}

	w = palloc0(sizeof(WorkWriter));
	incetl_bulk_begin(&w->bulk, rel);
	w->nkeys = nkeys;
	w->ncols = r->ncols;
	return w;
}

/*
 * Add the row rn of a read's row (values, isnull as r->desc has them: lsn,
 * op, k1..kn, o, hr, v1..vm).
 */
static void
work_writer_add(WorkWriter *w, int64 rn, Datum *values, bool *isnull)
{
	int			nkeys = w->nkeys;
	TupleTableSlot *slot = incetl_bulk_next_slot(&w->bulk);
	int			i;

	slot->tts_values[0] = Int64GetDatum(rn);
	slot->tts_isnull[0] = false;
	memcpy(&slot->tts_values[1], &values[2], sizeof(Datum) * nkeys);
	memcpy(&slot->tts_isnull[1], &isnull[2], sizeof(bool) * nkeys);
	slot->tts_values[nkeys + 1] = CharGetDatum('u');
	slot->tts_isnull[nkeys + 1] = false;
	for (i = nkeys + 2; i <= nkeys + 9; i++)
		slot->tts_isnull[i] = true;
	/* hr, v1..vm: after o */
	memcpy(&slot->tts_values[nkeys + 10], &values[nkeys + 3], sizeof(Datum) * (1 + w->ncols));
	memcpy(&slot->tts_isnull[nkeys + 10], &isnull[nkeys + 3], sizeof(bool) * (1 + w->ncols));
	ExecStoreVirtualTuple(slot);
	/* its own copy: values point into the sort's current tuple */
	incetl_bulk_added(&w->bulk, slot);
}

/*
 * Write what is buffered and close the work table (its lock is kept); what
 * follows sees the rows, as after an SPI INSERT.
 */
static void
work_writer_close(WorkWriter *w)
{
	incetl_bulk_end(&w->bulk);
	table_close(w->bulk.rel, NoLock);
	pfree(w);
}

/*
 * Reduce a typed read with rows to each key's last change, in key order,
 * its o renumbered 1, 2, ...: what logical_fill_typed_sql's DISTINCT ON
 * (keys) ... ORDER BY keys, o DESC and row_number() make of it, without
 * the executor's copies of every row (a window function spools each).  The
 * keys are sorted and compared by their types' default btree operators
 * and the source's collations, as there; NULL keys group together, as
 * DISTINCT ON groups them.  Runs as the current user (the pipeline's
 * owner), whose SQL would call the same functions.  With w, the rows go
 * into the work table, numbered from offset + 1, instead of r->store.
 */
static void
keep_last_changes(IncetlPipeline *p, SlotRead *r, WorkWriter *w, int64 offset)
{
	int			nkeys = p->nkeys;
	int			nsort = nkeys + 1;
	int			natts = r->desc->natts;
	AttrNumber *attnums = palloc(sizeof(AttrNumber) * nsort);
	Oid		   *ops = palloc(sizeof(Oid) * nsort);
	Oid		   *colls = palloc(sizeof(Oid) * nsort);
	bool	   *nullsfirst = palloc(sizeof(bool) * nsort);
	FmgrInfo   *eq = palloc(sizeof(FmgrInfo) * Max(nkeys, 1));
	Datum	   *values = palloc(sizeof(Datum) * natts);
	bool	   *isnull = palloc(sizeof(bool) * natts);
	Tuplesortstate *sort;
	Tuplestorestate *out;
	TupleTableSlot *slot;
	TupleTableSlot *prev;
	bool		have_prev = false;
	int64		n = 0;

	for (int i = 0; i < nkeys; i++)
	{
		Oid			type = TupleDescAttr(r->desc, i + 2)->atttypid;
		Oid			eqop;

		get_sort_group_operators(type, true, true, false, &ops[i], &eqop, NULL, NULL);
		attnums[i] = i + 3;
		colls[i] = OidIsValid(p->keys[i]->src_collation) ?
			p->keys[i]->src_collation : get_typcollation(type);
		nullsfirst[i] = false;
		fmgr_info(get_opcode(eqop), &eq[i]);
	}
	/* then the latest change first */
	get_sort_group_operators(INT8OID, false, false, true, NULL, NULL, &ops[nkeys], NULL);
	attnums[nkeys] = nkeys + 3;
	colls[nkeys] = InvalidOid;
	nullsfirst[nkeys] = true;

	sort = tuplesort_begin_heap(r->desc, nsort, attnums, ops, colls, nullsfirst,
								Max(work_mem, 32 * 1024), NULL, TUPLESORT_NONE);
	slot = MakeSingleTupleTableSlot(r->desc, &TTSOpsMinimalTuple);
	prev = MakeSingleTupleTableSlot(r->desc, &TTSOpsMinimalTuple);
	tuplestore_rescan(r->store);
	while (tuplestore_gettupleslot(r->store, true, false, slot))
	{
		tuplesort_puttupleslot(sort, slot);
		CHECK_FOR_INTERRUPTS();
	}
	tuplestore_end(r->store);
	tuplesort_performsort(sort);

	out = w ? NULL : tuplestore_begin_heap(false, false, work_mem);
	while (tuplesort_gettupleslot(sort, true, false, slot, NULL))
	{
		if (have_prev && same_key(nkeys, prev, slot, eq, colls))
			continue;
		slot_getallattrs(slot);
		memcpy(values, slot->tts_values, sizeof(Datum) * natts);
		memcpy(isnull, slot->tts_isnull, sizeof(bool) * natts);
		values[nkeys + 2] = Int64GetDatum(++n);
		isnull[nkeys + 2] = false;
		/* hr, after o */
		if (isnull[nkeys + 3] || !DatumGetBool(values[nkeys + 3]))
			r->rowless++;
		if (w)
			work_writer_add(w, offset + n, values, isnull);
		else
			tuplestore_putvalues(out, r->desc, values, isnull);
		ExecCopySlot(prev, slot);
		have_prev = true;
		CHECK_FOR_INTERRUPTS();
	}
	tuplesort_end(sort);
	ExecDropSingleTupleTableSlot(slot);
	ExecDropSingleTupleTableSlot(prev);
	r->store = out;
	r->rows = n;
}

/*
 * The rest of incetl_logical_fill for a read whose rows are not written
 * directly: r->store's rows go into the work table through SQL, which
 * keeps each key's last change unless last_only (keep_last_changes did).
 * Returns the highest rn.
 */
static int64
logical_fill_by_sql(IncetlPipeline *p, SlotRead *r, const char *slot,
					XLogRecPtr applied, int64 offset, bool last_only)
{
	char	   *sql;
	Oid			types[4] = {NAMEOID, TEXTOID, LSNOID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	EphemeralNamedRelation enr;
	int			rc;
	int			nest;
	int64		max_rn;

	sql = r->typed ? logical_fill_typed_sql(p, offset == 0, r->truncated ? 0 : r->ncols,
											last_only) :
		logical_fill_sql(p, true, offset == 0);

	enr = palloc0(sizeof(EphemeralNamedRelationData));
	enr->md.name = INCETL_CHANGES_ENR;
	enr->md.reliddesc = InvalidOid;
	enr->md.tupdesc = r->desc;
	enr->md.enrtype = ENR_NAMED_TUPLESTORE;
	enr->md.enrtuples = (double) r->rows;
	enr->reldata = r->store;

	/*
	 * In an SPI connection of the fill's own, which takes the registration
	 * with it when it ends, also when the fill fails: the run's connection
	 * serves run_all's next pipelines, which would find the name taken (and
	 * the tuplestore it points to freed).  An error leaves the connection
	 * to the abort of the step's subtransaction.
	 */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_register_relation(enr);
	if (rc != SPI_OK_REL_REGISTER)
		elog(ERROR, "incetl: could not register the changes read: %s",
			 SPI_result_code_string(rc));

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(slot));
	values[1] = CStringGetTextDatum(psprintf("%u", p->source));
	if (applied == InvalidXLogRecPtr)
		nulls[2] = 'n';
	else
		values[2] = LSNGetDatum(applied);
	values[3] = Int64GetDatum(offset);
	/* the keys are sorted (row_number): in memory, as a batch would be */
	nest = NewGUCNestLevel();
	if (work_mem < 32 * 1024)
		(void) set_config_option("work_mem", "32MB", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);

	/*
	 * The read's row count is known but not how many keys are distinct:
	 * the planner's guess (200) makes it hash them and then sort what the
	 * hash kept; sorting once serves DISTINCT and row_number both.
	 */
	if (r->typed)
		(void) set_config_option("enable_hashagg", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	rc = SPI_execute_with_args(sql, 4, types, values, nulls, false, 0);
	AtEOXact_GUC(true, nest);
	if (rc != (r->typed ? SPI_OK_INSERT : SPI_OK_SELECT))
		elog(ERROR, "incetl: could not read the changes of replication slot \"%s\"", slot);

	if (r->typed)
		max_rn = offset + (int64) SPI_processed;
	else
	{
		tup = SPI_tuptable->vals[0];
		desc = SPI_tuptable->tupdesc;
		d = SPI_getbinval(tup, desc, 1, &isnull);
		max_rn = isnull ? offset : DatumGetInt64(d);
		/* a history pipeline's key changes (a typed read is no history's) */
		d = SPI_getbinval(tup, desc, 4, &isnull);
		if (!isnull && DatumGetInt64(d) > 0)
			complete_key_changes(p);
	}
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	tuplestore_end(r->store);
	return max_rn;
}

/*
 * Peek the slot's changes above applied into the work table, numbered
 * from offset + 1.  Sets *max_rn (offset when nothing was added),
 * *last_lsn (InvalidXLogRecPtr when there was no change), *truncated, and
 * *rows_only (each key in the work table has the row its last change left:
 * the batches need not read the source).
 * Runs as the current user (the pipeline's owner): the sort and DISTINCT
 * of the keys and their casts run the key types' code, a domain's CHECK
 * included.  A typed read's keys come from the source table's own WAL, as
 * stored, so they passed the CHECK when they were written; the fill still
 * casts a domain key (from its base type), so a CHECK changed since (ALTER
 * DOMAIN ... NOT VALID) fails the run as on the JSON path, and the
 * domain's code runs as the owner, as it always did.
 */
static void
incetl_logical_fill(IncetlPipeline *p, const char *slot, XLogRecPtr applied,
					int64 offset, int64 *max_rn, XLogRecPtr *last_lsn,
					bool *truncated, bool *rows_only, SlotProposals *proposals)
{
	XLogRecPtr	flushed;
	SlotRead   *r;
	bool		last_only;
	WorkWriter *w = NULL;

	/*
	 * Everything committed up to the flush position read now is decoded by
	 * the read below, so once its changes are applied the slot may move
	 * there even when this table had no change: a quiet source must not hold
	 * back the WAL that other tables write.
	 */
	flushed = flush_wal();
	r = incetl_logical_read(p, slot, applied, flushed, p->hist_qname == NULL, proposals);
	/*
	 * A TRUNCATE among the changes: no key's last change is the source's
	 * row then, the apply reads every one from the source.
	 */
	last_only = r->typed && r->ncols > 0 && !r->truncated && offset == 0;
	if (last_only)
	{
		w = work_writer_open(p, r);
		keep_last_changes(p, r, w, offset);
	}
	if (w != NULL)
	{
		work_writer_close(w);
		*max_rn = offset + r->rows;
	}
	else
		*max_rn = logical_fill_by_sql(p, r, slot, applied, offset, last_only);
	*last_lsn = r->last_lsn;
	if (flushed > *last_lsn && flushed > applied)
		*last_lsn = flushed;
	*truncated = r->truncated;
	/* the work table was empty, and now each of its keys has its row */
	*rows_only = last_only && r->rowless == 0;
}

/*
 * The pending changes as one jsonb array (for preview), as the current
 * user (the pipeline's owner).  Returns a jsonb Datum in the caller's
 * context.
 */
static Datum
incetl_logical_peek_json(IncetlPipeline *p, const char *slot, XLogRecPtr applied,
						 bool *truncated)
{
	Oid			types[3] = {NAMEOID, TEXTOID, LSNOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		isnull;
	Datum		d;

	(void) flush_wal();
	values[0] = DirectFunctionCall1(namein, CStringGetDatum(slot));
	values[1] = CStringGetTextDatum(psprintf("%u", p->source));
	if (applied == InvalidXLogRecPtr)
		nulls[2] = 'n';
	else
		values[2] = LSNGetDatum(applied);
	if (SPI_execute_with_args("SELECT COALESCE(pg_catalog.jsonb_agg(c.data::pg_catalog.jsonb), '[]'), "
							  "pg_catalog.bool_or(c.data::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'op' OPERATOR(pg_catalog.=) 'T') "
							  "FROM pg_catalog.pg_logical_slot_peek_changes($1, NULL, NULL, 'relid', $2) AS c "
							  "WHERE $3 IS NULL OR c.lsn OPERATOR(pg_catalog.>) $3",
							  3, types, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not read the changes of replication slot \"%s\"", slot);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	*truncated = !isnull && DatumGetBool(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return SPI_datumTransfer(d, false, -1);
}

/*
 * Slots to drop when the transaction commits, like storage.c's pending
 * deletes: a subtransaction that aborts forgets its own, one that commits
 * hands them to its parent, and a prepared transaction cannot have any
 * (the drop could not wait for COMMIT PREPARED).
 */
typedef struct PendingSlotDrop
{
	char		name[NAMEDATALEN];
	int			nestLevel;		/* transaction nesting level of the drop */
	struct PendingSlotDrop *next;
} PendingSlotDrop;

static PendingSlotDrop *pending_drops = NULL;
static bool drop_callbacks_registered = false;

/* a slot of incetl's plugin in this database (so a logical one) */
static bool
slot_is_ours(ReplicationSlot *s)
{
	return s != NULL && s->in_use && s->data.database == MyDatabaseId &&
		strcmp(NameStr(s->data.plugin), "incetl") == 0;
}

/* drop a slot if it is one of incetl's in this database and still there */
static void
drop_slot_if_ours(const char *name)
{
	ReplicationSlot *s;
	bool		ours;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	s = SearchNamedReplicationSlot(name, false);
	ours = slot_is_ours(s);
	LWLockRelease(ReplicationSlotControlLock);
	if (ours)
		ReplicationSlotDrop(name, true);
}

static void
forget_pending_drops(void)
{
	while (pending_drops)
	{
		PendingSlotDrop *d = pending_drops;

		pending_drops = d->next;
		pfree(d);
	}
}

static void
slot_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
			while (pending_drops)
			{
				PendingSlotDrop *d = pending_drops;

				pending_drops = d->next;
				drop_slot_if_ours(d->name);
				pfree(d);
			}
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (pending_drops)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that dropped a replication slot of incetl"),
						 errdetail("incetl.drop_pipeline and DROP EXTENSION incetl drop replication slots when their transaction commits.")));
			break;
		default:
			/* commit, abort, prepare: nothing left to do */
			forget_pending_drops();
			break;
	}
}

static void
slot_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	PendingSlotDrop **link = &pending_drops;

	while (*link)
	{
		PendingSlotDrop *d = *link;

		if (d->nestLevel >= level && event == SUBXACT_EVENT_ABORT_SUB)
		{
			*link = d->next;
			pfree(d);
			continue;
		}
		if (d->nestLevel >= level && event == SUBXACT_EVENT_COMMIT_SUB)
			d->nestLevel = level - 1;
		link = &d->next;
	}
}

static void
drop_at_commit(const char *name)
{
	PendingSlotDrop *d;

	for (d = pending_drops; d; d = d->next)
		if (strcmp(d->name, name) == 0)
			return;
	if (!drop_callbacks_registered)
	{
		RegisterXactCallback(slot_xact_callback, NULL);
		RegisterSubXactCallback(slot_subxact_callback, NULL);
		drop_callbacks_registered = true;
	}
	d = MemoryContextAllocZero(TopMemoryContext, sizeof(PendingSlotDrop));
	strlcpy(d->name, name, NAMEDATALEN);
	d->nestLevel = GetCurrentTransactionNestLevel();
	d->next = pending_drops;
	pending_drops = d;
}

/*
 * drop_pipeline: drop the pipeline's slot (under its stored name and its
 * own) when the transaction commits.
 */
static void
incetl_logical_drop_slot_at_commit(IncetlPipeline *p)
{
	IncetlSlotState state;

	incetl_state_read_slot(p, &state);
	if (state.slot_name != NULL)
		drop_at_commit(state.slot_name);
	drop_at_commit(incetl_logical_slot_name(p));
}

/*
 * CALL incetl.guard(): look at a pipeline's slot (under its stored name
 * when that is one of ours, else the pipeline's own name) and, with drop,
 * drop it when it holds more than limit bytes of WAL (limit < 0: none) and
 * no session is using it.  The caller holds the pipeline's run lock, so no
 * run is using it.  The drop is incetl's C code, not a role's: whoever
 * calls guard, only a slot of incetl's plugin in this database, named for
 * the pipeline, is ever dropped, and only over the pipeline's own limit.
 * *retained: the bytes it holds (-1: no slot, or lost).
 */
IncetlSlotCheck
incetl_logical_check_slot(int32 pipeline_id, const char *stored, int64 limit, bool drop,
						  int64 *retained)
{
	SlotInfo	info;
	const char *name = NULL;
	ReplicationSlot *s;
	bool		ours;
	bool		active = false;

	*retained = -1;
	if (stored != NULL)
	{
		look_up_slot(stored, &info);
		if (info.found && info.ours)
			name = stored;
	}
	if (name == NULL)
	{
		name = psprintf("incetl_%u_%d", MyDatabaseId, pipeline_id);
		look_up_slot(name, &info);
	}
	if (!info.found)
		return SLOT_NONE;
	if (!info.ours)
		return SLOT_NOT_OURS;
	if (info.lost)
		return SLOT_LOST;
	*retained = info.retained;
	if (limit < 0 || info.retained <= limit)
		return SLOT_HEALTHY;
	if (!drop)
		return SLOT_OVER_LIMIT;

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	s = SearchNamedReplicationSlot(name, false);
	ours = slot_is_ours(s);
	if (ours)
	{
		SpinLockAcquire(&s->mutex);
		active = s->active_pid != 0;
		SpinLockRelease(&s->mutex);
	}
	LWLockRelease(ReplicationSlotControlLock);
	if (!ours)
		return SLOT_NONE;
	if (active)
		return SLOT_IN_USE;
	ReplicationSlotDrop(name, true);
	return SLOT_DROPPED;
}

/* does extension incetl depend on extension extname? */
static bool
incetl_requires(const char *extname)
{
	Oid			self = get_extension_oid("incetl", true);
	Oid			other = get_extension_oid(extname, true);
	Relation	rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	if (!OidIsValid(self) || !OidIsValid(other))
		return false;
	rel = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ExtensionRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(self));
	scan = systable_beginscan(rel, DependDependerIndexId, true, NULL, 2, key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);

		found = dep->refclassid == ExtensionRelationId && dep->refobjid == other;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Event trigger on ddl_command_start of DROP EXTENSION: when the statement
 * drops incetl (by name, or by CASCADE from an extension incetl requires),
 * drop every slot incetl made in this database when the transaction
 * commits.
 */
Datum
incetl_drop_extension_slots(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	DropStmt   *stmt;
	ListCell   *lc;
	bool		drops_incetl = false;
	char		prefix[NAMEDATALEN];
	List	   *names = NIL;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_EVENT_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("incetl._drop_extension_slots() must be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	if (trigdata->parsetree == NULL || !IsA(trigdata->parsetree, DropStmt))
		PG_RETURN_VOID();
	stmt = (DropStmt *) trigdata->parsetree;
	if (stmt->removeType != OBJECT_EXTENSION)
		PG_RETURN_VOID();
	foreach(lc, stmt->objects)
	{
		const char *extname = strVal(lfirst(lc));

		if (strcmp(extname, "incetl") == 0 ||
			(stmt->behavior == DROP_CASCADE && incetl_requires(extname)))
			drops_incetl = true;
	}
	if (!drops_incetl)
		PG_RETURN_VOID();

	snprintf(prefix, sizeof(prefix), "incetl_%u_", MyDatabaseId);
	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	for (int i = 0; i < max_replication_slots; i++)
	{
		ReplicationSlot *s = &ReplicationSlotCtl->replication_slots[i];

		if (slot_is_ours(s) &&
			strncmp(NameStr(s->data.name), prefix, strlen(prefix)) == 0)
			names = lappend(names, pstrdup(NameStr(s->data.name)));
	}
	LWLockRelease(ReplicationSlotControlLock);
	foreach(lc, names)
		drop_at_commit(lfirst(lc));
	PG_RETURN_VOID();
}

/*
 * The strategy's callbacks.
 *
 * A run finds (or makes) its slot before it writes anything, peeks the
 * slot's changes above the applied LSN into the work table, applies them,
 * stores the LSN it applied with the last batch (or, after a TRUNCATE, with
 * the compare pass's last deletes: a run that fails before those must see
 * the TRUNCATE again), and confirms the slot only after that commit.
 */
typedef struct LogicalRun
{
	char	   *slot;
	bool		resumes;		/* else compare everything, like a first run */
	XLogRecPtr	applied;		/* stored LSN at the start */
	XLogRecPtr	last_lsn;		/* of the last change peeked */
	bool		lsn_stored;
	SlotProposals proposals;	/* what the read proposed for the slot */
} LogicalRun;

static void
logical_check(IncetlPipeline *p, bool at_create)
{
	incetl_logical_check(p);
}

/* the slot is created by the first run; its name is known now */
static void
logical_setup(IncetlPipeline *p)
{
	incetl_state_set_slot_name(p, incetl_logical_slot_name(p));
}

static void
logical_teardown(IncetlPipeline *p)
{
	incetl_logical_drop_slot_at_commit(p);
}

static void
logical_begin_run(IncetlRun *run)
{
	LogicalRun *lr = MemoryContextAllocZero(run->cxt, sizeof(LogicalRun));
	char	   *slot;

	lr->resumes = incetl_logical_slot(run->p, true, run->run_id, &slot, &lr->applied);
	lr->slot = MemoryContextStrdup(run->cxt, slot);
	lr->last_lsn = InvalidXLogRecPtr;
	run->private = lr;
}

static void
logical_fill_changes(IncetlRun *run)
{
	LogicalRun *lr = run->private;
	bool		truncated;

	if (!lr->resumes)
		run->compare_all = true;
	if (run->compare_all)
		incetl_work_fill_compare(run, true);

	/* confirm what an earlier run applied but could not confirm */
	incetl_logical_advance(lr->slot, lr->applied);
	incetl_logical_fill(run->p, lr->slot, lr->applied, run->work_total,
						&run->work_total, &lr->last_lsn, &truncated,
						&run->work_rows_only, &lr->proposals);
	if (truncated)
		run->need_compare = true;
}

static void
store_applied(IncetlRun *run)
{
	LogicalRun *lr = run->private;

	if (lr->last_lsn != InvalidXLogRecPtr && !lr->lsn_stored)
	{
		incetl_state_store_applied(run->p, lr->last_lsn);
		lr->lsn_stored = true;
	}
}

static void
logical_pass_done(IncetlRun *run, IncetlPass pass)
{
	if (run->kind == RUN_KIND_RUN && (pass == PASS_COMPARE || !run->need_compare))
		store_applied(run);
}

static void
logical_finish_run(IncetlRun *run)
{
	LogicalRun *lr = run->private;

	store_applied(run);
	/* it compared everything: resynced when this commits */
	if (!lr->resumes)
		incetl_state_clear_resync(run->p->id);
	incetl_state_save_run_start(run->p,
								incetl_canonical_text(TimestampTzGetDatum(run->run_start),
													  TIMESTAMPTZOID));
}

/* confirm the slot up to the applied LSN just committed */
static void
logical_after_commit(IncetlRun *run)
{
	LogicalRun *lr = run->private;

	if (lr->lsn_stored)
	{
		incetl_logical_confirm(lr->slot, lr->last_lsn, &lr->proposals);
	}
}

static void
logical_preview(IncetlPreview *pv)
{
	IncetlPipeline *p = pv->p;
	char	   *slot;
	XLogRecPtr	applied;
	bool		truncated = false;

	if (incetl_state_watermark(p->id) == NULL)
	{
		incetl_preview_keyed(pv, incetl_sql_diff_keys(p, true), false);
		return;
	}

	/*
	 * A run uses the slot while it holds the pipeline's lock: wait for it (a
	 * slot serves one session at a time).
	 */
	incetl_lock_wait(p->id, INCETL_LOCK_RUN, ShareLock);
	if (!incetl_logical_slot(p, false, 0, &slot, &applied))
	{
		/* no slot for it: the run compares everything */
		incetl_preview_keyed(pv, incetl_sql_diff_keys(p, true), false);
		return;
	}
	pv->values[0] = incetl_logical_peek_json(p, slot, applied, &truncated);
	pv->argtypes[0] = JSONBOID;
	pv->nargs = 1;
	incetl_preview_keyed(pv, incetl_sql_change_keys(p), truncated);
}

static void
logical_explain(IncetlExplain *ex)
{
	IncetlPipeline *p = ex->p;
	IncetlSlotState state;
	Oid		   *argtypes = palloc(sizeof(Oid) * 4);
	Datum	   *values = palloc(sizeof(Datum) * 4);
	char	   *nulls = palloc(4);

	incetl_state_read_slot(p, &state);
	if (!state.loaded)
		incetl_explain_add(ex, "fill", EXPLAIN_PLAIN, incetl_sql_fill_work(p, true),
						   0, NULL, NULL, NULL);
	argtypes[0] = NAMEOID;
	argtypes[1] = TEXTOID;
	argtypes[2] = LSNOID;
	argtypes[3] = INT8OID;
	memset(nulls, ' ', 4);
	values[0] = DirectFunctionCall1(namein,
									CStringGetDatum(state.slot_name ? state.slot_name :
													incetl_logical_slot_name(p)));
	values[1] = CStringGetTextDatum(psprintf("%u", p->source));
	if (state.applied == InvalidXLogRecPtr)
		nulls[2] = 'n';
	else
		values[2] = LSNGetDatum(state.applied);
	values[3] = Int64GetDatum(0);
	incetl_explain_add(ex, "read slot", EXPLAIN_PLAIN, logical_fill_sql(p, false, false), 4, argtypes, values, nulls);
}

const IncetlStrategyRoutine incetl_logical_strategy = {
	.name = "logical",
	.keyed = true,
	.captures = true,
	.check = logical_check,
	.setup = logical_setup,
	.teardown = logical_teardown,
	.begin_run = logical_begin_run,
	.fill_changes = logical_fill_changes,
	.pass_done = logical_pass_done,
	.finish_run = logical_finish_run,
	.after_commit = logical_after_commit,
	.preview = logical_preview,
	.explain = logical_explain,
};
