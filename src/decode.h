/*-------------------------------------------------------------------------
 *
 * decode.h
 *	  A run's typed sink for the output plugin (decode.c).
 *
 * A run decodes its slot in its own backend (strategy_logical.c's
 * incetl_logical_read), through the slot's output plugin, which is this
 * library's decode.c.  For the run's keyed fill it need not format each
 * change as JSON for SQL to parse and cast back: while the read sets
 * incetl_decode_sink, the decoding context that starts next (and only
 * that one) hands each change's key datums, in the pipeline's key order
 * and types, and its op to the sink's callback instead of writing text.
 * SQL callers of the plugin (pg_logical_slot_peek_changes) never see it.
 *
 * src/decode.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef INCETL_DECODE_H
#define INCETL_DECODE_H

#include "access/xlogdefs.h"

typedef struct IncetlDecodeSink IncetlDecodeSink;

/*
 * One change: op 'I', 'U', 'D' (as the JSON's "op") with the pipeline's
 * key columns (values[i], nulls[i] for key i; plain, detoasted datums that
 * live until the callback returns), or 'T' (TRUNCATE, no keys).  lsn is
 * what the JSON row would have carried: its transaction's commit end LSN.
 */
typedef void (*IncetlDecodePut) (IncetlDecodeSink *sink, XLogRecPtr lsn, char op,
								 Datum *values, bool *nulls, bool has_row,
								 Datum *rowvalues, bool *rownulls);

struct IncetlDecodeSink
{
	/* set by the reader */
	Oid			relid;			/* the source */
	int			nkeys;
	const char **names;			/* the pipeline's key columns */
	Oid		   *types;			/* their types now ... */
	int32	   *typmods;		/* ... and typmods */
	IncetlDecodePut put;
	void	   *arg;			/* the reader's */

	/*
	 * Rows (ncols > 0): the new row of an insert or update, as the columns
	 * colnames[i], now attribute colattnums[i] of type coltypes[i] and
	 * typmod coltypmods[i], when the change was made to the file
	 * relfilenode (the source's now) under a descriptor where each of them
	 * has that name, number, type and typmod (so not a column dropped and
	 * added again since), and the record carries every value (no unchanged
	 * TOASTed one): has_row and rowvalues/rownulls of put.  Otherwise
	 * has_row is false: the apply reads the source's row.
	 */
	int			ncols;
	const char **colnames;
	AttrNumber *colattnums;
	Oid		   *coltypes;
	int32	   *coltypmods;
	Oid			relfilenode;

	/* set by decode.c */
	bool		claimed;		/* a decoding context took it */
	bool		failed;			/* a change it could not hand over typed */
};

/* set only while a run reads its slot (strategy_logical.c) */
extern IncetlDecodeSink *incetl_decode_sink;

/* the output settings decoded values are written with (decode.c) */
extern int	incetl_pin_output_settings(void);

#endif							/* INCETL_DECODE_H */
