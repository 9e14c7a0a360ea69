/*-------------------------------------------------------------------------
 *
 * deparse.c
 *	  The statements incetl runs, built from a validated pipeline.
 *
 * Shaped like postgres_fdw's deparse.c: one builder per statement,
 * deparse_<what>(buf, p, ...), appending to the caller's buffer, with a
 * comment showing the SQL it builds; the exported incetl_sql_* functions
 * only wrap them.  Statements that share a part share its builder: the
 * batch of a run and its preview build the same source-row and compare
 * CTEs, and differ only in what follows them.
 *
 * Every name is quoted (quote_identifier, quote_qualified_identifier),
 * every value is a parameter, and every operator and function is written
 * schema-qualified, so neither a hostile name nor a hostile search_path can
 * change what the statement does.  Comparisons are written from an
 * operator's OID by incetl_deparse_operator_clause(), as core's
 * generate_operator_clause() does: OPERATOR(schema.op), with casts to the
 * operator's input types.
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
 * In the comments below, placeholders are written in angle brackets:
 * <target> and <source> are the quoted, qualified relations, <key1> a key
 * column, <col1> a moved column, cN the batch column of moved column N,
 * and "=" or ">" a comparison written by incetl_deparse_operator_clause().
 *
 * src/deparse.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "parser/parse_oper.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "incetl.h"

/* operators */
static void deparse_operator_name(StringInfo buf, Oid opr, Oid *nsp);
static Oid	operator_namespace(Oid opr);
static void deparse_cast(StringInfo buf, Oid typid);
static Oid	type_btree_operator(Oid typid, int strategy);
static Oid	type_equality_operator(Oid typid);
static Oid	catalog_operator(const char *name, Oid ltype, Oid rtype);
static void deparse_catalog_clause(StringInfo buf, const char *leftop, Oid ltype,
								   const char *name, const char *rightop,
								   Oid rtype);

/* parts of statements */
static int	column_index(IncetlPipeline *p, const char *name);
static int	key_col(IncetlPipeline *p, int i);
static IncetlColumn *sequence_target_column(IncetlPipeline *p, int *idx,
											Oid *gt);
static void deparse_cursor_compare(StringInfo buf, IncetlPipeline *p,
								   const char *strategy_op, int strategy,
								   int firstparam);
static const char *collate_clause(Oid collation, Oid type);
static bool equality_is_image(Oid type, Oid collation);
static bool key_written(IncetlPipeline *p, IncetlColumn *c);
static bool state_key_written(IncetlPipeline *p, IncetlColumn *c);
static void deparse_keys_respelled(StringInfo buf, IncetlPipeline *p, const char *a,
								   const char *b);
static void deparse_type_differs(StringInfo buf, IncetlColumn *c, const char *tcol,
								 const char *dcol);
static void deparse_distinct(StringInfo buf, const char *tcol, const char *dcol);
static void deparse_target_key_match(StringInfo buf, IncetlPipeline *p,
									 const char *rel, bool gone);
static void deparse_target_key_match_to(StringInfo buf, IncetlPipeline *p, char **rhs);
static void deparse_source_key_match(StringInfo buf, IncetlPipeline *p,
									 const char *keyed);
static void deparse_key_list(StringInfo buf, IncetlPipeline *p);
static void deparse_key_object(StringInfo buf, IncetlPipeline *p,
							   const char *prefix, bool gone);
static bool have_row_bytes(void);
static void append_hashed_columns(StringInfo buf, IncetlPipeline *p, const char *alias,
								  bool cast, bool keys);
static void append_row_image_hash(StringInfo buf, IncetlPipeline *p, const char *alias,
								  bool cast);
static void append_row_hash(StringInfo buf, IncetlPipeline *p, const char *alias,
							bool cast);
static void deparse_src_columns(StringInfo buf, IncetlPipeline *p, bool with_wm,
								bool with_flag, bool with_hash);
static void deparse_dedupe(StringInfo buf, IncetlPipeline *p, bool with_wm);
static const char *deparse_newest_guard(StringInfo buf, IncetlPipeline *p);
static void deparse_last_row(StringInfo buf, IncetlPipeline *p, const char *name,
							 const char *rows);
static void deparse_batch_where(StringInfo buf, IncetlPipeline *p,
								IncetlBatchShape *shape, int *np, Oid *argtypes);
static void deparse_batch_rows(StringInfo buf, IncetlPipeline *p,
							   IncetlBatchShape *shape, int *np, Oid *argtypes,
							   char **rows_again);
static void deparse_keyed_rows(StringInfo buf, IncetlPipeline *p, bool with_hash,
							   bool with_time, bool staged);
static void deparse_compare_cte(StringInfo buf, IncetlPipeline *p);
static void deparse_citus_upsert_ctes(StringInfo buf, IncetlPipeline *p, int run_param,
									  const char *rows);
static void deparse_changes_row(StringInfo buf, IncetlPipeline *p, const char *rel);
static bool deparse_update_set(StringInfo buf, IncetlPipeline *p, int run_param,
							   const char *rel);
static void deparse_insert_lists(StringInfo cols, StringInfo vals, IncetlPipeline *p,
								 int run_param, const char *rel);
static void deparse_merge_apply(StringInfo buf, IncetlPipeline *p, int run_param,
								bool with_gone);
static bool keyed_merge_direct(IncetlPipeline *p);
static void deparse_keyed_merge_direct(StringInfo buf, IncetlPipeline *p, int run_param,
									   bool rows_only);
static void deparse_insert_into(StringInfo buf, IncetlPipeline *p, int run_param,
								const char *from);
static void deparse_insert_cte(StringInfo buf, IncetlPipeline *p, int run_param,
							   const char *from);
static bool deparse_update_cte(StringInfo buf, IncetlPipeline *p, int run_param);
/* the write steps of a batch, for what they return */
typedef enum WriteStep
{
	STEP_INSERT,
	STEP_UPDATE,
	STEP_DELETE,
	STEP_COMPARE_DELETE
} WriteStep;

static void deparse_returning(StringInfo buf, IncetlPipeline *p, WriteStep step);
static char *history_step_time(IncetlPipeline *p, WriteStep step);
static void deparse_history_ctes(StringInfo buf, IncetlPipeline *p, int run_param,
								 const char *rows, bool with_upd, bool with_del);
static void deparse_history_apply(StringInfo buf, IncetlPipeline *p, int run_param,
								  const char *hv);
static void deparse_history_key_match(StringInfo buf, IncetlPipeline *p, const char *rel,
									  char how);
static char *history_wm_time(Oid type, const char *w);
static bool history_row_time(IncetlPipeline *p);
static bool history_change_time(IncetlPipeline *p);
static void deparse_logical_rows(StringInfo buf, IncetlPipeline *p, bool rows_only);
static bool logical_rows_fit(IncetlPipeline *p);
static bool logical_rows_column_fits(IncetlPipeline *p, Oid type, Oid collation, Size *off);
static void deparse_change_time(StringInfo buf, IncetlPipeline *p);
static bool history_delete_time(IncetlPipeline *p);
static void deparse_history_count(StringInfo buf, IncetlPipeline *p, bool batch);
static void deparse_history_repair(StringInfo buf, IncetlPipeline *p);
static bool history_layers(IncetlPipeline *p);
static void deparse_history_differs(StringInfo buf, IncetlPipeline *p, const char *cur,
									const char *t, bool ignored);
static void deparse_history_settle(StringInfo buf, IncetlPipeline *p);
static void deparse_history_empty(StringInfo buf, IncetlPipeline *p);
static void deparse_history_layer(StringInfo buf, IncetlPipeline *p);
static void deparse_history_key_changes(StringInfo buf, IncetlPipeline *p);
static char *history_layer_value(IncetlColumn *c);
static void deparse_delete_cte(StringInfo buf, IncetlPipeline *p, int run_param,
							   bool compare);
static void deparse_hash_state_ctes(StringInfo buf, IncetlPipeline *p,
									const char *state_table);
static void deparse_apply_ctes(StringInfo buf, IncetlPipeline *p, int run_param,
							   bool with_gone, const char *state_table,
							   const char *citus_rows);
static void deparse_preview_select(StringInfo buf, IncetlPipeline *p,
								   bool with_gone);
static void deparse_counts(StringInfo buf, const char *read_from);
static void deparse_compare_gone(StringInfo buf, IncetlPipeline *p, bool preview);

/* statements */
static void deparse_range_edge(StringInfo buf, IncetlPipeline *p,
							   IncetlBatchShape *shape, int *nargs, Oid *argtypes);
static void deparse_batch_sql(StringInfo buf, IncetlPipeline *p,
							  IncetlBatchShape *shape, int *nargs,
							  Oid *argtypes);
static void deparse_create_work_table(StringInfo buf, IncetlPipeline *p);
static void deparse_create_hash_state(StringInfo buf, IncetlPipeline *p);
static void deparse_fill_work(StringInfo buf, IncetlPipeline *p, bool reconcile);
static void deparse_diff(StringInfo buf, IncetlPipeline *p, bool reconcile);
static void deparse_keyed_batch(StringInfo buf, IncetlPipeline *p, bool with_state,
								bool rows_only, int *nargs, Oid *argtypes);
static void deparse_compare_deletes(StringInfo buf, IncetlPipeline *p,
									bool preview);
static void deparse_keyed_preview(StringInfo buf, IncetlPipeline *p,
								  const char *keys_sql);
static void deparse_select_keys(StringInfo buf, IncetlPipeline *p,
								const char *query);
static void deparse_queue_keys(StringInfo buf, IncetlPipeline *p);
static void deparse_change_keys(StringInfo buf, IncetlPipeline *p);
static void deparse_hash_initial(StringInfo buf, IncetlPipeline *p);
static void deparse_seed_hash_state(StringInfo buf, IncetlPipeline *p);
static void deparse_hash_state_empty(StringInfo buf, IncetlPipeline *p);
static void deparse_backfill_range(StringInfo buf, IncetlPipeline *p,
								   Oid bound_type);


/*****************************************************************************
 *		Operators
 *****************************************************************************/

/*
 * Append "OPERATOR(nsp.op)" for operator opr; its namespace goes to *nsp
 * when nsp is not NULL.  The schema is the operator's own: the operators of
 * an extension's type (citext, ltree, isn, cube) live in the extension's
 * schema, not in pg_catalog.
 */
static void
deparse_operator_name(StringInfo buf, Oid opr, Oid *nsp)
{
	HeapTuple	tup;
	Form_pg_operator op;

	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opr));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opr);
	op = (Form_pg_operator) GETSTRUCT(tup);
	appendStringInfo(buf, "OPERATOR(%s.%s)",
					 quote_identifier(get_namespace_name(op->oprnamespace)),
					 NameStr(op->oprname));
	if (nsp)
		*nsp = op->oprnamespace;
	ReleaseSysCache(tup);
}

/* the namespace of an operator */
static Oid
operator_namespace(Oid opr)
{
	StringInfoData buf;
	Oid			nsp;

	initStringInfo(&buf);
	deparse_operator_name(&buf, opr, &nsp);
	pfree(buf.data);
	return nsp;
}

/*
 * Append "::nsp.typname", a cast to typid with the default typmod, spelled
 * the hard way as ruleutils.c's add_cast_to() does (format_type_be() would
 * say "character", which means char(1), and truncate).
 */
static void
deparse_cast(StringInfo buf, Oid typid)
{
	HeapTuple	tup;
	Form_pg_type typ;

	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	typ = (Form_pg_type) GETSTRUCT(tup);
	appendStringInfo(buf, "::%s.%s",
					 quote_identifier(get_namespace_name(typ->typnamespace)),
					 quote_identifier(NameStr(typ->typname)));
	ReleaseSysCache(tup);
}

/*
 * leftop OPERATOR(nsp.op) rightop
 *
 * Append a comparison by operator OID, as core's generate_operator_clause()
 * (ruleutils.c, used by ri_triggers.c) writes one: the operator named with
 * its schema, and an operand whose type is not the operator's input type
 * cast to it, so the parser cannot resolve the name to another operator.
 * An input of a pseudo-type (anyarray, anyenum, anyrange, record) takes
 * the operand as it is: there is nothing to cast to.  leftop and rightop
 * must be fit to take a cast: a column, a parameter, a literal or
 * something in parentheses.
 */
static void
incetl_deparse_operator_clause(StringInfo buf, const char *leftop, Oid leftoptype,
							   Oid opoid, const char *rightop, Oid rightoptype)
{
	HeapTuple	tup;
	Form_pg_operator op;

	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opoid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opoid);
	op = (Form_pg_operator) GETSTRUCT(tup);
	Assert(op->oprkind == 'b');

	appendStringInfoString(buf, leftop);
	if (leftoptype != op->oprleft && get_typtype(op->oprleft) != TYPTYPE_PSEUDO)
		deparse_cast(buf, op->oprleft);
	appendStringInfo(buf, " OPERATOR(%s.%s) %s",
					 quote_identifier(get_namespace_name(op->oprnamespace)),
					 NameStr(op->oprname), rightop);
	if (rightoptype != op->oprright && get_typtype(op->oprright) != TYPTYPE_PSEUDO)
		deparse_cast(buf, op->oprright);
	ReleaseSysCache(tup);
}

/* operator of a btree strategy of a type, from its default operator class */
static Oid
type_btree_operator(Oid typid, int strategy)
{
	TypeCacheEntry *tc = lookup_type_cache(typid, TYPECACHE_BTREE_OPFAMILY);
	Oid			opr;

	if (!OidIsValid(tc->btree_opf))
		elog(ERROR, "type %s has no default btree operator class",
			 format_type_be(typid));
	opr = get_opfamily_member(tc->btree_opf, tc->btree_opintype,
							  tc->btree_opintype, strategy);
	if (!OidIsValid(opr))
		elog(ERROR, "no btree operator %d for type %s", strategy,
			 format_type_be(typid));
	return opr;
}

/*
 * A type's equality: the one of its default btree operator class, else of
 * its default hash operator class (what the type cache calls its
 * equality).
 */
static Oid
type_equality_operator(Oid typid)
{
	Oid			opr = lookup_type_cache(typid, TYPECACHE_EQ_OPR)->eq_opr;

	if (!OidIsValid(opr) || !SearchSysCacheExists1(OPEROID, ObjectIdGetDatum(opr)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("type %s has no equality operator", format_type_be(typid))));
	return opr;
}

/* "OPERATOR(nsp.=)" of a type's equality (see type_equality_operator) */
char *
incetl_type_equality(Oid typid)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_operator_name(&buf, type_equality_operator(typid), NULL);
	return buf.data;
}

/*
 * " COLLATE <schema>.<name>" of a key column's source collation where it is
 * not its base type's own, else "".  (The base type's, not the domain's: the
 * queue holds a domain key as its base type, whose collation a domain's
 * COLLATE does not change.)  The work table's keys carry it, and the
 * statements that rank, group or compare keys from elsewhere (the queue,
 * decoded changes) say it: keys equal under a nondeterministic collation
 * ('abc' and 'ABC', case-insensitive) are one key of the source, and two
 * work table rows for them would have one batch match one target row twice.
 */
const char *
incetl_key_collate(IncetlColumn *c)
{
	return collate_clause(c->src_collation, getBaseType(c->src_type));
}

/*
 * " COLLATE <schema>.<name>" of a collation where it is not type's own,
 * else "".
 */
static const char *
collate_clause(Oid collation, Oid type)
{
	HeapTuple	tup;
	Form_pg_collation coll;
	char	   *res;

	if (!OidIsValid(collation) || collation == get_typcollation(type))
		return "";
	tup = SearchSysCache1(COLLOID, ObjectIdGetDatum(collation));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for collation %u", collation);
	coll = (Form_pg_collation) GETSTRUCT(tup);
	res = psprintf(" COLLATE %s",
				   quote_qualified_identifier(get_namespace_name(coll->collnamespace),
											  NameStr(coll->collname)));
	ReleaseSysCache(tup);
	return res;
}

/*
 * The pg_catalog operator "name" that the parser picks for inputs of types
 * ltype and rtype (UNKNOWNOID for a quoted literal): the one
 * OPERATOR(pg_catalog.name) written between them would mean.
 */
static Oid
catalog_operator(const char *name, Oid ltype, Oid rtype)
{
	Operator	tup;
	Oid			opr;

	tup = oper(NULL, list_make2(makeString("pg_catalog"), makeString(pstrdup(name))),
			   ltype, rtype, false, -1);
	opr = oprid(tup);
	ReleaseSysCache(tup);
	return opr;
}

/* leftop OPERATOR(pg_catalog.name) rightop, see catalog_operator */
static void
deparse_catalog_clause(StringInfo buf, const char *leftop, Oid ltype,
					   const char *name, const char *rightop, Oid rtype)
{
	incetl_deparse_operator_clause(buf, leftop, ltype,
								   catalog_operator(name, ltype, rtype),
								   rightop, rtype);
}


/*****************************************************************************
 *		Parts of statements
 *****************************************************************************/

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

/* key i of the target, as cast source value column "cN" */
static int
key_col(IncetlPipeline *p, int i)
{
	return column_index(p, p->keys[i]->name) + 1;
}

/*
 * The moved column that guards the target against older versions: never
 * overwrite a target row holding a higher sequence_column value.  Returns
 * NULL when there is none (no sequence column, the target lacks it, or its
 * type has no ordering); else the column, its index in p->columns and its
 * target type's ">".
 *
 * Without a sequence column the source's current row always wins: a key
 * whose watermark went backwards (clock skew, a restored row) is applied
 * when a run reads it; the watermark orders what a run reads, not which
 * version is newer.
 */
static IncetlColumn *
sequence_target_column(IncetlPipeline *p, int *idx, Oid *gt)
{
	IncetlColumn *c;

	if (p->sequence_column == NULL || !p->tgt_has_seq)
		return NULL;
	*idx = column_index(p, p->sequence_column);
	if (*idx < 0)
		return NULL;
	c = list_nth(p->columns, *idx);
	*gt = lookup_type_cache(c->tgt_type, TYPECACHE_GT_OPR)->gt_opr;
	if (!OidIsValid(*gt))
		return NULL;
	return c;
}

/*
 * ROW(s.<wm>, s.<key1>, ...) OPERATOR(nsp.>) ROW($first, $first+1, ...)
 *
 * or, spelled out column by column,
 *
 * (s.<wm> > $first OR (s.<wm> = $first AND (s.<key1> > $first+1 OR ...)))
 *
 * The row comparison (which an index on (watermark, key) serves) is used
 * when every operator lives in one schema.  For <= the last comparison is
 * <= and the others <.
 */
static void
deparse_cursor_compare(StringInfo buf, IncetlPipeline *p,
					   const char *strategy_op, int strategy, int firstparam)
{
	int			ncols = p->nkeys + 1;
	Oid		   *types = palloc(sizeof(Oid) * ncols);
	Oid		   *ops = palloc(sizeof(Oid) * ncols);
	Oid		   *eqs = palloc(sizeof(Oid) * ncols);
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

		ops[i] = type_btree_operator(types[i], strategy);
		nsp = operator_namespace(ops[i]);
		/* the equality of the same btree family as the ordering */
		eqs[i] = type_btree_operator(types[i], BTEqualStrategyNumber);
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
		for (int i = 0; i < ncols; i++)
		{
			char	   *param = psprintf("$%d", firstparam + i);

			appendStringInfoChar(buf, '(');
			incetl_deparse_operator_clause(buf, cols[i], types[i], ops[i],
										   param, types[i]);
			if (i < ncols - 1)
			{
				appendStringInfoString(buf, " OR (");
				incetl_deparse_operator_clause(buf, cols[i], types[i], eqs[i],
											   param, types[i]);
				appendStringInfoString(buf, " AND ");
			}
		}
		for (int i = 0; i < ncols; i++)
			appendStringInfoString(buf, i < ncols - 1 ? "))" : ")");
	}
}

/*
 * pg_catalog.record_image_ne(ROW(<tcol>), ROW(<dcol>))
 *
 * True when column tcol and column dcol (of the same type), or two lists
 * of columns of the same types, differ, NULL-aware, by their binary
 * images, as REFRESH MATERIALIZED VIEW CONCURRENTLY tells rows apart
 * (matview.c): a type's equality says 1.0 = 1.00, 'abc' = 'ABC' under a
 * case-insensitive collation, '1 day' = '24 hours', and a target kept
 * equal by it would never show the source's value.  Values that are the
 * same but stored differently (compressed, TOASTed, short headers) compare
 * equal.  (The function behind the *<> operator, called by name: written
 * as an operator between two ROW constructors, the parser would compare
 * column by column with an operator *<> that no type has, and a cast to
 * record that prevents it is lost where Citus deparses the statement for
 * its workers.)
 */
static void
deparse_distinct(StringInfo buf, const char *tcol, const char *dcol)
{
	appendStringInfo(buf, "pg_catalog.record_image_ne(ROW(%s), ROW(%s))", tcol, dcol);
}

/*
 * ((<tcol> = <dcol>) IS NOT TRUE AND NOT (<tcol> IS NULL AND <dcol> IS NULL))
 *
 * True when target column tcol and batch column dcol differ by the target
 * type's equality (NULL-aware), else by their text: a cheap first test
 * (deparse_changes_row), never the last word (deparse_distinct).
 */
static void
deparse_type_differs(StringInfo buf, IncetlColumn *c, const char *tcol,
					 const char *dcol)
{
	Oid			eq = lookup_type_cache(c->tgt_type, TYPECACHE_EQ_OPR)->eq_opr;

	appendStringInfoString(buf, "((");
	if (OidIsValid(eq) && SearchSysCacheExists1(OPEROID, ObjectIdGetDatum(eq)))
		incetl_deparse_operator_clause(buf, tcol, c->tgt_type, eq, dcol, c->tgt_type);
	else
		incetl_deparse_operator_clause(buf, tcol, c->tgt_type, TextEqualOperator,
									   dcol, c->tgt_type);
	appendStringInfo(buf, ") IS NOT TRUE AND NOT (%s IS NULL AND %s IS NULL))",
					 tcol, dcol);
}

/*
 * Whether a type's equality under a collation is equality of binary
 * images: the default btree operator class's "equalimage" support
 * function says so, as for B-tree deduplication (_bt_allequalimage).  Only
 * a built-in one is asked (a user's is code of theirs); without one, no.
 */
static bool
equality_is_image(Oid type, Oid collation)
{
	Oid			base = getBaseType(type);
	Oid			opclass = GetDefaultOpClass(base, BTREE_AM_OID);
	Oid			opcintype;
	Oid			proc;

	if (!OidIsValid(opclass))
		return false;
	opcintype = get_opclass_input_type(opclass);
	proc = get_opfamily_proc(get_opclass_family(opclass), opcintype, opcintype,
							 BTEQUALIMAGE_PROC);
	if (!OidIsValid(proc) || proc >= FirstNormalObjectId)
		return false;
	if (!OidIsValid(collation) && type_is_collatable(base))
		collation = DEFAULT_COLLATION_OID;
	return DatumGetBool(OidFunctionCall1Coll(proc, collation, ObjectIdGetDatum(opcintype)));
}

/*
 * Whether a hash state's key column is written by the state's upsert, and
 * compared with the source's by image, for the reason an update writes a
 * target's key (key_written, below): so that a key respelled in the source
 * ('abc' -> 'ABC' under a case-insensitive collation) is a change the hash
 * strategy sees, and the state then holds the new spelling.  Not in a
 * hash state distributed with a Citus source (by the key).
 */
static bool
state_key_written(IncetlPipeline *p, IncetlColumn *c)
{
	return p->src_citus == '\0' && !equality_is_image(c->src_type, c->src_collation);
}

/*
 * Whether an update writes key column c, and compares it: a key equal by
 * its type's equality may still differ from the source's ('abc' and 'ABC'
 * under a case-insensitive collation, numeric 1.0 and 1.00), and the
 * target should hold the source's.  Only such keys: writing an int or a
 * deterministic text key to the value it holds would fire the target's
 * UPDATE OF <key> triggers for nothing.  Not into a Citus table, which
 * takes no update of its distribution column.
 */
static bool
key_written(IncetlPipeline *p, IncetlColumn *c)
{
	return p->tgt_citus == '\0' &&
		!(equality_is_image(c->src_type, c->src_collation) &&
		  equality_is_image(c->tgt_type, c->tgt_collation));
}

/*
 * t.<key1> = <rel>.c<N1> AND t.<key2> = <rel>.c<N2> ...
 *
 * or, when gone, t.<key1> = <rel>.g1 AND ...: the target's keys against
 * target-typed keys, by the target key types' equality.
 */
static void
deparse_target_key_match(StringInfo buf, IncetlPipeline *p, const char *rel,
						 bool gone)
{
	char	  **rhs = palloc(sizeof(char *) * p->nkeys);

	for (int i = 0; i < p->nkeys; i++)
		rhs[i] = psprintf("%s.%c%d", rel, gone ? 'g' : 'c', gone ? i + 1 : key_col(p, i));
	deparse_target_key_match_to(buf, p, rhs);
}

/* t.<key1> = rhs[0] AND ...: target-typed expressions, the target's equality */
static void
deparse_target_key_match_to(StringInfo buf, IncetlPipeline *p, char **rhs)
{
	for (int i = 0; i < p->nkeys; i++)
	{
		IncetlColumn *k = p->keys[i];

		if (i)
			appendStringInfoString(buf, " AND ");
		incetl_deparse_operator_clause(buf,
									   psprintf("t.%s", quote_identifier(k->name)),
									   k->tgt_type,
									   type_equality_operator(k->tgt_type),
									   rhs[i], k->tgt_type);
	}
}

/*
 * s.<key1> = <keyed>.k1 AND ...
 *
 * The source's keys against source-typed keys k1..kn, by the source key
 * types' equality.
 */
static void
deparse_source_key_match(StringInfo buf, IncetlPipeline *p, const char *keyed)
{
	for (int i = 0; i < p->nkeys; i++)
	{
		IncetlColumn *k = p->keys[i];

		if (i)
			appendStringInfoString(buf, " AND ");
		incetl_deparse_operator_clause(buf,
									   psprintf("s.%s", quote_identifier(k->name)),
									   k->src_type,
									   type_equality_operator(k->src_type),
									   psprintf("%s.k%d", keyed, i + 1),
									   k->src_type);
	}
}

/* k1, k2, ..., kn */
static void
deparse_key_list(StringInfo buf, IncetlPipeline *p)
{
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%sk%d", i ? ", " : "", i + 1);
}

/*
 * pg_catalog.jsonb_build_object('<key1>'::pg_catalog.text, <prefix>c<N1>, ...)
 *
 * or, when gone, with <prefix>g1, ...: a preview row's key.
 */
static void
deparse_key_object(StringInfo buf, IncetlPipeline *p, const char *prefix,
				   bool gone)
{
	appendStringInfoString(buf, "pg_catalog.jsonb_build_object(");
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%s%s::pg_catalog.text, %s%c%d", i ? ", " : "",
						 quote_literal_cstr(p->keys[i]->name), prefix,
						 gone ? 'g' : 'c', gone ? i + 1 : key_col(p, i));
	appendStringInfoChar(buf, ')');
}

/*
 * How a pipeline's row hash is written in SQL: the text before and after
 * the ROW(...) of the hashed columns, the hash's type, and a value of that
 * type that no row hashes to (the placeholder the seeding of an empty hash
 * state stores).
 */
typedef struct RowHashSql
{
	char	   *open;
	const char *close;
	const char *type;
	const char *placeholder;
} RowHashSql;

/*
 * The schema pgcrypto is installed in, quoted.  incetl requires pgcrypto,
 * but pgcrypto may live in any schema (CREATE EXTENSION ... CASCADE puts it
 * in the first schema of the search_path, and it is relocatable), so it is
 * looked up each time a statement is generated, never found through the
 * search_path.
 */
static const char *
pgcrypto_schema(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;
	char	   *nspname;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("pgcrypto"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	nspname = OidIsValid(nsp) ? get_namespace_name(nsp) : NULL;
	if (nspname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"pgcrypto\" is not installed in this database"),
				 errhint("Digest hash algorithms are computed by pgcrypto: CREATE EXTENSION pgcrypto.")));
	return quote_identifier(nspname);
}

/*
 * The row hash of hash_algorithm 'hash64' is incetl.row_hash (bigint); a
 * digest (every other algorithm incetl_check_hash_algorithm accepts) is
 * pgcrypto's digest(bytea, text) over incetl.row_bytes, called with
 * exactly those argument types so that no other digest() can be chosen.
 * The placeholder is 0 for hash64 and an empty bytea for a digest, which
 * is never a digest.
 */
static void
row_hash_sql(IncetlPipeline *p, RowHashSql *r)
{
	if (strcmp(p->hash_algorithm, "hash64") == 0)
	{
		r->open = "incetl.row_hash(ROW(";
		r->close = "))";
		r->type = "pg_catalog.int8";
		r->placeholder = "0::pg_catalog.int8";
	}
	else
	{
		r->open = psprintf("%s.digest(incetl.row_bytes(ROW(", pgcrypto_schema());
		r->close = psprintf(")), %s::pg_catalog.text)",
							quote_literal_cstr(p->hash_algorithm));
		r->type = "pg_catalog.bytea";
		r->placeholder = "''::pg_catalog.bytea";
	}
}

/*
 * <alias>.<col>, ... (cast: CAST(<alias>.<col> AS <target type>), ...),
 * the columns a row hash covers: the non-key ones, and with keys the keys
 * an update writes (key_written); NULL::int4 when there are none.
 */
static void
append_hashed_columns(StringInfo buf, IncetlPipeline *p, const char *alias, bool cast,
					  bool keys)
{
	ListCell   *lc;
	bool		any = false;

	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		if (c->is_key && !(keys && key_written(p, c)))
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
}

/* the hash of a row's non-key columns, over the given alias */
static void
append_row_hash(StringInfo buf, IncetlPipeline *p, const char *alias, bool cast)
{
	RowHashSql	rh;

	row_hash_sql(p, &rh);
	appendStringInfoString(buf, rh.open);
	append_hashed_columns(buf, p, alias, cast, false);
	appendStringInfoString(buf, rh.close);
}

/*
 * Whether incetl.row_bytes(record) exists: not while the SQL objects are
 * 0.2's, between installing this library and ALTER EXTENSION UPDATE.
 */
static bool
have_row_bytes(void)
{
	Oid			argtype = RECORDOID;

	return OidIsValid(LookupFuncName(list_make2(makeString("incetl"),
												makeString("row_bytes")),
									 1, &argtype, true));
}

/*
 * incetl.row_hash(ROW(incetl.row_bytes(ROW(<col1>, ...))))
 *
 * Reconcile's hash of a row, over the given alias: of its columns' stored
 * bytes (row_bytes), the keys too where an update writes them, so that it
 * tells apart what the apply tells apart (deparse_distinct: 1.0 and 1.00,
 * 'abc' and 'ABC' under a nondeterministic collation), whatever the
 * pipeline's hash_algorithm, whose hash64 takes values equal by their
 * type's equality as equal.  cast: the source's values, in the target's
 * types.
 */
static void
append_row_image_hash(StringInfo buf, IncetlPipeline *p, const char *alias, bool cast)
{
	Assert(have_row_bytes());

	appendStringInfoString(buf, "incetl.row_hash(ROW(incetl.row_bytes(ROW(");
	append_hashed_columns(buf, p, alias, cast, true);
	appendStringInfoString(buf, "))))");
}

/*
 * SELECT [s.<wm> AS w, ]s.<key1> AS k1, ...[, s.<seq> AS q][, s.<flag> AS f],
 *		  CAST(s.<col1> AS <target type>) AS c1, ...[, <row hash> AS h]
 *
 * The select list of source rows in a batch: [w], k1..kn (source values of
 * the key), [q] (sequence), [f] (delete flag), c1..cm (values cast to the
 * target's types), [h] (row hash for the hash state).  The caller adds
 * FROM <source> AS s.
 */
static void
deparse_src_columns(StringInfo buf, IncetlPipeline *p, bool with_wm,
					bool with_flag, bool with_hash)
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

/*
 * , d0 AS (SELECT DISTINCT ON (c<N1>, ...) * FROM src
 *			ORDER BY c<N1>, ...[, q DESC NULLS LAST][, w DESC NULLS LAST])
 *
 * One row per key, the newest by sequence, then by watermark; a source
 * with a unique index on the key has one already: d0 AS (SELECT * FROM src).
 */
static void
deparse_dedupe(StringInfo buf, IncetlPipeline *p, bool with_wm)
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
 * , dn AS (SELECT * FROM d0 WHERE NOT EXISTS (SELECT 1 FROM <source> AS s
 *			WHERE s.<key1> = d0.k1 AND ...
 *			AND (s.<seq> > d0.q OR (d0.q IS NULL AND s.<seq> IS NOT NULL))))
 *
 * With sequence_column, a version read by a batch is never applied while the
 * source holds a newer version (by sequence) of its key: the batch sees
 * only part of a key's versions (a lookback or backfill window, a batch
 * edge), and the target row that would otherwise stop an older version may
 * be gone (a flagged delete of a log source removed it).  Adds "dn", the
 * rows of d0 that no source row of their key supersedes, and returns the
 * name of the CTE to apply from.  A source with one version per key (a
 * unique index on the key, as deparse_dedupe assumes) needs no check.
 */
static const char *
deparse_newest_guard(StringInfo buf, IncetlPipeline *p)
{
	const char *sseq;

	if (p->sequence_column == NULL ||
		(p->src_key_unique && p->src_relkind != 'v' && p->src_relkind != 'f'))
		return "d0";
	sseq = psprintf("s.%s", quote_identifier(p->sequence_column));
	appendStringInfo(buf, ", dn AS (SELECT * FROM d0 WHERE NOT EXISTS (SELECT 1 FROM %s AS s WHERE ",
					 p->src_qname);
	deparse_source_key_match(buf, p, "d0");
	/* q DESC NULLS LAST: any non-NULL sequence is newer than a NULL one */
	appendStringInfoString(buf, " AND (");
	incetl_deparse_operator_clause(buf, sseq, p->seq_type,
								   type_btree_operator(p->seq_type, BTGreaterStrategyNumber),
								   "d0.q", p->seq_type);
	appendStringInfo(buf, " OR (d0.q IS NULL AND %s IS NOT NULL))))", sseq);
	return "dn";
}

/*
 * , <name> AS (SELECT w, k1, ..., kn FROM <rows>
 *				ORDER BY w DESC, k1 DESC, ... LIMIT 1)
 *
 * The last (watermark, key) of a batch's rows.
 */
static void
deparse_last_row(StringInfo buf, IncetlPipeline *p, const char *name,
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
 * s.<wm> IS NOT NULL | s.<wm> >= $1 | s.<wm> > $1 | <cursor> > ($1, ...)
 * [AND s.<wm> < $n | AND s.<wm> <= $n | AND <cursor> <= ($n, ...)]
 * [AND <cursor> <= ($m, ...)]		(the edge: the batch's last row)
 *
 * The range of watermarks (and keys) a batch reads, by shape; the types of
 * the parameters it uses go to argtypes[*np], and *np moves past them.
 */
static void
deparse_batch_where(StringInfo buf, IncetlPipeline *p, IncetlBatchShape *shape,
					int *np, Oid *argtypes)
{
	const char *swm = psprintf("s.%s", quote_identifier(p->watermark_column));

	switch (shape->lower)
	{
		case LOWER_NONE:
			appendStringInfo(buf, "%s IS NOT NULL", swm);
			break;
		case LOWER_GE:
		case LOWER_GT:
			argtypes[(*np)++] = shape->lower_type;
			deparse_catalog_clause(buf, swm, p->wm_type,
								   shape->lower == LOWER_GE ? ">=" : ">",
								   psprintf("$%d", *np), shape->lower_type);
			break;
		case LOWER_AFTER:
			deparse_cursor_compare(buf, p, ">", BTGreaterStrategyNumber, *np + 1);
			argtypes[(*np)++] = p->wm_type;
			for (int i = 0; i < p->nkeys; i++)
				argtypes[(*np)++] = p->keys[i]->src_type;
			break;
	}
	switch (shape->upper)
	{
		case UPPER_NONE:
			break;
		case UPPER_LT:
		case UPPER_LE:
			argtypes[(*np)++] = shape->upper_type;
			appendStringInfoString(buf, " AND ");
			deparse_catalog_clause(buf, swm, p->wm_type,
								   shape->upper == UPPER_LT ? "<" : "<=",
								   psprintf("$%d", *np), shape->upper_type);
			break;
		case UPPER_LE_CURSOR:
			appendStringInfoString(buf, " AND ");
			deparse_cursor_compare(buf, p, "<=", BTLessEqualStrategyNumber, *np + 1);
			argtypes[(*np)++] = p->wm_type;
			for (int i = 0; i < p->nkeys; i++)
				argtypes[(*np)++] = p->keys[i]->src_type;
			break;
	}
	if (shape->edge)
	{
		appendStringInfoString(buf, " AND ");
		deparse_cursor_compare(buf, p, "<=", BTLessEqualStrategyNumber, *np + 1);
		argtypes[(*np)++] = p->wm_type;
		for (int i = 0; i < p->nkeys; i++)
			argtypes[(*np)++] = p->keys[i]->src_type;
	}
}

/*
 * Whether a history pipeline's changes carry their time in the watermark
 * ('timestamp' with a time watermark column): then T is the row's
 * watermark (SPEC 5).
 */
static bool
history_row_time(IncetlPipeline *p)
{
	return p->hist_qname != NULL && strcmp(p->strategy_name, "timestamp") == 0 &&
		OidIsValid(p->wm_type) && incetl_is_time_type(p->wm_type);
}

/*
 * Whether "gone" also carries gw, the watermark of a flagged row, the time
 * of its delete in the history table.
 */
static bool
history_delete_time(IncetlPipeline *p)
{
	return history_row_time(p) && p->delete_detection == DELETE_DETECT_FLAG;
}

/*
 * Whether a history pipeline's keyed batches know when each key changed:
 * 'trigger' (the writers' transaction starts, in the queue) and 'logical'
 * (commit times, in the work table).  Then "b" has ct and sb bt.
 */
static bool
history_change_time(IncetlPipeline *p)
{
	return p->hist_qname != NULL &&
		(strcmp(p->strategy_name, "trigger") == 0 ||
		 strcmp(p->strategy_name, "logical") == 0);
}

/*
 * , (SELECT pg_catalog.max(q.changed_at) FROM <work table> AS w2
 *	  JOIN <queue> AS q ON q.ctid = w2.qtid AND q.seq = w2.qseq
 *	  WHERE w2.rn = w.rn) AS ct
 *
 * or, for 'logical', , w.ct: when a key of the work table row w changed.
 * For 'trigger', the latest start of the transactions that queued the
 * key's entries (the queue's changed_at; NULL for a queue made before
 * 0.3 that has no such column, or for keys a comparison found); for
 * 'logical', the commit time of the key's last change, which the fill
 * stored.  NULL makes the run's start the time (deparse_history_apply).
 */
static void
deparse_change_time(StringInfo buf, IncetlPipeline *p)
{
	Oid			queue;

	if (strcmp(p->strategy_name, "logical") == 0)
	{
		appendStringInfoString(buf, ", w.ct");
		return;
	}
	queue = get_relname_relid(incetl_queue_relname(p->id),
							  get_namespace_oid("incetl", false));
	if (!OidIsValid(queue) ||
		get_attnum(queue, "changed_at") == InvalidAttrNumber)
	{
		appendStringInfoString(buf, ", NULL::pg_catalog.timestamptz AS ct");
		return;
	}
	appendStringInfo(buf, ", (SELECT pg_catalog.max(q.changed_at) FROM %s AS w2 JOIN %s AS q ON ",
					 incetl_work_table_name(p), incetl_queue_table_name(p));
	deparse_catalog_clause(buf, "q.ctid", TIDOID, "=", "w2.qtid", TIDOID);
	appendStringInfoString(buf, " AND ");
	deparse_catalog_clause(buf, "q.seq", INT8OID, "=", "w2.qseq", INT8OID);
	appendStringInfoString(buf, " WHERE ");
	deparse_catalog_clause(buf, "w2.rn", INT8OID, "=", "w.rn", INT8OID);
	appendStringInfoString(buf, ") AS ct");
}

/*
 * WITH src AS MATERIALIZED (<source columns> FROM <source> AS s
 *							 WHERE <batch range>
 *							 [ORDER BY s.<wm>, s.<key1>, ...
 *							  FETCH FIRST <batch_size> ROWS WITH TIES
 *							  | LIMIT <batch_size>]),
 *		[lst AS (the last (w, k1, ...) of src),]
 *		d0 AS (one row per key), [dn AS (d0 less superseded versions),]
 *		d AS (SELECT * FROM dn|d0 [WHERE f IS NOT TRUE])
 *		[, gone AS (SELECT c<N1> AS g1, k1, ... FROM dn|d0 WHERE f IS TRUE)]
 *
 * The rows of one batch of a timestamp pass, up to the point where the
 * apply and a preview part ways.  For a foreign source without a unique
 * key, src is src0 (LIMIT) and lst0 plus the probe of the rows tied with
 * lst0 (see below).
 */
static void
deparse_batch_rows(StringInfo buf, IncetlPipeline *p, IncetlBatchShape *shape,
				   int *np, Oid *argtypes, char **rows_again)
{
	int			i;
	bool		flag = p->delete_detection == DELETE_DETECT_FLAG;
	const char *qwm = quote_identifier(p->watermark_column);
	const char *newest;
	int			src_start;

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

	/* the batch: source rows in (watermark, key) order */
	appendStringInfo(buf, "WITH %s AS MATERIALIZED (", probe ? "src0" : "src");
	src_start = buf->len;
	deparse_src_columns(buf, p, true, flag, false);
	appendStringInfo(buf, " FROM %s AS s WHERE ", p->src_qname);
	deparse_batch_where(buf, p, shape, np, argtypes);
	if (shape->limit)
	{
		appendStringInfo(buf, " ORDER BY s.%s", qwm);
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, ", s.%s", quote_identifier(p->keys[i]->name));
		if (ties && !probe)
			appendStringInfo(buf, " FETCH FIRST %d ROWS WITH TIES", p->batch_size);
		else
			appendStringInfo(buf, " LIMIT %d", p->batch_size);
	}
	if (rows_again)
		*rows_again = pnstrdup(buf->data + src_start, buf->len - src_start);

	/*
	 * Through a Citus target's stage (incetl_tstage_qname): the caller
	 * first inserts the batch's rows there (shape->stage_fill), and this
	 * statement reads them back, once as src on the coordinator (counts,
	 * the last row) and once in the upsert, which Citus then runs on each
	 * shard against the stage's shard colocated with it.  One snapshot's
	 * rows, both times.  (The upsert of a local source's rows goes through
	 * one intermediate result per shard, each over a connection of its
	 * own, each committed in two phases: 32 of them for a 1% run into a
	 * table of 32 shards.)
	 */
	shape->stage_fill = NULL;
	if (shape->stage && rows_again && !probe && !flag && p->src_key_unique &&
		p->src_relkind != 'v' && p->src_relkind != 'f')
	{
		shape->stage_fill = psprintf("INSERT INTO %s %s", shape->stage, *rows_again);
		buf->len = src_start;
		buf->data[src_start] = '\0';

		/*
		 * A batch up to its edge needs no row of src but their count, which
		 * the copy tells (deparse_batch_sql): nothing to bring back from
		 * the shards.
		 */
		if (shape->edge)
			appendStringInfoString(buf, "SELECT");
		else
			appendStringInfo(buf, "SELECT * FROM %s", shape->stage);
		*rows_again = psprintf("SELECT * FROM %s", shape->stage);
	}
	appendStringInfoString(buf, ")");
	if (probe)
	{
		/*
		 * , lst0 AS (the last (w, k1, ...) of src0),
		 *	 src AS MATERIALIZED (SELECT src0.* FROM src0 WHERE NOT EXISTS
		 *		(SELECT 1 FROM lst0 WHERE src0.w = lst0.w AND src0.k1 = lst0.k1
		 *		 ...)
		 *	   UNION ALL <source columns> FROM <source> AS s
		 *		WHERE s.<wm> = (SELECT w FROM lst0)
		 *		AND s.<key1> = (SELECT k1 FROM lst0) ...)
		 */
		Oid		   *types = palloc(sizeof(Oid) * (p->nkeys + 1));
		Oid		   *eqs = palloc(sizeof(Oid) * (p->nkeys + 1));

		types[0] = p->wm_type;
		for (i = 0; i < p->nkeys; i++)
			types[i + 1] = p->keys[i]->src_type;
		for (i = 0; i <= p->nkeys; i++)
			eqs[i] = type_equality_operator(types[i]);

		/* the last (watermark, key) of the first batch_size rows */
		deparse_last_row(buf, p, "lst0", "src0");

		/* the rows before it, then all rows tied with it */
		appendStringInfoString(buf, ", src AS MATERIALIZED (SELECT src0.* FROM src0 WHERE NOT EXISTS "
							   "(SELECT 1 FROM lst0 WHERE ");
		incetl_deparse_operator_clause(buf, "src0.w", types[0], eqs[0], "lst0.w", types[0]);
		for (i = 0; i < p->nkeys; i++)
		{
			appendStringInfoString(buf, " AND ");
			incetl_deparse_operator_clause(buf, psprintf("src0.k%d", i + 1), types[i + 1],
										   eqs[i + 1], psprintf("lst0.k%d", i + 1),
										   types[i + 1]);
		}
		appendStringInfoString(buf, ") UNION ALL ");
		deparse_src_columns(buf, p, true, flag, false);
		appendStringInfo(buf, " FROM %s AS s WHERE ", p->src_qname);
		incetl_deparse_operator_clause(buf, psprintf("s.%s", qwm), types[0], eqs[0],
									   "(SELECT w FROM lst0)", types[0]);
		for (i = 0; i < p->nkeys; i++)
		{
			appendStringInfoString(buf, " AND ");
			incetl_deparse_operator_clause(buf,
										   psprintf("s.%s", quote_identifier(p->keys[i]->name)),
										   types[i + 1], eqs[i + 1],
										   psprintf("(SELECT k%d FROM lst0)", i + 1),
										   types[i + 1]);
		}
		appendStringInfoChar(buf, ')');
	}

	/* the cursor after this batch (with an edge, the edge is) */
	if (!shape->preview && !shape->edge)
		deparse_last_row(buf, p, "lst", "src");

	deparse_dedupe(buf, p, true);
	newest = deparse_newest_guard(buf, p);

	/*
	 * rows_again: where d is src (one row per key, no guard, no flag), the
	 * text of src's query, for the caller to read the same rows again in
	 * the same statement (same snapshot); else NULL.
	 */
	if (rows_again && (probe || flag || strcmp(newest, "d0") != 0 ||
					   !p->src_key_unique || p->src_relkind == 'v' || p->src_relkind == 'f'))
		*rows_again = NULL;
	if (flag)
	{
		appendStringInfo(buf, ", d AS (SELECT * FROM %s WHERE f IS NOT TRUE), gone AS (SELECT ",
						 newest);
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "%sc%d AS g%d, k%d", i ? ", " : "", key_col(p, i), i + 1, i + 1);
		if (history_delete_time(p))
			appendStringInfoString(buf, ", w AS gw");
		appendStringInfo(buf, " FROM %s WHERE f IS TRUE)", newest);
	}
	else
		appendStringInfo(buf, ", d AS (SELECT * FROM %s)", newest);
}

/*
 * , sb AS MATERIALIZED (<source columns>, b.k1 AS bk1, ...
 *						 FROM b LEFT JOIN <source> AS s ON s.<key1> = b.k1 ...),
 *	 src AS (SELECT * FROM sb WHERE sb.k1 IS NOT NULL),
 *	 d0 AS (one row per key),
 *	 d AS (SELECT * FROM d0 [WHERE f IS NOT TRUE]),
 *	 gone AS (SELECT CAST(sb.bk1 AS <target type>) AS g1, sb.bk1 AS k1, ...
 *			  FROM sb WHERE sb.k1 IS NULL
 *			  [UNION ALL SELECT c<N1>, k1, ... FROM d0 WHERE f IS TRUE])
 *
 * For the keys in CTE "b" (k1..kn): "src" (their source rows), "d0"/"d"
 * (one per key) and "gone" (keys the source no longer has), from one
 * outer join of the keys to the source, in one snapshot.  with_time: "b"
 * has ct, when the key changed, which sb and gone carry as bt (for the
 * history table).
 *
 * staged (a Citus source, see incetl_sql_fill_stage): sb is the first CTE
 * and reads the keys of rows rn in ($1, $2] of the stage, a table
 * distributed with the source: a join Citus runs on each shard, so that
 * only the batch's rows reach the coordinator (from "b", an intermediate
 * result, it would pull the whole source there).
 */
static void
deparse_keyed_rows(StringInfo buf, IncetlPipeline *p, bool with_hash,
				   bool with_time, bool staged)
{
	int			i;
	bool		flag = p->delete_detection == DELETE_DETECT_FLAG;

	/* one probe per key: the source row, or none when the key is gone */
	appendStringInfoString(buf, staged ? "sb AS MATERIALIZED (" : ", sb AS MATERIALIZED (");
	deparse_src_columns(buf, p, p->watermark_column != NULL, flag, with_hash);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, ", b.k%d AS bk%d", i + 1, i + 1);
	if (with_time)
		appendStringInfoString(buf, ", b.ct AS bt");
	appendStringInfo(buf, " FROM %s AS b LEFT JOIN %s AS s ON ",
					 staged ? incetl_stage_name(p) : "b", p->src_qname);
	deparse_source_key_match(buf, p, "b");
	if (staged)
	{
		appendStringInfoString(buf, " WHERE ");
		deparse_catalog_clause(buf, "b.rn", INT8OID, ">", "$1", INT8OID);
		appendStringInfoString(buf, " AND ");
		deparse_catalog_clause(buf, "b.rn", INT8OID, "<=", "$2", INT8OID);
	}
	appendStringInfoString(buf, "), src AS (SELECT * FROM sb WHERE sb.k1 IS NOT NULL)");
	deparse_dedupe(buf, p, p->watermark_column != NULL);

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
	if (history_delete_time(p))
		appendStringInfoString(buf, ", sb.w AS gw");
	if (with_time)
		appendStringInfoString(buf, ", sb.bt AS bt");
	appendStringInfoString(buf, " FROM sb WHERE sb.k1 IS NULL");
	if (flag)
	{
		appendStringInfoString(buf, " UNION ALL SELECT ");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "%sc%d, k%d", i ? ", " : "", key_col(p, i), i + 1);
		if (history_delete_time(p))
			appendStringInfoString(buf, ", w");
		if (with_time)
			appendStringInfoString(buf, ", bt");
		appendStringInfoString(buf, " FROM d0 WHERE f IS TRUE");
	}
	appendStringInfoChar(buf, ')');
}

/*
 * <rel>.c<i>, the batch's value of column c (the i-th), or with rel NULL
 * EXCLUDED.<col>: the same value as an INSERT ... ON CONFLICT DO UPDATE
 * of the batch's rows sees it (deparse_citus_upsert_ctes).
 */
static char *
batch_column(const char *rel, int i, IncetlColumn *c)
{
	if (rel == NULL)
		return psprintf("EXCLUDED.%s", quote_identifier(c->name));
	return psprintf("%s.c%d", rel, i);
}

/*
 * ((false OR <t.<col> differs from <rel>.c<N> by its type> ...
 *	 OR pg_catalog.record_image_ne(ROW(t.<col1>, ...), ROW(<rel>.c1, ...))
 *	 [OR t.<soft> IS TRUE]) [AND (t.<seq> > <rel>.c<S>) IS NOT TRUE])
 *
 * A target row "t" that the row of <rel> (target-typed c1..cm) changes
 * (rel NULL: the row EXCLUDED, see batch_column): any column, the keys
 * too where an update writes them (key_written), differs by its
 * binary image (deparse_distinct).
 */
static void
deparse_changes_row(StringInfo buf, IncetlPipeline *p, const char *rel)
{
	ListCell   *lc;
	int			i;
	int			seq_idx;
	Oid			gt_seq;
	IncetlColumn *seq = sequence_target_column(p, &seq_idx, &gt_seq);
	StringInfoData tcols;
	StringInfoData dcols;

	/*
	 * One image comparison of the rows' columns (deparse_distinct), after
	 * each non-key column's equality: a row that changed a value usually
	 * differs by it, which is cheaper to find (record_image_ne forms both
	 * rows: ~0.15 us a row here), so only rows equal by their types pay for
	 * the images.
	 */
	initStringInfo(&tcols);
	initStringInfo(&dcols);
	appendStringInfoString(buf, "((false");
	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		i++;
		if (!c->is_key)
		{
			appendStringInfoString(buf, " OR ");
			deparse_type_differs(buf, c, psprintf("t.%s", quote_identifier(c->name)),
								 batch_column(rel, i, c));
		}
		if (c->is_key && !key_written(p, c))
			continue;
		appendStringInfo(&tcols, "%st.%s", tcols.len ? ", " : "", quote_identifier(c->name));
		appendStringInfo(&dcols, "%s%s", dcols.len ? ", " : "", batch_column(rel, i, c));
	}
	if (tcols.len)
	{
		appendStringInfoString(buf, " OR ");
		deparse_distinct(buf, tcols.data, dcols.data);
	}
	if (p->soft_delete)
		appendStringInfo(buf, " OR t.%s IS TRUE", quote_identifier(p->soft_delete_column));
	appendStringInfoChar(buf, ')');
	if (seq)
	{
		appendStringInfoString(buf, " AND (");
		incetl_deparse_operator_clause(buf, psprintf("t.%s", quote_identifier(seq->name)),
									   seq->tgt_type, gt_seq,
									   batch_column(rel, seq_idx + 1, seq), seq->tgt_type);
		appendStringInfoString(buf, ") IS NOT TRUE");
	}
	appendStringInfoChar(buf, ')');
}

/*
 * , ups AS (INSERT INTO <target> AS t (...) SELECT c1, ... FROM d
 *			 ON CONFLICT (<key1>, ...) DO UPDATE SET <col2> = EXCLUDED.<col2>, ...
 *			 WHERE <t changed by EXCLUDED>
 *			 RETURNING t.xmax OPERATOR(pg_catalog.=) '0'::pg_catalog.xid AS i),
 *	 ins AS (SELECT 1 FROM ups WHERE i), upd AS (SELECT 1 FROM ups WHERE NOT i)
 *
 * The insert and update steps into a Citus table.  The CTE form joins the
 * batch to the target with an outer join ("cmp"), which Citus can only run
 * by pulling the whole target to the coordinator.  One INSERT ... ON
 * CONFLICT DO UPDATE of the batch's rows is sent to the shards, each
 * getting its own rows (an UPDATE ... FROM the batch and an INSERT ... ON
 * CONFLICT DO NOTHING, as before, sent the batch to every worker and then
 * again to the shards: about twice the time for a 1% run).  The update
 * skips a row that would not change, as cmp does; a new row version's
 * xmax is 0 only where the statement inserted it (an updated one carries
 * the lock the conflict took), which tells inserts from updates: the same
 * rows and counts.  (A BEFORE INSERT trigger on the target sees every row
 * of the batch, also those that then update.)  With nothing to update
 * (only key columns), DO NOTHING.
 *
 * rows: the query of the batch's rows "d" to read again (a range batch
 * from a local source, deparse_batch_rows), or NULL to read d.  Citus
 * sends a CTE's rows that an INSERT ... SELECT reads to every worker
 * first; the source read again in the same statement (the same snapshot,
 * so the same rows) goes only to the shards.
 */
static void
deparse_citus_upsert_ctes(StringInfo buf, IncetlPipeline *p, int run_param,
						  const char *rows)
{
	StringInfoData set;

	appendStringInfoString(buf, ", ups AS (");
	deparse_insert_into(buf, p, run_param, rows ? psprintf("(%s) AS d", rows) : "d");
	appendStringInfoString(buf, " ON CONFLICT (");
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%s%s", i ? ", " : "", quote_identifier(p->keys[i]->name));
	initStringInfo(&set);
	if (deparse_update_set(&set, p, run_param, NULL))
	{
		appendStringInfo(buf, ") DO UPDATE SET %s WHERE ", set.data);
		deparse_changes_row(buf, p, NULL);
		appendStringInfoString(buf, " RETURNING t.xmax OPERATOR(pg_catalog.=) '0'::pg_catalog.xid AS i)");
	}
	else
		appendStringInfoString(buf, ") DO NOTHING RETURNING true AS i)");
	appendStringInfoString(buf, ", ins AS (SELECT 1 FROM ups WHERE i), upd AS (SELECT 1 FROM ups WHERE NOT i)");
}

/*
 * , cmp AS MATERIALIZED (SELECT d.*, t.<key1> IS NULL AS ins
 *						  [, (false OR <t.<col> distinct from d.c<N>> ...) AS hv]
 *						  FROM d LEFT JOIN <target> AS t
 *						  ON t.<key1> = d.c<N1> AND ...
 *						  WHERE t.<key1> IS NULL
 *						  OR ((false OR <t.<col> distinct from d.c<N>> ...
 *							   [OR t.<soft> IS TRUE])
 *							  [AND (t.<seq> > d.c<S>) IS NOT TRUE]))
 *
 * The rows of "d" that are new to the target or differ from its row: what
 * a batch writes, and what a preview lists.  With a history table, hv says
 * whether a column not in history_ignore_columns differs (a new version)
 * or only ignored ones do (the current version is updated in place).
 */
static void
deparse_compare_cte(StringInfo buf, IncetlPipeline *p)
{
	const char *tkey1 = quote_identifier(p->keys[0]->name);
	ListCell   *lc;
	int			i;

	appendStringInfo(buf, ", cmp AS MATERIALIZED (SELECT d.*, t.%s IS NULL AS ins",
					 tkey1);
	if (p->hist_qname)
	{
		/* a history pipeline: whether a column that is not ignored differs */
		appendStringInfoString(buf, ", (false");
		i = 0;
		foreach(lc, p->columns)
		{
			IncetlColumn *c = lfirst(lc);

			i++;
			if (c->is_key || c->history_ignored)
				continue;
			appendStringInfoString(buf, " OR ");
			deparse_distinct(buf, psprintf("t.%s", quote_identifier(c->name)),
							 psprintf("d.c%d", i));
		}
		appendStringInfoString(buf, ") AS hv");
	}
	appendStringInfo(buf, " FROM d LEFT JOIN %s AS t ON ", p->tgt_qname);
	deparse_target_key_match(buf, p, "d", false);
	appendStringInfo(buf, " WHERE t.%s IS NULL OR ", tkey1);
	deparse_changes_row(buf, p, "d");
	appendStringInfoChar(buf, ')');
}

/*
 * , ins AS (INSERT INTO <target> AS t (<col1>, ...[, <soft>]
 *			 [, etl_inserted_at][, etl_updated_at][, etl_run_id])
 *			 SELECT c1, ...[, false][, pg_catalog.now()][, pg_catalog.now()]
 *			 [, $<run_param>] FROM <from> RETURNING 1)
 *
 * The insert step, from "cmp WHERE ins" (the rows new to the target) or,
 * for the first load into an empty target, from "d".
 */
static void
deparse_insert_cte(StringInfo buf, IncetlPipeline *p, int run_param,
				   const char *from)
{
	appendStringInfoString(buf, ", ins AS (");
	deparse_insert_into(buf, p, run_param, from);
	deparse_returning(buf, p, STEP_INSERT);
	appendStringInfoChar(buf, ')');
}

/*
 * INSERT INTO <target> AS t (...) SELECT c1, ... FROM <from>: the body of
 * the insert step (see deparse_insert_cte).
 */
/*
 * (<col1>, ...[, <soft>][, etl_inserted_at][, etl_updated_at][, etl_run_id])
 * and <rel>c1, ...[, false][, pg_catalog.now()][, pg_catalog.now()]
 * [, $<run_param>]: the columns a new target row gets, and their values
 * from a row whose target-typed values are c1..cm (rel "m." or "").
 */
static void
deparse_insert_lists(StringInfo cols, StringInfo vals, IncetlPipeline *p,
					 int run_param, const char *rel)
{
	ListCell   *lc;
	int			i;
	bool		soft = p->soft_delete;

	appendStringInfoChar(cols, '(');
	i = 0;
	foreach(lc, p->columns)
		appendStringInfo(cols, "%s%s", i++ ? ", " : "",
						 quote_identifier(((IncetlColumn *) lfirst(lc))->name));
	if (soft)
		appendStringInfo(cols, ", %s", quote_identifier(p->soft_delete_column));
	if (p->tgt_etl_inserted_at)
		appendStringInfoString(cols, ", etl_inserted_at");
	if (p->tgt_etl_updated_at)
		appendStringInfoString(cols, ", etl_updated_at");
	if (p->tgt_etl_run_id)
		appendStringInfoString(cols, ", etl_run_id");
	appendStringInfoChar(cols, ')');

	for (i = 1; i <= list_length(p->columns); i++)
		appendStringInfo(vals, "%s%sc%d", i > 1 ? ", " : "", rel, i);
	if (soft)
		appendStringInfoString(vals, ", false");
	if (p->tgt_etl_inserted_at)
		appendStringInfoString(vals, ", pg_catalog.now()");
	if (p->tgt_etl_updated_at)
		appendStringInfoString(vals, ", pg_catalog.now()");
	if (p->tgt_etl_run_id)
		appendStringInfo(vals, ", $%d", run_param);
}

static void
deparse_insert_into(StringInfo buf, IncetlPipeline *p, int run_param,
					const char *from)
{
	StringInfoData cols;
	StringInfoData vals;

	initStringInfo(&cols);
	initStringInfo(&vals);
	deparse_insert_lists(&cols, &vals, p, run_param, "");
	appendStringInfo(buf, "INSERT INTO %s AS t %s SELECT %s FROM %s",
					 p->tgt_qname, cols.data, vals.data, from);
}

/*
 * <col2> = <rel>.c2, ...[, <soft> = false[, deleted_at = NULL]]
 * [, etl_updated_at = pg_catalog.now()][, etl_run_id = $<run_param>]
 *
 * What an update of a target row from the row of <rel> (NULL: EXCLUDED, see
 * batch_column) sets; false when there is nothing to set (only key columns,
 * no etl columns).
 */
static bool
deparse_update_set(StringInfo buf, IncetlPipeline *p, int run_param,
				   const char *rel)
{
	ListCell   *lc;
	int			i;
	bool		first = true;
	const char *soft = p->soft_delete ? quote_identifier(p->soft_delete_column) : NULL;

	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		i++;
		if (c->is_key && !key_written(p, c))
			continue;
		appendStringInfo(buf, "%s%s = %s", first ? "" : ", ",
						 quote_identifier(c->name), batch_column(rel, i, c));
		first = false;
	}
	if (soft)
	{
		appendStringInfo(buf, "%s%s = false", first ? "" : ", ", soft);
		if (p->tgt_deleted_at)
			appendStringInfoString(buf, ", deleted_at = NULL");
		first = false;
	}
	/*
	 * (From EXCLUDED, what the insert would have set: Citus takes no
	 * function but an immutable one in an ON CONFLICT's SET.)
	 */
	if (p->tgt_etl_updated_at)
	{
		appendStringInfo(buf, "%setl_updated_at = %s", first ? "" : ", ",
						 rel ? "pg_catalog.now()" : "EXCLUDED.etl_updated_at");
		first = false;
	}
	if (p->tgt_etl_run_id)
	{
		if (rel)
			appendStringInfo(buf, "%setl_run_id = $%d", first ? "" : ", ", run_param);
		else
			appendStringInfo(buf, "%setl_run_id = EXCLUDED.etl_run_id", first ? "" : ", ");
		first = false;
	}
	return !first;
}

/*
 * , upd AS (UPDATE <target> AS t SET <col2> = cmp.c2, ...
 *			 [, <soft> = false[, deleted_at = NULL]]
 *			 [, etl_updated_at = pg_catalog.now()][, etl_run_id = $<run_param>]
 *			 FROM cmp WHERE NOT cmp.ins AND t.<key1> = cmp.c<N1> ...
 *			 [AND (t.<seq> > cmp.c<S>) IS NOT TRUE] RETURNING 1)
 *
 * The update step; with nothing to set, upd AS (SELECT 1 WHERE false), and
 * false is returned.
 */
static bool
deparse_update_cte(StringInfo buf, IncetlPipeline *p, int run_param)
{
	int			seq_idx;
	Oid			gt_seq;
	IncetlColumn *seq = sequence_target_column(p, &seq_idx, &gt_seq);
	StringInfoData set;

	initStringInfo(&set);
	if (!deparse_update_set(&set, p, run_param, "cmp"))
	{
		appendStringInfoString(buf, ", upd AS (SELECT 1 WHERE false)");
		return false;
	}

	appendStringInfo(buf, ", upd AS (UPDATE %s AS t SET %s", p->tgt_qname, set.data);
	appendStringInfoString(buf, " FROM cmp WHERE NOT cmp.ins AND ");
	deparse_target_key_match(buf, p, "cmp", false);
	/* re-checked on the newest row version if a writer got there first */
	if (seq)
	{
		appendStringInfoString(buf, " AND (");
		incetl_deparse_operator_clause(buf, psprintf("t.%s", quote_identifier(seq->name)),
									   seq->tgt_type, gt_seq,
									   psprintf("cmp.c%d", seq_idx + 1), seq->tgt_type);
		appendStringInfoString(buf, ") IS NOT TRUE");
	}
	deparse_returning(buf, p, STEP_UPDATE);
	appendStringInfoChar(buf, ')');
	return true;
}

/*
 * , del AS (DELETE FROM <target> AS t USING gone
 *			 WHERE t.<key1> = gone.g1 AND ... RETURNING 1)
 *
 * or, with soft_delete,
 *
 * , del AS (UPDATE <target> AS t SET <soft> = true
 *			 [, deleted_at = pg_catalog.now()]
 *			 [, etl_updated_at = pg_catalog.now()][, etl_run_id = $<run_param>]
 *			 FROM gone WHERE t.<key1> = gone.g1 AND ...
 *			 AND t.<soft> IS NOT TRUE RETURNING 1)
 *
 * The delete step, for the target-typed keys g1..gn of CTE "gone" (of a
 * batch's rows, or, when compare, of the target's keys the source lacks).
 */
static void
deparse_delete_cte(StringInfo buf, IncetlPipeline *p, int run_param, bool compare)
{
	if (p->soft_delete)
	{
		const char *soft = quote_identifier(p->soft_delete_column);

		appendStringInfo(buf, ", del AS (UPDATE %s AS t SET %s = true", p->tgt_qname, soft);
		if (p->tgt_deleted_at)
			appendStringInfoString(buf, ", deleted_at = pg_catalog.now()");
		if (p->tgt_etl_updated_at)
			appendStringInfoString(buf, ", etl_updated_at = pg_catalog.now()");
		if (p->tgt_etl_run_id)
			appendStringInfo(buf, ", etl_run_id = $%d", run_param);
		appendStringInfoString(buf, " FROM gone WHERE ");
		deparse_target_key_match(buf, p, "gone", true);
		appendStringInfo(buf, " AND t.%s IS NOT TRUE", soft);
	}
	else
	{
		appendStringInfo(buf, ", del AS (DELETE FROM %s AS t USING gone WHERE ", p->tgt_qname);
		deparse_target_key_match(buf, p, "gone", true);
	}
	deparse_returning(buf, p, compare ? STEP_COMPARE_DELETE : STEP_DELETE);
	appendStringInfoChar(buf, ')');
}

/*
 * , st_up AS (INSERT INTO <state> AS st (k1, ..., h) SELECT k1, ..., h FROM d
 *			   ON CONFLICT (k1, ...) DO UPDATE SET h = EXCLUDED.h
 *			   WHERE st.h OPERATOR(pg_catalog.<>) EXCLUDED.h),
 *	 st_del AS (DELETE FROM <state> AS st USING gone
 *				WHERE st.k1 = gone.k1 AND ...)
 *
 * The hash state moves in the same statement as the target rows.
 */
static void
deparse_hash_state_ctes(StringInfo buf, IncetlPipeline *p,
						const char *state_table)
{
	int			i;

	appendStringInfo(buf, ", st_up AS (INSERT INTO %s AS st (", state_table);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "k%d, ", i + 1);
	appendStringInfoString(buf, "h) SELECT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "k%d, ", i + 1);
	appendStringInfoString(buf, "h FROM d ON CONFLICT (");
	deparse_key_list(buf, p);
	appendStringInfoString(buf, ") DO UPDATE SET ");
	for (i = 0; i < p->nkeys; i++)
		if (state_key_written(p, p->keys[i]))
			appendStringInfo(buf, "k%d = EXCLUDED.k%d, ", i + 1, i + 1);
	appendStringInfoString(buf, "h = EXCLUDED.h WHERE st.h OPERATOR(pg_catalog.<>) EXCLUDED.h");
	deparse_keys_respelled(buf, p, "st", "EXCLUDED");
	appendStringInfoChar(buf, ')');
	appendStringInfo(buf, ", st_del AS (DELETE FROM %s AS st USING gone WHERE ", state_table);
	for (i = 0; i < p->nkeys; i++)
	{
		Oid			type = p->keys[i]->src_type;

		if (i)
			appendStringInfoString(buf, " AND ");
		incetl_deparse_operator_clause(buf, psprintf("st.k%d", i + 1), type,
									   type_equality_operator(type),
									   psprintf("gone.k%d", i + 1), type);
	}
	appendStringInfoChar(buf, ')');
}

/*
 *  OR pg_catalog.record_image_ne(ROW(<a>.k<i>, ...), ROW(<b>.k<i>, ...))
 *
 * Over the hash state's key columns it writes (state_key_written): the
 * key of row a is spelled differently from row b's; nothing when none is
 * written.
 */
static void
deparse_keys_respelled(StringInfo buf, IncetlPipeline *p, const char *a, const char *b)
{
	StringInfoData ak;
	StringInfoData bk;

	initStringInfo(&ak);
	initStringInfo(&bk);
	for (int i = 0; i < p->nkeys; i++)
	{
		if (!state_key_written(p, p->keys[i]))
			continue;
		appendStringInfo(&ak, "%s%s.k%d", ak.len ? ", " : "", a, i + 1);
		appendStringInfo(&bk, "%s%s.k%d", bk.len ? ", " : "", b, i + 1);
	}
	if (ak.len)
	{
		appendStringInfoString(buf, " OR ");
		deparse_distinct(buf, ak.data, bk.data);
	}
}

/*
 * The time of a change (T, SPEC 5) as the write step step can return it,
 * from the row it wrote or the batch's row it joined, or NULL when the
 * step does not know it (then the run's start, or for an insert, see
 * deparse_history_ctes):
 *	- insert: the target's copy of a 'timestamp' pipeline's time watermark;
 *	- update: the batch row's watermark w (cmp.w), or the key's change time
 *	  bt ('trigger', 'logical');
 *	- delete: the flagged row's watermark gw ('flag'), or the key's change
 *	  time bt;
 *	- a compare pass's delete: none.
 */
static char *
history_step_time(IncetlPipeline *p, WriteStep step)
{
	int			i;

	switch (step)
	{
		case STEP_INSERT:
			if (!history_row_time(p))
				return NULL;
			i = column_index(p, p->watermark_column);
			if (i < 0 || !incetl_is_time_type(((IncetlColumn *) list_nth(p->columns, i))->tgt_type))
				return NULL;
			return history_wm_time(((IncetlColumn *) list_nth(p->columns, i))->tgt_type,
								   psprintf("t.%s", quote_identifier(p->watermark_column)));
		case STEP_UPDATE:
			if (history_change_time(p))
				return "cmp.bt";
			if (history_row_time(p))
				return history_wm_time(p->wm_type, "cmp.w");
			return NULL;
		case STEP_DELETE:
			if (history_change_time(p))
				return "gone.bt";
			if (history_delete_time(p))
				return history_wm_time(p->wm_type, "gone.gw");
			return NULL;
		case STEP_COMPARE_DELETE:
			return NULL;
	}
	return NULL;
}

/*
 *	RETURNING 1
 *
 * or, with a history table,
 *
 *	RETURNING t.<col> AS hc<N>, ...[, cmp.hv AS xv][, <T> AS tm]
 *
 * What a write step returns: with a history table, the row it wrote (its
 * key columns, and but for a delete every column of the history table the
 * pipeline moves), named after the columns' positions in p->columns; an
 * update also whether a column not ignored changed (cmp.hv), and each
 * step the change's time when it knows it (history_step_time).  An UPDATE
 * ... FROM and a DELETE ... USING return columns of the row they joined,
 * so nothing has to find the batch's row again.
 */
static void
deparse_returning(StringInfo buf, IncetlPipeline *p, WriteStep step)
{
	ListCell   *lc;
	int			i = 0;
	bool		first = true;
	bool		all = step == STEP_INSERT || step == STEP_UPDATE;
	char	   *time;

	if (p->hist_qname == NULL)
	{
		appendStringInfoString(buf, " RETURNING 1");
		return;
	}
	appendStringInfoString(buf, " RETURNING ");
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		i++;
		if (!c->in_history || (!all && !c->is_key))
			continue;
		appendStringInfo(buf, "%st.%s AS hc%d", first ? "" : ", ",
						 quote_identifier(c->name), i);
		first = false;
	}
	if (step == STEP_UPDATE)
		appendStringInfoString(buf, ", cmp.hv AS xv");
	time = history_step_time(p, step);
	if (time)
		appendStringInfo(buf, ", %s AS tm", time);
}

/*
 * h.<key1> = <rel>.<...> AND ...: the history table's key columns (alias
 * h) against target-typed values of rel, by the target key types'
 * equality; how says which: 'n' rel.<key name>, 'h' rel.hc<N> (a written
 * row), 'w' CAST(rel.k<i> AS <target type>) (a work table row).
 */
static void
deparse_history_key_match(StringInfo buf, IncetlPipeline *p, const char *rel,
						  char how)
{
	for (int i = 0; i < p->nkeys; i++)
	{
		IncetlColumn *k = p->keys[i];
		const char *qk = quote_identifier(k->name);

		if (i)
			appendStringInfoString(buf, " AND ");
		incetl_deparse_operator_clause(buf, psprintf("h.%s", qk), k->tgt_type,
									   type_equality_operator(k->tgt_type),
									   how == 'n' ? psprintf("%s.%s", rel, qk) :
									   how == 'h' ? psprintf("%s.hc%d", rel, key_col(p, i)) :
									   psprintf("CAST(%s.k%d AS %s)", rel, i + 1, k->tgt_typename),
									   k->tgt_type);
	}
}

/*
 * With a history table (SPEC 5), in the statement that writes the target:
 *
 * [, hi AS (SELECT z.* FROM (SELECT u.*, pg_catalog.max(u.tm) OVER
 *			(PARTITION BY u.hc<K1>, ...) AS ktm FROM
 *			(SELECT true AS wr, hc<N>, ..., NULL::timestamptz AS tm FROM ins
 *			 UNION ALL SELECT false, r.c<N>, ..., <T of r> FROM <rows> AS r
 *			 [WHERE r.ins]) AS u) AS z WHERE z.wr)]
 * , hx AS (SELECT true AS oi, false AS od, hc<N>, ..., true AS xv, <T> AS tm
 *			FROM ins | hi
 *			UNION ALL SELECT false, false, hc<N>, ..., xv, tm FROM upd
 *			UNION ALL SELECT false, true, hc<K>, ..., NULL, ..., true, tm FROM del)
 *	 <hw, hu, ho: deparse_history_apply>
 *
 * hx is what the write steps wrote (ins when there are rows, upd when
 * with_upd, del when with_del; a compare pass has only del), each with
 * whether it opens a version (xv: an update of a column not ignored) and
 * the time of its change (tm, history_step_time).  The insert step returns
 * only the target's columns: when T is a column of the batch's row that
 * the target lacks (a 'trigger' or 'logical' change time, a watermark the
 * target does not copy), hi pairs each inserted row with its batch row
 * by key through a window over both, not a join: a batch's joins are
 * index lookups (incetl_begin_batch_settings), which CTEs do not have.
 * <rows> is "cmp", or "d" for a first load.
 */
static void
deparse_history_ctes(StringInfo buf, IncetlPipeline *p, int run_param,
					 const char *rows, bool with_upd, bool with_del)
{
	ListCell   *lc;
	int			i;
	char	   *ins_time = history_step_time(p, STEP_INSERT);
	char	   *row_time = NULL;
	bool		pair = false;

	if (p->hist_qname == NULL)
		return;
	/* 'logical': the layers before and the settle after (history_layers) */
	if (history_layers(p) && rows != NULL)
		return;

	/* an insert's T from its batch row: through hi */
	if (rows != NULL && ins_time == NULL)
	{
		if (history_change_time(p))
			row_time = "r.bt";
		else if (history_row_time(p))
			row_time = history_wm_time(p->wm_type, "r.w");
		pair = row_time != NULL;
	}
	if (pair)
	{
		appendStringInfoString(buf, ", hi AS (SELECT z.* FROM (SELECT u.*, pg_catalog.max(u.tm) OVER (PARTITION BY ");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "%su.hc%d", i ? ", " : "", key_col(p, i));
		appendStringInfoString(buf, ") AS ktm FROM (SELECT true AS wr");
		i = 0;
		foreach(lc, p->columns)
		{
			i++;
			if (((IncetlColumn *) lfirst(lc))->in_history)
				appendStringInfo(buf, ", hc%d", i);
		}
		appendStringInfoString(buf, ", NULL::pg_catalog.timestamptz AS tm FROM ins UNION ALL SELECT false");
		i = 0;
		foreach(lc, p->columns)
		{
			i++;
			if (((IncetlColumn *) lfirst(lc))->in_history)
				appendStringInfo(buf, ", r.c%d", i);
		}
		appendStringInfo(buf, ", %s FROM %s AS r%s) AS u) AS z WHERE z.wr)", row_time, rows,
						 strcmp(rows, "cmp") == 0 ? " WHERE r.ins" : "");
	}

	/* what the write steps wrote */
	appendStringInfoString(buf, ", hx AS (");
	for (int part = 0; part < 3; part++)
	{
		const char *from = part == 0 ? (pair ? "hi" : "ins") : part == 1 ? "upd" : "del";

		if ((part == 0 && rows == NULL) || (part == 1 && !with_upd) ||
			(part == 2 && !with_del))
			continue;
		if (part > 0 && rows != NULL)
			appendStringInfoString(buf, " UNION ALL ");
		appendStringInfo(buf, "SELECT %s AS oi, %s AS od",
						 part == 0 && !history_layers(p) ? "true" : "false",
						 part == 2 ? "true" : "false");
		i = 0;
		foreach(lc, p->columns)
		{
			IncetlColumn *c = lfirst(lc);

			i++;
			if (!c->in_history)
				continue;
			if (part == 2 && !c->is_key)
				appendStringInfo(buf, ", CAST(NULL AS %s) AS hc%d", c->tgt_typename, i);
			else
				appendStringInfo(buf, ", hc%d", i);
		}
		appendStringInfo(buf, ", %s AS xv", part == 1 ? "xv" : "true");
		if (part == 0)
			appendStringInfoString(buf, pair ? ", ktm AS tm" : ins_time ? ", tm" :
								   ", NULL::pg_catalog.timestamptz AS tm");
		else
			appendStringInfoString(buf, history_step_time(p, part == 1 ? STEP_UPDATE :
														  rows == NULL ? STEP_COMPARE_DELETE :
														  STEP_DELETE) ?
								   ", tm" : ", NULL::pg_catalog.timestamptz AS tm");
		appendStringInfo(buf, " FROM %s", from);
	}
	appendStringInfoChar(buf, ')');

	deparse_history_apply(buf, p, run_param, "x.xv");
}

/*
 * A watermark w of type type (timestamptz, timestamp or date) as a
 * timestamptz, a timestamp read as UTC and a date as its midnight UTC,
 * whatever TimeZone says.
 */
static char *
history_wm_time(Oid type, const char *w)
{
	if (type == TIMESTAMPTZOID)
		return pstrdup(w);
	if (type == TIMESTAMPOID)
		return psprintf("pg_catalog.timezone('UTC'::pg_catalog.text, %s)", w);
	return psprintf("pg_catalog.timezone('UTC'::pg_catalog.text, CAST(%s AS pg_catalog.timestamp))", w);
}

/*
 * , hw AS MATERIALIZED (SELECT y.*, CASE WHEN y.lf IS NULL THEN y.ht
 *			 WHEN y.lt IS NULL THEN GREATEST(y.ht, y.lf + '1 microsecond')
 *			 ELSE GREATEST(y.ht, y.lt) END AS nt
 *		FROM (SELECT x.*, lv.valid_from AS lf, lv.valid_to AS lt, lv.ctid AS lc,
 *					 <hv> AS hv, COALESCE(x.tm, $<t0>) AS ht
 *			  FROM hx AS x LEFT JOIN LATERAL (SELECT h.valid_from, h.valid_to, h.ctid[, h.<col>, ...]
 *				FROM <history> AS h WHERE h.<key1> = x.hc<K1> ...
 *				ORDER BY h.valid_from DESC LIMIT 1) AS lv ON true) AS y),
 *	 hu AS (UPDATE <history> AS h
 *			SET valid_to = CASE WHEN <closes> THEN w.nt ELSE h.valid_to END
 *			[, <ignored col> = CASE WHEN <closes> THEN h.<col> ELSE w.hc<N> END
 *			 [, etl_run_id = CASE ... ELSE $<run> END]]
 *			FROM hw AS w WHERE w.lf IS NOT NULL AND w.lt IS NULL
 *			AND (<closes> [OR true]) AND h.ctid = w.lc AND h.<key1> = w.hc<K1> ...
 *			AND h.valid_from = w.lf RETURNING 1),
 *	 ho AS (INSERT INTO <history> AS h (<key1>, ..., <col>, ..., valid_from
 *			[, etl_run_id]) SELECT hc<K1>, ..., hc<N>, ..., nt[, $<run>]
 *			FROM hw AS w WHERE (SELECT pg_catalog.count(*) FROM hu) IS NOT NULL
 *			AND NOT w.od AND (w.lf IS NULL OR w.lt IS NOT NULL
 *			OR w.oi OR w.hv) RETURNING 1)
 *
 * After a CTE hx of (oi, od, hc<N>..., xv, tm): each key's last version
 * (lv, through the unique index on (key, valid_from), which hu then
 * updates by its tid: one index probe per key, not two); hv, the expression
 * that says whether a change closes the current version and opens the
 * next; T (ht), the change's time tm, or the run's start $<run_param + 1>;
 * and nt, T, or just after the current version's start when T is not
 * after it (clock skew), or not before the last version's end for a key
 * that comes back.  <closes> is (w.od OR w.oi OR w.hv): a delete closes
 * the current version; an insert opens one (closing a current version the
 * target did not have); a change hv says is one closes and opens; one that
 * is not writes the ignored columns into the current version, or opens a
 * version for a key that has none (a comeback after a soft delete).  The
 * statement's snapshot sees the current version, so both its end and its
 * successor's start are nt.  hu runs to its end before ho inserts a row
 * (ho's one-time filter counts hu): a closing update then finds the free
 * space of the current version's page unclaimed and stays HOT (no new
 * index entry, no tuple moved to another page), and the new versions go
 * where the free space map says, mostly the table's end; the other way
 * round, the inserts took that space and most closes moved their tuple.
 */
static void
deparse_history_apply(StringInfo buf, IncetlPipeline *p, int run_param,
					  const char *hv)
{
	ListCell   *lc;
	int			i;
	bool		first;
	const char *closes = "(w.od OR w.oi OR w.hv)";
	int			t0 = run_param + 1;

	/* each key's last version, and the change's time */
	appendStringInfoString(buf, ", hw AS MATERIALIZED (SELECT y.*, CASE WHEN y.lf IS NULL THEN y.ht "
						   "WHEN y.lt IS NULL THEN GREATEST(y.ht, y.lf OPERATOR(pg_catalog.+) "
						   "'00:00:00.000001'::pg_catalog.interval) "
						   "ELSE GREATEST(y.ht, y.lt) END AS nt FROM (SELECT x.*, "
						   "lv.valid_from AS lf, lv.valid_to AS lt, lv.ctid AS lc, ");
	appendStringInfo(buf, "%s AS hv, COALESCE(x.tm, $%d) AS ht FROM hx AS x", hv, t0);
	appendStringInfoString(buf, " LEFT JOIN LATERAL (SELECT h.valid_from, h.valid_to, h.ctid");
	if (history_layers(p))
	{
		/* what the current version holds, for history_differs */
		foreach(lc, p->columns)
		{
			IncetlColumn *c = lfirst(lc);

			if (c->in_history && !c->is_key)
				appendStringInfo(buf, ", h.%s", quote_identifier(c->name));
		}
	}
	appendStringInfo(buf, " FROM %s AS h WHERE ", p->hist_qname);
	deparse_history_key_match(buf, p, "x", 'h');
	appendStringInfoString(buf, " ORDER BY h.valid_from DESC LIMIT 1) AS lv ON true) AS y)");

	/* close current versions, or update them in place */
	appendStringInfo(buf, ", hu AS (UPDATE %s AS h SET valid_to = CASE WHEN %s THEN w.nt "
					 "ELSE h.valid_to END", p->hist_qname, closes);
	if (p->hist_in_place)
	{
		i = 0;
		foreach(lc, p->columns)
		{
			IncetlColumn *c = lfirst(lc);
			const char *qc = quote_identifier(c->name);

			i++;
			if (!c->in_history || !c->history_ignored)
				continue;
			appendStringInfo(buf, ", %s = CASE WHEN %s THEN h.%s ELSE w.hc%d END",
							 qc, closes, qc, i);
		}
		if (p->hist_etl_run_id)
			appendStringInfo(buf, ", etl_run_id = CASE WHEN %s THEN h.etl_run_id ELSE $%d END",
							 closes, run_param);
	}
	appendStringInfo(buf, " FROM hw AS w WHERE w.lf IS NOT NULL AND w.lt IS NULL AND (%s%s) AND ",
					 closes, p->hist_in_place ? " OR true" : "");
	/* the row hw found (its tid), if it is still that key's version */
	deparse_catalog_clause(buf, "h.ctid", TIDOID, "=", "w.lc", TIDOID);
	appendStringInfoString(buf, " AND ");
	deparse_history_key_match(buf, p, "w", 'h');
	appendStringInfoString(buf, " AND ");
	deparse_catalog_clause(buf, "h.valid_from", TIMESTAMPTZOID, "=", "w.lf", TIMESTAMPTZOID);
	appendStringInfoString(buf, " RETURNING 1)");

	/* open versions */
	appendStringInfo(buf, ", ho AS (INSERT INTO %s AS h (", p->hist_qname);
	first = true;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		if (!c->in_history)
			continue;
		appendStringInfo(buf, "%s%s", first ? "" : ", ", quote_identifier(c->name));
		first = false;
	}
	appendStringInfoString(buf, ", valid_from");
	if (p->hist_etl_run_id)
		appendStringInfoString(buf, ", etl_run_id");
	appendStringInfoString(buf, ") SELECT ");
	i = 0;
	first = true;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		i++;
		if (!c->in_history)
			continue;
		appendStringInfo(buf, "%shc%d", first ? "" : ", ", i);
		first = false;
	}
	appendStringInfoString(buf, ", nt");
	if (p->hist_etl_run_id)
		appendStringInfo(buf, ", $%d", run_param);
	appendStringInfoString(buf, " FROM hw AS w WHERE (SELECT pg_catalog.count(*) FROM hu) IS NOT NULL "
						   "AND NOT w.od AND (w.lf IS NULL OR w.lt IS NOT NULL OR w.oi OR w.hv) "
						   "RETURNING 1)");
}

/*
 * WITH hx AS (SELECT false AS oi, t.<key1> IS NULL [OR t.<soft> IS TRUE] AS od,
 *					  <hv> AS xv, <T of the target row> | NULL AS tm, h.<key1> AS hc<K1>, ..., t.<col> AS hc<N>, ...
 *				FROM <history> AS h LEFT JOIN <target> AS t ON t.<key1> = h.<key1> ...
 *				WHERE h.valid_to IS NULL AND (<od> OR <hv> [OR <hi>])
 *				UNION ALL SELECT true, false, true, <T> | NULL, t.<key1>, ..., t.<col>, ...
 *				FROM <target> AS t WHERE [t.<soft> IS NOT TRUE AND] NOT EXISTS
 *				(SELECT 1 FROM <history> AS h WHERE h.<key1> = t.<key1> ...
 *				 AND h.valid_to IS NULL))
 *	 <hw, hu, ho of deparse_history_apply>
 *	 SELECT (SELECT pg_catalog.count(*) FROM ho) AS history_versions
 *
 * Reconcile's repair of the current versions, after its keyed pass made
 * the target equal to the source: a current version whose key the target
 * no longer holds (live) closes; one whose columns (not ignored) differ
 * from the target row closes, and the target row opens a new one; one
 * whose ignored columns only differ takes them in place; a live target
 * key without a current version opens one.  <hv> and <hi> compare the
 * history's columns with the target's cast to their types, by the history
 * types' equality.  $1 is the run id, $2 the run's start: T, unless the
 * target holds the time watermark of a 'timestamp' pipeline (as rt).
 */
static void
deparse_history_repair(StringInfo buf, IncetlPipeline *p)
{
	ListCell   *lc;
	int			i;
	StringInfoData hv;
	StringInfoData hi;
	StringInfoData od;
	IncetlColumn *wm = NULL;

	/* a time watermark the target holds too: T of the target's row */
	if (history_row_time(p))
	{
		i = column_index(p, p->watermark_column);
		if (i >= 0)
			wm = list_nth(p->columns, i);
		if (wm && !incetl_is_time_type(wm->tgt_type))
			wm = NULL;
	}

	initStringInfo(&hv);
	initStringInfo(&hi);
	initStringInfo(&od);
	deparse_history_differs(&hv, p, "h", "t", false);
	deparse_history_differs(&hi, p, "h", "t", true);
	appendStringInfo(&od, "(t.%s IS NULL", quote_identifier(p->keys[0]->name));
	if (p->soft_delete)
		appendStringInfo(&od, " OR t.%s IS TRUE", quote_identifier(p->soft_delete_column));
	appendStringInfoChar(&od, ')');

	appendStringInfo(buf, "WITH hx AS (SELECT false AS oi, %s AS od, %s AS xv, %s AS tm", od.data, hv.data,
					 wm ? history_wm_time(wm->tgt_type, psprintf("t.%s", quote_identifier(wm->name))) :
					 "NULL::pg_catalog.timestamptz");
	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		i++;
		if (c->in_history)
			appendStringInfo(buf, ", %s.%s AS hc%d", c->is_key ? "h" : "t",
							 quote_identifier(c->name), i);
	}
	appendStringInfo(buf, " FROM %s AS h LEFT JOIN %s AS t ON ", p->hist_qname, p->tgt_qname);
	deparse_history_key_match(buf, p, "t", 'n');
	appendStringInfo(buf, " WHERE h.valid_to IS NULL AND (%s OR %s%s%s)", od.data, hv.data,
					 p->hist_in_place ? " OR " : "", p->hist_in_place ? hi.data : "");
	appendStringInfo(buf, " UNION ALL SELECT true, false, true, %s",
					 wm ? history_wm_time(wm->tgt_type, psprintf("t.%s", quote_identifier(wm->name))) :
					 "NULL::pg_catalog.timestamptz");
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		if (c->in_history)
			appendStringInfo(buf, ", t.%s", quote_identifier(c->name));
	}
	appendStringInfo(buf, " FROM %s AS t WHERE ", p->tgt_qname);
	if (p->soft_delete)
		appendStringInfo(buf, "t.%s IS NOT TRUE AND ", quote_identifier(p->soft_delete_column));
	appendStringInfo(buf, "NOT EXISTS (SELECT 1 FROM %s AS h WHERE ", p->hist_qname);
	deparse_history_key_match(buf, p, "t", 'n');
	appendStringInfoString(buf, " AND h.valid_to IS NULL))");
	deparse_history_apply(buf, p, 1, "x.xv");
	appendStringInfoString(buf, " SELECT (SELECT pg_catalog.count(*) FROM ho) AS history_versions");
}

char *
incetl_sql_history_repair(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_history_repair(&buf, p);
	return buf.data;
}

/*
 * WITH bk AS MATERIALIZED (SELECT DISTINCT ON (w.rn) w.k1, ... FROM <work table> AS w
 *							WHERE w.rn > $1 AND w.rn <= $2 ORDER BY w.rn),
 *	 hx AS (SELECT false AS oi, <od> AS od, CAST(bk.k1 AS <target type>) AS hc<K1>, ...,
 *			t.<col> AS hc<N>, ..., <differs> AS xv, NULL::timestamptz AS tm
 *			FROM bk LEFT JOIN <target> AS t ON t.<key1> = CAST(bk.k1 AS <target type>) ...
 *			LEFT JOIN LATERAL (SELECT h.valid_from, h.<col>, ... FROM <history> AS h
 *			  WHERE h.<key1> = CAST(bk.k1 AS <target type>) ... AND h.valid_to IS NULL
 *			  ORDER BY h.valid_from DESC LIMIT 1) AS cur ON true
 *			WHERE (<od> AND cur.valid_from IS NOT NULL)
 *			OR (NOT <od> AND (cur.valid_from IS NULL OR <differs> [OR <ignored differ>])))
 *	 <hw, hu, ho of deparse_history_apply>
 *	 SELECT (SELECT pg_catalog.count(*) FROM ho)
 *
 * 'logical' history, after a keyed batch's statement, in its transaction:
 * the layers (deparse_history_layer) recorded what the decoded changes
 * committed; this makes the current versions of the batch's keys (rn in
 * ($1, $2]) what the target now holds, where they are not: a key the
 * target no longer holds (or soft-deleted: <od>) closes its current
 * version (a TRUNCATE, which has no rows to decode); a live target row
 * unlike its current version, or without one (a first run's or a
 * reconcile's keys, a change committed after the changes were read),
 * opens one; ignored columns are written in place.  T is the run's start,
 * $4; $3 is the run id.
 */
static void
deparse_history_settle(StringInfo buf, IncetlPipeline *p)
{
	ListCell   *lc;
	int			i;
	StringInfoData od;
	StringInfoData differs;
	StringInfoData ignored;

	initStringInfo(&od);
	appendStringInfo(&od, "(t.%s IS NULL", quote_identifier(p->keys[0]->name));
	if (p->soft_delete)
		appendStringInfo(&od, " OR t.%s IS TRUE", quote_identifier(p->soft_delete_column));
	appendStringInfoChar(&od, ')');
	initStringInfo(&differs);
	deparse_history_differs(&differs, p, "cur", "t", false);
	initStringInfo(&ignored);
	deparse_history_differs(&ignored, p, "cur", "t", true);

	appendStringInfoString(buf, "WITH bk AS MATERIALIZED (SELECT DISTINCT ON (w.rn) ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%sw.k%d", i ? ", " : "", i + 1);
	appendStringInfo(buf, " FROM %s AS w WHERE ", incetl_work_table_name(p));
	deparse_catalog_clause(buf, "w.rn", INT8OID, ">", "$1", INT8OID);
	appendStringInfoString(buf, " AND ");
	deparse_catalog_clause(buf, "w.rn", INT8OID, "<=", "$2", INT8OID);
	appendStringInfo(buf, " ORDER BY w.rn), hx AS (SELECT false AS oi, %s AS od", od.data);
	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		i++;
		if (!c->in_history)
			continue;
		if (c->is_key)
		{
			for (int k = 0; k < p->nkeys; k++)
				if (p->keys[k] == c)
					appendStringInfo(buf, ", CAST(bk.k%d AS %s) AS hc%d", k + 1,
									 c->tgt_typename, i);
		}
		else
			appendStringInfo(buf, ", t.%s AS hc%d", quote_identifier(c->name), i);
	}
	appendStringInfo(buf, ", %s AS xv, NULL::pg_catalog.timestamptz AS tm FROM bk LEFT JOIN %s AS t ON ",
					 differs.data, p->tgt_qname);
	for (i = 0; i < p->nkeys; i++)
	{
		IncetlColumn *k = p->keys[i];

		if (i)
			appendStringInfoString(buf, " AND ");
		incetl_deparse_operator_clause(buf, psprintf("t.%s", quote_identifier(k->name)),
									   k->tgt_type, type_equality_operator(k->tgt_type),
									   psprintf("CAST(bk.k%d AS %s)", i + 1, k->tgt_typename),
									   k->tgt_type);
	}
	appendStringInfoString(buf, " LEFT JOIN LATERAL (SELECT h.valid_from");
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		if (c->in_history && !c->is_key)
			appendStringInfo(buf, ", h.%s", quote_identifier(c->name));
	}
	appendStringInfo(buf, " FROM %s AS h WHERE ", p->hist_qname);
	deparse_history_key_match(buf, p, "bk", 'w');
	appendStringInfo(buf, " AND h.valid_to IS NULL ORDER BY h.valid_from DESC LIMIT 1) AS cur ON true "
					 "WHERE (%s AND cur.valid_from IS NOT NULL) OR (NOT %s AND "
					 "(cur.valid_from IS NULL OR %s%s%s)))",
					 od.data, od.data, differs.data,
					 p->hist_in_place ? " OR " : "", p->hist_in_place ? ignored.data : "");
	deparse_history_apply(buf, p, 3, "x.xv");
	appendStringInfoString(buf, " SELECT (SELECT pg_catalog.count(*) FROM ho)");
}

char *
incetl_sql_history_settle(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_history_settle(&buf, p);
	return buf.data;
}

/*
 * SELECT NOT EXISTS (SELECT 1 FROM <history>)
 *
 * Whether a history table holds no version (a run then repairs it at its
 * end, deparse_history_repair).
 */
static void
deparse_history_empty(StringInfo buf, IncetlPipeline *p)
{
	appendStringInfo(buf, "SELECT NOT EXISTS (SELECT 1 FROM %s)", p->hist_qname);
}

char *
incetl_sql_history_empty(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_history_empty(&buf, p);
	return buf.data;
}

/*
 * Whether a history pipeline records every committed version ('logical':
 * the work table holds each decoded change, deparse_history_layer).
 */
static bool
history_layers(IncetlPipeline *p)
{
	return p->hist_qname != NULL && strcmp(p->strategy_name, "logical") == 0;
}

bool
incetl_history_layers(IncetlPipeline *p)
{
	return history_layers(p);
}

/*
 * (false OR <cur>.<col> distinct from CAST(<t>.<col> AS <history type>) ...)
 *
 * Whether the row t (target types) differs from the version cur in a
 * column of the history table that is not ignored (or, when ignored, in an
 * ignored one), by the history types' equality.
 */
static void
deparse_history_differs(StringInfo buf, IncetlPipeline *p, const char *cur,
						const char *t, bool ignored)
{
	ListCell   *lc;

	appendStringInfoString(buf, "(false");
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);
		const char *qc = quote_identifier(c->name);

		if (!c->in_history || c->is_key || c->history_ignored != ignored)
			continue;
		appendStringInfoString(buf, " OR ");
		deparse_distinct(buf, psprintf("%s.%s", cur, qc),
						 psprintf("CAST(%s.%s AS %s)", t, qc, c->hist_typename));
	}
	appendStringInfoChar(buf, ')');
}

/*
 * CAST(CAST(CAST((hl.cv ->> '<col>') AS <source type>) AS <target type>)
 *		AS <history type>)
 *
 * A decoded change's value of column c (the text of its source type, as
 * the run casts a decoded key), as the target would hold it, in the history
 * table's type.
 */
static char *
history_layer_value(IncetlColumn *c)
{
	StringInfoData v;

	initStringInfo(&v);
	appendStringInfoString(&v, "CAST(CAST(CAST((");
	deparse_catalog_clause(&v, "hl.cv", JSONBOID, "->>", quote_literal_cstr(c->name),
						   UNKNOWNOID);
	appendStringInfo(&v, ") AS %s) AS %s) AS %s)", c->src_typename, c->tgt_typename,
					 c->hist_typename);
	return v.data;
}

/*
 * WITH hl AS MATERIALIZED (SELECT z.* FROM
 *		(SELECT v.*, pg_catalog.row_number() OVER (PARTITION BY v.rn ORDER BY v.cl) AS j
 *		 FROM (SELECT DISTINCT ON (w.rn, w.cl) w.rn, w.cl, w.ct,
 *			   (SELECT jsonb_object_agg(e.key, e.value ORDER BY w2.cs)
 *				FROM <work table> AS w2, jsonb_each(w2.cv) AS e WHERE w2.rn = w.rn
 *				AND w2.cl = w.cl AND w2.cs <= w.cs) AS cv, w.cop, w.k1, ...
 *			   FROM <work table> AS w WHERE w.rn > $1 AND w.rn <= $2
 *			   AND w.cl IS NOT NULL ORDER BY w.rn, w.cl, w.cs DESC) AS v) AS z
 *		WHERE z.j = $5),
 *	 hx AS (SELECT false AS oi, hl.cop = 'D' AS od, hl.ct AS tm,
 *			CAST(hl.k1 AS <target type>) AS hc<K1>, ...,
 *			CASE WHEN hl.cv ? '<col>' THEN CAST(CAST(CAST(hl.cv ->> '<col>'
 *				 AS <source type>) AS <target type>) AS <history type>)
 *			ELSE cur.<col> END AS hc<N>, ..., <differs> AS xv
 *			FROM hl LEFT JOIN LATERAL (SELECT h.<col>, ... FROM <history> AS h
 *			WHERE h.<key1> = CAST(hl.k1 AS <target type>) ... AND h.valid_to IS NULL
 *			ORDER BY h.valid_from DESC LIMIT 1) AS cur ON true)
 *	 <hw, hu, ho of deparse_history_apply>
 *	 SELECT (SELECT pg_catalog.count(*) FROM hl), (SELECT pg_catalog.count(*) FROM ho)
 *
 * 'logical' history (SPEC 5: every committed version, in commit order, at
 * its commit time): layer $5 of the keys (rn in ($1, $2]) of a batch, the
 * $5-th transaction that changed each of them, its last change of the key
 * (one version per transaction per key), with the values of the
 * transaction's earlier changes of the key where the last one has none
 * (an UPDATE's row leaves out a TOASTed value it did not change, even one
 * that an INSERT of the same transaction wrote).  A delete closes the current
 * version; an insert or update opens one where it differs from the current
 * version in a column that is not ignored, else writes the ignored columns
 * in place.  A value the change did not carry (an unchanged TOASTed one) is
 * the current version's; the new key's row of a key change has the old
 * key's by now (deparse_history_key_changes, right after the work table
 * was filled).  The engine runs layers 1, 2, ... before the
 * batch's statement, in its transaction, until one finds no key.  $3 is
 * the run id, $4 the run's start.  Returns the layer's keys and the
 * versions it opened.
 */
static void
deparse_history_layer(StringInfo buf, IncetlPipeline *p)
{
	ListCell   *lc;
	int			i;

	appendStringInfoString(buf, "WITH hl AS MATERIALIZED (SELECT z.* FROM (SELECT v.*, "
						   "pg_catalog.row_number() OVER (PARTITION BY v.rn ORDER BY v.cl) AS j "
						   "FROM (SELECT DISTINCT ON (w.rn, w.cl) w.rn, w.cl, w.ct, ");
	/* the values of the transaction's changes of the key, the last one's first */
	appendStringInfo(buf, "(SELECT pg_catalog.jsonb_object_agg(e.key, e.value ORDER BY w2.cs) "
					 "FROM %s AS w2, pg_catalog.jsonb_each(w2.cv) AS e WHERE ",
					 incetl_work_table_name(p));
	deparse_catalog_clause(buf, "w2.rn", INT8OID, "=", "w.rn", INT8OID);
	appendStringInfoString(buf, " AND ");
	deparse_catalog_clause(buf, "w2.cl", LSNOID, "=", "w.cl", LSNOID);
	appendStringInfoString(buf, " AND ");
	deparse_catalog_clause(buf, "w2.cs", INT8OID, "<=", "w.cs", INT8OID);
	appendStringInfoString(buf, ") AS cv, w.cop");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, ", w.k%d", i + 1);
	appendStringInfo(buf, " FROM %s AS w WHERE ", incetl_work_table_name(p));
	deparse_catalog_clause(buf, "w.rn", INT8OID, ">", "$1", INT8OID);
	appendStringInfoString(buf, " AND ");
	deparse_catalog_clause(buf, "w.rn", INT8OID, "<=", "$2", INT8OID);
	appendStringInfoString(buf, " AND w.cl IS NOT NULL ORDER BY w.rn, w.cl, w.cs DESC) AS v) AS z WHERE ");
	deparse_catalog_clause(buf, "z.j", INT8OID, "=", "$5", INT8OID);
	appendStringInfoString(buf, "), hx AS (SELECT false AS oi, ");
	deparse_catalog_clause(buf, "hl.cop", CHAROID, "=", "'D'", UNKNOWNOID);
	appendStringInfoString(buf, " AS od, hl.ct AS tm");
	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);
		const char *lit = quote_literal_cstr(c->name);
		StringInfoData has;

		i++;
		if (!c->in_history)
			continue;
		if (c->is_key)
		{
			for (int k = 0; k < p->nkeys; k++)
				if (p->keys[k] == c)
					appendStringInfo(buf, ", CAST(hl.k%d AS %s) AS hc%d", k + 1,
									 c->tgt_typename, i);
			continue;
		}
		initStringInfo(&has);
		deparse_catalog_clause(&has, "hl.cv", JSONBOID, "?", lit, UNKNOWNOID);
		appendStringInfo(buf, ", CASE WHEN %s THEN %s ELSE cur.%s END AS hc%d",
						 has.data, history_layer_value(c), quote_identifier(c->name), i);
	}
	appendStringInfoString(buf, ", ");
	{
		/* differs from the current version: over hx's own values */
		StringInfoData vals;

		initStringInfo(&vals);
		i = 0;
		foreach(lc, p->columns)
		{
			IncetlColumn *c = lfirst(lc);
			const char *lit = quote_literal_cstr(c->name);
			StringInfoData has;

			i++;
			if (!c->in_history || c->is_key || c->history_ignored)
				continue;
			initStringInfo(&has);
			deparse_catalog_clause(&has, "hl.cv", JSONBOID, "?", lit, UNKNOWNOID);
			appendStringInfo(&vals, " OR (%s AND ", has.data);
			deparse_distinct(&vals, psprintf("cur.%s", quote_identifier(c->name)),
							 history_layer_value(c));
			appendStringInfoChar(&vals, ')');
		}
		appendStringInfo(buf, "(false%s) AS xv", vals.data);
	}
	appendStringInfoString(buf, " FROM hl LEFT JOIN LATERAL (SELECT h.valid_from");
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		if (c->in_history && !c->is_key)
			appendStringInfo(buf, ", h.%s", quote_identifier(c->name));
	}
	appendStringInfo(buf, " FROM %s AS h WHERE ", p->hist_qname);
	deparse_history_key_match(buf, p, "hl", 'w');
	appendStringInfoString(buf, " AND h.valid_to IS NULL ORDER BY h.valid_from DESC LIMIT 1) AS cur ON true)");
	deparse_history_apply(buf, p, 3, "x.xv");
	appendStringInfoString(buf, " SELECT (SELECT pg_catalog.count(*) FROM hl), "
						   "(SELECT pg_catalog.count(*) FROM ho)");
}

char *
incetl_sql_history_layer(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_history_layer(&buf, p);
	return buf.data;
}

/*
 * WITH kc AS MATERIALIZED (SELECT u.rn AS urn, u.cs AS ucs, d.rn AS orn, d.cs AS dcs,
 *			d.ct AS dct, d.k1, ...
 *			FROM <work table> AS u JOIN <work table> AS d ON d.cs = u.co AND d.cl = u.cl
 *			WHERE u.co IS NOT NULL),
 *	 r AS MATERIALIZED (SELECT k.* FROM kc AS k WHERE NOT EXISTS
 *			(SELECT 1 FROM kc AS b WHERE b.urn = k.orn AND b.ucs < k.dcs)),
 *	 mv AS (SELECT r.ucs, jsonb_object_agg(e.key, e.value ORDER BY w.cs) AS v
 *			FROM r JOIN <work table> AS w ON w.rn = r.orn AND w.cs < r.dcs,
 *			jsonb_each(w.cv) AS e GROUP BY r.ucs),
 *	 hb AS (SELECT r.ucs, lv.v FROM r JOIN LATERAL (SELECT jsonb_object(ARRAY['<col>', ...],
 *			ARRAY[CAST(h.<col> AS text), ...]) AS v FROM <history> AS h
 *			WHERE h.<key1> = CAST(r.k1 AS <target type>) ...
 *			ORDER BY h.valid_from < r.dct DESC, h.valid_from DESC LIMIT 1) AS lv ON true)
 * UPDATE <work table> AS u SET cv = COALESCE(hb.v, '{}') || COALESCE(mv.v, '{}') || u.cv,
 *		co = NULL FROM r LEFT JOIN mv ON mv.ucs = r.ucs LEFT JOIN hb ON hb.ucs = r.ucs
 *		WHERE u.cs = r.ucs AND u.co IS NOT NULL
 *
 * 'logical' history: the values a key change's new row left out.  An
 * UPDATE that changes the key (old key K to new key N) is decoded as a 'D'
 * of K and, right after it, a 'U' of N whose row leaves out every TOASTed
 * value the update did not change (decode.c); its co is the cs of that
 * 'D'.  The value it left out is K's just before the 'D', which is the
 * last of:
 *	 1. the values of K's version before this run's changes: the latest
 *		version of K in the history table that started before the 'D''s
 *		commit (current, or closed by the last run's settle when this
 *		change committed after that run read its changes), else its latest
 *		(one nudged past that time by a microsecond); this runs right
 *		after the fill, before the run writes any history, and only a run
 *		that failed after some batches committed leaves later versions
 *		(their changes are read again: in the work table);
 *	 2. the values of K's changes in the work table before the 'D' (cs is
 *		the order of the whole stream, commit order), each overriding the
 *		earlier (an INSERT carries every value, an UPDATE the values it did
 *		not leave out, a 'D' none);
 *	 3. the 'U''s own values.
 * An UPDATE of K that left a value out left it as 2. or 1. has it, so the
 * last one that carries it is right.  But one of K's changes before the
 * 'D' can itself be the new-key 'U' of an earlier key change (J to K,
 * also leaving the value out): that one must be completed first, so a
 * pass completes only the key changes none of whose old key's earlier
 * changes is an uncompleted key change (r).  The earliest uncompleted one
 * in the stream always qualifies (what could hold it back is earlier
 * still), so the run repeats the statement until it completes none
 * (complete_key_changes in strategy_logical.c): as many passes as the
 * longest chain of key changes, each reading the work table (a key
 * changed twice in one transaction, A to B to C, takes two; A to B and
 * back, two; most runs, whose key changes are not chained, one, and a
 * run without key changes none).  The values go into cv as the decoded
 * row would have had them,
 * as text: history values are written with the settings pinned as
 * decode.c pins them, and read back by the layers as a decoded value is
 * (history_layer_value).  A 'U' whose 'D' the work table lacks (a first
 * run skips the decoded changes of the keys its comparison found) is left
 * as it is: the layer then takes the new key's current version, as for
 * any value a change did not carry.  This is a key's history, not a row's:
 * where two rows hold one key within a transaction (keys swapped under a
 * deferred unique constraint) the history is the key's, as the layers
 * record it, and the value is the key's too.
 */
static void
deparse_history_key_changes(StringInfo buf, IncetlPipeline *p)
{
	const char *work = incetl_work_table_name(p);
	ListCell   *lc;
	int			i;
	bool		any = false;
	StringInfoData names;
	StringInfoData vals;

	appendStringInfoString(buf, "WITH kc AS MATERIALIZED (SELECT u.rn AS urn, u.cs AS ucs, "
						   "d.rn AS orn, d.cs AS dcs, d.ct AS dct");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, ", d.k%d", i + 1);
	appendStringInfo(buf, " FROM %s AS u JOIN %s AS d ON ", work, work);
	deparse_catalog_clause(buf, "d.cs", INT8OID, "=", "u.co", INT8OID);
	appendStringInfoString(buf, " AND ");
	deparse_catalog_clause(buf, "d.cl", LSNOID, "=", "u.cl", LSNOID);
	appendStringInfoString(buf, " WHERE u.co IS NOT NULL), "
						   "r AS MATERIALIZED (SELECT k.* FROM kc AS k WHERE NOT EXISTS "
						   "(SELECT 1 FROM kc AS b WHERE ");
	deparse_catalog_clause(buf, "b.urn", INT8OID, "=", "k.orn", INT8OID);
	appendStringInfoString(buf, " AND ");
	deparse_catalog_clause(buf, "b.ucs", INT8OID, "<", "k.dcs", INT8OID);
	appendStringInfo(buf, ")), mv AS (SELECT r.ucs, pg_catalog.jsonb_object_agg(e.key, e.value "
					 "ORDER BY w.cs) AS v FROM r JOIN %s AS w ON ", work);
	deparse_catalog_clause(buf, "w.rn", INT8OID, "=", "r.orn", INT8OID);
	appendStringInfoString(buf, " AND ");
	deparse_catalog_clause(buf, "w.cs", INT8OID, "<", "r.dcs", INT8OID);
	appendStringInfoString(buf, ", pg_catalog.jsonb_each(w.cv) AS e GROUP BY r.ucs)");

	/* the old key's version before the change, its columns as decoded text */
	initStringInfo(&names);
	initStringInfo(&vals);
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		if (!c->in_history || c->is_key)
			continue;
		appendStringInfo(&names, "%s%s", any ? ", " : "", quote_literal_cstr(c->name));
		appendStringInfo(&vals, "%sCAST(h.%s AS pg_catalog.text)", any ? ", " : "",
						 quote_identifier(c->name));
		any = true;
	}
	if (any)
	{
		appendStringInfo(buf, ", hb AS (SELECT r.ucs, lv.v FROM r JOIN LATERAL "
						 "(SELECT pg_catalog.jsonb_object(ARRAY[%s]::pg_catalog.text[], "
						 "ARRAY[%s]::pg_catalog.text[]) AS v FROM %s AS h WHERE ",
						 names.data, vals.data, p->hist_qname);
		deparse_history_key_match(buf, p, "r", 'w');
		appendStringInfoString(buf, " ORDER BY ");
		deparse_catalog_clause(buf, "h.valid_from", TIMESTAMPTZOID, "<", "r.dct", TIMESTAMPTZOID);
		appendStringInfoString(buf, " DESC, h.valid_from DESC LIMIT 1) AS lv ON true)");
	}
	else
		appendStringInfoString(buf, ", hb AS (SELECT NULL::pg_catalog.int8 AS ucs, "
							   "NULL::pg_catalog.jsonb AS v WHERE false)");

	appendStringInfo(buf, " UPDATE %s AS u SET cv = COALESCE(hb.v, '{}'::pg_catalog.jsonb) "
					 "OPERATOR(pg_catalog.||) COALESCE(mv.v, '{}'::pg_catalog.jsonb) "
					 "OPERATOR(pg_catalog.||) u.cv, co = NULL FROM r LEFT JOIN mv ON ", work);
	deparse_catalog_clause(buf, "mv.ucs", INT8OID, "=", "r.ucs", INT8OID);
	appendStringInfoString(buf, " LEFT JOIN hb ON ");
	deparse_catalog_clause(buf, "hb.ucs", INT8OID, "=", "r.ucs", INT8OID);
	appendStringInfoString(buf, " WHERE ");
	deparse_catalog_clause(buf, "u.cs", INT8OID, "=", "r.ucs", INT8OID);
	appendStringInfoString(buf, " AND u.co IS NOT NULL");
}

char *
incetl_sql_history_key_changes(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_history_key_changes(&buf, p);
	return buf.data;
}

/* , (SELECT pg_catalog.count(*) FROM ho) AS history_versions: versions opened */
static void
deparse_history_count(StringInfo buf, IncetlPipeline *p, bool batch)
{
	if (p->hist_qname && !(batch && history_layers(p)))
		appendStringInfoString(buf, ", (SELECT pg_catalog.count(*) FROM ho) AS history_versions");
}

/*
 * , cmp AS MATERIALIZED (...), ins AS (...), upd AS (...),
 *	 del AS (... | SELECT 1 WHERE false)[, st_up AS (...), st_del AS (...)]
 *
 * The apply tail shared by every kind of batch.  Expects CTEs "src" (see
 * deparse_src_columns), "d" (the rows to upsert, one per key) and, when
 * with_gone, "gone" (target-typed keys g1..gn to delete, source-typed
 * k1..kn).  $<run_param> is the run id; with a history table,
 * $<run_param + 1> is the run's start (deparse_history_ctes follows).
 * citus_rows: see deparse_citus_upsert_ctes.
 */
static void
deparse_apply_ctes(StringInfo buf, IncetlPipeline *p, int run_param,
				   bool with_gone, const char *state_table,
				   const char *citus_rows)
{
	bool		with_upd = true;

	/* into Citus, no cmp (see there); history versions need cmp */
	if (p->tgt_citus != '\0' && p->hist_qname == NULL)
		deparse_citus_upsert_ctes(buf, p, run_param, citus_rows);
	else
	{
		deparse_compare_cte(buf, p);
		deparse_insert_cte(buf, p, run_param, "cmp WHERE ins");
		with_upd = deparse_update_cte(buf, p, run_param);
	}
	if (with_gone)
		deparse_delete_cte(buf, p, run_param, false);
	else
		appendStringInfoString(buf, ", del AS (SELECT 1 WHERE false)");
	if (state_table)
		deparse_hash_state_ctes(buf, p, state_table);
	deparse_history_ctes(buf, p, run_param, "cmp", with_upd, with_gone);
}

/*
 *	SELECT CASE WHEN ins THEN 'insert' ELSE 'update' END, <key object> FROM cmp
 *	[UNION ALL SELECT 'delete', <key object of gone> FROM gone
 *	 WHERE EXISTS (SELECT 1 FROM <target> AS t WHERE t.<key1> = gone.g1 AND ...
 *				   AND t.<soft> IS NOT TRUE | AND true)
 *	 | FROM gone JOIN <target> AS t ON t.<key1> = gone.g1 ...
 *	   [AND t.<soft> IS NOT TRUE]	-- a Citus target]
 *
 * A preview's rows, after the CTEs up to cmp: what cmp would insert or
 * update and, with_gone, the keys of "gone" that the target holds (and has
 * not soft-deleted).
 */
static void
deparse_preview_select(StringInfo buf, IncetlPipeline *p, bool with_gone)
{
	appendStringInfoString(buf, " SELECT CASE WHEN ins THEN 'insert' ELSE 'update' END, ");
	deparse_key_object(buf, p, "", false);
	appendStringInfoString(buf, " FROM cmp");
	if (!with_gone)
		return;
	appendStringInfoString(buf, " UNION ALL SELECT 'delete', ");
	deparse_key_object(buf, p, "gone.", true);
	if (p->tgt_citus != '\0')
	{
		/*
		 * Citus runs no correlated subquery beside a CTE: a join, which it
		 * sends to the shards (the target's key is unique: ON CONFLICT
		 * needs it).
		 */
		appendStringInfo(buf, " FROM gone JOIN %s AS t ON ", p->tgt_qname);
		deparse_target_key_match(buf, p, "gone", true);
		if (p->soft_delete)
			appendStringInfo(buf, " AND t.%s IS NOT TRUE", quote_identifier(p->soft_delete_column));
		return;
	}
	appendStringInfo(buf, " FROM gone WHERE EXISTS (SELECT 1 FROM %s AS t WHERE ",
					 p->tgt_qname);
	deparse_target_key_match(buf, p, "gone", true);
	if (p->soft_delete)
		appendStringInfo(buf, " AND t.%s IS NOT TRUE)", quote_identifier(p->soft_delete_column));
	else
		appendStringInfoString(buf, " AND true)");
}

/*
 *	SELECT (SELECT pg_catalog.count(*) FROM <read_from>),
 *		   (SELECT pg_catalog.count(*) FROM ins),
 *		   (SELECT pg_catalog.count(*) FROM upd),
 *		   (SELECT pg_catalog.count(*) FROM del)
 *
 * What a batch reports: rows (or keys) read, inserted, updated, deleted.
 */
static void
deparse_counts(StringInfo buf, const char *read_from)
{
	appendStringInfo(buf, " SELECT (SELECT pg_catalog.count(*) FROM %s), "
					 "(SELECT pg_catalog.count(*) FROM ins), "
					 "(SELECT pg_catalog.count(*) FROM upd), "
					 "(SELECT pg_catalog.count(*) FROM del)", read_from);
}

/*
 * WITH gone AS MATERIALIZED (SELECT t.<key1> AS g1, ... FROM <target> AS t
 *							  WHERE [t.<soft> IS NOT TRUE AND ]NOT EXISTS
 *							  (SELECT 1 FROM <source> AS s
 *							   WHERE t.<key1> = CAST(s.<key1> AS <type>) ...)
 *							  [LIMIT <batch_size>])
 *
 * delete_detection 'compare': the target keys that the source no longer
 * has (an anti-join reading keys only), up to batch_size of them for a
 * batch, all of them for a preview.
 */
static void
deparse_compare_gone(StringInfo buf, IncetlPipeline *p, bool preview)
{
	int			i;

	/*
	 * Into a Citus table, the source's keys go first into a CTE of their
	 * own, which Citus sends to the shards as an intermediate result: it
	 * joins no distributed table with a local one directly.
	 *
	 * WITH sk AS MATERIALIZED (SELECT CAST(s.<key1> AS <type>) AS k1, ...
	 *							FROM <source> AS s), gone AS (...
	 *	 NOT EXISTS (SELECT 1 FROM sk AS s WHERE t.<key1> = s.k1 ...) ...)
	 */
	bool		citus = p->tgt_citus != '\0';

	if (citus)
	{
		appendStringInfoString(buf, "WITH sk AS MATERIALIZED (SELECT ");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "%sCAST(s.%s AS %s) AS k%d", i ? ", " : "",
							 quote_identifier(p->keys[i]->name),
							 p->keys[i]->tgt_typename, i + 1);
		appendStringInfo(buf, " FROM %s AS s), gone AS MATERIALIZED (SELECT ", p->src_qname);
	}
	else
		appendStringInfoString(buf, "WITH gone AS MATERIALIZED (SELECT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%st.%s AS g%d", i ? ", " : "",
						 quote_identifier(p->keys[i]->name), i + 1);
	appendStringInfo(buf, " FROM %s AS t WHERE ", p->tgt_qname);
	if (p->soft_delete)
		appendStringInfo(buf, "t.%s IS NOT TRUE AND ",
						 quote_identifier(p->soft_delete_column));
	appendStringInfo(buf, "NOT EXISTS (SELECT 1 FROM %s AS s WHERE ",
					 citus ? "sk" : p->src_qname);
	for (i = 0; i < p->nkeys; i++)
	{
		IncetlColumn *k = p->keys[i];
		const char *qk = quote_identifier(k->name);

		if (i)
			appendStringInfoString(buf, " AND ");
		incetl_deparse_operator_clause(buf, psprintf("t.%s", qk), k->tgt_type,
									   type_equality_operator(k->tgt_type),
									   citus ? psprintf("s.k%d", i + 1) :
									   psprintf("CAST(s.%s AS %s)", qk, k->tgt_typename),
									   k->tgt_type);
	}
	appendStringInfoChar(buf, ')');
	if (!preview)
		appendStringInfo(buf, " LIMIT %d", p->batch_size);
	appendStringInfoChar(buf, ')');
}


/*****************************************************************************
 *		Statements
 *****************************************************************************/

/*
 * <batch rows: WITH src ..., d, [gone]>
 *	 , cmp ..., ins ..., upd ..., del ...
 *	 SELECT <counts>, lst.w, lst.k1, ... FROM (SELECT) AS one LEFT JOIN lst ON true
 *
 * or, for a preview,
 *
 * <batch rows>, cmp ... <preview select>
 *
 * The statement of one batch of a timestamp pass (write) or of a preview.
 * Parameters: lower bound ($1, or $1..$n+1 for a cursor), upper bound,
 * then the run id, then, with a history table, the run's start.  argtypes
 * must hold INCETL_MAX_PARAMS(p) entries.  A first load with a history
 * table is not the plain INSERT: its versions open in the same statement.
 */
static void
deparse_batch_sql(StringInfo buf, IncetlPipeline *p, IncetlBatchShape *shape,
				  int *nargs, Oid *argtypes)
{
	int			np = 0;
	bool		flag = p->delete_detection == DELETE_DETECT_FLAG;
	char	   *citus_rows = NULL;

	if (shape->fast_load && shape->edge && p->hist_qname == NULL)
	{
		/*
		 * INSERT INTO <target> AS t (...) SELECT c1, ... FROM
		 *	 (<source columns> FROM <source> AS s WHERE <batch range>) AS d
		 *
		 * The first load, between two known rows: nothing to order, count
		 * (SPI reports the rows inserted) or remember, so the source is read
		 * in its physical order and the rows go straight to the target.
		 */
		StringInfoData from;

		Assert(!flag && !shape->preview);
		initStringInfo(&from);
		appendStringInfoChar(&from, '(');
		deparse_src_columns(&from, p, true, false, false);
		appendStringInfo(&from, " FROM %s AS s WHERE ", p->src_qname);
		deparse_batch_where(&from, p, shape, &np, argtypes);
		appendStringInfoString(&from, ") AS d");
		argtypes[np++] = INT8OID;
		deparse_insert_into(buf, p, np, from.data);
		*nargs = np;
		return;
	}

	/* a local source into a Citus target: read the rows again there */
	deparse_batch_rows(buf, p, shape, &np, argtypes,
					   p->tgt_citus != '\0' && p->src_citus == '\0' && !shape->preview ?
					   &citus_rows : NULL);

	if (shape->preview)
	{
		deparse_compare_cte(buf, p);
		deparse_preview_select(buf, p, flag);
		*nargs = np;
		return;
	}

	argtypes[np++] = INT8OID;
	if (incetl_range_batch_merges(p, shape))
	{
		deparse_merge_apply(buf, p, np, false);
		*nargs = np;
		return;
	}
	if (p->hist_qname)
		argtypes[np++] = TIMESTAMPTZOID;
	if (shape->fast_load)
	{
		/*
		 * The first load into an empty target: nothing to compare with, so a
		 * plain INSERT.  A key met twice in one run (its row moved up while
		 * the run read) violates the key's unique index; the caller then
		 * redoes the batch the usual way.
		 */
		int			run_param = p->hist_qname ? np - 1 : np;

		deparse_insert_cte(buf, p, run_param, "d");
		appendStringInfoString(buf, ", upd AS (SELECT 1 WHERE false), "
							   "del AS (SELECT 1 WHERE false)");
		deparse_history_ctes(buf, p, run_param, "d", false, false);
	}
	else
		deparse_apply_ctes(buf, p, p->hist_qname ? np - 1 : np, flag, NULL, citus_rows);

	if (shape->stage_fill && shape->edge)
	{
		/* the rows read: those the stage's copy wrote, the last parameter */
		argtypes[np++] = INT8OID;
		appendStringInfo(buf, " SELECT $%d::pg_catalog.int8, "
						 "(SELECT pg_catalog.count(*) FROM ins), "
						 "(SELECT pg_catalog.count(*) FROM upd), "
						 "(SELECT pg_catalog.count(*) FROM del)", np);
	}
	else
		deparse_counts(buf, "src");
	if (!shape->edge)
	{
		appendStringInfoString(buf, ", lst.w");
		for (int i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, ", lst.k%d", i + 1);
	}
	deparse_history_count(buf, p, true);
	if (!shape->edge)
		appendStringInfoString(buf, " FROM (SELECT) AS one LEFT JOIN lst ON true");

	*nargs = np;
}

/*
 * Whether a batch of a timestamp pass is one MERGE: when it reads the rows
 * between two known rows (shape->edge: nothing to return but counts) of a
 * table with a unique key (one row per key: the rows the MERGE joins are
 * the rows read, which is how the engine counts them), without delete
 * flags, and where keyed batches would be (incetl_keyed_batch_merges).
 */
bool
incetl_range_batch_merges(IncetlPipeline *p, IncetlBatchShape *shape)
{
	return shape->edge && !shape->preview && !shape->fast_load &&
		p->delete_detection != DELETE_DETECT_FLAG && p->src_key_unique &&
		(p->src_relkind == RELKIND_RELATION ||
		 p->src_relkind == RELKIND_PARTITIONED_TABLE) &&
		incetl_keyed_batch_merges(p, false);
}

char *
incetl_sql_batch(IncetlPipeline *p, IncetlBatchShape *shape,
				 int *nargs, Oid *argtypes)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_batch_sql(&buf, p, shape, nargs, argtypes);
	return buf.data;
}

/*
 * SELECT 1 FROM <source> AS s WHERE <the batch's range> LIMIT 1
 *
 * Whether a range batch would read anything, with the batch's parameters
 * but the run id: a run with nothing above its cursor plans this instead of
 * the batch statement, which costs more to plan than the probe to run.
 */
char *
incetl_sql_range_probe(IncetlPipeline *p, IncetlBatchShape *shape,
					   int *nargs, Oid *argtypes)
{
	StringInfoData buf;
	int			np = 0;

	initStringInfo(&buf);
	appendStringInfo(&buf, "SELECT 1 FROM %s AS s WHERE ", p->src_qname);
	deparse_batch_where(&buf, p, shape, &np, argtypes);
	appendStringInfoString(&buf, " LIMIT 1");
	*nargs = np;
	return buf.data;
}

/*
 * (SELECT true, s.<wm>, s.<key1>, ... FROM <source> AS s WHERE <batch range>
 *	ORDER BY s.<wm>, s.<key1>, ... OFFSET <batch_size - 1> LIMIT 1)
 * UNION ALL
 * (SELECT false, s.<wm>, s.<key1>, ... FROM <source> AS s WHERE <batch range>
 *	ORDER BY s.<wm> DESC, s.<key1> DESC, ... LIMIT 1)
 * LIMIT 1
 *
 * The edge probe of a range batch: the (watermark, key) of its last row,
 * true when the range holds batch_size rows or more (its batch_size-th
 * row; the batch is (lower, edge], ties with the edge included), false for
 * the last of fewer (the second probe runs only when the first finds
 * nothing); no row when the range is empty.  Both read only the index on
 * (watermark, key), which the batch then uses to read its rows in their
 * physical order instead of sorting or walking them one by one.  Both
 * probes take the same parameters, the batch's bounds.
 */
static void
deparse_range_edge(StringInfo buf, IncetlPipeline *p, IncetlBatchShape *shape,
				   int *nargs, Oid *argtypes)
{
	for (int pass = 0; pass < 2; pass++)
	{
		int			np = 0;

		appendStringInfo(buf, "%s(SELECT %s, s.%s", pass ? " UNION ALL " : "",
						 pass ? "false" : "true", quote_identifier(p->watermark_column));
		for (int i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, ", s.%s", quote_identifier(p->keys[i]->name));
		appendStringInfo(buf, " FROM %s AS s WHERE ", p->src_qname);
		deparse_batch_where(buf, p, shape, &np, argtypes);
		appendStringInfo(buf, " ORDER BY s.%s%s", quote_identifier(p->watermark_column),
						 pass ? " DESC" : "");
		for (int i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, ", s.%s%s", quote_identifier(p->keys[i]->name),
							 pass ? " DESC" : "");
		if (pass)
			appendStringInfoString(buf, " LIMIT 1)");
		else
			appendStringInfo(buf, " OFFSET %d LIMIT 1)", p->batch_size - 1);
		*nargs = np;
	}
	appendStringInfoString(buf, " LIMIT 1");
}

char *
incetl_sql_range_edge(IncetlPipeline *p, IncetlBatchShape *shape,
					  int *nargs, Oid *argtypes)
{
	StringInfoData buf;

	Assert(!shape->edge);
	initStringInfo(&buf);
	deparse_range_edge(&buf, p, shape, nargs, argtypes);
	return buf.data;
}

/*
 * SELECT NOT EXISTS (SELECT 1 FROM <target>)
 *
 * Whether the target is empty (a first load may then insert without
 * comparing).
 */
char *
incetl_sql_target_empty(IncetlPipeline *p)
{
	return psprintf("SELECT NOT EXISTS (SELECT 1 FROM %s)", p->tgt_qname);
}

/*
 * ALTER TABLE <target> ADD COLUMN <name> <source type with typmod>
 *
 * A source column the target lacks, with on_schema_change 'add_columns'.
 */
char *
incetl_sql_add_column(IncetlPipeline *p, IncetlColumn *c)
{
	return psprintf("ALTER TABLE %s ADD COLUMN %s %s",
					p->tgt_qname, quote_identifier(c->name), c->src_typename);
}

/*
 * Keyed batches (hash, reconcile, trigger, logical) read their keys from a
 * work table in the session's temporary schema: rn, k1..kn (source key
 * types), op ('i', 'u' or 'd'), and for a 'logical' history pipeline one
 * row per decoded change: ct (commit time), cl (commit LSN), cs (its order),
 * cv (the new row, jsonb), cop ('I', 'U' or 'D') and, for the 'U' of an
 * update that changed the key until its values are completed
 * (deparse_history_key_changes), co: the cs of the old key's 'D'.
 */
char *
incetl_work_table_name(IncetlPipeline *p)
{
	return psprintf("pg_temp.incetl_work_%d", p->id);
}

/*
 * The per-pipeline tables in schema incetl: a 'hash' pipeline's stored
 * hashes, hash_state_<id>, and a 'trigger' pipeline's queue, queue_<id>
 * (with its sequence queue_<id>_seq).  The *_relname forms are the bare
 * names; the others are qualified and quoted.  The one place they are
 * spelled.
 */
char *
incetl_hash_state_relname(int32 pipeline_id)
{
	return psprintf("hash_state_%d", pipeline_id);
}

char *
incetl_hash_state_name(IncetlPipeline *p)
{
	return quote_qualified_identifier("incetl", incetl_hash_state_relname(p->id));
}

/*
 * A 'hash' pipeline's stage on Citus, stage_<id>: the keys of a run's work
 * table, in a table distributed with the source (incetl_sql_fill_stage).
 */
char *
incetl_stage_relname(int32 pipeline_id)
{
	return psprintf("stage_%d", pipeline_id);
}

char *
incetl_stage_name(IncetlPipeline *p)
{
	return quote_qualified_identifier("incetl", incetl_stage_relname(p->id));
}

/*
 * The stage of p, quoted, where its keyed batches use one: a 'hash'
 * pipeline whose source is hash-distributed by a column of its unique key
 * has one from its create on (strategy_hash.c); else (made before, or
 * distributed since) NULL, and the batches read the work table.
 */
char *
incetl_stage_qname(IncetlPipeline *p)
{
	if (p->src_dist_key < 0 || !p->src_key_unique || p->id <= 0 ||
		!OidIsValid(get_relname_relid(incetl_stage_relname(p->id),
									  get_namespace_oid("incetl", false))))
		return NULL;
	return incetl_stage_name(p);
}

/*
 * A 'timestamp' pipeline's stage on Citus, tstage_<id>: a batch's rows on
 * their way from a local source to a hash-distributed target, in a table
 * distributed with the target (made at create, strategy_timestamp.c).
 * Its columns are the batch's rows' ("src", deparse_batch_rows): w, k1..,
 * [q,] c1.., in their types.
 */
char *
incetl_tstage_relname(int32 pipeline_id)
{
	return psprintf("tstage_%d", pipeline_id);
}

char *
incetl_tstage_name(IncetlPipeline *p)
{
	return quote_qualified_identifier("incetl", incetl_tstage_relname(p->id));
}

/* one column of a tstage: its name, type, typmod and collation */
typedef struct TstageColumn
{
	char	   *name;
	Oid			type;
	int32		typmod;
	Oid			collation;
} TstageColumn;

/*
 * The columns a tstage of p has, or NIL where p has none: a local table
 * with a unique key into a hash-distributed target by one of its columns,
 * no delete flags, no history table (its versions are written from the
 * batch's rows on the coordinator), and only built-in types (no domain,
 * enum or composite: the stage is the extension owner's, and Citus copies
 * its rows as that owner when it moves a shard; a built-in type's input
 * runs no one's code).  The keys keep their source collation (the batch's last row is
 * found by ordering them).
 */
static List *
tstage_columns(IncetlPipeline *p)
{
	List	   *cols = NIL;
	TstageColumn *c;
	ListCell   *lc;
	int			i;

	if (p->tgt_citus != 'h' || p->src_citus != '\0' || p->tgt_dist_col < 0 ||
		p->hist_qname != NULL ||
		!p->src_key_unique || p->src_relkind == 'v' || p->src_relkind == 'f' ||
		p->delete_detection == DELETE_DETECT_FLAG || p->watermark_column == NULL ||
		p->wm_type >= FirstNormalObjectId)
		return NIL;
	c = palloc(sizeof(TstageColumn));
	c->name = "w";
	c->type = p->wm_type;
	c->typmod = p->wm_typmod;
	c->collation = get_typcollation(p->wm_type);
	cols = lappend(cols, c);
	for (i = 0; i < p->nkeys; i++)
	{
		if (p->keys[i]->src_type >= FirstNormalObjectId ||
			p->keys[i]->src_collation >= FirstNormalObjectId)
			return NIL;
		c = palloc(sizeof(TstageColumn));
		c->name = psprintf("k%d", i + 1);
		c->type = p->keys[i]->src_type;
		c->typmod = p->keys[i]->src_typmod;
		c->collation = OidIsValid(p->keys[i]->src_collation) ?
			p->keys[i]->src_collation : get_typcollation(c->type);
		cols = lappend(cols, c);
	}
	if (p->sequence_column)
	{
		if (p->seq_type >= FirstNormalObjectId)
			return NIL;
		c = palloc(sizeof(TstageColumn));
		c->name = "q";
		c->type = p->seq_type;
		c->typmod = -1;
		c->collation = get_typcollation(p->seq_type);
		cols = lappend(cols, c);
	}
	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *col = lfirst(lc);

		if (col->tgt_type >= FirstNormalObjectId ||
			(foreach_current_index(lc) == p->tgt_dist_col &&
			 col->tgt_collation >= FirstNormalObjectId))
			return NIL;
		c = palloc(sizeof(TstageColumn));
		c->name = psprintf("c%d", ++i);
		c->type = col->tgt_type;
		c->typmod = col->tgt_typmod;

		/*
		 * The distribution column in the target's collation: Citus colocates
		 * only tables whose distribution columns have the same one.
		 */
		c->collation = (i - 1 == p->tgt_dist_col && OidIsValid(col->tgt_collation)) ?
			col->tgt_collation : get_typcollation(col->tgt_type);
		cols = lappend(cols, c);
	}
	return cols;
}

/*
 * CREATE TABLE incetl.tstage_<id> (w <type>, k1 <type> [COLLATE ...], ...,
 *		[q <type>,] c1 <type>, ...)
 *
 * NULL where p can have no stage (tstage_columns).  Its distribution column
 * is c<tgt_dist_col + 1>.
 */
char *
incetl_sql_create_tstage(IncetlPipeline *p)
{
	List	   *cols = tstage_columns(p);
	StringInfoData buf;
	ListCell   *lc;

	if (cols == NIL)
		return NULL;
	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE TABLE %s (", incetl_tstage_name(p));
	foreach(lc, cols)
	{
		TstageColumn *c = lfirst(lc);

		appendStringInfo(&buf, "%s%s %s%s", foreach_current_index(lc) ? ", " : "",
						 c->name,
						 format_type_extended(c->type, c->typmod,
											  FORMAT_TYPE_TYPEMOD_GIVEN |
											  FORMAT_TYPE_FORCE_QUALIFY),
						 collate_clause(c->collation, c->type));
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * The stage of p, quoted, where its range batches go through one: a stage
 * made at create whose columns are still the ones p's batches read (a
 * column added, retyped or recollated since, a pipeline made before 0.3,
 * restored from a dump, or a target distributed since: none, and the
 * batches upsert from the source as before).
 */
char *
incetl_tstage_qname(IncetlPipeline *p)
{
	List	   *cols;
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	bool		ok;
	ListCell   *lc;

	if (p->id <= 0 || (cols = tstage_columns(p)) == NIL)
		return NULL;
	relid = get_relname_relid(incetl_tstage_relname(p->id),
							  get_namespace_oid("incetl", false));
	if (!OidIsValid(relid))
		return NULL;
	rel = relation_open(relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	ok = desc->natts == list_length(cols);
	foreach(lc, cols)
	{
		TstageColumn *c = lfirst(lc);
		Form_pg_attribute a;

		if (!ok)
			break;
		a = TupleDescAttr(desc, foreach_current_index(lc));
		ok = !a->attisdropped && strcmp(NameStr(a->attname), c->name) == 0 &&
			a->atttypid == c->type && a->atttypmod == c->typmod &&
			a->attcollation == c->collation;
	}
	relation_close(rel, AccessShareLock);

	/*
	 * And still distributed with the target, by its column c<tgt_dist_col +
	 * 1>: pg_dump carries the stage as a plain table (it depends on the
	 * extension, it is not a member), and a stage left local, or a target
	 * distributed again since, would not put the batch's rows beside the
	 * target's shards.
	 */
	if (ok)
	{
		Oid			argtypes[3] = {OIDOID, OIDOID, TEXTOID};
		Datum		values[3];

		values[0] = ObjectIdGetDatum(relid);
		values[1] = ObjectIdGetDatum(p->target);
		values[2] = CStringGetTextDatum(psprintf("c%d", p->tgt_dist_col + 1));
		ok = SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_partition AS s, "
								   "pg_catalog.pg_dist_partition AS t "
								   "WHERE s.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass "
								   "AND t.logicalrelid OPERATOR(pg_catalog.=) $2::pg_catalog.regclass "
								   "AND s.partmethod OPERATOR(pg_catalog.=) 'h' "
								   "AND s.colocationid OPERATOR(pg_catalog.=) t.colocationid "
								   "AND pg_catalog.column_to_column_name(s.logicalrelid, s.partkey) "
								   "OPERATOR(pg_catalog.=) $3",
								   3, argtypes, values, NULL, true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1;
	}
	return ok ? incetl_tstage_name(p) : NULL;
}

char *
incetl_queue_relname(int32 pipeline_id)
{
	return psprintf("queue_%d", pipeline_id);
}

char *
incetl_queue_table_name(IncetlPipeline *p)
{
	return quote_qualified_identifier("incetl", incetl_queue_relname(p->id));
}

/*
 * CREATE TEMPORARY TABLE <work table> (rn pg_catalog.int8, k1 <type>, ...,
 *		op "char", qtid pg_catalog.tid, qseq pg_catalog.int8, <history
 *		columns>[, hr bool, v1 <source type>, ..., vm <source type>]);
 * CREATE INDEX ON <work table> (rn)
 *
 * One row per key, or, for a trigger run's queued keys, one row per queue
 * entry (its tuple id and seq), the entries of one key sharing its rn.
 * A 'logical' key's row (incetl_logical_rows): hr, and v1..vm the values
 * of the pipeline's columns.
 */
static void
deparse_create_work_table(StringInfo buf, IncetlPipeline *p)
{
	appendStringInfo(buf, "CREATE TEMPORARY TABLE %s (rn pg_catalog.int8",
					 incetl_work_table_name(p));
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, ", k%d %s%s", i + 1,
						 p->keys[i]->src_typename, incetl_key_collate(p->keys[i]));
	appendStringInfoString(buf, ", op pg_catalog.\"char\", qtid pg_catalog.tid, qseq pg_catalog.int8, "
						   "ct pg_catalog.timestamptz, cl pg_catalog.pg_lsn, cs pg_catalog.int8, "
						   "cv pg_catalog.jsonb, cop pg_catalog.\"char\", co pg_catalog.int8");
	/* a 'logical' key's row as decoded (incetl_logical_rows) */
	if (incetl_logical_rows(p))
	{
		ListCell   *lc;
		int			i = 0;

		appendStringInfoString(buf, ", hr pg_catalog.bool");
		foreach(lc, p->columns)
		{
			IncetlColumn *c = lfirst(lc);

			appendStringInfo(buf, ", v%d %s%s", ++i, c->src_typename,
							 collate_clause(c->src_collation, getBaseType(c->src_type)));
		}
	}
	appendStringInfoChar(buf, ')');
}

char *
incetl_sql_create_work_table(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_create_work_table(&buf, p);
	return buf.data;
}

/*
 * CREATE TABLE <hash state> (k1 <type> NOT NULL, ..., h <hash type> NOT NULL,
 *		PRIMARY KEY (k1, ...))
 *
 * The key columns of the hash state: k1..kn, h.
 */
static void
deparse_create_hash_state(StringInfo buf, IncetlPipeline *p)
{
	RowHashSql	rh;

	row_hash_sql(p, &rh);
	appendStringInfo(buf, "CREATE TABLE %s (", incetl_hash_state_name(p));
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "k%d %s%s NOT NULL, ", i + 1,
						 p->keys[i]->src_typename, incetl_key_collate(p->keys[i]));
	appendStringInfo(buf, "h %s NOT NULL, PRIMARY KEY (", rh.type);
	deparse_key_list(buf, p);
	appendStringInfoString(buf, "))");
}

char *
incetl_sql_create_hash_state(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_create_hash_state(&buf, p);
	return buf.data;
}

/*
 * CREATE TABLE <stage> (rn pg_catalog.int8 NOT NULL, k1 <type> NOT NULL,
 *		..., op pg_catalog."char")
 */
char *
incetl_sql_create_stage(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE TABLE %s (rn pg_catalog.int8 NOT NULL",
					 incetl_stage_name(p));
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(&buf, ", k%d %s%s NOT NULL", i + 1, p->keys[i]->src_typename,
						 incetl_key_collate(p->keys[i]));
	appendStringInfoString(&buf, ", op pg_catalog.\"char\")");
	return buf.data;
}

/*
 * INSERT INTO <stage> (rn, k1, ..., op) SELECT rn, k1, ..., op
 * FROM <work table>
 *
 * A run's keys, copied to the (emptied) stage once the work table holds
 * them: the work table stays the engine's count and order of the keys;
 * the keyed batches read their keys from the stage, on the shards.
 */
char *
incetl_sql_fill_stage(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "INSERT INTO %s (rn, ", incetl_stage_name(p));
	deparse_key_list(&buf, p);
	appendStringInfoString(&buf, ", op) SELECT rn, ");
	deparse_key_list(&buf, p);
	appendStringInfo(&buf, ", op FROM %s", incetl_work_table_name(p));
	return buf.data;
}

/*
 * INSERT INTO <work table> (rn, k1, ..., op) <diff>
 *
 * Fill the work table with the keys whose hash differs from the stored
 * one (hash strategy), or whose row differs between source and target
 * (reconcile), numbered in key order.
 */
static void
deparse_fill_work(StringInfo buf, IncetlPipeline *p, bool reconcile)
{
	appendStringInfo(buf, "INSERT INTO %s (rn, ", incetl_work_table_name(p));
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "k%d, ", i + 1);
	appendStringInfoString(buf, "op) ");
	deparse_diff(buf, p, reconcile);
}

char *
incetl_sql_fill_work(IncetlPipeline *p, bool reconcile)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_fill_work(&buf, p, reconcile);
	return buf.data;
}

/*
 * SELECT pg_catalog.row_number() OVER (ORDER BY k1, ...) AS rn, * FROM
 *	(SELECT COALESCE(s.k1, o.k1) AS k1, ...,
 *	 CASE WHEN o.k1 IS NULL THEN 'i' WHEN s.k1 IS NULL [OR s.f IS TRUE]
 *	 THEN 'd' ELSE 'u' END::"char" AS op
 *	 FROM (SELECT s.<key1> AS k1, ...[, s.<flag> AS f], <row hash> AS h
 *		   FROM <source> AS s) AS s
 *	 FULL JOIN <hash state> AS st		-- hash strategy, o = st
 *			 | (SELECT CAST(t.<key1> AS <source type>) AS k1, ...,
 *				<row hash> AS h FROM <target> AS t
 *				[WHERE t.<soft> IS NOT TRUE]) AS t	-- reconcile, o = t
 *	 ON o.k1 = s.k1 AND ...
 *	 WHERE (s.k1 IS NULL OR o.k1 IS NULL OR o.h OPERATOR(pg_catalog.<>) s.h
 *			[OR s.f IS TRUE]) [AND NOT (o.k1 IS NULL AND s.f IS TRUE)]) AS x
 *
 * The rows of the work table, as a query.
 */
static void
deparse_diff(StringInfo buf, IncetlPipeline *p, bool reconcile)
{
	int			i;
	const char *other = reconcile ? "t" : "st";
	bool		flag = p->delete_detection == DELETE_DETECT_FLAG;

	appendStringInfoString(buf, "SELECT pg_catalog.row_number() OVER (ORDER BY ");
	/* rn, k1..kn, op */
	deparse_key_list(buf, p);
	appendStringInfoString(buf, ") AS rn, * FROM (SELECT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "COALESCE(s.k%d, %s.k%d) AS k%d, ", i + 1, other, i + 1, i + 1);
	appendStringInfo(buf, "CASE WHEN %s.k1 IS NULL THEN 'i' WHEN s.k1 IS NULL%s THEN 'd' ELSE 'u' END::pg_catalog.\"char\" AS op FROM (SELECT ",
					 other, flag ? " OR s.f IS TRUE" : "");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "s.%s AS k%d, ", quote_identifier(p->keys[i]->name), i + 1);
	if (flag)
		appendStringInfo(buf, "s.%s AS f, ", quote_identifier(p->delete_flag_column));
	if (reconcile && have_row_bytes())
		append_row_image_hash(buf, p, "s", true);
	else
		append_row_hash(buf, p, "s", reconcile);
	appendStringInfo(buf, " AS h FROM %s AS s) AS s FULL JOIN ", p->src_qname);
	if (reconcile)
	{
		/* the target's rows, keys in the source's types */
		appendStringInfoString(buf, "(SELECT ");
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, "CAST(t.%s AS %s) AS k%d, ",
							 quote_identifier(p->keys[i]->name),
							 p->keys[i]->src_typename,
							 i + 1);
		if (have_row_bytes())
			append_row_image_hash(buf, p, "t", false);
		else
			append_row_hash(buf, p, "t", false);
		appendStringInfo(buf, " AS h FROM %s AS t", p->tgt_qname);
		if (p->soft_delete)
			appendStringInfo(buf, " WHERE t.%s IS NOT TRUE",
							 quote_identifier(p->soft_delete_column));
		appendStringInfoString(buf, ") AS t");
	}
	else
		appendStringInfo(buf, "%s AS st", incetl_hash_state_name(p));
	appendStringInfoString(buf, " ON ");
	for (i = 0; i < p->nkeys; i++)
	{
		Oid			type = p->keys[i]->src_type;

		if (i)
			appendStringInfoString(buf, " AND ");
		incetl_deparse_operator_clause(buf, psprintf("%s.k%d", other, i + 1), type,
									   type_equality_operator(type),
									   psprintf("s.k%d", i + 1), type);
	}
	appendStringInfo(buf, " WHERE (s.k1 IS NULL OR %s.k1 IS NULL OR %s.h OPERATOR(pg_catalog.<>) s.h",
					 other, other);
	/* a key respelled in the source (reconcile's hashes cover the keys) */
	if (!reconcile)
		deparse_keys_respelled(buf, p, other, "s");

	/*
	 * delete_detection 'flag': a flagged source row stands for a deleted
	 * key.  It is work when the other side still holds the key (even with
	 * an equal hash: the flag need not be a target column), and none when
	 * the other side lacks it.
	 */
	if (flag)
		appendStringInfo(buf, " OR s.f IS TRUE) AND NOT (%s.k1 IS NULL AND s.f IS TRUE)",
						 other);
	else
		appendStringInfoChar(buf, ')');
	appendStringInfoString(buf, ") AS x");
}

static char *
incetl_sql_diff(IncetlPipeline *p, bool reconcile)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_diff(&buf, p, reconcile);
	return buf.data;
}

/*
 * WITH b AS MATERIALIZED (SELECT DISTINCT ON (rn) rn, k1, ..., op[, <ct>]
 *						   FROM <work table> AS w WHERE rn > $1 AND rn <= $2
 *						   ORDER BY rn)
 *	 <keyed rows: sb, src, d0, d, gone>, cmp ..., ins ..., upd ..., del ...
 *	 [, st_up ..., st_del ...]
 *	 SELECT <counts of b, ins, upd, del>
 *
 * One keyed batch: rows rn in ($1, $2] of the work table, one per rn (a
 * key's queue entries share its rn).  $3 is the run id, $4 the run's start
 * with a history table.  Returns keys read, inserted, updated, deleted
 * [, history versions opened].  rows_only: a 'logical' run's work table
 * whose every row has its decoded row (see deparse_logical_rows).
 */
static void
deparse_keyed_batch(StringInfo buf, IncetlPipeline *p, bool with_state,
					bool rows_only, int *nargs, Oid *argtypes)
{
	/* a 'hash' pipeline's batch on Citus reads its keys from the stage */
	bool		staged = with_state && incetl_stage_qname(p) != NULL;

	if (staged)
	{
		Assert(!history_change_time(p) && p->src_key_unique);
		appendStringInfoString(buf, "WITH ");
	}
	else
	{
		/*
		 * A 'logical' run with rows has one row per rn already; with rows
		 * only, b is read once, by the one branch of deparse_logical_rows,
		 * and the planner inlines it (a materialized b spills to a temporary
		 * file once it outgrows work_mem).
		 */
		Assert(!rows_only || incetl_logical_rows(p));
		appendStringInfo(buf, "WITH b AS %s(SELECT %srn, ",
						 rows_only ? "" : "MATERIALIZED ",
						 incetl_logical_rows(p) ? "" : "DISTINCT ON (rn) ");
		deparse_key_list(buf, p);
		appendStringInfoString(buf, ", op");
		if (history_change_time(p))
			deparse_change_time(buf, p);
		if (incetl_logical_rows(p))
		{
			appendStringInfoString(buf, ", hr");
			for (int i = 0; i < list_length(p->columns); i++)
				appendStringInfo(buf, ", v%d", i + 1);
		}
		appendStringInfo(buf, " FROM %s AS w WHERE ", incetl_work_table_name(p));
		deparse_catalog_clause(buf, "rn", INT8OID, ">", "$1", INT8OID);
		appendStringInfoString(buf, " AND ");
		deparse_catalog_clause(buf, "rn", INT8OID, "<=", "$2", INT8OID);
		/* a 'logical' key's latest change */
		appendStringInfo(buf, " ORDER BY rn%s)", history_change_time(p) ? ", w.ct DESC NULLS LAST" : "");
	}

	argtypes[0] = INT8OID;
	argtypes[1] = INT8OID;
	argtypes[2] = INT8OID;
	argtypes[3] = TIMESTAMPTZOID;
	*nargs = p->hist_qname ? 4 : 3;
	if (incetl_keyed_batch_merges(p, with_state) && keyed_merge_direct(p))
	{
		deparse_keyed_merge_direct(buf, p, 3, rows_only);
		return;
	}
	deparse_keyed_rows(buf, p, with_state, history_change_time(p), staged);
	if (incetl_keyed_batch_merges(p, with_state))
	{
		Assert(p->hist_qname == NULL);
		deparse_merge_apply(buf, p, 3, true);
		return;
	}
	deparse_apply_ctes(buf, p, 3, true, with_state ? incetl_hash_state_name(p) : NULL, NULL);
	/* sb has one row per key of a staged batch (a unique source key) */
	deparse_counts(buf, staged ? "sb" : "b");
	deparse_history_count(buf, p, true);
}

/*
 * Whether a keyed batch is one MERGE (deparse_keyed_merge) rather than the
 * CTEs of deparse_apply_ctes.  MERGE joins each key to the target once
 * where the CTEs join it twice (compare, then update), about a third less
 * work per key; but in PostgreSQL 15 it returns no rows, so the engine
 * reads its inserted/updated/deleted counts from the executor.  It is used
 * only where those counts are the run's: not with a hash state to move in
 * the same statement, not with soft deletes (a soft delete is an UPDATE
 * that must count as a delete), not with a history table (its versions are
 * written from the apply's RETURNING), and only where MERGE can write the
 * target (validate.c: no foreign partition, not Citus).
 */
bool
incetl_keyed_batch_merges(IncetlPipeline *p, bool with_state)
{
	return !with_state && !p->soft_delete && !OidIsValid(p->history_table) &&
		p->tgt_merge_ok;
}

/*
 * Whether a keyed MERGE may join the batch's keys to the source and the
 * target in one plan (deparse_keyed_merge_direct): the source is a table
 * whose key is unique, so a key has at most one source row and needs no
 * "newest row" step, and no delete flag turns a live row into a delete;
 * not a Citus table (Citus plans the join of the batch to a distributed
 * source as a CTE of its own, not inside a MERGE into a local table).
 */
static bool
keyed_merge_direct(IncetlPipeline *p)
{
	return p->src_key_unique && p->src_relkind != 'v' && p->src_relkind != 'f' &&
		p->src_citus == '\0' &&
		p->delete_detection != DELETE_DETECT_FLAG && !history_change_time(p);
}

/*
 * Whether a 'logical' pipeline's keyed batches take a key's row as its
 * last change left it, decoded from the WAL, where the read has it (see
 * strategy_logical.c), instead of reading the source by key.  Only for
 * the one-plan MERGE of a plain table's batches (keyed_merge_direct)
 * without a history table, whose columns all come from the source's
 * columns by name (not one named incetl_..., the names the batch gives
 * its own columns).
 */
bool
incetl_logical_rows(IncetlPipeline *p)
{
	if (p->logical_rows == 0)
		p->logical_rows = logical_rows_fit(p) ? 1 : -1;
	return p->logical_rows > 0;
}

/*
 * For logical_rows_fit: whether the owner may make column v<i> of the work
 * table of the source's type and collation, and where such a column ends
 * at the latest, *off being where it starts (see there).
 */
static bool
logical_rows_column_fits(IncetlPipeline *p, Oid type, Oid collation, Size *off)
{
	HeapTuple	tup;
	Form_pg_type t;
	Oid			named;			/* the type whose name CREATE TABLE reads */
	Oid			nsp;
	bool		ok;

	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", type);
	t = (Form_pg_type) GETSTRUCT(tup);
	named = IsTrueArrayType(t) ? t->typelem : type;
	nsp = t->typnamespace;
	ok = t->typtype != TYPTYPE_DOMAIN &&
		(t->typlen > 0 || (t->typlen == -1 && t->typstorage != TYPSTORAGE_PLAIN));
	if (ok)
		*off = att_align_nominal(*off, t->typalign) + (t->typlen > 0 ? t->typlen : 32);
	ReleaseSysCache(tup);
	if (ok && named != type)
	{
		tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(named));
		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for type %u", named);
		nsp = ((Form_pg_type) GETSTRUCT(tup))->typnamespace;
		ReleaseSysCache(tup);
	}
	if (!ok || pg_type_aclcheck(type, p->owner, ACL_USAGE) != ACLCHECK_OK ||
		pg_namespace_aclcheck(nsp, p->owner, ACL_USAGE) != ACLCHECK_OK)
		return false;
	/* a COLLATE clause names its collation's schema (collate_clause) */
	if (OidIsValid(collation) && collation != get_typcollation(type))
	{
		tup = SearchSysCache1(COLLOID, ObjectIdGetDatum(collation));
		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for collation %u", collation);
		ok = pg_namespace_aclcheck(((Form_pg_collation) GETSTRUCT(tup))->collnamespace,
								   p->owner, ACL_USAGE) == ACLCHECK_OK;
		ReleaseSysCache(tup);
	}
	return ok;
}

/*
 * incetl_logical_rows' answer, decided once for the resolved pipeline, so
 * that the work table, the batches and the read agree: the conditions
 * there, and whether the work table can take the decoded rows' columns
 * hr, v1..vm (deparse_create_work_table) as a run makes it.  Not when:
 * - a column is of a domain: a fill that leaves v1..vm out (the compare
 *   of a first run or a reconcile, a read without rows) gives it the
 *   domain's default, or a NULL coerced to the domain, which a NOT NULL
 *   domain refuses (every such run would fail), and runs the domain's
 *   DEFAULT and CHECK, code of the domain's owner, once per key;
 * - the owner may not name a column's type or collation (USAGE on the
 *   type and on the schema of each), which CREATE TABLE requires and
 *   reading the source does not;
 * - the table would have more than MaxHeapAttributeNumber columns, or a
 *   row with every value present might not fit in a heap tuple: each
 *   fixed-width value (the keys twice, in k and v) at its alignment, each
 *   other one at most 32 bytes once TOASTed (what toasting leaves inline;
 *   a type with storage plain cannot be toasted), so that no decoded row
 *   fails as "row is too big" where the source's row fit.
 */
static bool
logical_rows_fit(IncetlPipeline *p)
{
	int			natts = 11 + p->nkeys + list_length(p->columns);
	Size		off = 8;		/* rn */
	ListCell   *lc;

	if (strcmp(p->strategy_name, "logical") != 0 || p->hist_qname != NULL ||
		OidIsValid(p->history_table) || p->src_relkind != RELKIND_RELATION ||
		p->sequence_column != NULL || p->columns == NIL ||
		!incetl_keyed_batch_merges(p, false) || !keyed_merge_direct(p))
		return false;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		if (strncmp(c->name, "incetl_", 7) == 0)
			return false;
	}
	for (int i = 0; i < p->nkeys; i++)
		if (!list_member_ptr(p->columns, p->keys[i]))
			return false;
	if (natts > MaxHeapAttributeNumber)
		return false;
	for (int i = 0; i < p->nkeys; i++)
		if (!logical_rows_column_fits(p, p->keys[i]->src_type, InvalidOid, &off))
			return false;
	off += 2;					/* op; qtid .. co are NULL; hr */
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		if (!logical_rows_column_fits(p, c->src_type, c->src_collation, &off))
			return false;
	}
	return MAXALIGN(SizeofHeapTupleHeader + BITMAPLEN(natts)) + off <= MaxHeapTupleSize;
}

/*
 * , CAST(s.incetl_k1 AS <target type>) AS g1, ..., s.incetl_gone
 * FROM (SELECT b.v1 AS <column 1>, ..., b.vm AS <column m>,
 *				b.k1 AS incetl_k1, ..., false AS incetl_gone
 *		 FROM b WHERE b.hr IS TRUE
 *		 [UNION ALL
 *		  SELECT s.<column 1>, ..., s.<column m>, b.k1, ..., s.<key1> IS NULL
 *		  FROM b LEFT JOIN <source> AS s ON s.<key1> = b.k1 AND ...
 *		  WHERE b.hr IS NOT TRUE]) AS s
 *
 * The rest of deparse_keyed_merge_direct's USING where the batch has the
 * keys' rows (incetl_logical_rows): a key with its row takes it as "s",
 * the others are read from the source as there.  rows_only: every key of
 * the work table has its row (the fill saw to it), so there are no others
 * and the source is not read at all.
 */
static void
deparse_logical_rows(StringInfo buf, IncetlPipeline *p, bool rows_only)
{
	ListCell   *lc;
	int			i;

	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, ", CAST(s.incetl_k%d AS %s) AS g%d", i + 1,
						 p->keys[i]->tgt_typename, i + 1);
	appendStringInfoString(buf, ", s.incetl_gone FROM (SELECT ");
	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		appendStringInfo(buf, "%sb.v%d AS %s", i ? ", " : "", i + 1,
						 quote_identifier(c->name));
		i++;
	}
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, ", b.k%d AS incetl_k%d", i + 1, i + 1);
	appendStringInfoString(buf, ", false AS incetl_gone FROM b WHERE b.hr IS TRUE");
	if (rows_only)
	{
		appendStringInfoString(buf, ") AS s");
		return;
	}
	appendStringInfoString(buf, " UNION ALL SELECT ");
	i = 0;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		appendStringInfo(buf, "%ss.%s", i++ ? ", " : "", quote_identifier(c->name));
	}
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, ", b.k%d", i + 1);
	appendStringInfo(buf, ", s.%s IS NULL FROM b LEFT JOIN %s AS s ON ",
					 quote_identifier(p->keys[0]->name), p->src_qname);
	deparse_source_key_match(buf, p, "b");
	appendStringInfoString(buf, " WHERE b.hr IS NOT TRUE) AS s");
}

/*
 * MERGE INTO <target> AS t
 * USING (SELECT <source columns c1..cm>,
 *				 CAST(b.k1 AS <target type>) AS g1, ...,
 *				 s.<key1> IS NULL AS incetl_gone
 *		  FROM b LEFT JOIN <source> AS s ON s.<key1> = b.k1 AND ...) AS m
 * ON t.<key1> = COALESCE(m.c<N1>, m.g1) AND ...
 * WHEN MATCHED AND m.incetl_gone THEN DELETE
 * WHEN MATCHED AND NOT m.incetl_gone AND <t changed by m> THEN UPDATE ...
 * WHEN NOT MATCHED AND NOT m.incetl_gone THEN INSERT ...
 *
 * The keyed MERGE of deparse_merge_apply without the steps between: one
 * probe of the source and one of the target per key, in one plan, where
 * the general form materializes the source rows ("sb") and appends the
 * live rows to the gone keys.  A live row is matched by its source key (as
 * there), a gone key by the batch's: COALESCE picks the first, which is
 * NULL exactly when the key is gone.  Same rows, same counts.
 */
static void
deparse_keyed_merge_direct(StringInfo buf, IncetlPipeline *p, int run_param,
						   bool rows_only)
{
	int			i;
	char	  **rhs;
	StringInfoData set;
	StringInfoData cols;
	StringInfoData vals;

	appendStringInfo(buf, " MERGE INTO %s AS t USING (", p->tgt_qname);
	deparse_src_columns(buf, p, false, false, false);
	if (incetl_logical_rows(p))
		deparse_logical_rows(buf, p, rows_only);
	else
	{
		for (i = 0; i < p->nkeys; i++)
			appendStringInfo(buf, ", CAST(b.k%d AS %s) AS g%d", i + 1,
							 p->keys[i]->tgt_typename, i + 1);
		appendStringInfo(buf, ", s.%s IS NULL AS incetl_gone FROM b LEFT JOIN %s AS s ON ",
						 quote_identifier(p->keys[0]->name), p->src_qname);
		deparse_source_key_match(buf, p, "b");
	}
	appendStringInfoString(buf, ") AS m ON ");
	rhs = palloc(sizeof(char *) * p->nkeys);
	for (i = 0; i < p->nkeys; i++)
		rhs[i] = psprintf("COALESCE(m.c%d, m.g%d)", key_col(p, i), i + 1);
	deparse_target_key_match_to(buf, p, rhs);
	appendStringInfoString(buf, " WHEN MATCHED AND m.incetl_gone THEN DELETE");

	initStringInfo(&set);
	if (deparse_update_set(&set, p, run_param, "m"))
	{
		appendStringInfoString(buf, " WHEN MATCHED AND NOT m.incetl_gone AND ");
		deparse_changes_row(buf, p, "m");
		appendStringInfo(buf, " THEN UPDATE SET %s", set.data);
	}

	initStringInfo(&cols);
	initStringInfo(&vals);
	deparse_insert_lists(&cols, &vals, p, run_param, "m.");
	appendStringInfo(buf, " WHEN NOT MATCHED AND NOT m.incetl_gone THEN INSERT %s VALUES (%s)",
					 cols.data, vals.data);
}

/*
 * MERGE INTO <target> AS t
 * USING (SELECT c1, ..., cm[, false AS incetl_gone] FROM d
 *		  [UNION ALL SELECT <g_i for key columns, else NULL::type>, true
 *		   FROM gone]) AS m
 * ON t.<key1> = m.c<N1> AND ...
 * [WHEN MATCHED AND m.incetl_gone THEN DELETE]
 * WHEN MATCHED [AND NOT m.incetl_gone] AND <t changed by m> THEN
 *	 UPDATE SET <col2> = m.c2, ...
 * WHEN NOT MATCHED [AND NOT m.incetl_gone] THEN
 *	 INSERT (<col1>, ...) VALUES (m.c1, ...)
 *
 * The apply of a batch as one MERGE (see incetl_keyed_batch_merges), after
 * the CTEs that find its rows "d" and, with_gone, the keys "gone" to
 * delete: the same comparison and column lists as the CTE form.
 * $<run_param> is the run id.
 */
static void
deparse_merge_apply(StringInfo buf, IncetlPipeline *p, int run_param,
					bool with_gone)
{
	ListCell   *lc;
	int			i;
	StringInfoData set;
	StringInfoData cols;
	StringInfoData vals;

	const char *live = with_gone ? " AND NOT m.incetl_gone" : "";

	appendStringInfo(buf, " MERGE INTO %s AS t USING (SELECT ", p->tgt_qname);
	for (i = 1; i <= list_length(p->columns); i++)
		appendStringInfo(buf, "%sc%d", i > 1 ? ", " : "", i);
	if (with_gone)
	{
		appendStringInfoString(buf, ", false AS incetl_gone FROM d UNION ALL SELECT ");
		i = 0;
		foreach(lc, p->columns)
		{
			IncetlColumn *c = lfirst(lc);
			int			k;

			i++;
			for (k = 0; k < p->nkeys; k++)
				if (key_col(p, k) == i)
					break;
			if (k < p->nkeys)
				appendStringInfo(buf, "g%d, ", k + 1);
			else
				appendStringInfo(buf, "CAST(NULL AS %s), ", c->tgt_typename);
		}
		appendStringInfoString(buf, "true FROM gone");
	}
	else
		appendStringInfoString(buf, " FROM d");
	appendStringInfoString(buf, ") AS m ON ");
	deparse_target_key_match(buf, p, "m", false);
	if (with_gone)
		appendStringInfoString(buf, " WHEN MATCHED AND m.incetl_gone THEN DELETE");

	initStringInfo(&set);
	if (deparse_update_set(&set, p, run_param, "m"))
	{
		appendStringInfo(buf, " WHEN MATCHED%s AND ", live);
		deparse_changes_row(buf, p, "m");
		appendStringInfo(buf, " THEN UPDATE SET %s", set.data);
	}

	initStringInfo(&cols);
	initStringInfo(&vals);
	deparse_insert_lists(&cols, &vals, p, run_param, "m.");
	appendStringInfo(buf, " WHEN NOT MATCHED%s THEN INSERT %s VALUES (%s)",
					 live, cols.data, vals.data);
}

char *
incetl_sql_keyed_batch(IncetlPipeline *p, bool with_state, bool rows_only,
					   int *nargs, Oid *argtypes)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_keyed_batch(&buf, p, with_state, rows_only, nargs, argtypes);
	return buf.data;
}

/*
 * <compare gone: WITH gone AS MATERIALIZED (... LIMIT <batch_size>)>
 *	 , del AS (...) SELECT pg_catalog.count(*) FROM del
 *
 * or, with a history table,
 *
 *	 , del AS (...), <history CTEs> SELECT (SELECT pg_catalog.count(*) FROM del),
 *	 (SELECT pg_catalog.count(*) FROM ho) AS history_versions
 *
 * or, for a preview,
 *
 * <compare gone: WITH gone AS MATERIALIZED (...)>
 *	 SELECT 'delete', <key object of gone> FROM gone
 *
 * delete_detection 'compare': up to batch_size target keys that the source
 * no longer has, deleted or soft-deleted by the apply's delete step.  $1
 * is the run id ($2 the run's start, with a history table, whose current
 * versions of those keys close).  Returns the number deleted.
 */
static void
deparse_compare_deletes(StringInfo buf, IncetlPipeline *p, bool preview)
{
	deparse_compare_gone(buf, p, preview);
	if (preview)
	{
		appendStringInfoString(buf, " SELECT 'delete', ");
		deparse_key_object(buf, p, "", true);
		appendStringInfoString(buf, " FROM gone");
		return;
	}
	deparse_delete_cte(buf, p, 1, true);
	deparse_history_ctes(buf, p, 1, NULL, false, true);
	if (p->hist_qname)
		appendStringInfoString(buf, " SELECT (SELECT pg_catalog.count(*) FROM del)");
	else
		appendStringInfoString(buf, " SELECT pg_catalog.count(*) FROM del");
	deparse_history_count(buf, p, false);
}

char *
incetl_sql_compare_deletes(IncetlPipeline *p, bool preview)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_compare_deletes(&buf, p, preview);
	return buf.data;
}

/*
 * WITH b AS MATERIALIZED (<keys_sql>) <keyed rows>, cmp ... <preview select>
 *
 * Preview of a keyed pass: keys_sql yields the keys k1..kn to look at
 * (source key types); each is classified against the source and the
 * target exactly as a keyed batch would apply it.
 */
static void
deparse_keyed_preview(StringInfo buf, IncetlPipeline *p, const char *keys_sql)
{
	appendStringInfo(buf, "WITH b AS MATERIALIZED (%s)", keys_sql);
	deparse_keyed_rows(buf, p, false, false, false);
	deparse_compare_cte(buf, p);
	deparse_preview_select(buf, p, true);
}

char *
incetl_sql_keyed_preview(IncetlPipeline *p, const char *keys_sql)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_keyed_preview(&buf, p, keys_sql);
	return buf.data;
}

/*
 * SELECT k1, ..., kn FROM (<query>) AS w
 *
 * The keys of a query that yields them (and more) as k1..kn.
 */
static void
deparse_select_keys(StringInfo buf, IncetlPipeline *p, const char *query)
{
	appendStringInfoString(buf, "SELECT ");
	deparse_key_list(buf, p);
	appendStringInfo(buf, " FROM (%s) AS w", query);
}

/* keys of the hash or target diff, as k1..kn */
char *
incetl_sql_diff_keys(IncetlPipeline *p, bool reconcile)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_select_keys(&buf, p, incetl_sql_diff(p, reconcile));
	return buf.data;
}

/*
 * SELECT DISTINCT k1, ..., kn FROM <queue table>
 * WHERE op OPERATOR(pg_catalog.<>) 'T'
 *
 * The distinct keys in a trigger pipeline's queue.
 */
static void
deparse_queue_keys(StringInfo buf, IncetlPipeline *p)
{
	/* distinct by the source's collations, as a run's drain ranks them */
	appendStringInfoString(buf, "SELECT DISTINCT ");
	for (int i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%sk%d%s AS k%d", i ? ", " : "", i + 1,
						 incetl_key_collate(p->keys[i]), i + 1);
	appendStringInfo(buf, " FROM %s WHERE ", incetl_queue_table_name(p));
	deparse_catalog_clause(buf, "op", CHAROID, "<>", "'T'", UNKNOWNOID);
}

char *
incetl_sql_queue_keys(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_queue_keys(&buf, p);
	return buf.data;
}

/*
 * SELECT DISTINCT CAST(((e -> 'k') ->> '<key1>') AS <source type>) AS k1, ...
 * FROM pg_catalog.jsonb_array_elements($1) AS e WHERE (e ->> 'op') <> 'T'
 *
 * The distinct keys in a jsonb array of decoded changes, $1.
 */
static void
deparse_change_keys(StringInfo buf, IncetlPipeline *p)
{
	StringInfoData k;
	StringInfoData op;

	initStringInfo(&k);
	appendStringInfoChar(&k, '(');
	deparse_catalog_clause(&k, "e", JSONBOID, "->", "'k'", UNKNOWNOID);
	appendStringInfoChar(&k, ')');

	appendStringInfoString(buf, "SELECT DISTINCT ");
	for (int i = 0; i < p->nkeys; i++)
	{
		appendStringInfo(buf, "%sCAST((", i ? ", " : "");
		deparse_catalog_clause(buf, k.data, JSONBOID, "->>",
							   quote_literal_cstr(p->keys[i]->name), UNKNOWNOID);
		appendStringInfo(buf, ") AS %s)%s AS k%d", p->keys[i]->src_typename,
						 incetl_key_collate(p->keys[i]), i + 1);
	}
	appendStringInfoString(buf, " FROM pg_catalog.jsonb_array_elements($1) AS e WHERE ");

	initStringInfo(&op);
	appendStringInfoChar(&op, '(');
	deparse_catalog_clause(&op, "e", JSONBOID, "->>", "'op'", UNKNOWNOID);
	appendStringInfoChar(&op, ')');
	deparse_catalog_clause(buf, op.data, TEXTOID, "<>", "'T'", UNKNOWNOID);
}

char *
incetl_sql_change_keys(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_change_keys(&buf, p);
	return buf.data;
}

/*
 * SELECT pg_catalog.row_number() OVER (ORDER BY k1, ...) AS rn, * FROM
 *	(SELECT COALESCE(s.k1, t.k1) AS k1, ...,
 *	 CASE WHEN s.k1 IS NULL THEN 'd' ELSE 'i' END::"char" AS op
 *	 FROM (SELECT s.<key1> AS k1, ... FROM <source> AS s) AS s
 *	 FULL JOIN (SELECT CAST(t.<key1> AS <source type>) AS k1, ...
 *				FROM <target> AS t [WHERE t.<soft> IS NOT TRUE]) AS t
 *	 ON t.k1 = s.k1 AND ...) AS x
 *
 * For the preview of a hash run with no stored hashes (its first, or the
 * next after alter_pipeline(hash_algorithm) emptied them): every source
 * key ('i') and every live target key the source lacks ('d').
 */
static void
deparse_hash_initial(StringInfo buf, IncetlPipeline *p)
{
	int			i;

	appendStringInfoString(buf, "SELECT pg_catalog.row_number() OVER (ORDER BY ");
	deparse_key_list(buf, p);
	appendStringInfoString(buf, ") AS rn, * FROM (SELECT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "COALESCE(s.k%d, t.k%d) AS k%d, ", i + 1, i + 1, i + 1);
	appendStringInfoString(buf, "CASE WHEN s.k1 IS NULL THEN 'd' ELSE 'i' END::pg_catalog.\"char\" AS op FROM (SELECT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%ss.%s AS k%d", i ? ", " : "",
						 quote_identifier(p->keys[i]->name), i + 1);
	appendStringInfo(buf, " FROM %s AS s) AS s FULL JOIN (SELECT ", p->src_qname);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "%sCAST(t.%s AS %s) AS k%d", i ? ", " : "",
						 quote_identifier(p->keys[i]->name),
						 p->keys[i]->src_typename, i + 1);
	appendStringInfo(buf, " FROM %s AS t", p->tgt_qname);
	if (p->soft_delete)
		appendStringInfo(buf, " WHERE t.%s IS NOT TRUE",
						 quote_identifier(p->soft_delete_column));
	appendStringInfoString(buf, ") AS t ON ");
	for (i = 0; i < p->nkeys; i++)
	{
		Oid			type = p->keys[i]->src_type;

		if (i)
			appendStringInfoString(buf, " AND ");
		incetl_deparse_operator_clause(buf, psprintf("t.k%d", i + 1), type,
									   type_equality_operator(type),
									   psprintf("s.k%d", i + 1), type);
	}
	appendStringInfoString(buf, ") AS x");
}

/*
 * INSERT INTO <hash state> AS st (k1, ..., h)
 * SELECT CAST(t.<key1> AS <source type>), ..., ''::pg_catalog.bytea | 0
 * FROM <target> AS t WHERE t.<key1> IS NOT NULL AND ...
 * [AND t.<soft> IS NOT TRUE] AND true ON CONFLICT DO NOTHING
 *
 * A hash run with no stored hashes first stores one for every live target
 * key, one that no source row has (row_hash_sql's placeholder: an empty
 * bytea for a digest, 0 for hash64): the run's diff then deletes the target keys the source lacks
 * and re-reads every other, and a run that fails halfway leaves stored
 * hashes that still name every target row it has not yet seen.
 */
static void
deparse_seed_hash_state(StringInfo buf, IncetlPipeline *p)
{
	int			i;
	RowHashSql	rh;

	row_hash_sql(p, &rh);
	appendStringInfo(buf, "INSERT INTO %s AS st (", incetl_hash_state_name(p));
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "k%d, ", i + 1);
	appendStringInfoString(buf, "h) SELECT ");
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "CAST(t.%s AS %s), ",
						 quote_identifier(p->keys[i]->name),
						 p->keys[i]->src_typename);
	appendStringInfo(buf, "%s FROM %s AS t WHERE ", rh.placeholder,
					 p->tgt_qname);
	for (i = 0; i < p->nkeys; i++)
		appendStringInfo(buf, "t.%s IS NOT NULL AND ",
						 quote_identifier(p->keys[i]->name));
	if (p->soft_delete)
		appendStringInfo(buf, "t.%s IS NOT TRUE AND ",
						 quote_identifier(p->soft_delete_column));
	appendStringInfoString(buf, "true ON CONFLICT DO NOTHING");
}

char *
incetl_sql_seed_hash_state(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_seed_hash_state(&buf, p);
	return buf.data;
}

/*
 * The keys a hash run with no stored hashes applies, as k1..kn (for
 * preview): every source key, and every live target key the source lacks.
 */
char *
incetl_sql_hash_initial_keys(IncetlPipeline *p)
{
	StringInfoData query;
	StringInfoData buf;

	initStringInfo(&query);
	deparse_hash_initial(&query, p);
	initStringInfo(&buf);
	deparse_select_keys(&buf, p, query.data);
	return buf.data;
}

/*
 * SELECT NOT EXISTS (SELECT 1 FROM <hash state> LIMIT 1)
 *
 * Whether a hash pipeline has no stored hashes: one row, one boolean.  (A
 * hash state distributed by Citus sends the LIMIT to its shards; without
 * it, Citus would bring every stored hash to the coordinator first.)
 */
static void
deparse_hash_state_empty(StringInfo buf, IncetlPipeline *p)
{
	appendStringInfo(buf, "SELECT NOT EXISTS (SELECT 1 FROM %s LIMIT 1)",
					 incetl_hash_state_name(p));
}

char *
incetl_sql_hash_state_empty(IncetlPipeline *p)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_hash_state_empty(&buf, p);
	return buf.data;
}

/*
 * SELECT <first>, <last> FROM <source> AS s
 * WHERE s.<wm> >= $1 AND s.<wm> < $2
 *
 * The first and last watermark of the source rows in [$1, $2), in the type
 * of the backfill's bounds (timestamptz, or bigint rounded down), so that a
 * backfill covers only the range its rows hold: an infinite bound, or one
 * far beyond the data, would otherwise mean chunks without end.  The
 * minimum is taken over the values as the batches compare them (a
 * timestamp or date converted to timestamptz), which for a timestamptz or
 * integer column is an index probe.
 */
static void
deparse_backfill_range(StringInfo buf, IncetlPipeline *p, Oid bound_type)
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
	appendStringInfo(buf, "SELECT %s, %s FROM %s AS s WHERE ", first, last, p->src_qname);
	deparse_catalog_clause(buf, w, p->wm_type, ">=", "$1", bound_type);
	appendStringInfoString(buf, " AND ");
	deparse_catalog_clause(buf, w, p->wm_type, "<", "$2", bound_type);
}

char *
incetl_sql_backfill_range(IncetlPipeline *p, Oid bound_type)
{
	StringInfoData buf;

	initStringInfo(&buf);
	deparse_backfill_range(&buf, p, bound_type);
	return buf.data;
}
