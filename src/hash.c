/*-------------------------------------------------------------------------
 *
 * hash.c
 *	  incetl.row_hash(record): the 64-bit row hash of the 'hash' strategy.
 *
 * Each column is hashed with its type's own extended (64-bit, seeded) hash
 * support function, the one hash partitioning and hash joins use, so
 * values are hashed in their binary form and values that are equal by the
 * type's equality (1.0 and 1.00 as numeric) hash equal.  Types without one
 * are hashed over their stored bytes (never through a send or output
 * function, whose result can depend on the session's encoding or style).  Column hashes are
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
#include "common/cryptohash.h"
#include "common/hashfn.h"
#include "common/sha2.h"
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
	int16	   *typlen;
	bool	   *typbyval;
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
	cache->typlen = MemoryContextAllocZero(mcxt, sizeof(int16) * Max(desc->natts, 1));
	cache->typbyval = MemoryContextAllocZero(mcxt, sizeof(bool) * Max(desc->natts, 1));
	cache->collations = MemoryContextAllocZero(mcxt, sizeof(Oid) * Max(desc->natts, 1));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		TypeCacheEntry *tc;

		if (att->attisdropped)
			continue;
		cache->typlen[i] = att->attlen;
		cache->typbyval[i] = att->attbyval;
		tc = lookup_type_cache(att->atttypid, TYPECACHE_HASH_EXTENDED_PROC_FINFO);
		if (OidIsValid(tc->hash_extended_proc_finfo.fn_oid))
			fmgr_info_cxt(tc->hash_extended_proc_finfo.fn_oid, &cache->hashfn[i], mcxt);
		cache->collations[i] = OidIsValid(att->attcollation) ?
			att->attcollation : DEFAULT_COLLATION_OID;
	}
	fcinfo->flinfo->fn_extra = cache;
	return cache;
}

/*
 * The stored bytes of a value, for hashing: the type's own internal form,
 * which depends on no session setting (a send function would convert text
 * to the client's encoding).
 */
static void
value_bytes(Datum *valuep, int16 typlen, bool typbyval, const char **data, Size *len,
			Datum *tofree)
{
	Datum		value = *valuep;

	*tofree = (Datum) 0;
	if (typbyval)
	{
		/* the Datum's own bytes; little- or big-endian, the same each time */
		*data = (const char *) valuep;
		*len = sizeof(Datum);
	}
	else if (typlen == -1)
	{
		struct varlena *v = PG_DETOAST_DATUM_PACKED(value);

		if ((Pointer) v != DatumGetPointer(value))
			*tofree = PointerGetDatum(v);
		*data = VARDATA_ANY(v);
		*len = VARSIZE_ANY_EXHDR(v);
	}
	else if (typlen == -2)
	{
		*data = DatumGetCString(value);
		*len = strlen(*data);
	}
	else
	{
		*data = DatumGetPointer(value);
		*len = typlen;
	}
}

/*
 * The columns of a record argument; the caller releases the returned
 * tuple descriptor with ReleaseTupleDesc.
 */
static TupleDesc
deform_record(HeapTupleHeader rec, Datum **values, bool **nulls)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(rec),
											  HeapTupleHeaderGetTypMod(rec));
	HeapTupleData tuple;

	*values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	*nulls = palloc(sizeof(bool) * Max(desc->natts, 1));
	tuple.t_len = HeapTupleHeaderGetDatumLength(rec);
	ItemPointerSetInvalid(&(tuple.t_self));
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = rec;
	heap_deform_tuple(&tuple, desc, *values, *nulls);
	return desc;
}

/*
 * incetl.row_hash(record) returns bigint
 */
Datum
incetl_row_hash(PG_FUNCTION_ARGS)
{
	HeapTupleHeader rec = PG_GETARG_HEAPTUPLEHEADER(0);
	Datum	   *values;
	bool	   *nulls;
	TupleDesc	desc = deform_record(rec, &values, &nulls);
	RowHashCache *cache = row_hash_cache(fcinfo, desc,
										 HeapTupleHeaderGetTypeId(rec),
										 HeapTupleHeaderGetTypMod(rec));
	uint64		h = ROW_HASH_SEED;

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
			const char *data;
			Size		len;
			Datum		tofree;

			value_bytes(&values[i], cache->typlen[i], cache->typbyval[i],
						&data, &len, &tofree);
			ch = hash_bytes_extended((const unsigned char *) data, len, ROW_HASH_SEED);
			if (tofree != (Datum) 0)
				pfree(DatumGetPointer(tofree));
		}
		h = hash_combine64(h, ch);
	}
	ReleaseTupleDesc(desc);
	pfree(values);
	pfree(nulls);

	PG_RETURN_INT64((int64) h);
}

/*
 * incetl._row_sha256(record) returns bytea: SHA-256 over each column's
 * stored bytes, each preceded by its length (or a NULL marker), so it
 * depends on no session setting.  The 'sha256' hash_algorithm.
 */
PG_FUNCTION_INFO_V1(incetl_row_sha256);

Datum
incetl_row_sha256(PG_FUNCTION_ARGS)
{
	HeapTupleHeader rec = PG_GETARG_HEAPTUPLEHEADER(0);
	Datum	   *values;
	bool	   *nulls;
	TupleDesc	desc = deform_record(rec, &values, &nulls);
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	bytea	   *result;

	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "could not initialize SHA-256: %s", pg_cryptohash_error(ctx));
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		uint64		len64;
		const char *data;
		Size		len;
		Datum		tofree;

		if (att->attisdropped)
			continue;
		if (nulls[i])
		{
			len64 = PG_UINT64_MAX;
			if (pg_cryptohash_update(ctx, (uint8 *) &len64, sizeof(len64)) < 0)
				elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
			continue;
		}
		value_bytes(&values[i], att->attlen, att->attbyval, &data, &len, &tofree);
		len64 = len;
		if (pg_cryptohash_update(ctx, (uint8 *) &len64, sizeof(len64)) < 0 ||
			pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0)
			elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
		if (tofree != (Datum) 0)
			pfree(DatumGetPointer(tofree));
	}
	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	ReleaseTupleDesc(desc);

	result = palloc(VARHDRSZ + sizeof(digest));
	SET_VARSIZE(result, VARHDRSZ + sizeof(digest));
	memcpy(VARDATA(result), digest, sizeof(digest));
	PG_RETURN_BYTEA_P(result);
}
