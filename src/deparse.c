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
 *							  (watermark, key) order, and every row tied
 *							  with the last of them),
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
#include "catalog/pg_class.h"
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
static void append_source_key_match(StringInfo buf, IncetlPipeline *p,
									const char *keyed);

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

/*
 * "OPERATOR(nsp.=)" of a type's equality: the one of its default btree
 * operator class, else of its default hash operator class (what the type
 * cache calls its equality), spelled with the operator's own schema: the
 * operators of an extension's type (citext, ltree, isn, cube) live in the
 * extension's schema, not in pg_catalog.
 */
char *
incetl_type_equality(Oid typid)
{
	char	   *op = incetl_qualified_operator(lookup_type_cache(typid,
																  TYPECACHE_EQ_OPR)->eq_opr);

	if (op == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("type %s has no equality operator", format_type_be(typid))));
	return op;
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
	Oid			eq_nsp;

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

		ops[i] = type_operator(types[i], strategy, &nsp);
		/* the equality of the same btree family as the ordering */
		eqs[i] = type_operator(types[i], BTEqualStrategyNumber, &eq_nsp);
		if (i == 0)
			nsp0 = nsp;
		else if (nsp != nsp0)
			same = false;
	}

	/*
	 * postgres_fdw does not ship row comparisons to the remote server; the
	 * spelled-out form it does, so the cursor is evaluated remotely.
	 */
	if (p->src_relkind == RELKIND_FOREIGN_TABLE)
		same = false;

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

/* key i of the target, as cast source value column "cN" */
static int
key_col(IncetlPipeline *p, int i)
{
	return column_index(p, p->keys[i]->name) + 1;
}

/* "<alias>.c<k1> AS g1, ..." style lists are built by callers */

/* the hash of a row's non-key columns, over the given alias */
static void
append_row_hash(StringInfo buf, IncetlPipeline *p, const char *alias, bool cast)
{
	ListCell   *lc;
	bool		any = false;

	if (strcmp(p->hash_algorithm, "sha256") == 0)
		appendStringInfoString(buf, "incetl._row_sha256(ROW(");
	else
		appendStringInfoString(buf, "incetl.row_hash(ROW(");
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		if (c->is_key)
			continue;
		if (cast)
			appendStringInfo(buf, "%sCAST(%s.%s AS %s)", any ? ", " : "", alias,
							 quote_identifier(c->name), c->tgt_typename);
		else
			appendStringInfo(buf, "%s%s.%s", any ? ", " : "", alias,
							 quote_identifier(c->name));
		any = true;
	}
	if (!any)
		appendStringInfoString(buf, "NULL::pg_catalog.int4");
	appendStringInfoString(buf, "))");
}

/*
 * The select list of source rows in a batch: [w], k1..kn (source values of
 * the key), [q] (sequence), [f] (delete flag), c1..cm (values cast to the
 * target's types), [h] (row hash for the hash state).
 */
static void
append_src_columns(StringInfo buf, IncetlPipeline *p, bool with_wm, bool with_flag,
				   bool with_hash)
{
	ListCell   *lc;
	int			i;

	appendStringInfoString(buf, "SELECT ");
	if (with_wm)
		appendStringInfo(buf, "s.%s AS w, ", quote_identifier(p->watermark_column));
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%ss.%s AS k%d", i ? ", " : "",
						 quote_identifier(p->keys[i]->name), i + 1);
	if (p->sequence_column)
		appendStringInfo(buf, ", s.%s AS q", quote_identifier(p->sequence_column));
	if (with_flag)
		appendStringInfo(buf, ", s.%s AS f", quote_identifier(p->delete_flag_column));
	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		appendStringInfo(buf, ", CAST(s.%s AS %s) AS c%d",
						 quote_identifier(c->name), c->tgt_typename, ++i);
	}
	if (with_hash)
	{
		appendStringInfoString(buf, ", ");
		append_row_hash(buf, p, "s", false);
		appendStringInfoString(buf, " AS h");
	}
}

/* d0: one row per key, the newest by sequence, then by watermark */
static void
append_dedupe(StringInfo buf, IncetlPipeline *p, bool with_wm)
{
	int			i;

	if (p->src_key_unique && p->src_relkind != 'v' && p->src_relkind != 'f')
	{
		appendStringInfoString(buf, ", d0 AS (SELECT * FROM src)");
		return;
	}
	appendStringInfoString(buf, ", d0 AS (SELECT DISTINCT ON (");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%sc%d", i ? ", " : "", key_col(p, i));
	appendStringInfoString(buf, ") * FROM src ORDER BY ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%sc%d", i ? ", " : "", key_col(p, i));
	if (p->sequence_column)
		appendStringInfoString(buf, ", q DESC NULLS LAST");
	if (with_wm)
		appendStringInfoString(buf, ", w DESC NULLS LAST");
	appendStringInfoChar(buf, ')');
}

/*
 * With sequence_column, a version read by a batch is never applied while the
 * source holds a newer version (by sequence) of its key: the batch sees
 * only part of a key's versions (a lookback or backfill window, a batch
 * edge), and the target row that would otherwise stop an older version may
 * be gone (a flagged delete of a log source removed it).  Adds "dn", the
 * rows of d0 that no source row of their key supersedes, and returns the
 * name of the CTE to apply from.  A source with one version per key (a
 * unique index on the key, as append_dedupe assumes) needs no check.
 */
static const char *
append_newest_guard(StringInfo buf, IncetlPipeline *p)
{
	Oid			nsp;
	char	   *gt;
	const char *qseq;

	if (p->sequence_column == NULL ||
		(p->src_key_unique && p->src_relkind != 'v' && p->src_relkind != 'f'))
		return "d0";
	gt = type_operator(p->seq_type, BTGreaterStrategyNumber, &nsp);
	qseq = quote_identifier(p->sequence_column);
	appendStringInfo(buf, ", dn AS (SELECT * FROM d0 WHERE NOT EXISTS (SELECT 1 FROM %s AS s WHERE ",
					 p->src_qname);
	append_source_key_match(buf, p, "d0");
	/* q DESC NULLS LAST: any non-NULL sequence is newer than a NULL one */
	appendStringInfo(buf, " AND (s.%s %s d0.q OR (d0.q IS NULL AND s.%s IS NOT NULL))))",
					 qseq, gt, qseq);
	return "dn";
}

/*
 * The apply tail shared by every kind of batch.  Expects CTEs "src" (see
 * append_src_columns), "d" (the rows to upsert, one per key) and, when
 * with_gone, "gone" (target-typed keys g1..gn to delete).  Adds cmp, ins,
 * upd, del and, for the hash state, st_up/st_del.
 */
static void
append_apply(StringInfo buf, IncetlPipeline *p, int run_param, bool with_gone,
			 const char *state_table)
{
	ListCell   *lc;
	int			i;
	int			seq_idx = -1;
	char	   *gt_seq = NULL;
	bool		has_nonkey = false;
	const char *soft = p->soft_delete ? quote_identifier(p->soft_delete_column) : NULL;

	/*
	 * Never overwrite a target row holding a higher sequence_column value.
	 * Without a sequence column the source's current row always wins: a key
	 * whose watermark went backwards (clock skew, a restored row) is applied
	 * when a run reads it; the watermark orders what a run reads, not which
	 * version is newer.
	 */
	if (p->sequence_column && p->tgt_has_seq)
	{
		seq_idx = column_index(p, p->sequence_column);
		if (seq_idx >= 0)
			gt_seq = ((IncetlColumn *) list_nth(p->columns, seq_idx))->gt_op;
	}

	/* what differs from the target */
	appendStringInfo(buf, ", cmp AS MATERIALIZED (SELECT d.*, t.%s IS NULL AS ins FROM d LEFT JOIN %s AS t ON ",
					 quote_identifier(p->keys[0]->name), p->tgt_qname);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%st.%s %s d.c%d", i ? " AND " : "",
						 quote_identifier(p->keys[i]->name), p->keys[i]->eq_op,
						 key_col(p, i));
	appendStringInfo(buf, " WHERE t.%s IS NULL OR ((false",
					 quote_identifier(p->keys[0]->name));
	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		i++;
		if (c->is_key)
			continue;
		has_nonkey = true;
		appendStringInfoString(buf, " OR ");
		append_distinct(buf, c, psprintf("t.%s", quote_identifier(c->name)),
						psprintf("d.c%d", i));
	}
	if (soft)
		appendStringInfo(buf, " OR t.%s IS TRUE", soft);
	appendStringInfoChar(buf, ')');
	if (gt_seq)
		appendStringInfo(buf, " AND (t.%s %s d.c%d) IS NOT TRUE",
						 quote_identifier(p->sequence_column), gt_seq, seq_idx + 1);
	appendStringInfoString(buf, "))");

	/* inserts */
	appendStringInfo(buf, ", ins AS (INSERT INTO %s AS t (", p->tgt_qname);
	i = 0;
	foreach(lc, p->columns)
		appendStringInfo(buf, "%s%s", i++ ? ", " : "",
						 quote_identifier(((IncetlColumn *) lfirst(lc))->name));
	if (soft)
		appendStringInfo(buf, ", %s", soft);
	if (p->tgt_etl_inserted_at)
		appendStringInfoString(buf, ", etl_inserted_at");
	if (p->tgt_etl_updated_at)
		appendStringInfoString(buf, ", etl_updated_at");
	if (p->tgt_etl_run_id)
		appendStringInfoString(buf, ", etl_run_id");
	appendStringInfoString(buf, ") SELECT ");
	for (i = 1; i <= list_length(p->columns); i++)
		appendStringInfo(buf, "%sc%d", i > 1 ? ", " : "", i);
	if (soft)
		appendStringInfoString(buf, ", false");
	if (p->tgt_etl_inserted_at)
		appendStringInfoString(buf, ", pg_catalog.now()");
	if (p->tgt_etl_updated_at)
		appendStringInfoString(buf, ", pg_catalog.now()");
	if (p->tgt_etl_run_id)
		appendStringInfo(buf, ", $%d", run_param);
	appendStringInfoString(buf, " FROM cmp WHERE ins RETURNING 1)");

	/* updates */
	if (has_nonkey || soft || p->tgt_etl_updated_at || p->tgt_etl_run_id)
	{
		bool		first = true;

		appendStringInfo(buf, ", upd AS (UPDATE %s AS t SET ", p->tgt_qname);
		i = 0;
		foreach(lc, p->columns)
		{
			IncetlColumn *c = lfirst(lc);

			i++;
			if (c->is_key)
				continue;
			appendStringInfo(buf, "%s%s = cmp.c%d", first ? "" : ", ",
							 quote_identifier(c->name), i);
			first = false;
		}
		if (soft)
		{
			appendStringInfo(buf, "%s%s = false", first ? "" : ", ", soft);
			if (p->tgt_deleted_at)
				appendStringInfoString(buf, ", deleted_at = NULL");
			first = false;
		}
		if (p->tgt_etl_updated_at)
		{
			appendStringInfo(buf, "%setl_updated_at = pg_catalog.now()", first ? "" : ", ");
			first = false;
		}
		if (p->tgt_etl_run_id)
			appendStringInfo(buf, "%setl_run_id = $%d", first ? "" : ", ", run_param);
		appendStringInfoString(buf, " FROM cmp WHERE NOT cmp.ins");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, " AND t.%s %s cmp.c%d",
							 quote_identifier(p->keys[i]->name), p->keys[i]->eq_op,
							 key_col(p, i));
		/* re-checked on the newest row version if a writer got there first */
		if (gt_seq)
			appendStringInfo(buf, " AND (t.%s %s cmp.c%d) IS NOT TRUE",
							 quote_identifier(p->sequence_column), gt_seq, seq_idx + 1);
		appendStringInfoString(buf, " RETURNING 1)");
	}
	else
		appendStringInfoString(buf, ", upd AS (SELECT 1 WHERE false)");

	/* deletes */
	if (with_gone && soft)
	{
		appendStringInfo(buf, ", del AS (UPDATE %s AS t SET %s = true", p->tgt_qname, soft);
		if (p->tgt_deleted_at)
			appendStringInfoString(buf, ", deleted_at = pg_catalog.now()");
		if (p->tgt_etl_updated_at)
			appendStringInfoString(buf, ", etl_updated_at = pg_catalog.now()");
		if (p->tgt_etl_run_id)
			appendStringInfo(buf, ", etl_run_id = $%d", run_param);
		appendStringInfoString(buf, " FROM gone WHERE ");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "t.%s %s gone.g%d AND ",
							 quote_identifier(p->keys[i]->name), p->keys[i]->eq_op, i + 1);
		appendStringInfo(buf, "t.%s IS NOT TRUE RETURNING 1)", soft);
	}
	else if (with_gone)
	{
		appendStringInfo(buf, ", del AS (DELETE FROM %s AS t USING gone WHERE ", p->tgt_qname);
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "%st.%s %s gone.g%d", i ? " AND " : "",
							 quote_identifier(p->keys[i]->name), p->keys[i]->eq_op, i + 1);
		appendStringInfoString(buf, " RETURNING 1)");
	}
	else
		appendStringInfoString(buf, ", del AS (SELECT 1 WHERE false)");

	/* the hash state moves in the same statement as the target rows */
	if (state_table)
	{
		appendStringInfo(buf, ", st_up AS (INSERT INTO %s AS st (", state_table);
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "k%d, ", i + 1);
		appendStringInfoString(buf, "h) SELECT ");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "k%d, ", i + 1);
		appendStringInfoString(buf, "h FROM d ON CONFLICT (");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "%sk%d", i ? ", " : "", i + 1);
		appendStringInfoString(buf, ") DO UPDATE SET h = EXCLUDED.h WHERE st.h OPERATOR(pg_catalog.<>) EXCLUDED.h)");
		appendStringInfo(buf, ", st_del AS (DELETE FROM %s AS st USING gone WHERE ", state_table);
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "%sst.k%d %s gone.k%d", i ? " AND " : "",
							 i + 1, incetl_type_equality(p->keys[i]->src_type), i + 1);
		appendStringInfoChar(buf, ')');
	}
}

/* s."key1" = b.k1 AND ... with the source key types' own equality */
static void
append_source_key_match(StringInfo buf, IncetlPipeline *p, const char *keyed)
{
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%ss.%s %s %s.k%d", i ? " AND " : "",
						 quote_identifier(p->keys[i]->name),
						 incetl_type_equality(p->keys[i]->src_type),
						 keyed, i + 1);
}

/*
 * For the keys in CTE "b" (k1..kn): "src" (their source rows), "d0"/"d"
 * (one per key) and "gone" (keys the source no longer has), from one
 * outer join of the keys to the source, in one snapshot.
 */
static void
append_keyed_rows(StringInfo buf, IncetlPipeline *p, bool with_hash)
{
	int			i;
	bool		flag = p->delete_detection == DELETE_DETECT_FLAG;

	/* one probe per key: the source row, or none when the key is gone */
	appendStringInfoString(buf, ", sb AS MATERIALIZED (");
	append_src_columns(buf, p, p->watermark_column != NULL, flag, with_hash);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, ", b.k%d AS bk%d", i + 1, i + 1);
	appendStringInfo(buf, " FROM b LEFT JOIN %s AS s ON ", p->src_qname);
	append_source_key_match(buf, p, "b");
	appendStringInfoString(buf, "), src AS (SELECT * FROM sb WHERE sb.k1 IS NOT NULL)");
	append_dedupe(buf, p, p->watermark_column != NULL);

	/*
	 * With delete_detection 'flag' a key whose newest source row is
	 * flagged is as gone as one the source lacks: a reconcile (or any
	 * keyed pass) must not put it back.
	 */
	appendStringInfo(buf, ", d AS (SELECT * FROM d0%s), gone AS (SELECT ",
					 flag ? " WHERE f IS NOT TRUE" : "");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%sCAST(sb.bk%d AS %s) AS g%d, sb.bk%d AS k%d", i ? ", " : "",
						 i + 1, p->keys[i]->tgt_typename, i + 1, i + 1, i + 1);
	appendStringInfoString(buf, " FROM sb WHERE sb.k1 IS NULL");
	if (flag)
	{
		appendStringInfoString(buf, " UNION ALL SELECT ");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "%sc%d, k%d", i ? ", " : "", key_col(p, i), i + 1);
		appendStringInfoString(buf, " FROM d0 WHERE f IS TRUE");
	}
	appendStringInfoChar(buf, ')');
}

/*
 * A preview's rows: what cmp would insert or update and, with_gone, the
 * keys of "gone" that the target holds (and has not soft-deleted).
 */
static void
append_preview_select(StringInfo buf, IncetlPipeline *p, bool with_gone)
{
	char	   *cut = strstr(buf->data, ", ins AS (");
	int			i;

	/* cmp is all a preview needs of the apply tail */
	if (cut)
	{
		*cut = '\0';
		buf->len = cut - buf->data;
	}
	appendStringInfoString(buf, " SELECT CASE WHEN ins THEN 'insert' ELSE 'update' END, "
						   "pg_catalog.jsonb_build_object(");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%s%s::pg_catalog.text, c%d", i ? ", " : "",
						 quote_literal_cstr(p->keys[i]->name), key_col(p, i));
	appendStringInfoString(buf, ") FROM cmp");
	if (!with_gone)
		return;
	appendStringInfoString(buf, " UNION ALL SELECT 'delete', pg_catalog.jsonb_build_object(");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%s%s::pg_catalog.text, gone.g%d", i ? ", " : "",
						 quote_literal_cstr(p->keys[i]->name), i + 1);
	appendStringInfo(buf, ") FROM gone WHERE EXISTS (SELECT 1 FROM %s AS t WHERE ",
					 p->tgt_qname);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "t.%s %s gone.g%d AND ",
						 quote_identifier(p->keys[i]->name), p->keys[i]->eq_op, i + 1);
	if (p->soft_delete)
		appendStringInfo(buf, "t.%s IS NOT TRUE)", quote_identifier(p->soft_delete_column));
	else
		appendStringInfoString(buf, "true)");
}

/*
 * , name AS (SELECT w, k1, ..., kn FROM rows ORDER BY w DESC, k1 DESC, ...
 *			  LIMIT 1)
 * the last (watermark, key) of a batch's rows
 */
static void
append_last_row(StringInfo buf, IncetlPipeline *p, const char *name,
				const char *rows)
{
	appendStringInfo(buf, ", %s AS (SELECT w", name);
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, ", k%d", i + 1);
	appendStringInfo(buf, " FROM %s ORDER BY w DESC", rows);
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, ", k%d DESC", i + 1);
	appendStringInfoString(buf, " LIMIT 1)");
}

/*
 * The statement of one batch of a timestamp pass (write) or of a preview.
 *
 * Parameters: lower bound ($1, or $1..$n+1 for a cursor), upper bound,
 * then the run id.  argtypes must hold INCETL_MAX_PARAMS(p) entries.
 */
char *
incetl_sql_batch(IncetlPipeline *p, IncetlBatchShape *shape,
				 int *nargs, Oid *argtypes)
{
	StringInfoData buf;
	int			np = 0;
	int			i;
	bool		flag = p->delete_detection == DELETE_DETECT_FLAG;
	const char *qwm = quote_identifier(p->watermark_column);
	const char *newest;

	/*
	 * Without a unique index on the key, (watermark, key) may repeat (a
	 * view, a log holding several versions of a key): a batch then takes
	 * every row tied with its last one, or the next batch, which starts
	 * above that (watermark, key), would never read the rest.  Locally
	 * that is FETCH FIRST ... WITH TIES.  postgres_fdw (15) does not ship
	 * WITH TIES to the remote server, only LIMIT, and without it the
	 * remote server would sort everything above the cursor for every
	 * batch; so for a foreign source the batch is its first batch_size
	 * rows less those tied with the last, plus all of those read again
	 * with one probe, which ships too.
	 */
	bool		ties = shape->limit && !p->src_key_unique;
	bool		probe = ties && p->src_relkind == RELKIND_FOREIGN_TABLE;

	initStringInfo(&buf);

	/* the batch: source rows in (watermark, key) order */
	appendStringInfo(&buf, "WITH %s AS MATERIALIZED (", probe ? "src0" : "src");
	append_src_columns(&buf, p, true, flag, false);
	appendStringInfo(&buf, " FROM %s AS s WHERE ", p->src_qname);

	switch (shape->lower)
	{
		case LOWER_NONE:
			appendStringInfo(&buf, "s.%s IS NOT NULL", qwm);
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
		case UPPER_LE:
			argtypes[np++] = shape->upper_type;
			appendStringInfo(&buf, " AND s.%s OPERATOR(pg_catalog.<=) $%d", qwm, np);
			break;
		case UPPER_LE_CURSOR:
			appendStringInfoString(&buf, " AND ");
			append_cursor_compare(&buf, p, "<=", BTLessEqualStrategyNumber, np + 1);
			argtypes[np++] = p->wm_type;
			for (i = 0; i < p->nkeys; i++)
				argtypes[np++] = p->keys[i]->src_type;
			break;
	}
	if (shape->limit)
	{
		appendStringInfo(&buf, " ORDER BY s.%s", qwm);
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, ", s.%s", quote_identifier(p->keys[i]->name));
		if (ties && !probe)
			appendStringInfo(&buf, " FETCH FIRST %d ROWS WITH TIES", p->batch_size);
		else
			appendStringInfo(&buf, " LIMIT %d", p->batch_size);
	}
	appendStringInfoString(&buf, ")");
	if (probe)
	{
		char	  **eqs = palloc(sizeof(char *) * (p->nkeys + 1));

		eqs[0] = incetl_type_equality(p->wm_type);
		for (i = 0; i < p->nkeys; i++)
			eqs[i + 1] = incetl_type_equality(p->keys[i]->src_type);

		/* the last (watermark, key) of the first batch_size rows */
		append_last_row(&buf, p, "lst0", "src0");

		/* the rows before it, then all rows tied with it */
		appendStringInfo(&buf, ", src AS MATERIALIZED (SELECT src0.* FROM src0 WHERE NOT EXISTS "
						 "(SELECT 1 FROM lst0 WHERE src0.w %s lst0.w", eqs[0]);
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, " AND src0.k%d %s lst0.k%d", i + 1, eqs[i + 1], i + 1);
		appendStringInfoString(&buf, ") UNION ALL ");
		append_src_columns(&buf, p, true, flag, false);
		appendStringInfo(&buf, " FROM %s AS s WHERE s.%s %s (SELECT w FROM lst0)",
						 p->src_qname, qwm, eqs[0]);
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, " AND s.%s %s (SELECT k%d FROM lst0)",
							 quote_identifier(p->keys[i]->name), eqs[i + 1], i + 1);
		appendStringInfoChar(&buf, ')');
	}

	/* the cursor after this batch */
	if (!shape->preview)
		append_last_row(&buf, p, "lst", "src");

	append_dedupe(&buf, p, true);
	newest = append_newest_guard(&buf, p);
	if (flag)
	{
		appendStringInfo(&buf, ", d AS (SELECT * FROM %s WHERE f IS NOT TRUE), gone AS (SELECT ",
						 newest);
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, "%sc%d AS g%d, k%d", i ? ", " : "", key_col(p, i), i + 1, i + 1);
		appendStringInfo(&buf, " FROM %s WHERE f IS TRUE)", newest);
	}
	else
		appendStringInfo(&buf, ", d AS (SELECT * FROM %s)", newest);

	if (shape->preview)
	{
		append_apply(&buf, p, 0, false, NULL);
		append_preview_select(&buf, p, flag);
		*nargs = np;
		return buf.data;
	}

	argtypes[np++] = INT8OID;
	if (shape->fast_load)
	{
		/*
		 * The first load into an empty target: nothing to compare with, so a
		 * plain INSERT.  A key met twice in one run (its row moved up while
		 * the run read) violates the key's unique index; the caller then
		 * redoes the batch the usual way.
		 */
		ListCell   *lc;
		const char *soft = p->soft_delete ? quote_identifier(p->soft_delete_column) : NULL;

		appendStringInfo(&buf, ", ins AS (INSERT INTO %s AS t (", p->tgt_qname);
		i = 0;
		foreach(lc, p->columns)
			appendStringInfo(&buf, "%s%s", i++ ? ", " : "",
							 quote_identifier(((IncetlColumn *) lfirst(lc))->name));
		if (soft)
			appendStringInfo(&buf, ", %s", soft);
		if (p->tgt_etl_inserted_at)
			appendStringInfoString(&buf, ", etl_inserted_at");
		if (p->tgt_etl_updated_at)
			appendStringInfoString(&buf, ", etl_updated_at");
		if (p->tgt_etl_run_id)
			appendStringInfoString(&buf, ", etl_run_id");
		appendStringInfoString(&buf, ") SELECT ");
		for (i = 1; i <= list_length(p->columns); i++)
			appendStringInfo(&buf, "%sc%d", i > 1 ? ", " : "", i);
		if (soft)
			appendStringInfoString(&buf, ", false");
		if (p->tgt_etl_inserted_at)
			appendStringInfoString(&buf, ", pg_catalog.now()");
		if (p->tgt_etl_updated_at)
			appendStringInfoString(&buf, ", pg_catalog.now()");
		if (p->tgt_etl_run_id)
			appendStringInfo(&buf, ", $%d", np);
		appendStringInfoString(&buf, " FROM d RETURNING 1), upd AS (SELECT 1 WHERE false), "
							   "del AS (SELECT 1 WHERE false)");
	}
	else
		append_apply(&buf, p, np, flag, NULL);

	appendStringInfoString(&buf, " SELECT (SELECT pg_catalog.count(*) FROM src), "
						   "(SELECT pg_catalog.count(*) FROM ins), "
						   "(SELECT pg_catalog.count(*) FROM upd), "
						   "(SELECT pg_catalog.count(*) FROM del), lst.w");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, ", lst.k%d", i + 1);
	appendStringInfoString(&buf, " FROM (SELECT) AS one LEFT JOIN lst ON true");

	*nargs = np;
	return buf.data;
}

/*
 * Keyed batches (hash, reconcile, trigger, logical) read their keys from a
 * work table in the session's temporary schema: rn, k1..kn (source key
 * types), op ('i', 'u' or 'd').
 */
char *
incetl_work_table_name(IncetlPipeline *p)
{
	return psprintf("pg_temp.incetl_work_%d", p->id);
}

char *
incetl_hash_state_name(IncetlPipeline *p)
{
	return psprintf("incetl.hash_state_%d", p->id);
}

char *
incetl_sql_create_work_table(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE TEMPORARY TABLE %s (rn pg_catalog.int8",
					 incetl_work_table_name(p));
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, ", k%d %s", i + 1,
						 p->keys[i]->src_typename);
	appendStringInfo(&buf, ", op \"char\", qtids pg_catalog.tid[], qseqs pg_catalog.int8[]); CREATE INDEX ON %s (rn)",
					 incetl_work_table_name(p));
	return buf.data;
}

/* the key columns of the hash state: k1..kn, h */
char *
incetl_sql_create_hash_state(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE TABLE %s (", incetl_hash_state_name(p));
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "k%d %s NOT NULL, ", i + 1,
						 p->keys[i]->src_typename);
	appendStringInfo(&buf, "h %s NOT NULL, PRIMARY KEY (",
					 strcmp(p->hash_algorithm, "sha256") == 0 ?
					 "pg_catalog.bytea" : "pg_catalog.int8");
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%sk%d", i ? ", " : "", i + 1);
	appendStringInfoString(&buf, "))");
	return buf.data;
}

/*
 * Fill the work table with the keys whose hash differs from the stored
 * one (hash strategy), or whose row differs between source and target
 * (reconcile), numbered in key order.
 */
char *
incetl_sql_fill_work(IncetlPipeline *p, bool reconcile)
{
	StringInfoData cols;

	initStringInfo(&cols);
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&cols, "k%d, ", i + 1);
	return psprintf("INSERT INTO %s (rn, %sop) %s", incetl_work_table_name(p),
					cols.data, incetl_sql_diff(p, reconcile));
}

/* the rows of the work table, as a query */
char *
incetl_sql_diff(IncetlPipeline *p, bool reconcile)
{
	StringInfoData buf;
	int			i;
	const char *other = reconcile ? "t" : "st";
	bool		flag = p->delete_detection == DELETE_DETECT_FLAG;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT pg_catalog.row_number() OVER (ORDER BY ");
	/* rn, k1..kn, op */
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%sk%d", i ? ", " : "", i + 1);
	appendStringInfoString(&buf, ") AS rn, * FROM (SELECT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "COALESCE(s.k%d, %s.k%d) AS k%d, ", i + 1, other, i + 1, i + 1);
	appendStringInfo(&buf, "CASE WHEN %s.k1 IS NULL THEN 'i' WHEN s.k1 IS NULL%s THEN 'd' ELSE 'u' END::\"char\" AS op FROM (SELECT ",
					 other, flag ? " OR s.f IS TRUE" : "");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "s.%s AS k%d, ", quote_identifier(p->keys[i]->name), i + 1);
	if (flag)
		appendStringInfo(&buf, "s.%s AS f, ", quote_identifier(p->delete_flag_column));
	append_row_hash(&buf, p, "s", reconcile);
	appendStringInfo(&buf, " AS h FROM %s AS s) AS s FULL JOIN ", p->src_qname);
	if (reconcile)
	{
		/* the target's rows, keys in the source's types */
		appendStringInfoString(&buf, "(SELECT ");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, "CAST(t.%s AS %s) AS k%d, ",
							 quote_identifier(p->keys[i]->name),
							 p->keys[i]->src_typename,
							 i + 1);
		append_row_hash(&buf, p, "t", false);
		appendStringInfo(&buf, " AS h FROM %s AS t", p->tgt_qname);
		if (p->soft_delete)
			appendStringInfo(&buf, " WHERE t.%s IS NOT TRUE",
							 quote_identifier(p->soft_delete_column));
		appendStringInfoString(&buf, ") AS t");
	}
	else
		appendStringInfo(&buf, "%s AS st", incetl_hash_state_name(p));
	appendStringInfoString(&buf, " ON ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%s%s.k%d %s s.k%d", i ? " AND " : "", other, i + 1,
						 incetl_type_equality(p->keys[i]->src_type), i + 1);
	appendStringInfo(&buf, " WHERE (s.k1 IS NULL OR %s.k1 IS NULL OR %s.h OPERATOR(pg_catalog.<>) s.h",
					 other, other);

	/*
	 * delete_detection 'flag': a flagged source row stands for a deleted
	 * key.  It is work when the other side still holds the key (even with
	 * an equal hash: the flag need not be a target column), and none when
	 * the other side lacks it.
	 */
	if (flag)
		appendStringInfo(&buf, " OR s.f IS TRUE) AND NOT (%s.k1 IS NULL AND s.f IS TRUE)",
						 other);
	else
		appendStringInfoChar(&buf, ')');
	appendStringInfoString(&buf, ") AS x");
	return buf.data;
}

/*
 * One keyed batch: rows rn in ($1, $2] of the work table.  $3 is the run
 * id.  Returns keys read, inserted, updated, deleted.
 */
char *
incetl_sql_keyed_batch(IncetlPipeline *p, bool with_state,
					   int *nargs, Oid *argtypes)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "WITH b AS MATERIALIZED (SELECT * FROM %s WHERE rn OPERATOR(pg_catalog.>) $1 AND rn OPERATOR(pg_catalog.<=) $2)",
					 incetl_work_table_name(p));
	append_keyed_rows(&buf, p, with_state);

	argtypes[0] = INT8OID;
	argtypes[1] = INT8OID;
	argtypes[2] = INT8OID;
	*nargs = 3;
	append_apply(&buf, p, 3, true, with_state ? incetl_hash_state_name(p) : NULL);

	appendStringInfoString(&buf, " SELECT (SELECT pg_catalog.count(*) FROM b), "
						   "(SELECT pg_catalog.count(*) FROM ins), "
						   "(SELECT pg_catalog.count(*) FROM upd), "
						   "(SELECT pg_catalog.count(*) FROM del)");
	return buf.data;
}

/*
 * delete_detection 'compare': up to batch_size target keys that the source
 * no longer has (an anti-join reading keys only), deleted or soft-deleted.
 * $1 is the run id.  Returns the number deleted.
 */
char *
incetl_sql_compare_deletes(IncetlPipeline *p, bool preview)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "WITH gone AS MATERIALIZED (SELECT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%st.%s AS g%d", i ? ", " : "",
						 quote_identifier(p->keys[i]->name), i + 1);
	appendStringInfo(&buf, " FROM %s AS t WHERE ", p->tgt_qname);
	if (p->soft_delete)
		appendStringInfo(&buf, "t.%s IS NOT TRUE AND ",
						 quote_identifier(p->soft_delete_column));
	appendStringInfo(&buf, "NOT EXISTS (SELECT 1 FROM %s AS s WHERE ", p->src_qname);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%st.%s %s CAST(s.%s AS %s)", i ? " AND " : "",
						 quote_identifier(p->keys[i]->name), p->keys[i]->eq_op,
						 quote_identifier(p->keys[i]->name), p->keys[i]->tgt_typename);
	appendStringInfoChar(&buf, ')');
	if (!preview)
		appendStringInfo(&buf, " LIMIT %d", p->batch_size);
	appendStringInfoChar(&buf, ')');
	if (preview)
	{
		appendStringInfoString(&buf, " SELECT 'delete', pg_catalog.jsonb_build_object(");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(&buf, "%s%s::pg_catalog.text, g%d", i ? ", " : "",
							 quote_literal_cstr(p->keys[i]->name), i + 1);
		appendStringInfoString(&buf, ") FROM gone");
		return buf.data;
	}
	/* reuse the delete step of the apply tail */
	{
		StringInfoData tail;
		char	   *del;
		char	   *end;

		initStringInfo(&tail);
		appendStringInfoString(&tail, "WITH src AS (SELECT 1), d AS (SELECT 1)");
		append_apply(&tail, p, 1, true, NULL);
		del = strstr(tail.data, ", del AS (");
		end = del ? del + strlen(del) : NULL;
		Assert(del != NULL);
		appendBinaryStringInfo(&buf, del, end - del);
	}
	appendStringInfoString(&buf, " SELECT pg_catalog.count(*) FROM del");
	return buf.data;
}

/*
 * Preview of a keyed pass: keys_sql yields the keys k1..kn to look at
 * (source key types); each is classified against the source and the
 * target exactly as a keyed batch would apply it.
 */
char *
incetl_sql_keyed_preview(IncetlPipeline *p, const char *keys_sql)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "WITH b AS MATERIALIZED (%s)", keys_sql);
	append_keyed_rows(&buf, p, false);
	append_apply(&buf, p, 1, false, NULL);
	append_preview_select(&buf, p, true);
	return buf.data;
}

/*
 * SELECT k1, ..., kn FROM (query) AS w: the keys of a query that yields
 * them (and more) as k1..kn.
 */
static char *
select_keys(IncetlPipeline *p, const char *query)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT ");
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%sk%d", i ? ", " : "", i + 1);
	appendStringInfo(&buf, " FROM (%s) AS w", query);
	return buf.data;
}

/* keys of the hash or target diff, as k1..kn */
char *
incetl_sql_diff_keys(IncetlPipeline *p, bool reconcile)
{
	return select_keys(p, incetl_sql_diff(p, reconcile));
}

/* the distinct keys in a trigger pipeline's queue */
char *
incetl_sql_queue_keys(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT DISTINCT ");
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%sk%d", i ? ", " : "", i + 1);
	appendStringInfo(&buf, " FROM incetl.queue_%d WHERE op OPERATOR(pg_catalog.<>) 'T'", p->id);
	return buf.data;
}

/* the distinct keys in a jsonb array of decoded changes, $1 */
char *
incetl_sql_change_keys(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT DISTINCT ");
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%sCAST(((e OPERATOR(pg_catalog.->) 'k') OPERATOR(pg_catalog.->>) %s) AS %s) AS k%d",
						 i ? ", " : "", quote_literal_cstr(p->keys[i]->name),
						 p->keys[i]->src_typename,
						 i + 1);
	appendStringInfoString(&buf, " FROM pg_catalog.jsonb_array_elements($1) AS e "
						   "WHERE (e OPERATOR(pg_catalog.->>) 'op') OPERATOR(pg_catalog.<>) 'T'");
	return buf.data;
}

/*
 * For the preview of a hash run with no stored hashes (its first, or the
 * next after alter_pipeline(hash_algorithm) emptied them): every source
 * key ('i') and every live target key the source lacks ('d').
 */
static char *
hash_initial(IncetlPipeline *p)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT pg_catalog.row_number() OVER (ORDER BY ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%sk%d", i ? ", " : "", i + 1);
	appendStringInfoString(&buf, ") AS rn, * FROM (SELECT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "COALESCE(s.k%d, t.k%d) AS k%d, ", i + 1, i + 1, i + 1);
	appendStringInfoString(&buf, "CASE WHEN s.k1 IS NULL THEN 'd' ELSE 'i' END::\"char\" AS op FROM (SELECT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%ss.%s AS k%d", i ? ", " : "",
						 quote_identifier(p->keys[i]->name), i + 1);
	appendStringInfo(&buf, " FROM %s AS s) AS s FULL JOIN (SELECT ", p->src_qname);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%sCAST(t.%s AS %s) AS k%d", i ? ", " : "",
						 quote_identifier(p->keys[i]->name),
						 p->keys[i]->src_typename, i + 1);
	appendStringInfo(&buf, " FROM %s AS t", p->tgt_qname);
	if (p->soft_delete)
		appendStringInfo(&buf, " WHERE t.%s IS NOT TRUE",
						 quote_identifier(p->soft_delete_column));
	appendStringInfoString(&buf, ") AS t ON ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "%st.k%d %s s.k%d", i ? " AND " : "", i + 1,
						 incetl_type_equality(p->keys[i]->src_type), i + 1);
	appendStringInfoString(&buf, ") AS x");
	return buf.data;
}

/*
 * A hash run with no stored hashes first stores one for every live target
 * key, one that no source row has (sha256: an empty bytea, never a digest;
 * hash64: 0): the run's diff then deletes the target keys the source lacks
 * and re-reads every other, and a run that fails halfway leaves stored
 * hashes that still name every target row it has not yet seen.
 */
char *
incetl_sql_seed_hash_state(IncetlPipeline *p)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfo(&buf, "INSERT INTO %s AS st (", incetl_hash_state_name(p));
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "k%d, ", i + 1);
	appendStringInfoString(&buf, "h) SELECT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "CAST(t.%s AS %s), ",
						 quote_identifier(p->keys[i]->name),
						 p->keys[i]->src_typename);
	appendStringInfo(&buf, "%s FROM %s AS t WHERE ",
					 strcmp(p->hash_algorithm, "sha256") == 0 ?
					 "''::pg_catalog.bytea" : "0::pg_catalog.int8",
					 p->tgt_qname);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, "t.%s IS NOT NULL AND ",
						 quote_identifier(p->keys[i]->name));
	if (p->soft_delete)
		appendStringInfo(&buf, "t.%s IS NOT TRUE AND ",
						 quote_identifier(p->soft_delete_column));
	appendStringInfoString(&buf, "true ON CONFLICT DO NOTHING");
	return buf.data;
}

/*
 * The keys a hash run with no stored hashes applies, as k1..kn (for
 * preview): every source key, and every live target key the source lacks.
 */
char *
incetl_sql_hash_initial_keys(IncetlPipeline *p)
{
	return select_keys(p, hash_initial(p));
}

/* whether a hash pipeline has no stored hashes: one row, one boolean */
char *
incetl_sql_hash_state_empty(IncetlPipeline *p)
{
	return psprintf("SELECT NOT EXISTS (SELECT 1 FROM %s)", incetl_hash_state_name(p));
}

/*
 * The first and last watermark of the source rows in [$1, $2), in the type
 * of the backfill's bounds (timestamptz, or bigint rounded down), so that a
 * backfill covers only the range its rows hold: an infinite bound, or one
 * far beyond the data, would otherwise mean chunks without end.  The
 * minimum is taken over the values as the batches compare them (a
 * timestamp or date converted to timestamptz), which for a timestamptz or
 * integer column is an index probe.
 */
char *
incetl_sql_backfill_range(IncetlPipeline *p, Oid bound_type)
{
	const char *w = psprintf("s.%s", quote_identifier(p->watermark_column));
	const char *first;
	const char *last;

	if (bound_type == TIMESTAMPTZOID)
	{
		first = psprintf("pg_catalog.min(CAST(%s AS pg_catalog.timestamptz))", w);
		last = psprintf("pg_catalog.max(CAST(%s AS pg_catalog.timestamptz))", w);
	}
	else if (p->wm_type == NUMERICOID)
	{
		first = psprintf("CAST(pg_catalog.floor(pg_catalog.min(%s)) AS pg_catalog.int8)", w);
		last = psprintf("CAST(pg_catalog.floor(pg_catalog.max(%s)) AS pg_catalog.int8)", w);
	}
	else
	{
		first = psprintf("CAST(pg_catalog.min(%s) AS pg_catalog.int8)", w);
		last = psprintf("CAST(pg_catalog.max(%s) AS pg_catalog.int8)", w);
	}
	return psprintf("SELECT %s, %s FROM %s AS s WHERE %s OPERATOR(pg_catalog.>=) $1 "
					"AND %s OPERATOR(pg_catalog.<) $2",
					first, last, p->src_qname, w, w);
}
