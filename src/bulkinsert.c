/*-------------------------------------------------------------------------
 *
 * bulkinsert.c
 *	  Writing rows into a table as COPY does: by table_multi_insert, in
 *	  batches of INCETL_BULK_ROWS rows or INCETL_BULK_BYTES of them,
 *	  whichever comes first.  No executor and no plan: the caller has made
 *	  sure that the table needs nothing an INSERT would do beyond storing
 *	  the rows (no index, trigger, rule, policy, constraint or default to
 *	  maintain, run or fill), and opened and locked it.  Used for a trigger
 *	  pipeline's queue (strategy_trigger.c) and a logical run's work table
 *	  (strategy_logical.c).
 *
 * src/bulkinsert.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "utils/memutils.h"

#include "bulkinsert.h"

/*
 * Whether rows written into rel as they are would be what an INSERT
 * stores: a plain table, not a partition (whose constraint the INSERT
 * checks), with no trigger, rule, row security, check constraint or index,
 * which the INSERT would run, apply, check or maintain.  Its columns are
 * the caller's to check (incetl_bulk_column_takes).
 */
bool
incetl_bulk_plain_table(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	return rel->rd_rel->relkind == RELKIND_RELATION && !rel->rd_rel->relispartition &&
		rel->trigdesc == NULL && !rel->rd_rel->relhasrules &&
		!rel->rd_rel->relrowsecurity &&
		(desc->constr == NULL || desc->constr->num_check == 0) &&
		RelationGetIndexList(rel) == NIL;
}

/*
 * Whether attribute attnum of desc takes the values written into it as
 * they are, as an INSERT naming it would store them: named name (any name
 * if NULL), of type type with typmod typmod or none (no coercion either
 * way), neither dropped, generated nor an identity; when a NULL may be
 * written (nulls), not NOT NULL; and with no_default, without a default
 * (a column the INSERT would leave out, and so fill with it).
 */
bool
incetl_bulk_column_takes(TupleDesc desc, int attnum, const char *name, Oid type,
						 int32 typmod, bool nulls, bool no_default)
{
	Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);

	return !att->attisdropped &&
		(name == NULL || strcmp(NameStr(att->attname), name) == 0) &&
		att->atttypid == type && (att->atttypmod == typmod || att->atttypmod == -1) &&
		!(nulls && att->attnotnull) && !(no_default && att->atthasdef) &&
		!att->attgenerated && att->attidentity == '\0';
}

void
incetl_bulk_begin(IncetlBulkInsert *b, Relation rel)
{
	memset(b, 0, sizeof(*b));
	b->rel = rel;
	b->cid = GetCurrentCommandId(true);
	b->slotcxt = CurrentMemoryContext;
	b->cxt = AllocSetContextCreate(CurrentMemoryContext, "incetl bulk insert",
								   ALLOCSET_DEFAULT_SIZES);
}

/* write the rows buffered: a single row as an INSERT's would be */
static void
bulk_flush(IncetlBulkInsert *b)
{
	MemoryContext old;

	if (b->nbuffered == 0)
		return;
	old = MemoryContextSwitchTo(b->cxt);
	if (b->nbuffered == 1)
		table_tuple_insert(b->rel, b->slots[0], b->cid, 0, NULL);
	else
		table_multi_insert(b->rel, b->slots, b->nbuffered, b->cid, 0, NULL);
	MemoryContextSwitchTo(old);
	for (int i = 0; i < b->nbuffered; i++)
		ExecClearTuple(b->slots[i]);
	b->nbuffered = 0;
	b->bytes = 0;
	MemoryContextReset(b->cxt);
}

/*
 * The slot to fill with the next row, empty (the rows before it are
 * written first when the batch is full); then incetl_bulk_added.  Its
 * values may point into the caller's memory: incetl_bulk_added copies them.
 * The slots are made in the context incetl_bulk_begin was called in, which
 * must last until incetl_bulk_end.
 */
TupleTableSlot *
incetl_bulk_next_slot(IncetlBulkInsert *b)
{
	TupleTableSlot *slot;

	if (b->nbuffered == INCETL_BULK_ROWS || b->bytes >= INCETL_BULK_BYTES)
		bulk_flush(b);
	if (b->nbuffered == b->nslots)
	{
		MemoryContext old = MemoryContextSwitchTo(b->slotcxt);

		b->slots[b->nslots++] = table_slot_create(b->rel, NULL);
		MemoryContextSwitchTo(old);
	}
	slot = b->slots[b->nbuffered];
	ExecClearTuple(slot);
	return slot;
}

/*
 * The slot incetl_bulk_next_slot gave holds its row now (stored): copy its
 * values into the slot's own memory (no type's code runs: heap_form_tuple).
 */
void
incetl_bulk_added(IncetlBulkInsert *b, TupleTableSlot *slot)
{
	Assert(slot == b->slots[b->nbuffered]);
	b->bytes += ExecFetchSlotHeapTuple(slot, true, NULL)->t_len;
	b->nbuffered++;
}

/*
 * Write what is buffered and free the slots.  What follows in the
 * transaction sees the rows, as after an INSERT statement.  The caller
 * closes the table.
 */
void
incetl_bulk_end(IncetlBulkInsert *b)
{
	bulk_flush(b);
	CommandCounterIncrement();
	for (int i = 0; i < b->nslots; i++)
		ExecDropSingleTupleTableSlot(b->slots[i]);
	b->nslots = 0;
	MemoryContextDelete(b->cxt);
	b->cxt = NULL;
}
