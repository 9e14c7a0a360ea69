/*-------------------------------------------------------------------------
 *
 * hash.c
 *	  incetl.row_hash(record): the 64-bit row hash of the 'hash' strategy.
 *
 * Each column is hashed with its type's own extended (64-bit, seeded) hash
 * support function, the one hash partitioning and hash joins use, so
 * values are hashed in their binary form and values that are equal by the
 * type's equality (1.0 and 1.00 as numeric) hash equal.  Types without one
 * are hashed through their binary send function.  Column hashes are
 * combined in column order with hash_combine64, and a NULL contributes a
 * marker that depends on its position, so (NULL, 1) and (1, NULL) differ.
 *
 * src/hash.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "incetl.h"

PG_FUNCTION_INFO_V1(incetl_row_hash);

#define ROW_HASH_SEED		UINT64CONST(0x1ec7e7105eed)
#define ROW_HASH_NULL		UINT64CONST(0x9e3779b97f4a7c15)

/* per-call-site cache of the column hash functions */
typedef struct RowHashCache
{
	Oid			tupType;
	int32		tupTypmod;
	int			natts;
	FmgrInfo   *hashfn;			/* extended hash, or fn_oid invalid */
	FmgrInfo   *sendfn;			/* binary send, when no hash */
	Oid		   *collations;
} RowHashCache;

static RowHashCache *
row_hash_cache(FunctionCallInfo fcinfo, TupleDesc desc, Oid tupType, int32 tupTypmod)
{
	RowHashCache *cache = (RowHashCache *) fcinfo->flinfo->fn_extra;
	MemoryContext mcxt = fcinfo->flinfo->fn_mcxt;

	if (cache && cache->tupType == tupType && cache->tupTypmod == tupTypmod &&
		cache->natts == desc->natts)
		return cache;

	cache = MemoryContextAllocZero(mcxt, sizeof(RowHashCache));
	cache->tupType = tupType;
	cache->tupTypmod = tupTypmod;
	cache->natts = desc->natts;
	cache->hashfn = MemoryContextAllocZero(mcxt, sizeof(FmgrInfo) * Max(desc->natts, 1));
	cache->sendfn = MemoryContextAllocZero(mcxt, sizeof(FmgrInfo) * Max(desc->natts, 1));
	cache->collations = MemoryContextAllocZero(mcxt, sizeof(Oid) * Max(desc->natts, 1));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		TypeCacheEntry *tc;

		if (att->attisdropped)
			continue;
		tc = lookup_type_cache(att->atttypid, TYPECACHE_HASH_EXTENDED_PROC_FINFO);
		if (OidIsValid(tc->hash_extended_proc_finfo.fn_oid))
			fmgr_info_cxt(tc->hash_extended_proc_finfo.fn_oid, &cache->hashfn[i], mcxt);
		else
		{
			Oid			send;
			bool		isvarlena;

			getTypeBinaryOutputInfo(att->atttypid, &send, &isvarlena);
			fmgr_info_cxt(send, &cache->sendfn[i], mcxt);
		}
		cache->collations[i] = OidIsValid(att->attcollation) ?
			att->attcollation : DEFAULT_COLLATION_OID;
	}
	fcinfo->flinfo->fn_extra = cache;
	return cache;
}

/*
 * incetl.row_hash(record) returns bigint
 */
Datum
incetl_row_hash(PG_FUNCTION_ARGS)
{
	HeapTupleHeader rec = PG_GETARG_HEAPTUPLEHEADER(0);
	Oid			tupType = HeapTupleHeaderGetTypeId(rec);
	int32		tupTypmod = HeapTupleHeaderGetTypMod(rec);
	TupleDesc	desc = lookup_rowtype_tupdesc(tupType, tupTypmod);
	RowHashCache *cache = row_hash_cache(fcinfo, desc, tupType, tupTypmod);
	HeapTupleData tuple;
	Datum	   *values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(desc->natts, 1));
	uint64		h = ROW_HASH_SEED;

	tuple.t_len = HeapTupleHeaderGetDatumLength(rec);
	ItemPointerSetInvalid(&(tuple.t_self));
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = rec;
	heap_deform_tuple(&tuple, desc, values, nulls);

	for (int i = 0; i < desc->natts; i++)
	{
		uint64		ch;

		if (TupleDescAttr(desc, i)->attisdropped)
			continue;
		if (nulls[i])
			ch = ROW_HASH_NULL + (uint64) i;
		else if (OidIsValid(cache->hashfn[i].fn_oid))
			ch = DatumGetUInt64(FunctionCall2Coll(&cache->hashfn[i],
												  cache->collations[i],
												  values[i],
												  UInt64GetDatum(ROW_HASH_SEED)));
		else
		{
			bytea	   *b = SendFunctionCall(&cache->sendfn[i], values[i]);

			ch = hash_bytes_extended((unsigned char *) VARDATA(b),
									 VARSIZE(b) - VARHDRSZ, ROW_HASH_SEED);
			pfree(b);
		}
		h = hash_combine64(h, ch);
	}
	ReleaseTupleDesc(desc);
	pfree(values);
	pfree(nulls);

	PG_RETURN_INT64((int64) h);
}
