/*-------------------------------------------------------------------------
 *
 * hash.c
 *	  Row hashes: incetl.row_hash(record), the 64-bit hash of hash_algorithm
 *	  'hash64', and incetl.row_bytes(record), the canonical bytes a digest
 *	  hash_algorithm hands to pgcrypto's digest().
 *
 * row_hash: each column is hashed with its type's own extended (64-bit, seeded) hash
 * support function, the one hash partitioning and hash joins use, so
 * values are hashed in their binary form and values that are equal by the
 * type's equality (1.0 and 1.00 as numeric) hash equal.  Types without one
 * are hashed over their stored bytes (never through a send or output
 * function, whose result can depend on the session's encoding or style).  Column hashes are
 * combined in column order with hash_combine64, and a NULL contributes a
 * marker that depends on its position, so (NULL, 1) and (1, NULL) differ.
 *
 * PostgreSQL's array hash ignores an array's shape (its dimensions and lower
 * bounds), so '{1,2,3,4}' and '{{1,2},{3,4}}', or '{5,6}' and '[0:1]={5,6}',
 * hash alike.  For a column whose type holds arrays (an array, or a domain,
 * composite or range with arrays inside) the shapes of all its arrays are
 * mixed into the column's hash whenever one of them is not the plain shape
 * (one dimension from 1, or empty); every other value keeps the hash it had,
 * so stored hashes of rows without such arrays stay valid.
 *
 * row_bytes: each column's stored bytes preceded by their length, or a NULL
 * marker (row_bytes_walk).  The stored bytes are the type's internal form,
 * so the digest of a row depends on no session setting, and it tells apart
 * values that hash64 takes as equal (numeric 1.0 and 1.00).
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
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/multirangetypes.h"
#include "utils/rangetypes.h"
#include "utils/typcache.h"

#include "incetl.h"

INCETL_FUNCTION(incetl_row_hash);

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
	bool	   *shapes;			/* the type holds arrays: mix their shapes */
	Oid		   *typids;
} RowHashCache;

/*
 * Whether values of a type can hold arrays: an array, or a domain,
 * composite, range or multirange with an array somewhere inside.
 */
static bool
type_holds_arrays(Oid typid)
{
	Oid			base;
	char		typtype;

	check_stack_depth();
	base = getBaseType(typid);
	if (get_typlen(base) == -1 && OidIsValid(get_element_type(base)))
		return true;
	typtype = get_typtype(base);
	if (typtype == TYPTYPE_COMPOSITE)
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(base, -1);
		bool		found = false;

		for (int i = 0; i < desc->natts && !found; i++)
			if (!TupleDescAttr(desc, i)->attisdropped)
				found = type_holds_arrays(TupleDescAttr(desc, i)->atttypid);
		ReleaseTupleDesc(desc);
		return found;
	}
	if (typtype == TYPTYPE_RANGE)
		return type_holds_arrays(get_range_subtype(base));
	if (typtype == TYPTYPE_MULTIRANGE)
		return type_holds_arrays(get_range_subtype(get_multirange_range(base)));
	return false;
}

/*
 * Append the shape (ndim, dims, lower bounds) of every array in a value of
 * type typid to buf, in a fixed order; *odd is set when one of them is not
 * the plain shape.
 */
static void
collect_shapes(Oid typid, Datum value, StringInfo buf, bool *odd)
{
	Oid			base;
	char		typtype;

	check_stack_depth();
	base = getBaseType(typid);
	if (get_typlen(base) == -1 && OidIsValid(get_element_type(base)))
	{
		ArrayType  *a = DatumGetArrayTypeP(value);
		int			ndim = ARR_NDIM(a);
		Oid			elemtype = ARR_ELEMTYPE(a);

		appendBinaryStringInfo(buf, (char *) &ndim, sizeof(int));
		appendBinaryStringInfo(buf, (char *) ARR_DIMS(a), sizeof(int) * ndim);
		appendBinaryStringInfo(buf, (char *) ARR_LBOUND(a), sizeof(int) * ndim);
		if (ndim > 1 || (ndim == 1 && ARR_LBOUND(a)[0] != 1))
			*odd = true;
		if (ndim > 0 && type_holds_arrays(elemtype))
		{
			int16		elmlen;
			bool		elmbyval;
			char		elmalign;
			Datum	   *elems;
			bool	   *enulls;
			int			n;

			get_typlenbyvalalign(elemtype, &elmlen, &elmbyval, &elmalign);
			deconstruct_array(a, elemtype, elmlen, elmbyval, elmalign,
							  &elems, &enulls, &n);
			for (int i = 0; i < n; i++)
				if (!enulls[i])
					collect_shapes(elemtype, elems[i], buf, odd);
		}
		return;
	}
	typtype = get_typtype(base);
	if (typtype == TYPTYPE_COMPOSITE)
	{
		HeapTupleHeader rec = DatumGetHeapTupleHeader(value);
		TupleDesc	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(rec),
												  HeapTupleHeaderGetTypMod(rec));
		HeapTupleData tuple;
		Datum	   *values = palloc(sizeof(Datum) * Max(desc->natts, 1));
		bool	   *nulls = palloc(sizeof(bool) * Max(desc->natts, 1));

		tuple.t_len = HeapTupleHeaderGetDatumLength(rec);
		ItemPointerSetInvalid(&(tuple.t_self));
		tuple.t_tableOid = InvalidOid;
		tuple.t_data = rec;
		heap_deform_tuple(&tuple, desc, values, nulls);
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped && !nulls[i] && type_holds_arrays(att->atttypid))
				collect_shapes(att->atttypid, values[i], buf, odd);
		}
		ReleaseTupleDesc(desc);
		return;
	}
	if (typtype == TYPTYPE_RANGE)
	{
		RangeType  *r = DatumGetRangeTypeP(value);
		TypeCacheEntry *tc = lookup_type_cache(RangeTypeGetOid(r), TYPECACHE_RANGE_INFO);
		RangeBound	lower;
		RangeBound	upper;
		bool		empty;

		range_deserialize(tc, r, &lower, &upper, &empty);
		if (!empty && !lower.infinite)
			collect_shapes(tc->rngelemtype->type_id, lower.val, buf, odd);
		if (!empty && !upper.infinite)
			collect_shapes(tc->rngelemtype->type_id, upper.val, buf, odd);
		return;
	}
	if (typtype == TYPTYPE_MULTIRANGE)
	{
		MultirangeType *mr = DatumGetMultirangeTypeP(value);
		TypeCacheEntry *tc = lookup_type_cache(MultirangeTypeGetOid(mr),
											   TYPECACHE_MULTIRANGE_INFO);
		int32		n;
		RangeType **ranges;

		multirange_deserialize(tc->rngtype, mr, &n, &ranges);
		for (int i = 0; i < n; i++)
			collect_shapes(tc->rngtype->type_id, RangeTypePGetDatum(ranges[i]), buf, odd);
		return;
	}
}

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
	cache->shapes = MemoryContextAllocZero(mcxt, sizeof(bool) * Max(desc->natts, 1));
	cache->typids = MemoryContextAllocZero(mcxt, sizeof(Oid) * Max(desc->natts, 1));
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
		{
			fmgr_info_cxt(tc->hash_extended_proc_finfo.fn_oid, &cache->hashfn[i], mcxt);
			/* stored bytes (below) hold the shapes already */
			cache->shapes[i] = type_holds_arrays(att->atttypid);
		}
		cache->typids[i] = att->atttypid;
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
		{
			ch = DatumGetUInt64(FunctionCall2Coll(&cache->hashfn[i],
												  cache->collations[i],
												  values[i],
												  UInt64GetDatum(ROW_HASH_SEED)));
			if (cache->shapes[i])
			{
				StringInfoData shapes;
				bool		odd = false;

				initStringInfo(&shapes);
				collect_shapes(cache->typids[i], values[i], &shapes, &odd);
				if (odd)
					ch = hash_combine64(ch, hash_bytes_extended((const unsigned char *) shapes.data,
																shapes.len, ROW_HASH_SEED));
				pfree(shapes.data);
			}
		}
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
 * Where the canonical bytes of a row go, piece by piece.
 */
typedef void (*RowBytesSink) (void *arg, const void *data, Size len);

/*
 * The canonical bytes of a record, as a stream: for each column in order
 * (dropped ones left out), a NULL is the 8-byte marker PG_UINT64_MAX, and a
 * value is its stored bytes' length as an 8-byte unsigned integer followed
 * by those bytes (value_bytes: the type's internal form, which depends on
 * no session setting).  Lengths and pass-by-value Datums are in the
 * server's byte order.  This is exactly what 'sha256' hashed since 0.1, so
 * the hashes stored by then stay valid.
 */
static void
row_bytes_walk(HeapTupleHeader rec, RowBytesSink sink, void *arg)
{
	Datum	   *values;
	bool	   *nulls;
	TupleDesc	desc = deform_record(rec, &values, &nulls);

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
			sink(arg, &len64, sizeof(len64));
			continue;
		}
		value_bytes(&values[i], att->attlen, att->attbyval, &data, &len, &tofree);
		len64 = len;
		sink(arg, &len64, sizeof(len64));
		sink(arg, data, len);
		if (tofree != (Datum) 0)
			pfree(DatumGetPointer(tofree));
	}
	ReleaseTupleDesc(desc);
	pfree(values);
	pfree(nulls);
}

/* a sink that appends to a bytea being built in a StringInfo */
static void
row_bytes_append(void *arg, const void *data, Size len)
{
	StringInfo	buf = (StringInfo) arg;

	if (len > (Size) (MaxAllocSize - 1 - buf->len))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("row is too large for incetl.row_bytes"),
				 errdetail("The canonical bytes of a row, its values with their lengths, are limited to 1 GB."),
				 errhint("Use hash_algorithm 'hash64', which has no such limit.")));
	appendBinaryStringInfo(buf, data, (int) len);
}

/*
 * incetl.row_bytes(record) returns bytea: the canonical bytes of a row
 * (row_bytes_walk), the input of a digest hash_algorithm, so that
 * digest(incetl.row_bytes(r), 'sha256') is the hash a 'sha256' pipeline
 * stores for r.
 */
INCETL_FUNCTION(incetl_row_bytes);

Datum
incetl_row_bytes(PG_FUNCTION_ARGS)
{
	HeapTupleHeader rec = PG_GETARG_HEAPTUPLEHEADER(0);
	StringInfoData buf;

	/* the bytea is built in place, its header first */
	initStringInfo(&buf);
	appendStringInfoSpaces(&buf, VARHDRSZ);
	row_bytes_walk(rec, row_bytes_append, &buf);
	SET_VARSIZE(buf.data, buf.len);
	PG_RETURN_BYTEA_P((bytea *) buf.data);
}

/* a sink that feeds a cryptographic hash */
static void
row_bytes_digest(void *arg, const void *data, Size len)
{
	pg_cryptohash_ctx *ctx = (pg_cryptohash_ctx *) arg;

	if (pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
}

/*
 * incetl._row_sha256(record) returns bytea: SHA-256 over the canonical
 * bytes of a row, streamed (so no row is too large for it).  It equals
 * digest(incetl.row_bytes(r), 'sha256'); 'sha256' pipelines compute that
 * through pgcrypto since 0.3, and this function stays for whoever called
 * it.
 */
INCETL_FUNCTION(incetl_row_sha256);

Datum
incetl_row_sha256(PG_FUNCTION_ARGS)
{
	HeapTupleHeader rec = PG_GETARG_HEAPTUPLEHEADER(0);
	pg_cryptohash_ctx *ctx;
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	bytea	   *result;

	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "could not initialize SHA-256: %s", pg_cryptohash_error(ctx));
	row_bytes_walk(rec, row_bytes_digest, ctx);
	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);

	result = palloc(VARHDRSZ + sizeof(digest));
	SET_VARSIZE(result, VARHDRSZ + sizeof(digest));
	memcpy(VARDATA(result), digest, sizeof(digest));
	PG_RETURN_BYTEA_P(result);
}
