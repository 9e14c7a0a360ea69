/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  CALL incetl.guard(): max_retained_wal and freshness, for every
 *	  pipeline, without running any.
 *
 * A replication slot that nobody reads keeps WAL until the disk is full.
 * guard looks at the slot of every 'logical' pipeline: one that holds more
 * WAL than the pipeline's max_retained_wal is dropped, and the pipeline is
 * marked for a resync (incetl.state.needs_resync): its next run creates a
 * new slot and compares the whole source with the target, losing nothing.
 * A slot found gone or invalidated marks the pipeline too.  Each mark sends
 * the 'resync' alert; then every pipeline with a freshness_target is
 * checked, and one that turned stale sends the 'stale' alert (alert.c).
 *
 * It is cheap (a look at pg_replication_slots per logical pipeline, one
 * statement for freshness), for a pg_cron job every minute.
 *
 * Who may call it: anyone (EXECUTE is PUBLIC's), because it only enforces
 * what each pipeline's owner set: a slot is dropped only over its own
 * pipeline's limit, only a slot of incetl's plugin in this database named
 * for that pipeline, by incetl's C code rather than as any role; it writes
 * only incetl's state, and it touches no user relation, so no user code
 * runs.  The NOTICEs name only the pipelines the caller may manage.
 *
 * A pipeline that is running is left alone: guard takes the run lock
 * without waiting, and only for a pipeline it has to act on (so calling it
 * in a loop cannot get another role's runs skipped); a run holding the
 * lock reads the slot, or finds it gone, itself.  Outside a transaction
 * block guard commits after each pipeline it acted on.
 *
 * src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "strategy.h"

INCETL_FUNCTION(incetl_guard);

/* may the caller hear about this pipeline? */
static bool
visible(IncetlGuardItem *g)
{
	return has_privs_of_role(GetUserId(), g->owner);
}

/* one pipeline; returns whether guard wrote something */
static bool
guard_pipeline(IncetlGuardItem *g)
{
	int64		limit = g->max_retained_wal ? incetl_parse_wal_size(g->max_retained_wal) : -1;
	int64		retained;
	IncetlSlotCheck check;
	char	   *why;
	char	   *alert;

	check = incetl_logical_check_slot(g->id, g->slot_name, limit, false, &retained);
	if (check == SLOT_HEALTHY || check == SLOT_NOT_OURS)
		return false;
	/* no slot before the first run, and one already marked, is as it should be */
	if ((check == SLOT_NONE || check == SLOT_LOST) && (!g->loaded || g->needs_resync))
		return false;

	if (!incetl_lock_try(g->id, INCETL_LOCK_RUN, false))
	{
		if (visible(g))
			ereport(NOTICE,
					(errmsg("pipeline \"%s\" is running, guard left it alone", g->name)));
		return false;
	}
	/* look again, under the lock */
	check = incetl_logical_check_slot(g->id, g->slot_name, limit, true, &retained);
	switch (check)
	{
		case SLOT_DROPPED:
			why = psprintf("held more WAL than max_retained_wal (%s) and was dropped",
						   g->max_retained_wal);
			break;
		case SLOT_NONE:
			why = g->loaded ? "is gone" : NULL;
			break;
		case SLOT_LOST:
			why = g->loaded ? "was invalidated" : NULL;
			break;
		case SLOT_IN_USE:
			if (visible(g))
				ereport(NOTICE,
						(errmsg("the replication slot of pipeline \"%s\" is over max_retained_wal but in use, guard left it alone",
								g->name)));
			return false;
		default:
			return false;
	}
	if (why == NULL)
		return false;
	why = psprintf("the replication slot of pipeline \"%s\" %s", g->name, why);
	if (visible(g))
		ereport(NOTICE,
				(errmsg("%s", why),
				 errdetail("The next run of the pipeline compares the whole source with the target.")));
	/* the alert says how much */
	alert = check == SLOT_DROPPED ?
		psprintf("%s (it held " INT64_FORMAT " bytes)", why, retained) : why;
	if (incetl_state_mark_resync(g->id))
		incetl_alert("resync", g->name, 0, NULL, alert);
	return true;
}

/* guard_pipeline as incetl_call_caught() calls it */
typedef struct GuardCall
{
	IncetlGuardItem *g;
	bool		wrote;
} GuardCall;

static void
guard_call(void *arg)
{
	GuardCall  *c = arg;

	c->wrote = guard_pipeline(c->g);
}

/*
 * guard_pipeline in a subtransaction: a pipeline guard cannot handle (a
 * slot that a session took between the look and the drop, say) is a
 * WARNING, and the others are still guarded.  Returns -1 on error, else
 * whether it wrote something.
 */
static int
guard_one(IncetlGuardItem *g)
{
	GuardCall	c = {g, false};
	ErrorData  *edata = incetl_call_caught(guard_call, &c);

	if (edata == NULL)
		return c.wrote ? 1 : 0;
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 visible(g) ?
			 errmsg("guard could not check pipeline \"%s\": %s", g->name, edata->message) :
			 errmsg("guard could not check a pipeline of another role: %s", edata->message)));
	FreeErrorData(edata);
	return -1;
}

/*
 * CALL incetl.guard()
 */
Datum
incetl_guard(PG_FUNCTION_ARGS)
{
	bool		nonatomic = incetl_call_is_nonatomic(fcinfo);
	List	   *pipelines;
	ListCell   *lc;
	int			nfailed = 0;

	if (SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* in SPI's procedure memory, which outlives the commits */
	pipelines = incetl_state_logical_pipelines();
	foreach(lc, pipelines)
	{
		int			r = guard_one(lfirst(lc));

		/* the commit releases the run lock, if guard took it */
		if (r != 0 && nonatomic)
			SPI_commit();
		if (r < 0)
			nfailed++;
	}
	incetl_end_checking(nonatomic);

	/* what it did is committed: the job shows as failed all the same */
	if (nfailed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg_plural("guard could not check %d pipeline",
							   "guard could not check %d pipelines",
							   nfailed, nfailed),
				 errhint("See the warnings above; the next call tries again.")));
	PG_RETURN_VOID();
}
