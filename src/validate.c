/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  Checking a pipeline definition against its source and target, and
 *	  deriving the column mapping the generated SQL is built from.
 *
 * Runs at create time and again at every run, so a source or target that
 * changed under a pipeline gives a clear error before anything is written.
 *
 * src/validate.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/parse_coerce.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "strategy.h"

static const char *special_columns[] = {"etl_inserted_at", "etl_updated_at", "etl_run_id"};

IncetlDeleteDetection
incetl_parse_delete_detection(const char *s)
{
	if (strcmp(s, "none") == 0)
		return DELETE_DETECT_NONE;
	if (strcmp(s, "flag") == 0)
		return DELETE_DETECT_FLAG;
	if (strcmp(s, "compare") == 0)
		return DELETE_DETECT_COMPARE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown delete_detection \"%s\"", s),
			 errhint("Valid values are 'none', 'flag' and 'compare'.")));
	return DELETE_DETECT_NONE;
}

/* returns true for 'soft' */
bool
incetl_parse_delete_mode(const char *s)
{
	if (strcmp(s, "hard") == 0)
		return false;
	if (strcmp(s, "soft") == 0)
		return true;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown delete_mode \"%s\"", s),
			 errhint("Valid values are 'hard' and 'soft'.")));
	return false;
}

IncetlSchemaChange
incetl_parse_schema_change(const char *s)
{
	if (strcmp(s, "fail") == 0)
		return SCHEMA_CHANGE_FAIL;
	if (strcmp(s, "ignore") == 0)
		return SCHEMA_CHANGE_IGNORE;
	if (strcmp(s, "add_columns") == 0)
		return SCHEMA_CHANGE_ADD_COLUMNS;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown on_schema_change \"%s\"", s),
			 errhint("Valid values are 'fail', 'ignore' and 'add_columns'.")));
	return SCHEMA_CHANGE_FAIL;
}

/*
 * The hash algorithms: 'hash64' (incetl.row_hash) and every digest that
 * pgcrypto's digest() offers, computed over incetl.row_bytes (deparse.c's
 * row_hash_sql).  The CHECK constraint on incetl.pipelines.hash_algorithm
 * lists the same values.
 */
static const char *const hash_algorithms[] = {
	"hash64", "md5", "sha1", "sha224", "sha256", "sha384", "sha512"
};

void
incetl_check_hash_algorithm(const char *s)
{
	for (int i = 0; i < lengthof(hash_algorithms); i++)
		if (strcmp(s, hash_algorithms[i]) == 0)
			return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown hash_algorithm \"%s\"", s),
			 errhint("Valid values are 'hash64', 'md5', 'sha1', 'sha224', 'sha256', 'sha384' and 'sha512'.")));
}

/*
 * max_retained_wal => '10GB': a size as pg_size_bytes reads it, above zero.
 */
int64
incetl_parse_wal_size(const char *s)
{
	int64		bytes;

	bytes = DatumGetInt64(DirectFunctionCall1(pg_size_bytes,
											  CStringGetTextDatum(s)));
	if (bytes <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_retained_wal must be above zero, not \"%s\"", s),
				 errhint("Give a size such as '10GB'.")));
	return bytes;
}

bool
incetl_is_time_type(Oid typid)
{
	return typid == TIMESTAMPTZOID || typid == TIMESTAMPOID || typid == DATEOID;
}

static bool
is_watermark_type(Oid typid)
{
	return incetl_is_time_type(typid) || typid == INT2OID || typid == INT4OID ||
		typid == INT8OID || typid == NUMERICOID;
}

static bool
is_special_column(IncetlPipeline *p, const char *name)
{
	for (int i = 0; i < lengthof(special_columns); i++)
		if (strcmp(name, special_columns[i]) == 0)
			return true;
	if (p->soft_delete &&
		(strcmp(name, p->soft_delete_column) == 0 || strcmp(name, "deleted_at") == 0))
		return true;
	return false;
}

char *
incetl_quote_qualified(Oid relid)
{
	char	   *nsp = get_namespace_name(get_rel_namespace(relid));

	return quote_qualified_identifier(nsp, get_rel_name(relid));
}

/*
 * A type as generated SQL spells it: schema-qualified and with its typmod,
 * so that a column, cast or parameter of this type holds exactly what the
 * source column holds (format_type_extended with typmod -1 says
 * "character" for a char(2) column, which means char(1), and "bit" means
 * bit(1)).  The two names format_type_extended leaves unqualified for a
 * typmod of -1 are qualified here.
 */
char *
incetl_type_name(Oid typid, int32 typmod)
{
	if (typmod < 0 && typid == BPCHAROID)
		return pstrdup("pg_catalog.bpchar");
	if (typmod < 0 && typid == BITOID)
		return pstrdup("pg_catalog.\"bit\"");
	return format_type_extended(typid, typmod,
								FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
}

/* attribute of rel by exact name, or NULL */
static Form_pg_attribute
find_attr(Relation rel, const char *name)
{
	TupleDesc	desc = RelationGetDescr(rel);

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return a;
	}
	return NULL;
}

static Form_pg_attribute
require_source_column(IncetlPipeline *p, Relation src, const char *col,
					  const char *option)
{
	Form_pg_attribute a = find_attr(src, col);

	if (a == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" given as %s of pipeline \"%s\" does not exist in source \"%s\"",
						col, option, p->name, RelationGetRelationName(src))));
	return a;
}

/*
 * true if rel has a valid, plain unique index whose columns are the keys
 * and, when extra is not NULL, that column too (in any order)
 */
static bool
has_unique_index_on(Relation rel, IncetlPipeline *p, const char *extra)
{
	List	   *indexes;
	ListCell   *lc;
	bool		found = false;

	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE &&
		rel->rd_rel->relkind != RELKIND_MATVIEW)
		return false;

	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ind = idx->rd_index;
		bool		match = ind->indisunique && ind->indisvalid &&
		ind->indislive &&
		ind->indnkeyatts == p->nkeys + (extra ? 1 : 0) &&
		heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL) &&
		heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL);

		for (int i = 0; match && i < ind->indnkeyatts; i++)
		{
			AttrNumber	attnum = ind->indkey.values[i];
			const char *attname;
			bool		known;

			if (attnum <= 0)
			{
				match = false;
				break;
			}
			attname = NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname);
			known = extra != NULL && strcmp(attname, extra) == 0;
			for (int k = 0; k < p->nkeys && !known; k++)
				known = strcmp(p->keys[k]->name, attname) == 0;
			match = known;
		}
		index_close(idx, AccessShareLock);
		if (match)
		{
			found = true;
			break;
		}
	}
	list_free(indexes);
	return found;
}

/* the primary key's column names of rel, or NIL */
static List *
primary_key_columns(Relation rel)
{
	Oid			pk;
	Relation	idx;
	List	   *cols = NIL;

	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		return NIL;
	pk = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(pk))
		return NIL;
	idx = index_open(pk, AccessShareLock);
	for (int i = 0; i < idx->rd_index->indnkeyatts; i++)
	{
		AttrNumber	attnum = idx->rd_index->indkey.values[i];

		cols = lappend(cols, pstrdup(NameStr(TupleDescAttr(RelationGetDescr(rel),
														   attnum - 1)->attname)));
	}
	index_close(idx, AccessShareLock);
	return cols;
}

static Relation
open_pipeline_relation(IncetlPipeline *p, Oid relid, const char *role)
{
	Relation	rel = try_relation_open(relid, AccessShareLock);

	if (rel == NULL && strcmp(role, "history") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("history table of pipeline \"%s\" does not exist", p->name),
				 errhint("Stop keeping history with SELECT incetl.alter_pipeline(%s, history_table => 0), "
						 "or point it at another history table.", quote_literal_cstr(p->name))));
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("%s relation of pipeline \"%s\" does not exist", role, p->name),
				 errhint("Point the pipeline at an existing relation with incetl.alter_pipeline, or drop it.")));
	return rel;
}

/*
 * What Citus makes of relid: 'h' (hash-distributed), 'r' (reference,
 * replicated to every node), 'l' (a Citus local table, or a single-shard
 * distributed one), another of pg_dist_partition's partition methods, or
 * '\0' for a table Citus does not manage (and on a server without Citus).
 */
static char
citus_table_kind(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	bool		isnull;
	Datum		d;
	char		method;
	char		repmodel;

	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return '\0';
	values[0] = ObjectIdGetDatum(relid);
	if (SPI_execute_with_args("SELECT partmethod, repmodel FROM pg_catalog.pg_dist_partition "
							  "WHERE logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not read pg_dist_partition");
	if (SPI_processed == 0)
		return '\0';
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	method = isnull ? '\0' : DatumGetChar(d);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	repmodel = isnull ? '\0' : DatumGetChar(d);
	if (method == 'n')
		return repmodel == 't' ? 'r' : 'l';
	return method;
}

/* the distribution column of a hash-distributed Citus table, or NULL */
static char *
citus_dist_column(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	bool		isnull;
	Datum		d;

	values[0] = ObjectIdGetDatum(relid);
	if (SPI_execute_with_args("SELECT pg_catalog.column_to_column_name(logicalrelid, partkey) "
							  "FROM pg_catalog.pg_dist_partition "
							  "WHERE logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "incetl: could not read pg_dist_partition");
	if (SPI_processed != 1)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * On a hash-distributed source: which key is its distribution column
 * (p->src_dist_key); on a hash-distributed target, which of the columns
 * is its (p->tgt_dist_col).  After the keys and columns are known.
 */
static void
resolve_citus_dist_key(IncetlPipeline *p)
{
	char	   *name;
	ListCell   *lc;
	int			i;

	p->src_dist_key = -1;
	p->tgt_dist_col = -1;
	if (p->src_citus == 'h' && (name = citus_dist_column(p->source)) != NULL)
	{
		for (i = 0; i < p->nkeys; i++)
			if (strcmp(p->keys[i]->name, name) == 0)
				p->src_dist_key = i;
	}
	if (p->tgt_citus == 'h' && (name = citus_dist_column(p->target)) != NULL)
	{
		i = 0;
		foreach(lc, p->columns)
		{
			if (strcmp(((IncetlColumn *) lfirst(lc))->name, name) == 0)
				p->tgt_dist_col = i;
			i++;
		}
	}
}

/*
 * The strategies that capture changes where they are written ('trigger',
 * 'logical') see only what happens on this node: a Citus table's rows live
 * in shards, on the workers.  After incetl_resolve_pipeline, which found
 * what Citus makes of the source (strategies' check callbacks run after it).
 */
void
incetl_check_not_citus_source(IncetlPipeline *p)
{
	char		kind = p->src_citus;

	if (kind != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("source of pipeline \"%s\" is a Citus %s table, whose changes the '%s' strategy cannot capture",
						p->name,
						kind == 'r' ? "reference" : kind == 'l' ? "local or single-shard" : "distributed",
						p->strategy_name),
				 errdetail("Its rows are written to shards, which capture on this node does not see."),
				 errhint("Use the 'timestamp' or 'hash' strategy for a Citus table.")));
}

/* opr, if there is such an operator; else InvalidOid */
static bool target_takes_merge(IncetlPipeline *p, Relation tgt);

static Oid
existing_operator(Oid opr)
{
	if (!OidIsValid(opr) || !SearchSysCacheExists1(OPEROID, ObjectIdGetDatum(opr)))
		return InvalidOid;
	return opr;
}

/* a history column incetl fills must be a timestamptz */
static void
require_history_time(IncetlPipeline *p, Relation hist, const char *col)
{
	Form_pg_attribute a = find_attr(hist, col);

	if (a == NULL || a->attgenerated)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("history table \"%s\" of pipeline \"%s\" has no column \"%s\"",
						RelationGetRelationName(hist), p->name, col),
				 errhint("A history table has the key columns, valid_from timestamptz NOT NULL and valid_to timestamptz.")));
	if (a->atttypid != TIMESTAMPTZOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of history table \"%s\" of pipeline \"%s\" has type %s, not timestamptz",
						col, RelationGetRelationName(hist), p->name,
						format_type_be(a->atttypid))));
}

/*
 * The history table (SPEC 5): the key columns, of the target's key types;
 * valid_from and valid_to timestamptz; etl_run_id filled when present; any
 * moved column, assignable from its target type; every other column left
 * to its default, so none may be NOT NULL without one; a unique index on
 * (key columns, valid_from).  history_ignore_columns names moved columns
 * that are not keys.  Sets p->hist_qname and the columns' in_history and
 * history_ignored.
 */
static void
resolve_history(IncetlPipeline *p)
{
	Relation	hist;
	TupleDesc	hdesc;
	ListCell   *lc;
	const char *hname;

	p->hist_qname = NULL;
	p->hist_etl_run_id = false;
	p->hist_in_place = false;
	foreach(lc, p->columns)
	{
		IncetlColumn *c = lfirst(lc);

		c->in_history = false;
		c->history_ignored = false;
	}

	foreach(lc, p->history_ignore_columns)
	{
		const char *name = lfirst(lc);
		IncetlColumn *found = NULL;
		ListCell   *lc2;

		if (!OidIsValid(p->history_table))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("history_ignore_columns of pipeline \"%s\" needs a history_table",
							p->name)));
		foreach(lc2, p->columns)
			if (strcmp(((IncetlColumn *) lfirst(lc2))->name, name) == 0)
				found = lfirst(lc2);
		if (found == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" in history_ignore_columns of pipeline \"%s\" is not a column the pipeline moves",
							name, p->name)));
		if (found->is_key)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key column \"%s\" of pipeline \"%s\" cannot be in history_ignore_columns",
							name, p->name)));
		found->history_ignored = true;
	}
	if (!OidIsValid(p->history_table))
		return;

	/*
	 * A history version is opened and closed by statements that join the
	 * batch to the target's current rows and update them by ctid, in the
	 * statement that writes the target: Citus plans no such statement on a
	 * distributed or reference table ("Recursively planned distributed
	 * modifications with ctid on where clause are not supported"), so every
	 * run failed.
	 */
	if (p->tgt_citus != '\0' || citus_table_kind(p->history_table) != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pipeline \"%s\" cannot keep a history table with a Citus table as its %s",
						p->name, p->tgt_citus != '\0' ? "target" : "history table"),
				 errdetail("The statements that write history versions run on one server."),
				 errhint("Keep the history of a local target, or keep none (history_table => 0).")));

	hist = open_pipeline_relation(p, p->history_table, "history");
	hname = RelationGetRelationName(hist);
	if (hist->rd_rel->relkind != RELKIND_RELATION &&
		hist->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("history table \"%s\" of pipeline \"%s\" is not a table",
						hname, p->name)));
	if (p->history_table == p->source || p->history_table == p->target)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("history table of pipeline \"%s\" must not be its source or target",
						p->name)));
	p->hist_qname = incetl_quote_qualified(p->history_table);

	require_history_time(p, hist, "valid_from");
	require_history_time(p, hist, "valid_to");

	hdesc = RelationGetDescr(hist);
	for (int i = 0; i < hdesc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(hdesc, i);
		const char *aname = NameStr(a->attname);
		IncetlColumn *c = NULL;

		if (a->attisdropped || a->attgenerated)
			continue;
		if (strcmp(aname, "valid_from") == 0 || strcmp(aname, "valid_to") == 0)
			continue;
		foreach(lc, p->columns)
			if (strcmp(((IncetlColumn *) lfirst(lc))->name, aname) == 0)
				c = lfirst(lc);
		if (c && c->is_key && a->atttypid != c->tgt_type)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("key column \"%s\" of history table \"%s\" has type %s, not %s as in target \"%s\"",
							aname, hname, format_type_be(a->atttypid),
							format_type_be(c->tgt_type), get_rel_name(p->target))));
		if (c && !c->is_key &&
			!can_coerce_type(1, &c->tgt_type, &a->atttypid, COERCION_ASSIGNMENT))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of history table \"%s\" has type %s, which type %s of target \"%s\" cannot be assigned to",
							aname, hname, format_type_be(a->atttypid),
							format_type_be(c->tgt_type), get_rel_name(p->target))));
		if (c)
		{
			c->in_history = true;
			c->hist_type = a->atttypid;
			c->hist_typename = incetl_type_name(a->atttypid, a->atttypmod);
			if (c->history_ignored)
				p->hist_in_place = true;
			continue;
		}
		if (strcmp(aname, "etl_run_id") == 0)
		{
			Oid			int8 = INT8OID;

			if (!can_coerce_type(1, &int8, &a->atttypid, COERCION_ASSIGNMENT))
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"etl_run_id\" of history table \"%s\" has type %s, not bigint",
								hname, format_type_be(a->atttypid))));
			p->hist_etl_run_id = true;
			continue;
		}
		/* left to its default: an identity, a default, or NULL */
		if (a->attnotnull && !a->atthasdef && !a->attidentity)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
					 errmsg("column \"%s\" of history table \"%s\" of pipeline \"%s\" is NOT NULL without a default, and incetl does not fill it",
							aname, hname, p->name),
					 errhint("Give it a default, allow NULL, or drop it; incetl fills the key columns, the columns the pipeline moves, valid_from, valid_to and etl_run_id.")));
	}
	for (int k = 0; k < p->nkeys; k++)
		if (!p->keys[k]->in_history)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("history table \"%s\" of pipeline \"%s\" has no key column \"%s\"",
							hname, p->name, p->keys[k]->name)));

	if (!has_unique_index_on(hist, p, "valid_from"))
	{
		StringInfoData cols;

		initStringInfo(&cols);
		for (int k = 0; k < p->nkeys; k++)
			appendStringInfo(&cols, "%s, ", quote_identifier(p->keys[k]->name));
		appendStringInfoString(&cols, "valid_from");
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("history table \"%s\" of pipeline \"%s\" has no unique index on (%s)",
						hname, p->name, cols.data),
				 errhint("Create one: CREATE UNIQUE INDEX ON %s (%s);",
						 p->hist_qname, cols.data)));
	}
	relation_close(hist, AccessShareLock);
}

/*
 * Validate a pipeline and fill in its derived fields.  Raises a clear error
 * for anything that would make a run fail or misbehave.  Writes nothing:
 * with on_schema_change 'add_columns', the source columns the target lacks
 * are left out of p->columns and listed in p->missing_columns, for the
 * caller to add (incetl_add_target_columns) and resolve again.
 */
void
incetl_resolve_pipeline(IncetlPipeline *p, bool at_create)
{
	Relation	src;
	Relation	tgt;
	TupleDesc	sdesc;
	ListCell   *lc;
	int			k;
	char		skind;
	char		tkind;

	if (p->batch_size <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size of pipeline \"%s\" must be positive", p->name)));

	src = open_pipeline_relation(p, p->source, "source");
	tgt = open_pipeline_relation(p, p->target, "target");

	skind = src->rd_rel->relkind;
	tkind = tgt->rd_rel->relkind;
	p->src_relkind = skind;
	p->src_qname = incetl_quote_qualified(p->source);
	p->tgt_qname = incetl_quote_qualified(p->target);

	if (skind != RELKIND_RELATION && skind != RELKIND_PARTITIONED_TABLE &&
		skind != RELKIND_VIEW && skind != RELKIND_MATVIEW &&
		skind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("source \"%s\" of pipeline \"%s\" is not a table, view, materialized view or foreign table",
						RelationGetRelationName(src), p->name)));
	if (tkind != RELKIND_RELATION && tkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("target \"%s\" of pipeline \"%s\" is not a table",
						RelationGetRelationName(tgt), p->name),
				 errhint("The target must be a table or a partitioned table.")));
	p->src_citus = citus_table_kind(p->source);
	p->tgt_citus = citus_table_kind(p->target);
	if (tgt->rd_rel->relhasrules)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("target \"%s\" of pipeline \"%s\" has rules",
						RelationGetRelationName(tgt), p->name),
				 errdetail("incetl writes the target with INSERT, UPDATE, DELETE and MERGE statements in WITH queries, which rules cannot rewrite."),
				 errhint("Do what the rules do with triggers.")));
	if (p->source == p->target)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source and target of pipeline \"%s\" are the same relation", p->name)));

	/* key columns: given, else the source's primary key, else the target's */
	if (p->key_columns == NIL)
		p->key_columns = primary_key_columns(src);
	if (p->key_columns == NIL)
		p->key_columns = primary_key_columns(tgt);
	if (p->key_columns == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("pipeline \"%s\" has no key columns", p->name),
				 errhint("Give key_columns, or add a primary key to the source or the target.")));
	foreach(lc, p->key_columns)
	{
		ListCell   *lc2;

		for_each_cell(lc2, p->key_columns, lnext(p->key_columns, lc))
		{
			if (strcmp(lfirst(lc), lfirst(lc2)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_COLUMN),
						 errmsg("key column \"%s\" of pipeline \"%s\" is given twice",
								(char *) lfirst(lc), p->name)));
		}
	}

	/* the columns moved: every source column, matched by name */
	p->columns = NIL;
	p->missing_columns = NIL;
	sdesc = RelationGetDescr(src);
	{
		StringInfoData shape;
		bool		first = true;

		initStringInfo(&shape);
		appendStringInfoChar(&shape, '{');
		for (int i = 0; i < sdesc->natts; i++)
		{
			Form_pg_attribute sa = TupleDescAttr(sdesc, i);

			if (sa->attisdropped)
				continue;
			if (!first)
				appendStringInfoString(&shape, ", ");
			escape_json(&shape, NameStr(sa->attname));
			appendStringInfoString(&shape, ": ");
			escape_json(&shape, format_type_extended(sa->atttypid, sa->atttypmod,
													 FORMAT_TYPE_TYPEMOD_GIVEN |
													 FORMAT_TYPE_FORCE_QUALIFY));
			first = false;
		}
		appendStringInfoChar(&shape, '}');
		p->source_shape = shape.data;
	}
	for (int i = 0; i < sdesc->natts; i++)
	{
		Form_pg_attribute sa = TupleDescAttr(sdesc, i);
		Form_pg_attribute ta;
		IncetlColumn *c;

		if (sa->attisdropped)
			continue;
		if (is_special_column(p, NameStr(sa->attname)))
			continue;
		ta = find_attr(tgt, NameStr(sa->attname));
		/* the delete flag need not be copied: it is read from the source */
		if (ta == NULL && p->delete_detection == DELETE_DETECT_FLAG &&
			p->delete_flag_column &&
			strcmp(NameStr(sa->attname), p->delete_flag_column) == 0)
			continue;
		if (ta == NULL)
		{
			if (p->on_schema_change == SCHEMA_CHANGE_IGNORE)
				continue;
			if (p->on_schema_change == SCHEMA_CHANGE_ADD_COLUMNS)
			{
				IncetlColumn *m = palloc0(sizeof(IncetlColumn));

				m->name = pstrdup(NameStr(sa->attname));
				m->src_type = sa->atttypid;
				m->src_typmod = sa->atttypmod;
				m->src_typename = incetl_type_name(sa->atttypid, sa->atttypmod);
				p->missing_columns = lappend(p->missing_columns, m);
				continue;
			}
			else
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of source \"%s\" does not exist in target \"%s\"",
								NameStr(sa->attname), RelationGetRelationName(src),
								RelationGetRelationName(tgt)),
						 errdetail("Pipeline \"%s\" has on_schema_change 'fail'.", p->name),
						 errhint("Add the column to the target, or set on_schema_change to 'ignore' or 'add_columns' with incetl.alter_pipeline.")));
		}
		if (ta->attgenerated)
			continue;			/* the target computes it */
		if (!can_coerce_type(1, &sa->atttypid, &ta->atttypid, COERCION_ASSIGNMENT))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of source \"%s\" has type %s, which cannot be assigned to type %s of target \"%s\"",
							NameStr(sa->attname), RelationGetRelationName(src),
							format_type_be(sa->atttypid), format_type_be(ta->atttypid),
							RelationGetRelationName(tgt)),
					 errhint("Change one of the column types, or exclude the column with a view as source.")));

		c = palloc0(sizeof(IncetlColumn));
		c->name = pstrdup(NameStr(sa->attname));
		c->src_type = sa->atttypid;
		c->src_typmod = sa->atttypmod;
		c->tgt_type = ta->atttypid;
		c->tgt_typmod = ta->atttypmod;
		c->src_typename = incetl_type_name(sa->atttypid, sa->atttypmod);
		c->src_collation = sa->attcollation;
		c->tgt_collation = ta->attcollation;
		c->tgt_typename = incetl_type_name(ta->atttypid, ta->atttypmod);
		p->columns = lappend(p->columns, c);
	}

	/* the key columns must be moved columns */
	p->nkeys = list_length(p->key_columns);
	p->keys = palloc0(sizeof(IncetlColumn *) * p->nkeys);
	k = 0;
	foreach(lc, p->key_columns)
	{
		char	   *kname = lfirst(lc);
		ListCell   *lc2;

		if (find_attr(src, kname) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("key column \"%s\" of pipeline \"%s\" does not exist in source \"%s\"",
							kname, p->name, RelationGetRelationName(src))));
		if (find_attr(tgt, kname) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("key column \"%s\" of pipeline \"%s\" does not exist in target \"%s\"",
							kname, p->name, RelationGetRelationName(tgt))));
		foreach(lc2, p->columns)
		{
			IncetlColumn *c = lfirst(lc2);

			if (strcmp(c->name, kname) == 0)
			{
				/* only keys need one here: deparse.c finds the others' */
				c->eq_opr = existing_operator(lookup_type_cache(c->tgt_type,
																TYPECACHE_EQ_OPR)->eq_opr);
				if (!OidIsValid(c->eq_opr))
					ereport(ERROR,
							(errcode(ERRCODE_UNDEFINED_FUNCTION),
							 errmsg("key column \"%s\" of pipeline \"%s\" has type %s, which has no equality operator",
									kname, p->name, format_type_be(c->tgt_type))));
				c->is_key = true;
				p->keys[k] = c;

				/*
				 * A target key whose nondeterministic collation is not the
				 * source's takes as one key what the source may hold as two
				 * ('abc' and 'ABC'): a key changed only that way would have
				 * a batch match one target row twice.  Refused at create;
				 * a pipeline made before keeps running.
				 */
				if (at_create && OidIsValid(c->tgt_collation) &&
					c->tgt_collation != c->src_collation &&
					!get_collation_isdeterministic(c->tgt_collation))
					ereport(ERROR,
							(errcode(ERRCODE_COLLATION_MISMATCH),
							 errmsg("key column \"%s\" of pipeline \"%s\" has the nondeterministic collation \"%s\" in target \"%s\" and collation \"%s\" in source \"%s\"",
									kname, p->name,
									get_collation_name(c->tgt_collation),
									RelationGetRelationName(tgt),
									OidIsValid(c->src_collation) ?
									get_collation_name(c->src_collation) : "none",
									RelationGetRelationName(src)),
							 errdetail("The target would take as one key what the source may hold as two."),
							 errhint("Give the target's key column the source's collation (ALTER TABLE ... ALTER COLUMN %s TYPE ... COLLATE ...).",
									 quote_identifier(kname))));
			}
		}
		if (p->keys[k] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
					 errmsg("key column \"%s\" of pipeline \"%s\" cannot be a column that incetl fills or a generated column",
							kname, p->name)));
		k++;
	}

	if (!has_unique_index_on(tgt, p, NULL))
	{
		StringInfoData cols;

		initStringInfo(&cols);
		for (k = 0; k < p->nkeys; k++)
			appendStringInfo(&cols, "%s%s", k ? ", " : "", quote_identifier(p->keys[k]->name));
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("target \"%s\" of pipeline \"%s\" has no unique index on the key columns (%s)",
						RelationGetRelationName(tgt), p->name, cols.data),
				 errhint("Create one, for example: CREATE UNIQUE INDEX ON %s (%s);",
						 p->tgt_qname, cols.data)));
	}
	p->src_key_unique = has_unique_index_on(src, p, NULL);

	/* the watermark column */
	p->wm_type = InvalidOid;
	if (p->watermark_column)
	{
		Form_pg_attribute a = require_source_column(p, src, p->watermark_column,
													"watermark_column");

		if (!is_watermark_type(a->atttypid))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("watermark column \"%s\" of pipeline \"%s\" has type %s",
							p->watermark_column, p->name, format_type_be(a->atttypid)),
					 errhint("The watermark column must be of type timestamptz, timestamp, date, smallint, integer, bigint or numeric.")));
		p->wm_type = a->atttypid;
		p->wm_typmod = a->atttypmod;
		for (k = 0; k < p->nkeys; k++)
			if (strcmp(p->keys[k]->name, p->watermark_column) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("watermark column \"%s\" of pipeline \"%s\" is also a key column",
								p->watermark_column, p->name)));
	}

	/* lookback */
	if (DatumGetBool(DirectFunctionCall2(interval_lt, IntervalPGetDatum(p->lookback),
										 DirectFunctionCall3(interval_in,
															 CStringGetDatum("0"),
															 ObjectIdGetDatum(InvalidOid),
															 Int32GetDatum(-1)))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lookback of pipeline \"%s\" must not be negative", p->name)));
	if ((p->lookback->month != 0 || p->lookback->day != 0 || p->lookback->time != 0) &&
		(p->strategy->keyed || !incetl_is_time_type(p->wm_type)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lookback of pipeline \"%s\" needs the 'timestamp' strategy with a timestamptz, timestamp or date watermark column",
						p->name)));

	/* the sequence column */
	p->seq_type = InvalidOid;
	if (p->sequence_column)
	{
		Form_pg_attribute a = require_source_column(p, src, p->sequence_column,
													"sequence_column");
		TypeCacheEntry *tc = lookup_type_cache(a->atttypid, TYPECACHE_GT_OPR);

		if (!OidIsValid(tc->gt_opr))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("sequence column \"%s\" of pipeline \"%s\" has type %s, which has no ordering",
							p->sequence_column, p->name, format_type_be(a->atttypid))));
		p->seq_type = a->atttypid;
		p->tgt_has_seq = find_attr(tgt, p->sequence_column) != NULL;
	}

	/* deletes */
	if (p->delete_detection == DELETE_DETECT_FLAG)
	{
		Form_pg_attribute a;

		if (p->delete_flag_column == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("pipeline \"%s\" has delete_detection 'flag' but no delete_flag_column",
							p->name),
					 errhint("Name the boolean source column that marks deleted rows with delete_flag_column.")));
		a = require_source_column(p, src, p->delete_flag_column, "delete_flag_column");
		if (a->atttypid != BOOLOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("delete flag column \"%s\" of pipeline \"%s\" has type %s, not boolean",
							p->delete_flag_column, p->name, format_type_be(a->atttypid))));
	}
	else if (p->delete_flag_column != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("delete_flag_column of pipeline \"%s\" needs delete_detection 'flag'",
						p->name)));
	p->tgt_soft_column = false;
	p->tgt_deleted_at = false;
	if (p->soft_delete)
	{
		Form_pg_attribute a = find_attr(tgt, p->soft_delete_column);

		if (a == NULL || a->attgenerated)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("soft delete column \"%s\" of pipeline \"%s\" does not exist in target \"%s\"",
							p->soft_delete_column, p->name, RelationGetRelationName(tgt)),
					 errhint("Add a boolean column to the target, e.g. ALTER TABLE %s ADD COLUMN %s boolean NOT NULL DEFAULT false;",
							 p->tgt_qname, quote_identifier(p->soft_delete_column))));
		if (a->atttypid != BOOLOID)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("soft delete column \"%s\" of pipeline \"%s\" has type %s, not boolean",
							p->soft_delete_column, p->name, format_type_be(a->atttypid))));
		p->tgt_soft_column = true;
		a = find_attr(tgt, "deleted_at");
		if (a && !a->attgenerated)
		{
			if (a->atttypid != TIMESTAMPTZOID && a->atttypid != TIMESTAMPOID)
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"deleted_at\" of target \"%s\" has type %s",
								RelationGetRelationName(tgt), format_type_be(a->atttypid)),
						 errhint("incetl sets deleted_at when it soft-deletes a row; it must be timestamptz or timestamp.")));
			p->tgt_deleted_at = true;
		}
	}

	/* columns incetl fills */
	{
		Form_pg_attribute a;

		a = find_attr(tgt, "etl_inserted_at");
		p->tgt_etl_inserted_at = a && !a->attgenerated;
		a = find_attr(tgt, "etl_updated_at");
		p->tgt_etl_updated_at = a && !a->attgenerated;
		a = find_attr(tgt, "etl_run_id");
		p->tgt_etl_run_id = a && !a->attgenerated;
	}

	p->tgt_merge_ok = target_takes_merge(p, tgt);
	resolve_citus_dist_key(p);

	relation_close(src, AccessShareLock);
	relation_close(tgt, AccessShareLock);

	resolve_history(p);
	/* decided from all of the above, on first use (incetl_logical_rows) */
	p->logical_rows = 0;
}

/*
 * Whether PostgreSQL 15 (and Citus) can MERGE into the target: not one
 * with a foreign partition, nor a Citus table from a local source (Citus 13
 * refuses that).  (A target with rules is refused altogether.)
 */
static bool
target_takes_merge(IncetlPipeline *p, Relation tgt)
{
	if (p->tgt_citus != '\0')
		return false;
	if (tgt->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		List	   *parts = find_all_inheritors(RelationGetRelid(tgt), AccessShareLock, NULL);
		ListCell   *lc;

		foreach(lc, parts)
		{
			HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(lfirst_oid(lc)));
			bool		no;

			if (!HeapTupleIsValid(tup))
				continue;
			no = ((Form_pg_class) GETSTRUCT(tup))->relkind == RELKIND_FOREIGN_TABLE;
			ReleaseSysCache(tup);
			if (no)
				return false;
		}
	}
	return true;
}

/*
 * Creating (or repointing) a pipeline needs SELECT on the source and
 * SELECT, INSERT, UPDATE, DELETE on the target.
 */
void
incetl_check_privileges(IncetlPipeline *p)
{
	Oid			user = GetUserId();
	AclMode		need = ACL_SELECT | ACL_INSERT | ACL_UPDATE | ACL_DELETE;

	if (pg_class_aclcheck(p->source, user, ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for source \"%s\" of pipeline \"%s\"",
						get_rel_name(p->source), p->name),
				 errdetail("A pipeline needs SELECT on its source.")));
	if (pg_class_aclmask(p->target, user, need, ACLMASK_ALL) != need)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for target \"%s\" of pipeline \"%s\"",
						get_rel_name(p->target), p->name),
				 errdetail("A pipeline needs SELECT, INSERT, UPDATE and DELETE on its target.")));
	need = ACL_SELECT | ACL_INSERT | ACL_UPDATE;
	if (OidIsValid(p->history_table) &&
		pg_class_aclmask(p->history_table, user, need, ACLMASK_ALL) != need)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for history table \"%s\" of pipeline \"%s\"",
						get_rel_name(p->history_table), p->name),
				 errdetail("A pipeline needs SELECT, INSERT and UPDATE on its history table.")));
}
