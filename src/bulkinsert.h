/*-------------------------------------------------------------------------
 *
 * bulkinsert.h
 *	  Writing rows into a table as COPY does (bulkinsert.c).
 *
 * src/bulkinsert.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef INCETL_BULKINSERT_H
#define INCETL_BULKINSERT_H

#include "access/tableam.h"
#include "executor/tuptable.h"
#include "utils/rel.h"

/* COPY's limits (copyfrom.c): rows, and bytes of them, held at once */
#define INCETL_BULK_ROWS 1000
#define INCETL_BULK_BYTES 65535

typedef struct IncetlBulkInsert
{
	Relation	rel;			/* written, opened and locked by the caller */
	CommandId	cid;
	TupleTableSlot *slots[INCETL_BULK_ROWS];
	int			nslots;			/* slots made */
	int			nbuffered;		/* slots holding a row to write */
	Size		bytes;			/* the size of those rows */
	MemoryContext slotcxt;		/* the slots, and the rows they hold */
	MemoryContext cxt;			/* what the insert allocates; reset at each
								 * flush */
} IncetlBulkInsert;

extern bool incetl_bulk_plain_table(Relation rel);
extern bool incetl_bulk_column_takes(TupleDesc desc, int attnum, const char *name,
									 Oid type, int32 typmod, bool nulls,
									 bool no_default);
extern void incetl_bulk_begin(IncetlBulkInsert *b, Relation rel);
extern TupleTableSlot *incetl_bulk_next_slot(IncetlBulkInsert *b);
extern void incetl_bulk_added(IncetlBulkInsert *b, TupleTableSlot *slot);
extern void incetl_bulk_end(IncetlBulkInsert *b);

#endif							/* INCETL_BULKINSERT_H */
