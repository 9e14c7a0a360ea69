/*-------------------------------------------------------------------------
 *
 * lock.c
 *	  The locks of a pipeline.
 *
 * They are advisory locks in the lock manager (so pg_locks shows them, as
 * locktype 'advisory', classid = pipeline id, objid = the kind below,
 * objsubid = INCETL_LOCKTAG_SPACE) but in a key space that SQL cannot
 * reach: pg_advisory_lock() and friends only ever use objsubid 1 and 2.
 * So no role can take, hold or queue for a pipeline's lock to block it.
 *
 * - RUN: one run or reconcile of a pipeline at a time; taken without
 *	 waiting (a second run is skipped).
 * - BACKFILL: one backfill of a pipeline at a time, the same way.
 * - APPLY: every batch that writes the target, of a run or of a backfill,
 *	 holds it until its transaction ends, and waits for it.  A run and a
 *	 backfill of one pipeline can therefore never apply keys concurrently,
 *	 and a batch's snapshot is taken after the batch before it committed:
 *	 a backfill that read an older version of a row cannot overwrite what a
 *	 run applied meanwhile, with or without a watermark column in the
 *	 target.
 *
 * A run called outside a transaction block commits per batch, so it holds
 * RUN as a session lock and releases it at its end; inside a transaction
 * block it holds RUN until that transaction ends (a session lock would be
 * released at the end of the CALL, before the run's writes commit).
 *
 * src/lock.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/lock.h"

#include "incetl.h"

/*
 * The last field of every incetl locktag (the one place it is spelled in
 * C; the status view, incetl--0.1--0.2.sql, looks for it in pg_locks).
 * pg_advisory_lock() only uses 1 and 2 there.
 */
#define INCETL_LOCKTAG_SPACE	0x1ec7	/* 7879 */

static void
set_tag(LOCKTAG *tag, int32 pipeline_id, IncetlLockKind kind)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) pipeline_id,
						 (uint32) kind, INCETL_LOCKTAG_SPACE);
}

/*
 * Take a pipeline's lock without waiting; false if another session holds
 * it.  session: held across commits until incetl_unlock(), else until the
 * transaction ends.
 */
bool
incetl_lock_try(int32 pipeline_id, IncetlLockKind kind, bool session)
{
	LOCKTAG		tag;

	set_tag(&tag, pipeline_id, kind);
	return LockAcquire(&tag, ExclusiveLock, session, true) != LOCKACQUIRE_NOT_AVAIL;
}

/* Wait for a pipeline's lock (mode ExclusiveLock or ShareLock), until the
 * transaction ends. */
void
incetl_lock_wait(int32 pipeline_id, IncetlLockKind kind, LOCKMODE mode)
{
	LOCKTAG		tag;

	set_tag(&tag, pipeline_id, kind);
	(void) LockAcquire(&tag, mode, false, false);
}

/* Release a session lock taken by incetl_lock_try(..., true). */
void
incetl_unlock(int32 pipeline_id, IncetlLockKind kind)
{
	LOCKTAG		tag;

	set_tag(&tag, pipeline_id, kind);
	LockRelease(&tag, ExclusiveLock, true);
}

/*
 * Take the run and backfill locks of a pipeline without waiting, or fail:
 * a pipeline that is running cannot be altered, dropped or have its
 * watermark moved.  Held until the transaction ends.
 */
void
incetl_lock_idle_pipeline(IncetlPipeline *p)
{
	if (!incetl_lock_try(p->id, INCETL_LOCK_RUN, false) ||
		!incetl_lock_try(p->id, INCETL_LOCK_BACKFILL, false))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("pipeline \"%s\" is running", p->name),
				 errhint("Wait for the run to finish and try again.")));
}
