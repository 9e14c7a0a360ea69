/*-------------------------------------------------------------------------
 *
 * sqlgen.c
 *	  The set-based statements a batch runs, generated from a validated
 *	  pipeline.
 *
 * Every name is quoted (quote_identifier, quote_qualified_identifier),
 * every value is a parameter, and every operator and function is written
 * schema-qualified, so neither a hostile name nor a hostile search_path can
 * change what the statement does.
 *
 * One batch is one statement (PostgreSQL 15):
 *
 *	WITH src AS MATERIALIZED (the next batch_size source rows in
 *							  (watermark, key) order),
 *		 lst AS (the last of them: the new cursor),
 *		 d AS (one row per key, the newest),
 *		 cmp AS MATERIALIZED (rows whose key is new or whose values differ
 *							  from the target's),
 *		 ins AS (INSERT ... RETURNING),
 *		 upd AS (UPDATE ... RETURNING)
 *	SELECT counts and the cursor
 *
 * PostgreSQL 15's MERGE has no RETURNING and cannot sit in a WITH, so it
 * could not report exact insert and update counts in the same pass; the
 * INSERT and UPDATE steps do exactly what its two WHEN clauses would.
 *
 * src/sqlgen.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/stratnum.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "incetl.h"

static void append_cursor_compare(StringInfo buf, IncetlPipeline *p,
								  const char *strategy_op, int strategy,
								  int firstparam);
static void append_distinct(StringInfo buf, IncetlColumn *c, const char *tcol,
							const char *dcol);
static int	column_index(IncetlPipeline *p, const char *name);

/* operator of a btree strategy of a type, qualified, and its namespace */
static char *
type_operator(Oid typid, int strategy, Oid *nsp)
{
	TypeCacheEntry *tc = lookup_type_cache(typid, TYPECACHE_BTREE_OPFAMILY);
	Oid			opr;
	HeapTuple	tup;
	Form_pg_operator op;
	char	   *res;

	if (!OidIsValid(tc->btree_opf))
		elog(ERROR, "type %s has no default btree operator class",
			 format_type_be(typid));
	opr = get_opfamily_member(tc->btree_opf, tc->btree_opintype,
							  tc->btree_opintype, strategy);
	if (!OidIsValid(opr))
		elog(ERROR, "no btree operator %d for type %s", strategy,
			 format_type_be(typid));
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opr));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opr);
	op = (Form_pg_operator) GETSTRUCT(tup);
	*nsp = op->oprnamespace;
	res = psprintf("OPERATOR(%s.%s)",
				   quote_identifier(get_namespace_name(op->oprnamespace)),
				   NameStr(op->oprname));
	ReleaseSysCache(tup);
	return res;
}

/* index in p->columns of a column name, or -1 */
static int
column_index(IncetlPipeline *p, const char *name)
{
	ListCell   *lc;
	int			i = 0;

	foreach(lc, p->columns)
	{
		if (strcmp(((IncetlColumn *) lfirst(lc))->name, name) == 0)
			return i;
		i++;
	}
	return -1;
}

/*
 * (s.w, s.k1, ...) <op> ($first, $first+1, ...), as a row comparison (which
 * an index on (watermark, key) serves) when every operator lives in one
 * schema, else spelled out column by column.
 */
static void
append_cursor_compare(StringInfo buf, IncetlPipeline *p,
					  const char *strategy_op, int strategy, int firstparam)
{
	int			ncols = p->nkeys + 1;
	Oid		   *types = palloc(sizeof(Oid) * ncols);
	char	  **ops = palloc(sizeof(char *) * ncols);
	char	  **eqs = palloc(sizeof(char *) * ncols);
	char	  **cols = palloc(sizeof(char *) * ncols);
	bool		same = true;
	Oid			nsp0 = InvalidOid;

	types[0] = p->wm_type;
	cols[0] = psprintf("s.%s", quote_identifier(p->watermark_column));
	for (int i = 0; i < p->nkeys; i++)
	{
		types[i + 1] = p->keys[i]->src_type;
		cols[i + 1] = psprintf("s.%s", quote_identifier(p->keys[i]->name));
	}
	for (int i = 0; i < ncols; i++)
	{
		Oid			nsp;
		Oid			nspeq;

		ops[i] = type_operator(types[i], strategy, &nsp);
		eqs[i] = type_operator(types[i], BTEqualStrategyNumber, &nspeq);
		if (i == 0)
			nsp0 = nsp;
		else if (nsp != nsp0)
			same = false;
	}

	if (same)
	{
		appendStringInfoString(buf, "ROW(");
		for (int i = 0; i < ncols; i++)
			appendStringInfo(buf, "%s%s", i ? ", " : "", cols[i]);
		appendStringInfo(buf, ") OPERATOR(%s.%s) ROW(",
						 quote_identifier(get_namespace_name(nsp0)), strategy_op);
		for (int i = 0; i < ncols; i++)
			appendStringInfo(buf, "%s$%d", i ? ", " : "", firstparam + i);
		appendStringInfoChar(buf, ')');
	}
	else
	{
		/*
		 * a > x OR (a = x AND (b > y OR (b = y AND ...))); for <= the last
		 * comparison is <= and the others <.
		 */
		for (int i = 0; i < ncols; i++)
		{
			appendStringInfo(buf, "(%s %s $%d", cols[i], ops[i], firstparam + i);
			if (i < ncols - 1)
				appendStringInfo(buf, " OR (%s %s $%d AND ", cols[i], eqs[i],
								 firstparam + i);
		}
		for (int i = 0; i < ncols; i++)
			appendStringInfoString(buf, i < ncols - 1 ? "))" : ")");
	}
}

/* true when target column tcol and batch column dcol differ (NULL-aware) */
static void
append_distinct(StringInfo buf, IncetlColumn *c, const char *tcol,
				const char *dcol)
{
	if (c->eq_op)
		appendStringInfo(buf,
						 "((%s %s %s) IS NOT TRUE AND NOT (%s IS NULL AND %s IS NULL))",
						 tcol, c->eq_op, dcol, tcol, dcol);
	else
		appendStringInfo(buf,
						 "((%s::pg_catalog.text OPERATOR(pg_catalog.=) %s::pg_catalog.text) IS NOT TRUE"
						 " AND NOT (%s IS NULL AND %s IS NULL))",
						 tcol, dcol, tcol, dcol);
}

/*
 * The statement of one batch of a timestamp pass, or of a preview.
 *
 * Parameters: lower bound ($1, or $1..$n+1 for a cursor), upper bound,
 * then the run id.  argtypes must hold INCETL_MAX_PARAMS(p) entries.
 */
char *
incetl_sql_batch(IncetlPipeline *p, IncetlBatchShape *shape,
				 int *nargs, Oid *argtypes)
{
	StringInfoData buf;
	ListCell   *lc;
	int			np = 0;
	int			i;
	int			run_param;
	int			seq_idx = -1;
	int			wm_idx = -1;
	char	   *gt_seq = NULL;
	char	   *gt_wm = NULL;
	bool		has_nonkey = false;
	const char *qwm = quote_identifier(p->watermark_column);

	initStringInfo(&buf);

	/* the batch: source rows in (watermark, key) order */
	appendStringInfo(&buf, "WITH src AS MATERIALIZED (SELECT s.%s AS w", qwm);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, ", s.%s AS k%d", quote_identifier(p->keys[i]->name), i + 1);
	if (p->sequence_column)
		appendStringInfo(&buf, ", s.%s AS q", quote_identifier(p->sequence_column));
	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		appendStringInfo(&buf, ", CAST(s.%s AS %s) AS c%d",
						 quote_identifier(c->name), c->tgt_typename, ++i);
	}
	appendStringInfo(&buf, " FROM %s AS s WHERE ", p->src_qname);

	switch (shape->lower)
	{
		case LOWER_NONE:
			appendStringInfoString(&buf, "true");
			break;
		case LOWER_GE:
		case LOWER_GT:
			argtypes[np++] = shape->lower_type;
			appendStringInfo(&buf, "s.%s OPERATOR(pg_catalog.%s) $%d", qwm,
							 shape->lower == LOWER_GE ? ">=" : ">", np);
			break;
		case LOWER_AFTER:
			append_cursor_compare(&buf, p, ">", BTGreaterStrategyNumber, np + 1);
			argtypes[np++] = p->wm_type;
			for (i = 0; i < p->nkeys; i++)
				argtypes[np++] = p->keys[i]->src_type;
			break;
	}
	switch (shape->upper)
	{
		case UPPER_NONE:
			break;
		case UPPER_LT:
			argtypes[np++] = shape->upper_type;
			appendStringInfo(&buf, " AND s.%s OPERATOR(pg_catalog.<) $%d", qwm, np);
			break;
		case UPPER_LE_CURSOR:
			appendStringInfoString(&buf, " AND ");
			append_cursor_compare(&buf, p, "<=", BTLessEqualStrategyNumber, np + 1);
			argtypes[np++] = p->wm_type;
			for (i = 0; i < p->nkeys; i++)
				argtypes[np++] = p->keys[i]->src_type;
			break;
	}
	/* rows without a watermark or key are never read by a cursor */
	if (shape->lower == LOWER_NONE)
		appendStringInfo(&buf, " AND s.%s IS NOT NULL", qwm);
	if (shape->limit)
	{
		appendStringInfo(&buf, " ORDER BY s.%s", qwm);
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, ", s.%s", quote_identifier(p->keys[i]->name));
		appendStringInfo(&buf, " LIMIT %d", p->batch_size);
	}
	appendStringInfoString(&buf, ")");

	/* the cursor after this batch */
	if (!shape->preview)
	{
		appendStringInfoString(&buf, ", lst AS (SELECT w");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, ", k%d", i + 1);
		appendStringInfoString(&buf, " FROM src ORDER BY w DESC");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, ", k%d DESC", i + 1);
		appendStringInfoString(&buf, " LIMIT 1)");
	}

	/* one row per key: the newest by sequence, then by watermark */
	if (p->src_key_unique && p->src_relkind != 'v' && p->src_relkind != 'f')
		appendStringInfoString(&buf, ", d AS (SELECT * FROM src)");
	else
	{
		appendStringInfoString(&buf, ", d AS (SELECT DISTINCT ON (");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, "%sc%d", i ? ", " : "",
							 column_index(p, p->keys[i]->name) + 1);
		appendStringInfoString(&buf, ") * FROM src ORDER BY ");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, "c%d, ", column_index(p, p->keys[i]->name) + 1);
		if (p->sequence_column)
			appendStringInfoString(&buf, "q DESC NULLS LAST, ");
		appendStringInfoString(&buf, "w DESC NULLS LAST)");
	}

	/* never overwrite a target row holding a newer version */
	if (p->sequence_column && p->tgt_has_seq)
	{
		seq_idx = column_index(p, p->sequence_column);
		if (seq_idx >= 0)
			gt_seq = ((IncetlColumn *) list_nth(p->columns, seq_idx))->gt_op;
	}
	if (p->tgt_has_wm)
	{
		wm_idx = column_index(p, p->watermark_column);
		if (wm_idx >= 0)
			gt_wm = ((IncetlColumn *) list_nth(p->columns, wm_idx))->gt_op;
	}

	/* what differs from the target */
	appendStringInfo(&buf, ", cmp AS MATERIALIZED (SELECT d.*, t.%s IS NULL AS ins FROM d LEFT JOIN %s AS t ON ",
					 quote_identifier(p->keys[0]->name), p->tgt_qname);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%st.%s %s d.c%d", i ? " AND " : "",
						 quote_identifier(p->keys[i]->name), p->keys[i]->eq_op,
						 column_index(p, p->keys[i]->name) + 1);
	appendStringInfo(&buf, " WHERE t.%s IS NULL OR ((false",
					 quote_identifier(p->keys[0]->name));
	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);
		char	   *tcol;
		char	   *dcol;

		i++;
		if (c->is_key)
			continue;
		has_nonkey = true;
		tcol = psprintf("t.%s", quote_identifier(c->name));
		dcol = psprintf("d.c%d", i);
		appendStringInfoString(&buf, " OR ");
		append_distinct(&buf, c, tcol, dcol);
	}
	appendStringInfoChar(&buf, ')');
	if (gt_seq)
		appendStringInfo(&buf, " AND (t.%s %s d.c%d) IS NOT TRUE",
						 quote_identifier(p->sequence_column), gt_seq, seq_idx + 1);
	if (gt_wm)
		appendStringInfo(&buf, " AND (t.%s %s d.c%d) IS NOT TRUE",
						 qwm, gt_wm, wm_idx + 1);
	appendStringInfoString(&buf, "))");

	if (shape->preview)
	{
		appendStringInfoString(&buf, " SELECT CASE WHEN ins THEN 'insert' ELSE 'update' END, "
							   "pg_catalog.jsonb_build_object(");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, "%s%s::pg_catalog.text, c%d", i ? ", " : "",
							 quote_literal_cstr(p->keys[i]->name),
							 column_index(p, p->keys[i]->name) + 1);
		appendStringInfoString(&buf, ") FROM cmp");
		*nargs = np;
		return buf.data;
	}

	argtypes[np++] = INT8OID;
	run_param = np;

	/* inserts */
	appendStringInfo(&buf, ", ins AS (INSERT INTO %s AS t (", p->tgt_qname);
	i = 0;
	foreach(lc, p->columns)
		appendStringInfo(&buf, "%s%s", i++ ? ", " : "",
						 quote_identifier(((IncetlColumn *) lfirst(lc))->name));
	if (p->tgt_etl_inserted_at)
		appendStringInfoString(&buf, ", etl_inserted_at");
	if (p->tgt_etl_updated_at)
		appendStringInfoString(&buf, ", etl_updated_at");
	if (p->tgt_etl_run_id)
		appendStringInfoString(&buf, ", etl_run_id");
	appendStringInfoString(&buf, ") SELECT ");
	for (i = 1; i <= list_length(p->columns); i++)
		appendStringInfo(&buf, "%sc%d", i > 1 ? ", " : "", i);
	if (p->tgt_etl_inserted_at)
		appendStringInfoString(&buf, ", pg_catalog.now()");
	if (p->tgt_etl_updated_at)
		appendStringInfoString(&buf, ", pg_catalog.now()");
	if (p->tgt_etl_run_id)
		appendStringInfo(&buf, ", $%d", run_param);
	appendStringInfoString(&buf, " FROM cmp WHERE ins RETURNING 1)");

	/* updates */
	if (has_nonkey || p->tgt_etl_updated_at || p->tgt_etl_run_id)
	{
		bool		first = true;

		appendStringInfo(&buf, ", upd AS (UPDATE %s AS t SET ", p->tgt_qname);
		i = 0;
		foreach(lc, p->columns)
		{
			IncetlColumn *c = lfirst(lc);

			i++;
			if (c->is_key)
				continue;
			appendStringInfo(&buf, "%s%s = cmp.c%d", first ? "" : ", ",
							 quote_identifier(c->name), i);
			first = false;
		}
		if (p->tgt_etl_updated_at)
		{
			appendStringInfo(&buf, "%setl_updated_at = pg_catalog.now()", first ? "" : ", ");
			first = false;
		}
		if (p->tgt_etl_run_id)
			appendStringInfo(&buf, "%setl_run_id = $%d", first ? "" : ", ", run_param);
		appendStringInfoString(&buf, " FROM cmp WHERE NOT cmp.ins");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, " AND t.%s %s cmp.c%d",
							 quote_identifier(p->keys[i]->name), p->keys[i]->eq_op,
							 column_index(p, p->keys[i]->name) + 1);
		/* re-checked on the newest row version if a writer got there first */
		if (gt_seq)
			appendStringInfo(&buf, " AND (t.%s %s cmp.c%d) IS NOT TRUE",
							 quote_identifier(p->sequence_column), gt_seq, seq_idx + 1);
		if (gt_wm)
			appendStringInfo(&buf, " AND (t.%s %s cmp.c%d) IS NOT TRUE",
							 qwm, gt_wm, wm_idx + 1);
		appendStringInfoString(&buf, " RETURNING 1)");
	}
	else
		appendStringInfoString(&buf, ", upd AS (SELECT 1 WHERE false)");

	appendStringInfoString(&buf, " SELECT (SELECT pg_catalog.count(*) FROM src), "
						   "(SELECT pg_catalog.count(*) FROM ins), "
						   "(SELECT pg_catalog.count(*) FROM upd), lst.w");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, ", lst.k%d", i + 1);
	appendStringInfoString(&buf, " FROM (SELECT) AS one LEFT JOIN lst ON true");

	*nargs = np;
	return buf.data;
}
