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
#include "executor/tuptable.h"
#include "utils/memutils.h"

#include "bulkinsert.h"

void
incetl_bulk_begin(IncetlBulkInsert *b, Relation rel)
{
	memset(b, 0, sizeof(*b));
	b->rel = rel;
	b->cid = GetCurrentCommandId(true);
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
 * written first when the batch is full).  Values that must outlive the
 * caller's go in b->cxt, or the caller materializes the slot; then
 * incetl_bulk_added.
 */
TupleTableSlot *
incetl_bulk_next_slot(IncetlBulkInsert *b)
{
	TupleTableSlot *slot;

	if (b->nbuffered == INCETL_BULK_ROWS || b->bytes >= INCETL_BULK_BYTES)
		bulk_flush(b);
	if (b->nbuffered == b->nslots)
		b->slots[b->nslots++] = table_slot_create(b->rel, NULL);
	slot = b->slots[b->nbuffered];
	ExecClearTuple(slot);
	return slot;
}

/* the slot incetl_bulk_next_slot gave holds its row now (stored) */
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
