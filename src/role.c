/*-------------------------------------------------------------------------
 *
 * role.c
 *	  The one place where incetl changes the current user, and the SQL it
 *	  runs as the extension owner.
 *
 * Who runs what, as whom:
 *
 * - incetl's own catalog (incetl.pipelines, state, run_log) and the capture
 *	 queues (incetl.queue_<id>) are read and written as the extension owner,
 *	 with search_path = pg_catalog, pg_temp; so is the DDL of the capture
 *	 triggers, and the read of a newly covered partition's keys (capture.c).
 *	 Those statements are incetl's own: no user's view, trigger, rule,
 *	 policy, domain, operator or cast is in them.
 * - Everything else that touches a pipeline's source, target or
 *	 per-pipeline state (batches, previews, the hash state, slot functions)
 *	 runs as the pipeline's owner.
 *
 * Every switch, to either role, is a security-restricted operation inside
 * a GUC nest level of its own, as VACUUM, CREATE INDEX and REFRESH
 * MATERIALIZED VIEW switch to a table's owner: code that runs meanwhile
 * cannot create temporary objects, change the role, or leave a setting
 * behind in the calling session (the nest level is popped with
 * isCommit = false, so even a plain SET is undone).  The one exception is
 * INCETL_ROLE_ALLOW_TEMP, for creating incetl's own temporary work table
 * (as matview.c does for its diff table); nothing user-defined runs then.
 *
 * src/role.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "replication/slot.h"
#include "storage/proc.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/resowner.h"

#include "incetl.h"

/*
 * The role that owns the extension, and so incetl's catalog tables.
 */
Oid
incetl_extension_owner(void)
{
	static LocalTransactionId cached_lxid = InvalidLocalTransactionId;
	static Oid	cached_owner = InvalidOid;
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	/* looked up once per transaction */
	if (cached_lxid == MyProc->lxid && OidIsValid(cached_owner))
		return cached_owner;

	rel = table_open(ExtensionRelationId, AccessShareLock);

	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("incetl"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);

	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"incetl\" is not installed in this database")));
	cached_lxid = MyProc->lxid;
	cached_owner = owner;
	return owner;
}

/*
 * Become role until incetl_restore_role().
 *
 * Always security-restricted (unless INCETL_ROLE_ALLOW_TEMP, and never
 * less restricted than the caller already is) and always in a GUC nest
 * level of its own.  With INCETL_ROLE_PIN_PATH the search_path is
 * pg_catalog, pg_temp meanwhile.
 *
 * On error, call incetl_restore_role(save, false) and re-throw: the
 * (sub)transaction abort that follows pops the nest level.
 */
void
incetl_switch_role(IncetlRoleSwitch *save, Oid role, int flags)
{
	int			sec;

	GetUserIdAndSecContext(&save->userid, &save->sec);
	sec = save->sec | SECURITY_LOCAL_USERID_CHANGE;
	if ((flags & INCETL_ROLE_ALLOW_TEMP) == 0)
		sec |= SECURITY_RESTRICTED_OPERATION;
	SetUserIdAndSecContext(role, sec);
	save->nestlevel = NewGUCNestLevel();
	if (flags & INCETL_ROLE_PIN_PATH)
		(void) set_config_option("search_path", "pg_catalog, pg_temp",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * Undo incetl_switch_role().  ok: no error is in flight; every setting
 * changed meanwhile, by us or by code we ran, goes back to what it was.
 */
void
incetl_restore_role(IncetlRoleSwitch *save, bool ok)
{
	if (ok)
		AtEOXact_GUC(false, save->nestlevel);
	SetUserIdAndSecContext(save->userid, save->sec);
}

/*
 * Execute a statement as role (security-restricted, search_path pinned) and
 * check its SPI result.  Returns SPI_processed.
 */
int
incetl_spi_exec_as(Oid role, const char *sql, int nargs, Oid *argtypes,
				   Datum *values, const char *nulls, int expected)
{
	IncetlRoleSwitch save;
	volatile int rc = 0;

	incetl_switch_role(&save, role, INCETL_ROLE_PIN_PATH);
	PG_TRY();
	{
		rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls,
								   false, 0);
	}
	PG_CATCH();
	{
		incetl_restore_role(&save, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	incetl_restore_role(&save, true);

	if (rc != expected)
		elog(ERROR, "incetl: unexpected SPI result %s for \"%s\"",
			 SPI_result_code_string(rc), sql);
	return (int) SPI_processed;
}

/*
 * Execute a statement on incetl's own tables as the extension owner.
 */
int
incetl_spi_exec_owner(const char *sql, int nargs, Oid *argtypes,
					  Datum *values, const char *nulls, int expected)
{
	return incetl_spi_exec_as(incetl_extension_owner(), sql, nargs, argtypes,
							  values, nulls, expected);
}

/*
 * Run a utility statement as role.  Used for the DDL that sets up and tears
 * down a pipeline's objects: as the extension owner for what only it may do
 * (attaching incetl._capture), as the pipeline's owner for the rest.
 */
void
incetl_exec_utility_as(Oid role, const char *sql)
{
	(void) incetl_spi_exec_as(role, sql, 0, NULL, NULL, NULL, SPI_OK_UTILITY);
}

/*
 * Call fn(arg) in a subtransaction that is then rolled back, whether fn
 * returns or fails (the error goes on): what it and any code it runs
 * wrote is undone.  For what must write nothing and may need to write to
 * find out (preview, explain).  Allocations in the caller's memory context
 * survive.
 */
void
incetl_call_rolled_back(void (*fn) (void *arg), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/*
		 * The error is copied out before the rollback: code that the abort
		 * runs may use (and flush) the error state; Citus's, which rolls
		 * back the subtransaction on the workers, left the error pointing at
		 * freed memory, and reporting it crashed the backend.
		 */
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		/* an abort leaves a slot acquired: only top-level cleanup frees it */
		if (MyReplicationSlot != NULL)
			ReplicationSlotRelease();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ReThrowError(edata);
	}
	PG_END_TRY();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
}

/*
 * Call fn(arg) in a subtransaction: kept when fn returns (NULL is
 * returned), rolled back when it fails, and then the error is returned
 * (copied into the caller's memory context) instead of raised.  For a loop
 * over pipelines where one that fails must not stop the others (guard).
 */
ErrorData *
incetl_call_caught(void (*fn) (void *arg), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		/* an abort leaves a slot acquired: only top-level cleanup frees it */
		if (MyReplicationSlot != NULL)
			ReplicationSlotRelease();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = oldowner;
	return edata;
}
