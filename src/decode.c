/*-------------------------------------------------------------------------
 *
 * src/decode.c
 *	  Logical decoding output plugin for incetl.
 *
 * Emits one JSON text row per change of a single source relation (given by
 * the required "relid" option), carrying only the replica identity key:
 *
 *		{"op":"I","k":{"col":"value",...}}		INSERT (new key)
 *		{"op":"U","k":{...}}					UPDATE (new key)
 *		{"op":"D","k":{...}}					DELETE (old key), and before
 *												an UPDATE that changed the key
 *		{"op":"T"}								TRUNCATE
 *
 * With the option "times" each change also has "t", its transaction's
 * commit time, and with "values" an INSERT's or UPDATE's "n", the new row
 * ({"col":"value",...}, unchanged TOASTed values left out), and the "U"
 * of an UPDATE that changed the key "o", the old key (the "k" of the "D"
 * written just before it): what a history table needs (SPEC 5), which
 * takes the values the new row leaves out from the old key's.
 *
 * Values are the type's text output as JSON strings, or JSON null.  The
 * run that reads them casts them back to the key types in the same
 * session, so the text must name each value exactly whatever that
 * session's settings: while decoding through SQL, the settings that shape
 * output functions are pinned (shortest exact floats, ISO dates, UTC,
 * the postgres interval style, hex bytea) and restored afterwards.  BEGIN
 * and COMMIT produce no output, so transactions that did not touch the
 * relation produce no rows at all.  The LSN reported with every row is the
 * end LSN of its transaction's commit record (same for all rows of one
 * transaction); pg_replication_slot_advance() to it skips that transaction.
 * A relation without replica identity yields an empty key object "{}".
 *
 * A run that decodes its slot in its own backend takes the changes typed
 * instead (decode.h): the pipeline's key datums and the op go straight to
 * its sink, no text is written, and no output function is called.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/sysattr.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/bitmapset.h"
#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "utils/builtins.h"
#include "replication/walsender.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

#include "decode.h"

extern PGDLLEXPORT void _PG_output_plugin_init(OutputPluginCallbacks *cb);

/* Cached description of one key column */
typedef struct DecodeKeyAtt
{
	AttrNumber	attnum;
	int16		typlen;
	bool		typbyval;
	Oid			typid;
	int32		typmod;
	char	   *attname;
	char	   *jsonname;		/* escaped JSON key incl. quotes and colon */
	FmgrInfo	outfunc;
} DecodeKeyAtt;

typedef struct DecodeData
{
	Oid			relid;			/* the one relation we emit changes for */
	bool		times;			/* add "t", the commit time (option "times") */
	MemoryContext change_cxt;	/* reset after every change */
	MemoryContext cache_cxt;	/* holds the key column cache */
	bool		cache_valid;
	int			nkeys;
	DecodeKeyAtt *keys;
	bool		values;			/* add "n", the new row (option "values") */
	int			ncols;
	DecodeKeyAtt *cols;			/* every column, for "n" */
	int			guc_nest;		/* of the pinned output settings, or 0 */

	/*
	 * A run's typed sink (decode.h), or NULL; sinkmap[i] is the index in
	 * keys of the sink's key i, valid when sink_ok (rebuilt with keys).
	 */
	IncetlDecodeSink *sink;
	int		   *sinkmap;
	bool		sink_ok;
	Datum	   *sinkvals[2];	/* new and old key datums */
	bool	   *sinknulls[2];

	/*
	 * The sink's columns (ncols > 0) are the decoded relation's, each at
	 * its attribute number (rebuilt with keys).
	 */
	bool		rows_ok;
	Datum	   *rowvals;
	bool	   *rownulls;
} DecodeData;

IncetlDecodeSink *incetl_decode_sink = NULL;

/*
 * Set by the invalidation callbacks.  Those are registered once per backend
 * and must not reference per-session memory, so they only clear a flag.
 */
static bool decode_callbacks_registered = false;
static bool decode_cache_stale = true;

static void decode_startup(LogicalDecodingContext *ctx,
						   OutputPluginOptions *opt, bool is_init);
static void decode_shutdown(LogicalDecodingContext *ctx);
static void decode_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn);
static void decode_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						  XLogRecPtr commit_lsn);
static void decode_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						  Relation relation, ReorderBufferChange *change);
static void decode_truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
							int nrelations, Relation relations[],
							ReorderBufferChange *change);

void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	cb->startup_cb = decode_startup;
	cb->begin_cb = decode_begin;
	cb->change_cb = decode_change;
	cb->truncate_cb = decode_truncate;
	cb->commit_cb = decode_commit;
	cb->shutdown_cb = decode_shutdown;
}

static void
decode_relcache_cb(Datum arg, Oid relid)
{
	decode_cache_stale = true;
}

static void
decode_syscache_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	decode_cache_stale = true;
}

/*
 * Pin the settings that output functions follow, the same whatever the
 * session's, in a new GUC nest level; returns it, for the caller to pop
 * with AtEOXact_GUC.  Decoded values are written with them (decode_startup),
 * and so are the values that stand in for those a decoded row left out
 * (complete_key_changes in strategy_logical.c).
 */
int
incetl_pin_output_settings(void)
{
	static const char *const pinned[][2] = {
		{"extra_float_digits", "3"},
		{"DateStyle", "ISO, YMD"},
		{"IntervalStyle", "postgres"},
		{"TimeZone", "UTC"},
		{"bytea_output", "hex"},
	};
	int			nest = NewGUCNestLevel();

	for (int i = 0; i < lengthof(pinned); i++)
		(void) set_config_option(pinned[i][0], pinned[i][1], PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

static void
decode_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt,
			   bool is_init)
{
	DecodeData *data;
	ListCell   *lc;
	bool		have_relid = false;

	data = palloc0(sizeof(DecodeData));
	data->change_cxt = AllocSetContextCreate(ctx->context,
											 "incetl decode change",
											 ALLOCSET_DEFAULT_SIZES);
	data->cache_cxt = AllocSetContextCreate(ctx->context,
											"incetl decode cache",
											ALLOCSET_SMALL_SIZES);
	data->relid = InvalidOid;
	data->cache_valid = false;
	ctx->output_plugin_private = data;
	opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;

	/* Slot creation passes no options; nothing is decoded then. */
	if (is_init)
		return;

	foreach(lc, ctx->output_plugin_options)
	{
		DefElem    *elem = lfirst(lc);

		if (strcmp(elem->defname, "relid") == 0)
		{
			char	   *val;
			char	   *end;
			unsigned long v;

			if (elem->arg == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("incetl: option \"relid\" requires a value")));
			val = strVal(elem->arg);
			errno = 0;
			v = strtoul(val, &end, 10);
			if (errno != 0 || end == val || *end != '\0' ||
				*val == '-' || v == 0 || v > PG_UINT32_MAX)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("incetl: invalid value \"%s\" for option \"relid\"",
								val)));
			data->relid = (Oid) v;
			have_relid = true;
		}
		else if (strcmp(elem->defname, "times") == 0)
		{
			/* a history pipeline's run: each change with its commit time */
			data->times = elem->arg == NULL || strcmp(strVal(elem->arg), "on") == 0;
		}
		else if (strcmp(elem->defname, "values") == 0)
		{
			/* a 'logical' history pipeline's run: each new row's values */
			data->values = elem->arg == NULL || strcmp(strVal(elem->arg), "on") == 0;
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("incetl: unknown option \"%s\"", elem->defname),
					 errhint("The supported options are \"relid\", \"times\" and \"values\".")));
	}

	if (!have_relid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("incetl: option \"relid\" is required")));

	/*
	 * The run reading its slot in this backend (incetl_logical_read) set a
	 * sink for the context it creates, which is this one: the first to
	 * start while the sink is set.  A history run's changes stay JSON.
	 */
	if (incetl_decode_sink != NULL && !incetl_decode_sink->claimed &&
		incetl_decode_sink->relid == data->relid &&
		!data->times && !data->values)
	{
		IncetlDecodeSink *sink = incetl_decode_sink;

		sink->claimed = true;
		data->sink = sink;
		for (int i = 0; i < 2; i++)
		{
			data->sinkvals[i] = MemoryContextAllocZero(ctx->context,
													   sizeof(Datum) * Max(sink->nkeys, 1));
			data->sinknulls[i] = MemoryContextAllocZero(ctx->context,
														sizeof(bool) * Max(sink->nkeys, 1));
		}
		data->rowvals = MemoryContextAllocZero(ctx->context,
											   sizeof(Datum) * Max(sink->ncols, 1));
		data->rownulls = MemoryContextAllocZero(ctx->context,
												sizeof(bool) * Max(sink->ncols, 1));
	}

	/*
	 * Pin the settings that output functions follow, in a GUC nest level of
	 * our own that decode_shutdown pops (an error pops it with the
	 * transaction or subtransaction it aborts).  Through SQL the decoding
	 * runs inside one function call, in a transaction; a walsender's
	 * session settings are its client's business.
	 */
	if (!am_walsender && IsTransactionState())
		data->guc_nest = incetl_pin_output_settings();

	if (!decode_callbacks_registered)
	{
		CacheRegisterRelcacheCallback(decode_relcache_cb, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, decode_syscache_cb, (Datum) 0);
		decode_callbacks_registered = true;
	}
	decode_cache_stale = true;
}

static void
decode_shutdown(LogicalDecodingContext *ctx)
{
	DecodeData *data = ctx->output_plugin_private;

	/* all our memory lives in ctx->context; the settings go back */
	if (data != NULL && data->guc_nest > 0)
	{
		AtEOXact_GUC(false, data->guc_nest);
		data->guc_nest = 0;
	}
}

static void
decode_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
}

static void
decode_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			  XLogRecPtr commit_lsn)
{
}

/*
 * (Re)build the key column cache for the relation if needed.
 */
static void
decode_build_cache(DecodeData *data, Relation rel)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	MemoryContext oldcxt;
	Bitmapset  *idattrs = NULL;
	bool		full = (rel->rd_rel->relreplident == REPLICA_IDENTITY_FULL);
	int			i;

	if (data->cache_valid && !decode_cache_stale)
		return;

	MemoryContextReset(data->cache_cxt);
	data->cache_valid = false;
	decode_cache_stale = false;

	oldcxt = MemoryContextSwitchTo(data->cache_cxt);

	if (!full)
		idattrs = RelationGetIndexAttrBitmap(rel,
											 INDEX_ATTR_BITMAP_IDENTITY_KEY);

	data->keys = palloc(sizeof(DecodeKeyAtt) * Max(tupdesc->natts, 1));
	data->nkeys = 0;
	data->cols = palloc(sizeof(DecodeKeyAtt) * Max(tupdesc->natts, 1));
	data->ncols = 0;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		DecodeKeyAtt *key;
		StringInfoData name;
		Oid			typoutput;
		bool		typisvarlena;

		if (att->attisdropped || att->attnum <= 0)
			continue;
		if (data->values)
		{
			DecodeKeyAtt *col = &data->cols[data->ncols++];

			col->attnum = att->attnum;
			col->typlen = att->attlen;
			initStringInfo(&name);
			escape_json(&name, NameStr(att->attname));
			appendStringInfoChar(&name, ':');
			col->jsonname = name.data;
			getTypeOutputInfo(att->atttypid, &typoutput, &typisvarlena);
			fmgr_info_cxt(typoutput, &col->outfunc, data->cache_cxt);
		}
		if (!full &&
			!bms_is_member(att->attnum - FirstLowInvalidHeapAttributeNumber,
						   idattrs))
			continue;

		key = &data->keys[data->nkeys++];
		key->attnum = att->attnum;
		key->typlen = att->attlen;
		key->typbyval = att->attbyval;
		key->typid = att->atttypid;
		key->typmod = att->atttypmod;
		key->attname = pstrdup(NameStr(att->attname));

		initStringInfo(&name);
		escape_json(&name, NameStr(att->attname));
		appendStringInfoChar(&name, ':');
		key->jsonname = name.data;

		getTypeOutputInfo(att->atttypid, &typoutput, &typisvarlena);
		fmgr_info_cxt(typoutput, &key->outfunc, data->cache_cxt);
	}

	bms_free(idattrs);

	/*
	 * The sink's keys among the decoded relation's identity columns, by
	 * name, as the JSON path's reader finds them in "k".  The relation is
	 * the historic one, as of the change: a key column that is not there,
	 * or whose type or typmod is not the pipeline's now (dropped, renamed,
	 * altered since), could feed the work table a datum of the wrong type.
	 * Then no change is handed over typed; the reader reads the slot again
	 * as JSON, whose casts make of it what they always did.
	 */
	if (data->sink != NULL)
	{
		IncetlDecodeSink *sink = data->sink;

		data->sinkmap = palloc(sizeof(int) * Max(sink->nkeys, 1));
		data->sink_ok = true;
		for (i = 0; i < sink->nkeys; i++)
		{
			int			j;

			for (j = 0; j < data->nkeys; j++)
				if (strcmp(data->keys[j].attname, sink->names[i]) == 0)
					break;
			if (j == data->nkeys ||
				data->keys[j].typid != sink->types[i] ||
				data->keys[j].typmod != sink->typmods[i])
			{
				data->sink_ok = false;
				break;
			}
			data->sinkmap[i] = j;
		}

		/*
		 * The sink's columns, each at the number it has now, with its name,
		 * type and typmod, or no rows are handed over: a value stored under
		 * another type, or in a column dropped since (another column has
		 * its name now), must not reach the apply as if it were this one's.
		 */
		data->rows_ok = sink->ncols > 0;
		for (i = 0; data->rows_ok && i < sink->ncols; i++)
		{
			AttrNumber	attnum = sink->colattnums[i];
			Form_pg_attribute att;

			if (attnum < 1 || attnum > tupdesc->natts)
			{
				data->rows_ok = false;
				break;
			}
			att = TupleDescAttr(tupdesc, attnum - 1);
			data->rows_ok = !att->attisdropped &&
				strcmp(NameStr(att->attname), sink->colnames[i]) == 0 &&
				att->atttypid == sink->coltypes[i] &&
				att->atttypmod == sink->coltypmods[i];
		}
	}
	MemoryContextSwitchTo(oldcxt);

	data->cache_valid = true;
}

/*
 * Fetch key column of tuple; returns false if it is NULL or an unchanged
 * TOASTed value that is not available in the WAL record.
 */
static inline bool
decode_get_key_value(DecodeKeyAtt *key, TupleDesc tupdesc, HeapTuple tuple,
					 Datum *val)
{
	bool		isnull;

	*val = heap_getattr(tuple, key->attnum, tupdesc, &isnull);
	if (isnull)
		return false;
	if (key->typlen == -1 && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(*val)))
		return false;
	return true;
}

/*
 * Append the key of tuple as a JSON object to buf.
 *
 * A key column of an UPDATE's new tuple can be an unchanged TOASTed value;
 * in that case the WAL record also carries the old key with that value
 * flattened, so take it from oldtuple (if given).  Otherwise emit null.
 */
static void
decode_append_key(StringInfo buf, DecodeData *data, TupleDesc tupdesc,
				  HeapTuple tuple, HeapTuple oldtuple)
{
	int			i;

	appendStringInfoChar(buf, '{');
	for (i = 0; i < data->nkeys; i++)
	{
		DecodeKeyAtt *key = &data->keys[i];
		Datum		val;
		bool		found;

		if (i > 0)
			appendStringInfoChar(buf, ',');
		appendStringInfoString(buf, key->jsonname);

		found = decode_get_key_value(key, tupdesc, tuple, &val);
		if (!found && oldtuple != NULL && key->typlen == -1 &&
			!heap_attisnull(tuple, key->attnum, tupdesc))
			found = decode_get_key_value(key, tupdesc, oldtuple, &val);

		if (found)
			escape_json(buf, OutputFunctionCall(&key->outfunc, val));
		else
			appendStringInfoString(buf, "null");
	}
	appendStringInfoChar(buf, '}');
}

/*
 * The sink's key datums of tuple into vals/nulls, taken as
 * decode_append_key takes them (an unchanged TOASTed key of an UPDATE's
 * new tuple from oldtuple; what neither has is NULL).  A varlena is
 * detoasted: decoding hands over a TOASTed value as an indirect pointer to
 * the reassembled, maybe compressed, chunks, which must not reach the
 * sink's tuplestore as a pointer.  The copies live in the change's memory
 * context; the sink copies what it keeps.
 */
static void
decode_get_typed_key(DecodeData *data, TupleDesc tupdesc, HeapTuple tuple,
					 HeapTuple oldtuple, Datum *vals, bool *nulls)
{
	for (int i = 0; i < data->sink->nkeys; i++)
	{
		DecodeKeyAtt *key = &data->keys[data->sinkmap[i]];
		Datum		val = (Datum) 0;
		bool		found;

		found = decode_get_key_value(key, tupdesc, tuple, &val);
		if (!found && oldtuple != NULL && key->typlen == -1 &&
			!heap_attisnull(tuple, key->attnum, tupdesc))
			found = decode_get_key_value(key, tupdesc, oldtuple, &val);
		if (found && key->typlen == -1)
			val = PointerGetDatum(pg_detoast_datum_packed((struct varlena *) DatumGetPointer(val)));
		vals[i] = found ? val : (Datum) 0;
		nulls[i] = !found;
	}
}

/*
 * Whether two keys from decode_get_typed_key are the same bytes (a
 * varlena's data whatever its header: datum_image_eq).  The JSON path compares their text;
 * equal bytes make equal text, and a key this calls changed that is not
 * only costs the reader a duplicate, which it drops.
 */
static bool
decode_typed_keys_equal(DecodeData *data, Datum *v1, bool *n1, Datum *v2, bool *n2)
{
	for (int i = 0; i < data->sink->nkeys; i++)
	{
		DecodeKeyAtt *key = &data->keys[data->sinkmap[i]];

		if (n1[i] != n2[i])
			return false;
		if (!n1[i] && !datum_image_eq(v1[i], v2[i], key->typbyval, key->typlen))
			return false;
	}
	return true;
}

/*
 * The sink's columns of tuple, the new row of change, into
 * data->rowvals/rownulls; false when the sink takes no rows from it: the
 * columns are not the sink's (decode_build_cache), the file is not the
 * source's now (a rewrite since: VACUUM FULL, CLUSTER, a column's new
 * type), or a value is an unchanged TOASTed one that the record does not
 * carry.  A TOASTed value that it carries (an indirect pointer to the
 * reassembled chunks) is copied out, maybe still compressed; values live
 * in the change's memory context.
 */
static bool
decode_get_row(DecodeData *data, TupleDesc tupdesc, HeapTuple tuple,
			   ReorderBufferChange *change)
{
	IncetlDecodeSink *sink = data->sink;
#if PG_VERSION_NUM >= 160000
	Oid			file = change->data.tp.rlocator.relNumber;
#else
	Oid			file = change->data.tp.relnode.relNode;
#endif

	if (!data->rows_ok || file != sink->relfilenode)
		return false;
	for (int i = 0; i < sink->ncols; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, sink->colattnums[i] - 1);
		bool		isnull;
		Datum		val = heap_getattr(tuple, sink->colattnums[i], tupdesc, &isnull);

		if (!isnull && att->attlen == -1 &&
			VARATT_IS_EXTERNAL(DatumGetPointer(val)))
		{
			if (VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(val)))
				return false;
			val = PointerGetDatum(detoast_external_attr((struct varlena *) DatumGetPointer(val)));
		}
		data->rowvals[i] = isnull ? (Datum) 0 : val;
		data->rownulls[i] = isnull;
	}
	return true;
}

/*
 * decode_change for a sink: the same records as the JSON path writes, as
 * datums.  A change of a relation whose key columns are not the
 * pipeline's (decode_build_cache) fails the sink instead.
 */
static void
decode_change_typed(LogicalDecodingContext *ctx, DecodeData *data,
					TupleDesc tupdesc, ReorderBufferChange *change,
					HeapTuple oldtup, HeapTuple newtup)
{
	IncetlDecodeSink *sink = data->sink;
	Datum	   *newvals = data->sinkvals[0];
	bool	   *newnulls = data->sinknulls[0];
	Datum	   *oldvals = data->sinkvals[1];
	bool	   *oldnulls = data->sinknulls[1];
	XLogRecPtr	lsn = ctx->write_location;

	if (!data->sink_ok)
	{
		sink->failed = true;
		return;
	}

	switch (change->action)
	{
		case REORDER_BUFFER_CHANGE_INSERT:
			if (newtup == NULL)
				break;
			decode_get_typed_key(data, tupdesc, newtup, NULL, newvals, newnulls);
			sink->put(sink, lsn, 'I', newvals, newnulls,
					  decode_get_row(data, tupdesc, newtup, change),
					  data->rowvals, data->rownulls);
			break;

		case REORDER_BUFFER_CHANGE_UPDATE:
			if (newtup == NULL)
				break;
			decode_get_typed_key(data, tupdesc, newtup, oldtup, newvals, newnulls);
			if (oldtup != NULL)
			{
				/* old key is logged if it changed (or is toasted / FULL) */
				decode_get_typed_key(data, tupdesc, oldtup, NULL, oldvals, oldnulls);
				if (!decode_typed_keys_equal(data, oldvals, oldnulls, newvals, newnulls))
					sink->put(sink, lsn, 'D', oldvals, oldnulls, false, NULL, NULL);
			}
			sink->put(sink, lsn, 'U', newvals, newnulls,
					  decode_get_row(data, tupdesc, newtup, change),
					  data->rowvals, data->rownulls);
			break;

		case REORDER_BUFFER_CHANGE_DELETE:
			/* no old tuple if the table has no replica identity: "{}" */
			if (oldtup != NULL)
				decode_get_typed_key(data, tupdesc, oldtup, NULL, oldvals, oldnulls);
			else
				for (int i = 0; i < sink->nkeys; i++)
					oldnulls[i] = true;
			sink->put(sink, lsn, 'D', oldvals, oldnulls, false, NULL, NULL);
			break;

		default:
			break;
	}
}

/*
 * Append every column of tuple as a JSON object to buf (option "values"):
 * the text of each value, or null; an unchanged TOASTed value, which the
 * WAL record does not carry, is left out.
 */
static void
decode_append_values(StringInfo buf, DecodeData *data, TupleDesc tupdesc,
					 HeapTuple tuple)
{
	bool		first = true;

	appendStringInfoChar(buf, '{');
	for (int i = 0; i < data->ncols; i++)
	{
		DecodeKeyAtt *col = &data->cols[i];
		Datum		val;
		bool		isnull;

		val = heap_getattr(tuple, col->attnum, tupdesc, &isnull);
		if (!isnull && col->typlen == -1 &&
			VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(val)))
			continue;
		if (!first)
			appendStringInfoChar(buf, ',');
		first = false;
		appendStringInfoString(buf, col->jsonname);
		if (isnull)
			appendStringInfoString(buf, "null");
		else
			escape_json(buf, OutputFunctionCall(&col->outfunc, val));
	}
	appendStringInfoChar(buf, '}');
}

/*
 * Report the end LSN of the transaction's commit record as the row's LSN
 * (instead of the change's own LSN), so that every row of a transaction
 * carries the same LSN and pg_replication_slot_advance(slot, that_lsn)
 * skips exactly the transactions up to and including this one.
 */
static inline void
decode_set_write_location(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	if (!XLogRecPtrIsInvalid(txn->end_lsn))
		ctx->write_location = txn->end_lsn;
}

/*
 * One record; with the option "times", also "t": the commit time of the
 * change's transaction, as PostgreSQL's TimestampTz (microseconds since
 * 2000-01-01 00:00 UTC), which no setting of the decoding session changes;
 * with the option "values", also "n": the new row of an INSERT or UPDATE
 * (decode_append_values), and "o": the old key of an UPDATE that changed
 * it (oldkey, a JSON object, or NULL).  Both only for history pipelines
 * (SPEC 5).
 */
static void
decode_write_record(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
					const char *op, const char *key, int keylen,
					TupleDesc tupdesc, HeapTuple newtup, const char *oldkey)
{
	DecodeData *data = ctx->output_plugin_private;

	OutputPluginPrepareWrite(ctx, true);
	appendStringInfoString(ctx->out, "{\"op\":\"");
	appendStringInfoString(ctx->out, op);
	appendStringInfoString(ctx->out, "\",\"k\":");
	appendBinaryStringInfo(ctx->out, key, keylen);
	if (data->values && newtup != NULL)
	{
		appendStringInfoString(ctx->out, ",\"n\":");
		decode_append_values(ctx->out, data, tupdesc, newtup);
	}
	if (data->values && oldkey != NULL)
	{
		appendStringInfoString(ctx->out, ",\"o\":");
		appendStringInfoString(ctx->out, oldkey);
	}
	if (data->times)
		appendStringInfo(ctx->out, ",\"t\":" INT64_FORMAT,
#if PG_VERSION_NUM >= 150000
						 (int64) txn->xact_time.commit_time
#else
						 (int64) txn->commit_time
#endif
			);
	appendStringInfoChar(ctx->out, '}');
	OutputPluginWrite(ctx, true);
}

static void
decode_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			  Relation relation, ReorderBufferChange *change)
{
	DecodeData *data = ctx->output_plugin_private;
	TupleDesc	tupdesc;
	MemoryContext oldcxt;
	HeapTuple	oldtup;
	HeapTuple	newtup;
	StringInfoData newkey;
	StringInfoData oldkey;
	const char *changed;

	if (RelationGetRelid(relation) != data->relid)
		return;

	decode_build_cache(data, relation);
	decode_set_write_location(ctx, txn);
	tupdesc = RelationGetDescr(relation);

#if PG_VERSION_NUM >= 170000
	oldtup = change->data.tp.oldtuple;
	newtup = change->data.tp.newtuple;
#else
	oldtup = change->data.tp.oldtuple ? &change->data.tp.oldtuple->tuple : NULL;
	newtup = change->data.tp.newtuple ? &change->data.tp.newtuple->tuple : NULL;
#endif

	oldcxt = MemoryContextSwitchTo(data->change_cxt);

	if (data->sink != NULL)
	{
		decode_change_typed(ctx, data, tupdesc, change, oldtup, newtup);
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(data->change_cxt);
		return;
	}

	switch (change->action)
	{
		case REORDER_BUFFER_CHANGE_INSERT:
			if (newtup == NULL)
				break;
			initStringInfo(&newkey);
			decode_append_key(&newkey, data, tupdesc, newtup, NULL);
			decode_write_record(ctx, txn, "I", newkey.data, newkey.len, tupdesc, newtup, NULL);
			break;

		case REORDER_BUFFER_CHANGE_UPDATE:
			if (newtup == NULL)
				break;
			initStringInfo(&newkey);
			decode_append_key(&newkey, data, tupdesc, newtup, oldtup);
			changed = NULL;
			if (oldtup != NULL)
			{
				/* old key is logged if it changed (or is toasted / FULL) */
				initStringInfo(&oldkey);
				decode_append_key(&oldkey, data, tupdesc, oldtup, NULL);
				if (oldkey.len != newkey.len ||
					memcmp(oldkey.data, newkey.data, newkey.len) != 0)
				{
					decode_write_record(ctx, txn, "D", oldkey.data, oldkey.len, NULL, NULL, NULL);
					changed = oldkey.data;
				}
			}
			/* right after the "D" of the old key, which it names */
			decode_write_record(ctx, txn, "U", newkey.data, newkey.len, tupdesc, newtup,
								changed);
			break;

		case REORDER_BUFFER_CHANGE_DELETE:
			/* no old tuple if the table has no replica identity */
			initStringInfo(&oldkey);
			if (oldtup != NULL)
				decode_append_key(&oldkey, data, tupdesc, oldtup, NULL);
			else
				appendStringInfoString(&oldkey, "{}");
			decode_write_record(ctx, txn, "D", oldkey.data, oldkey.len, NULL, NULL, NULL);
			break;

		default:
			break;
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(data->change_cxt);
}

static void
decode_truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
				int nrelations, Relation relations[],
				ReorderBufferChange *change)
{
	DecodeData *data = ctx->output_plugin_private;
	int			i;

	for (i = 0; i < nrelations; i++)
	{
		if (RelationGetRelid(relations[i]) == data->relid)
		{
			decode_set_write_location(ctx, txn);
			if (data->sink != NULL)
			{
				data->sink->put(data->sink, ctx->write_location, 'T', NULL, NULL,
								false, NULL, NULL);
				return;
			}
			OutputPluginPrepareWrite(ctx, true);
			appendStringInfoString(ctx->out, "{\"op\":\"T\"}");
			OutputPluginWrite(ctx, true);
			return;
		}
	}
}
