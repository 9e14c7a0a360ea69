/*-------------------------------------------------------------------------
 *
 * watermark.c
 *	  The watermark: how it is stored, read back and moved, and the upper
 *	  bound that keeps a timestamp run from passing rows that are about to
 *	  commit late.
 *
 * The stored watermark must mean the same thing whatever the settings of
 * the session that reads it.  Time values are therefore written as ISO 8601
 * in UTC by this file's own code (never through DateStyle or TimeZone),
 * floats as their shortest exact decimal form (never through
 * extra_float_digits), and everything else through the type's output
 * function, which for the watermark and key types allowed here depends on
 * no setting.  The canonical forms are read back by the types' input
 * functions, which accept ISO 8601 whatever DateStyle says.
 *
 * src/watermark.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "pgtime.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "incetl.h"

/*
 * The canonical text of a value; see the file header.
 */
char *
incetl_canonical_text(Datum value, Oid typid)
{
	char		buf[MAXDATELEN + 1];
	struct pg_tm tt;
	fsec_t		fsec;

	switch (typid)
	{
		case TIMESTAMPTZOID:
			{
				TimestampTz ts = DatumGetTimestampTz(value);

				if (TIMESTAMP_NOT_FINITE(ts))
					return pstrdup(TIMESTAMP_IS_NOBEGIN(ts) ? "-infinity" : "infinity");
				if (timestamp2tm(ts, NULL, &tt, &fsec, NULL, NULL) != 0)
					ereport(ERROR,
							(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
							 errmsg("timestamp out of range")));
				tt.tm_isdst = 0;	/* else EncodeDateTime omits the offset */
				EncodeDateTime(&tt, fsec, true, 0, NULL, USE_ISO_DATES, buf);
				return pstrdup(buf);
			}
		case TIMESTAMPOID:
			{
				Timestamp	ts = DatumGetTimestamp(value);

				if (TIMESTAMP_NOT_FINITE(ts))
					return pstrdup(TIMESTAMP_IS_NOBEGIN(ts) ? "-infinity" : "infinity");
				if (timestamp2tm(ts, NULL, &tt, &fsec, NULL, NULL) != 0)
					ereport(ERROR,
							(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
							 errmsg("timestamp out of range")));
				EncodeDateTime(&tt, fsec, false, 0, NULL, USE_ISO_DATES, buf);
				return pstrdup(buf);
			}
		case DATEOID:
			{
				DateADT		d = DatumGetDateADT(value);

				if (DATE_NOT_FINITE(d))
					return pstrdup(DATE_IS_NOBEGIN(d) ? "-infinity" : "infinity");
				j2date(d + POSTGRES_EPOCH_JDATE, &tt.tm_year, &tt.tm_mon, &tt.tm_mday);
				EncodeDateOnly(&tt, USE_ISO_DATES, buf);
				return pstrdup(buf);
			}
		case FLOAT8OID:
		case FLOAT4OID:
			{
				double		f = (typid == FLOAT8OID) ? DatumGetFloat8(value)
				: (double) DatumGetFloat4(value);

				if (isnan(f))
					return pstrdup("NaN");
				if (isinf(f))
					return pstrdup(f > 0 ? "Infinity" : "-Infinity");
				if (typid == FLOAT8OID)
					double_to_shortest_decimal_buf(f, buf);
				else
					float_to_shortest_decimal_buf(DatumGetFloat4(value), buf);
				return pstrdup(buf);
			}
		default:
			{
				Oid			out;
				bool		isvarlena;

				getTypeOutputInfo(typid, &out, &isvarlena);
				return OidOutputFunctionCall(out, value);
			}
	}
}

/*
 * Read a canonical text back as a value of typid.
 */
Datum
incetl_parse_canonical(const char *text, Oid typid)
{
	Oid			in;
	Oid			ioparam;

	getTypeInputInfo(typid, &in, &ioparam);
	return OidInputFunctionCall(in, (char *) text, ioparam, -1);
}

/* the local transaction id a backend advertises (renamed in 17) */
#if PG_VERSION_NUM >= 170000
#define PROC_LXID(proc) ((proc)->vxid.lxid)
#else
#define PROC_LXID(proc) ((proc)->lxid)
#endif

/*
 * The late-commit bound of a timestamp run.
 *
 * A writer that stamps rows with now() stamps them with its transaction's
 * start time, however late it commits.  Every transaction still open in
 * this database started at or after the returned bound, so every row stamped
 * below it by such a writer is already committed and visible to a snapshot
 * taken after this call.  A run therefore reads only rows below the bound;
 * the rest waits for the next run.  The margin covers the instant between a
 * transaction's start and the moment it reports its start time.
 *
 * A backend publishes its transaction's start time only with
 * track_activities on.  One that has it off (its state shows as
 * 'disabled') publishes nothing, but the proc array still shows whether it
 * has a transaction open (a valid local transaction id, from its start to
 * its end): such a transaction started after the backend did, so the
 * backend's start is then the bound.  That is exact, but holds the bound
 * back for as long as a long-lived session keeps transactions open at run
 * time; a WARNING (once per session) says so.
 */
TimestampTz
incetl_late_commit_bound(void)
{
	static bool warned_untracked = false;
	TimestampTz bound;
	bool		untracked = false;
	int			n;

	bound = GetCurrentTimestamp() -
		(TimestampTz) incetl_late_commit_margin_ms * INT64CONST(1000);

	pgstat_clear_backend_activity_snapshot();
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
		PgBackendStatus *be;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_procpid == MyProcPid || be->st_procpid <= 0)
			continue;
		if (be->st_databaseid != MyDatabaseId)
			continue;
		if (be->st_backendType == B_AUTOVAC_WORKER ||
			be->st_backendType == B_AUTOVAC_LAUNCHER ||
			be->st_backendType == B_WAL_SENDER)
			continue;
		if (be->st_xact_start_timestamp != 0)
		{
			if (be->st_xact_start_timestamp < bound)
				bound = be->st_xact_start_timestamp;
		}
		else if (be->st_state == STATE_DISABLED || be->st_state == STATE_UNDEFINED)
		{
			/* no start time published: is a transaction open? */
			PGPROC	   *proc = BackendPidGetProc(be->st_procpid);

			if (proc != NULL && PROC_LXID(proc) != InvalidLocalTransactionId &&
				be->st_proc_start_timestamp < bound)
			{
				bound = be->st_proc_start_timestamp;
				if (be->st_state == STATE_DISABLED)
					untracked = true;
			}
		}
	}
	if (untracked && !warned_untracked)
	{
		warned_untracked = true;
		ereport(WARNING,
				(errmsg("a session with track_activities off holds back the late-commit bound of incetl's timestamp pipelines"),
				 errdetail("Its open transaction publishes no start time, so a run reads only rows stamped before that session started."),
				 errhint("Keep track_activities on (the default) in sessions that write to timestamp sources; pg_stat_activity shows the others with state 'disabled'.")));
	}
	return bound;
}

/*
 * The start of the lookback window, cursor - lookback, and its type (a date
 * minus an interval is a timestamp).
 */
Datum
incetl_lookback_start(IncetlPipeline *p, Datum wm, Oid *type)
{
	switch (p->wm_type)
	{
		case TIMESTAMPTZOID:
			*type = TIMESTAMPTZOID;
			return DirectFunctionCall2(timestamptz_mi_interval, wm,
									   IntervalPGetDatum(p->lookback));
		case TIMESTAMPOID:
			*type = TIMESTAMPOID;
			return DirectFunctionCall2(timestamp_mi_interval, wm,
									   IntervalPGetDatum(p->lookback));
		default:
			*type = TIMESTAMPOID;
			return DirectFunctionCall2(date_mi_interval, wm,
									   IntervalPGetDatum(p->lookback));
	}
}

/*
 * The late-commit bound as a value of the watermark column's type.
 *
 * timestamptz compares as is.  A timestamp or date column holds local time:
 * writers stamp it in their session's TimeZone, which is the server's
 * configured TimeZone unless they change it, so the bound is converted
 * with that zone (never with the running session's).  A date column is
 * bounded by the bound's day (rows of the current day wait until it is
 * over: more may still come with lower keys), and a column of reduced
 * precision by the bound rounded down to that precision, since PostgreSQL
 * rounds stored values half up.
 */
Datum
incetl_bound_for_column(IncetlPipeline *p, TimestampTz bound)
{
	int			precision = (p->wm_typmod >= 0 && p->wm_typmod < MAX_TIMESTAMP_PRECISION) ?
	p->wm_typmod : MAX_TIMESTAMP_PRECISION;
	int64		unit = 1;

	for (int i = precision; i < MAX_TIMESTAMP_PRECISION; i++)
		unit *= 10;

	if (p->wm_type == TIMESTAMPTZOID)
		return TimestampTzGetDatum(bound - ((bound % unit) + unit) % unit);
	else
	{
		const char *zone = GetConfigOptionResetString("TimeZone");
		pg_tz	   *tz = pg_tzset(zone);
		struct pg_tm tt;
		fsec_t		fsec;
		int			tzoff;
		Timestamp	local;

		if (tz == NULL)
			tz = session_timezone;
		if (timestamp2tm(bound, &tzoff, &tt, &fsec, NULL, tz) != 0 ||
			tm2timestamp(&tt, fsec, NULL, &local) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
		if (p->wm_type == DATEOID)
			return DirectFunctionCall1(timestamp_date, TimestampGetDatum(local));
		return TimestampGetDatum(local - ((local % unit) + unit) % unit);
	}
}
