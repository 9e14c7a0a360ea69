/*-------------------------------------------------------------------------
 *
 * incetl.h
 *	  Shared declarations of the incetl extension.
 *
 * src/incetl.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef INCETL_H
#define INCETL_H

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/timestamp.h"

#include "storage/lockdefs.h"

/*
 * Declares an SQL-callable function: PG_FUNCTION_INFO_V1, and the function
 * exported.  The library is built with -fvisibility=hidden (Makefile), and
 * PostgreSQL 15's PG_FUNCTION_INFO_V1 exports only the info function.
 */
#define INCETL_FUNCTION(funcname) \
	PG_FUNCTION_INFO_V1(funcname); \
	extern PGDLLEXPORT Datum funcname(PG_FUNCTION_ARGS)

/* a pipeline's locks (lock.c) */
typedef enum IncetlLockKind
{
	INCETL_LOCK_RUN = 1,		/* a run or reconcile */
	INCETL_LOCK_BACKFILL = 2,	/* a backfill */
	INCETL_LOCK_APPLY = 3		/* a batch that writes the target */
} IncetlLockKind;

typedef enum IncetlDeleteDetection
{
	DELETE_DETECT_NONE,
	DELETE_DETECT_FLAG,
	DELETE_DETECT_COMPARE
} IncetlDeleteDetection;

typedef enum IncetlSchemaChange
{
	SCHEMA_CHANGE_FAIL,
	SCHEMA_CHANGE_IGNORE,
	SCHEMA_CHANGE_ADD_COLUMNS
} IncetlSchemaChange;

typedef enum IncetlRunKind
{
	RUN_KIND_RUN,
	RUN_KIND_BACKFILL,
	RUN_KIND_RECONCILE
} IncetlRunKind;

/* one column moved from the source to the target */
typedef struct IncetlColumn
{
	char	   *name;			/* attribute name, unquoted */
	Oid			src_type;
	int32		src_typmod;
	Oid			tgt_type;
	int32		tgt_typmod;
	bool		is_key;
	char	   *src_typename;	/* qualified source type with its typmod */
	Oid			src_collation;	/* the source column's collation, or 0 */
	Oid			tgt_collation;	/* the target column's */
	char	   *tgt_typename;	/* qualified target type, for CAST */
	Oid			eq_opr;			/* key columns: = of the target type */
	bool		in_history;		/* a column of the history table (SPEC 5) */
	bool		history_ignored;	/* in history_ignore_columns */
	Oid			hist_type;		/* in_history: its type there */
	char	   *hist_typename;
} IncetlColumn;

/* a pipeline as stored in incetl.pipelines, plus what validation derived */
typedef struct IncetlPipeline
{
	int32		id;
	char	   *name;
	Oid			source;
	Oid			target;
	char	   *strategy_name;
	/* strategy.h; set by incetl_strategy() */
	const struct IncetlStrategyRoutine *strategy;
	List	   *key_columns;	/* list of char * */
	char	   *watermark_column;
	Interval   *lookback;
	char	   *sequence_column;
	IncetlDeleteDetection delete_detection;
	char	   *delete_flag_column;
	bool		soft_delete;
	char	   *soft_delete_column;
	char	   *hash_algorithm;
	int32		batch_size;
	IncetlSchemaChange on_schema_change;
	bool		enabled;
	Oid			owner;
	Oid			history_table;	/* SPEC 5; InvalidOid: none */
	List	   *history_ignore_columns; /* list of char * */
	char	   *max_retained_wal;	/* SPEC 6, as given ('10GB'); NULL: none */
	int64		max_retained_wal_bytes; /* -1: none */
	Interval   *freshness_target;	/* SPEC 6; NULL: none */

	/* derived by incetl_resolve_pipeline() */
	char	   *src_qname;		/* quoted, qualified */
	char	   *tgt_qname;
	char		src_relkind;
	List	   *columns;		/* IncetlColumn *, in source order */
	List	   *missing_columns;	/* 'add_columns': source columns the
									 * target lacks (IncetlColumn *, only the
									 * src_ fields set) */
	int			nkeys;
	IncetlColumn **keys;		/* key columns, in key_columns order */
	Oid			wm_type;		/* InvalidOid when there is none */
	int32		wm_typmod;
	Oid			seq_type;
	bool		src_key_unique; /* source has a unique index on the key */
	bool		tgt_has_seq;
	bool		tgt_etl_inserted_at;
	bool		tgt_etl_updated_at;
	bool		tgt_etl_run_id;
	bool		tgt_soft_column;
	bool		tgt_deleted_at;
	char		src_citus;		/* what Citus makes of the source ('h', 'r', 'l'; '\0': nothing) */
	char		tgt_citus;		/* and of the target */
	int			src_dist_key;	/* the key that is a hash-distributed
								 * source's distribution column (0-based);
								 * -1: none */
	int			tgt_dist_col;	/* the column (of columns) that is a
								 * hash-distributed target's distribution
								 * column, or -1 */
	bool		tgt_merge_ok;	/* MERGE can write the target */
	int8		logical_rows;	/* incetl_logical_rows: 0 not decided yet,
								 * 1 yes, -1 no */
	char	   *slot_name;		/* 'logical': set by create_pipeline */
	char	   *source_shape;	/* jsonb text {"column": "type", ...} */
	char	   *hist_qname;		/* the history table, quoted; NULL: none */
	bool		hist_etl_run_id;	/* it has etl_run_id */
	bool		hist_in_place;	/* it has an ignored column, updated in place */
} IncetlPipeline;

/* watermark state of a pipeline */
typedef struct IncetlCursor
{
	bool		valid;			/* false: nothing read yet */
	Datum		wm;
	int			nkeys;
	Datum	   *keys;
	bool	   *key_nulls;
	char	   *wm_text;		/* canonical text form */
} IncetlCursor;

/* counters of one run */
typedef struct IncetlCounts
{
	int32		batches;
	int64		extracted;
	int64		inserted;
	int64		updated;
	int64		deleted;
	int64		unchanged;
	int64		history_versions;	/* versions opened in the history table */
} IncetlCounts;

/* incetl.c */
extern int	incetl_late_commit_margin_ms;
extern int	incetl_queue_truncate_min;
extern int	incetl_run_log_retention_s;

/* role.c */
typedef struct IncetlRoleSwitch
{
	Oid			userid;
	int			sec;
	int			nestlevel;
} IncetlRoleSwitch;

#define INCETL_ROLE_PIN_PATH	0x01	/* search_path = pg_catalog, pg_temp */
#define INCETL_ROLE_ALLOW_TEMP	0x02	/* not security-restricted: only to
										 * create incetl's own work table */

extern Oid	incetl_extension_owner(void);
extern void incetl_switch_role(IncetlRoleSwitch *save, Oid role, int flags);
extern void incetl_restore_role(IncetlRoleSwitch *save, bool ok);
extern int	incetl_spi_exec_as(Oid role, const char *sql, int nargs, Oid *argtypes,
							   Datum *values, const char *nulls, int expected);
extern int	incetl_spi_exec_owner(const char *sql, int nargs, Oid *argtypes,
								  Datum *values, const char *nulls, int expected);
extern void incetl_exec_utility_as(Oid role, const char *sql);
extern void incetl_call_rolled_back(void (*fn) (void *arg), void *arg);
extern ErrorData *incetl_call_caught(void (*fn) (void *arg), void *arg);

/* catalog.c */
#include "access/htup.h"
#include "access/tupdesc.h"
extern HeapTuple incetl_catalog_row(const char *relname, const char *keycol,
									RegProcedure eqproc, Datum key, TupleDesc *descp);
extern Datum incetl_catalog_col(HeapTuple tup, TupleDesc desc, const char *name,
								bool *isnull);
extern IncetlPipeline *incetl_load_pipeline(const char *name, bool missing_ok);
extern void incetl_store_pipeline(IncetlPipeline *p, bool insert);
extern List *incetl_key_list_from_array(ArrayType *arr, const char *argname);
extern List *incetl_enabled_pipeline_names(void);
extern void incetl_check_owner(IncetlPipeline *p);
extern void incetl_depend_on_extension(const char *relname);
extern void incetl_distribute_with(const char *relname, const char *column,
								   const char *colocate_with, bool identity_full);
extern void incetl_drop_own_table(const char *relname);

/* state.c */
#include "access/xlogdefs.h"

/* what incetl.state says of a 'logical' pipeline's slot */
typedef struct IncetlSlotState
{
	char	   *slot_name;		/* NULL: none stored */
	XLogRecPtr	applied;		/* InvalidXLogRecPtr: none */
	bool		loaded;			/* the pipeline has a watermark */
	bool		needs_resync;	/* marked: the next run compares everything */
} IncetlSlotState;

/* a 'logical' pipeline as CALL incetl.guard() looks at it */
typedef struct IncetlGuardItem
{
	int32		id;
	char	   *name;
	Oid			owner;
	char	   *max_retained_wal;	/* NULL: no limit */
	char	   *slot_name;		/* stored; NULL: none */
	bool		loaded;			/* the pipeline has a watermark */
	bool		needs_resync;
} IncetlGuardItem;

/* a pipeline's row of incetl.state, as a run reads it once */
typedef struct IncetlStateRow
{
	bool		found;
	char	   *watermark;		/* NULL: none */
	Datum		watermark_key;	/* text[], or 0 */
	char	   *source_columns; /* jsonb's canonical text, or NULL */
} IncetlStateRow;

extern void incetl_state_create(int32 pipeline_id);
extern void incetl_state_read(IncetlPipeline *p, IncetlStateRow *row);
extern void incetl_state_cursor(IncetlPipeline *p, IncetlStateRow *row,
								IncetlCursor *cur);
extern bool incetl_state_shape_unchanged(IncetlPipeline *p, IncetlStateRow *row);
extern char *incetl_state_watermark(int32 pipeline_id);
extern void incetl_state_load_cursor(IncetlPipeline *p, IncetlCursor *cur);
extern void incetl_state_save_cursor(IncetlPipeline *p, const char *wm_text,
									 const char *keys_text);
extern void incetl_state_save_run_start(IncetlPipeline *p, const char *wm_text);
extern void incetl_state_reset_watermark(IncetlPipeline *p);
extern void incetl_state_read_slot(IncetlPipeline *p, IncetlSlotState *s);
extern void incetl_state_set_slot_name(IncetlPipeline *p, const char *name);
extern void incetl_state_store_applied(IncetlPipeline *p, XLogRecPtr lsn);
extern List *incetl_state_capture_relations(IncetlPipeline *p, bool *known);
extern void incetl_state_set_capture_relations(IncetlPipeline *p, List *relids);
extern bool incetl_state_check_source_shape(IncetlPipeline *p);
extern void incetl_state_save_source_shape(IncetlPipeline *p);
extern bool incetl_state_mark_resync(int32 pipeline_id);
extern void incetl_state_clear_resync(int32 pipeline_id);
extern List *incetl_state_logical_pipelines(void);

/* a pipeline that turned stale, for its alert */
typedef struct IncetlStaleTurn
{
	char	   *pipeline;
	int64		run_id;			/* its last run; 0: none */
	char	   *status;			/* of that run */
	char	   *error;
} IncetlStaleTurn;

extern List *incetl_state_record_freshness(int32 pipeline_id);

/* lock.c */
extern bool incetl_lock_try(int32 pipeline_id, IncetlLockKind kind, bool session);
extern void incetl_lock_wait(int32 pipeline_id, IncetlLockKind kind, LOCKMODE mode);
extern void incetl_unlock(int32 pipeline_id, IncetlLockKind kind);
extern void incetl_lock_idle_pipeline(IncetlPipeline *p);

/* validate.c */
extern void incetl_resolve_pipeline(IncetlPipeline *p, bool at_create);
extern void incetl_check_privileges(IncetlPipeline *p);
extern IncetlDeleteDetection incetl_parse_delete_detection(const char *s);
extern bool incetl_parse_delete_mode(const char *s);
extern IncetlSchemaChange incetl_parse_schema_change(const char *s);
extern void incetl_check_hash_algorithm(const char *s);
extern int64 incetl_parse_wal_size(const char *s);
extern void incetl_check_not_citus_source(IncetlPipeline *p);
extern bool incetl_is_time_type(Oid typid);
extern char *incetl_type_name(Oid typid, int32 typmod);

/* schema.c */
extern void incetl_resolve_and_follow(IncetlPipeline *p, bool at_create,
									  bool notice);

/* watermark.c */
extern char *incetl_canonical_text(Datum value, Oid typid);
extern Datum incetl_parse_canonical(const char *text, Oid typid);
extern TimestampTz incetl_late_commit_bound(void);
extern Datum incetl_bound_for_column(IncetlPipeline *p, TimestampTz bound);
extern Datum incetl_lookback_start(IncetlPipeline *p, Datum wm, Oid *type);

/* deparse.c */
typedef enum IncetlLower
{
	LOWER_NONE,					/* from the start */
	LOWER_GE,					/* watermark >= $ */
	LOWER_GT,					/* watermark > $ */
	LOWER_AFTER					/* (watermark, key) > ($, $...) */
} IncetlLower;

typedef enum IncetlUpper
{
	UPPER_NONE,
	UPPER_LT,					/* watermark < $ */
	UPPER_LE,					/* watermark <= $ */
	UPPER_LE_CURSOR				/* (watermark, key) <= ($, $...) */
} IncetlUpper;

typedef struct IncetlBatchShape
{
	IncetlLower lower;
	IncetlUpper upper;
	Oid			lower_type;		/* type of $ for LOWER_GE / LOWER_GT */
	Oid			upper_type;		/* type of $ for UPPER_LT */
	bool		preview;		/* list ops instead of writing */
	bool		limit;			/* LIMIT batch_size */
	bool		fast_load;		/* plain INSERT: the target had no row */
	bool		edge;			/* and (watermark, key) <= ($, $...): the
								 * batch's last row, found by its edge probe;
								 * no ORDER BY, no LIMIT */
	const char *stage;			/* in: a Citus target's stage to carry the
								 * batch's rows (incetl_tstage_qname) */
	char	   *stage_fill;		/* out: where the batch goes through the
								 * stage, the INSERT of its rows there */
} IncetlBatchShape;

#define INCETL_MAX_PARAMS(p) (3 * (p)->nkeys + 6)

extern char *incetl_sql_batch(IncetlPipeline *p, IncetlBatchShape *shape,
							  int *nargs, Oid *argtypes);
extern char *incetl_sql_target_empty(IncetlPipeline *p);
extern char *incetl_sql_add_column(IncetlPipeline *p, IncetlColumn *c);
extern char *incetl_sql_range_probe(IncetlPipeline *p, IncetlBatchShape *shape,
									int *nargs, Oid *argtypes);
extern char *incetl_sql_range_edge(IncetlPipeline *p, IncetlBatchShape *shape,
								   int *nargs, Oid *argtypes);
extern char *incetl_quote_qualified(Oid relid);
extern char *incetl_type_equality(Oid typid);
extern const char *incetl_key_collate(IncetlColumn *c);
extern char *incetl_work_table_name(IncetlPipeline *p);
extern char *incetl_hash_state_name(IncetlPipeline *p);
extern char *incetl_hash_state_relname(int32 pipeline_id);
extern char *incetl_queue_table_name(IncetlPipeline *p);
extern char *incetl_stage_name(IncetlPipeline *p);
extern char *incetl_stage_relname(int32 pipeline_id);
extern char *incetl_stage_qname(IncetlPipeline *p);
extern char *incetl_sql_create_stage(IncetlPipeline *p);
extern char *incetl_tstage_relname(int32 pipeline_id);
extern char *incetl_tstage_name(IncetlPipeline *p);
extern char *incetl_tstage_qname(IncetlPipeline *p);
extern char *incetl_sql_create_tstage(IncetlPipeline *p);
extern char *incetl_sql_fill_stage(IncetlPipeline *p);
extern char *incetl_queue_relname(int32 pipeline_id);
extern char *incetl_sql_create_work_table(IncetlPipeline *p);
extern char *incetl_sql_create_hash_state(IncetlPipeline *p);
extern char *incetl_sql_fill_work(IncetlPipeline *p, bool reconcile);
extern bool incetl_keyed_batch_merges(IncetlPipeline *p, bool with_state);
extern bool incetl_logical_rows(IncetlPipeline *p);
extern bool incetl_range_batch_merges(IncetlPipeline *p, IncetlBatchShape *shape);
extern char *incetl_sql_keyed_batch(IncetlPipeline *p, bool with_state, bool rows_only,
									int *nargs, Oid *argtypes);
extern char *incetl_sql_compare_deletes(IncetlPipeline *p, bool preview);
extern char *incetl_sql_keyed_preview(IncetlPipeline *p, const char *keys_sql);
extern char *incetl_sql_diff_keys(IncetlPipeline *p, bool reconcile);
extern char *incetl_sql_seed_hash_state(IncetlPipeline *p);
extern char *incetl_sql_hash_initial_keys(IncetlPipeline *p);
extern char *incetl_sql_hash_state_empty(IncetlPipeline *p);
extern char *incetl_sql_queue_keys(IncetlPipeline *p);
extern char *incetl_sql_change_keys(IncetlPipeline *p);
extern char *incetl_sql_backfill_range(IncetlPipeline *p, Oid bound_type);
extern char *incetl_sql_history_repair(IncetlPipeline *p);
extern char *incetl_sql_history_layer(IncetlPipeline *p);
extern char *incetl_sql_history_key_changes(IncetlPipeline *p);
extern char *incetl_sql_history_settle(IncetlPipeline *p);
extern char *incetl_sql_history_empty(IncetlPipeline *p);
extern bool incetl_history_layers(IncetlPipeline *p);

/* plancache.c: prepared statements keyed by (pipeline, kind, variant) */
typedef enum IncetlPlanKind
{
	PLAN_RANGE_BATCH = 1,		/* variant: the batch shape */
	PLAN_KEYED_BATCH,			/* variant: 1 with the hash state, 2 rows only */
	PLAN_COMPARE_DELETES,
	PLAN_RANGE_PROBE,			/* variant: the batch shape */
	PLAN_HISTORY_LAYER,			/* 'logical' history: one version per key */
	PLAN_HISTORY_SETTLE			/* 'logical' history: current = target */
} IncetlPlanKind;

typedef struct IncetlPlanKey
{
	int32		pipeline_id;
	int32		kind;			/* IncetlPlanKind */
	int32		variant;
	Oid			type1;			/* parameter types the variant depends on */
	Oid			type2;
} IncetlPlanKey;

#include "executor/spi.h"
extern SPIPlanPtr incetl_plan_get(const IncetlPlanKey *key, const char *sql,
								  int nargs, Oid *argtypes, int cursor_options);
extern void incetl_plan_execute_counted(SPIPlanPtr plan, int nargs,
										const Oid *argtypes, Datum *values,
										const char *nulls, int64 *read,
										int64 *inserted, int64 *updated,
										int64 *deleted);

/* audit.c */
extern void incetl_log_skipped(IncetlPipeline *p, const char *pipeline_name,
							   IncetlRunKind kind, const char *watermark_before);
extern bool incetl_log_running(int64 run_id);
extern void incetl_log_progress(int64 run_id, IncetlCounts *c,
								const char *watermark_after);
extern void incetl_log_finish(int64 run_id, const char *status,
							  IncetlCounts *c, const char *watermark_after,
							  const char *error);
extern int64 incetl_log_begin_run(IncetlPipeline *p, const char *pipeline_name,
								  IncetlRunKind kind, const char *watermark_before);
extern const char *incetl_run_kind_name(IncetlRunKind kind);
extern void incetl_log_estimate(int64 run_id, int64 rows);

/* run.c */
extern bool incetl_call_is_nonatomic(FunctionCallInfo fcinfo);
extern void incetl_end_checking(bool nonatomic);

/* alert.c */
extern void incetl_alert(const char *kind, const char *pipeline, int64 run_id,
						 const char *status, const char *error);
extern void incetl_check_freshness(int32 pipeline_id);

#endif							/* INCETL_H */
