# test/t/060_pg_cron.pl -- incetl driven by pg_cron, the way users schedule it
#
# A non-superuser role "etl" owns the pipelines and schedules them with
# pg_cron (which connects back through libpq as that role, outside any
# transaction block).  Proves:
#   - a scheduled CALL incetl.run succeeds; run_log shows the job's role as
#     run_by and the pid of pg_cron's connection (cron.job_run_details.job_pid),
#     not a session of the test; the run committed per batch;
#   - a tick that comes while a run of the same pipeline is still going is
#     logged 'skipped' (and the job succeeds: nothing is queued behind the
#     running one), for CALL incetl.run and for CALL incetl.run_all alike;
#   - CALL incetl.run_all from pg_cron runs the other pipelines and, when one
#     of them fails, ends in an error so that cron.job_run_details says
#     'failed' and names the pipeline.
# pg_cron 1.4 fires at minute boundaries: the test waits for two ticks, so it
# takes about two minutes.
use strict;
use warnings;

use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
my $sockdir = $node->host;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.host = '$sockdir'
});
$node->start;

# wait_for(sql, what, seconds): poll sql until it returns 't', twice a
# second (pg_cron needs up to a minute per tick; no need to hammer).
sub wait_for
{
	my ($sql, $what, $secs) = @_;
	$secs //= 150;
	my $last = '';
	for (my $i = 0; $i < 2 * $secs; $i++)
	{
		$last = $node->safe_psql('postgres', $sql);
		return 1 if $last eq 't';
		usleep(500_000);
	}
	diag "timed out waiting for $what; last result: $last";
	return 0;
}

# etl(sql): run sql as the role etl, in a session of its own
sub etl
{
	my ($sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', 'etl' ]);
}

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_cron;
CREATE EXTENSION incetl CASCADE;
CREATE ROLE etl LOGIN;
GRANT USAGE ON SCHEMA cron TO etl;
CREATE SCHEMA app AUTHORIZATION etl;
CREATE SCHEMA dw AUTHORIZATION etl;
});

etl(q{
CREATE TABLE app.users (id integer PRIMARY KEY, name text NOT NULL,
						updated_at timestamptz NOT NULL);
CREATE TABLE dw.users (id integer PRIMARY KEY, name text, updated_at timestamptz,
					   etl_run_id bigint);
INSERT INTO app.users
SELECT i, 'user ' || i, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 100) AS i;
SELECT incetl.create_pipeline('users', source => 'app.users', target => 'dw.users',
							  watermark_column => 'updated_at', batch_size => 30);

CREATE TABLE app.orders (id integer PRIMARY KEY, amount numeric NOT NULL,
						 updated_at timestamptz NOT NULL);
CREATE TABLE dw.orders (id integer PRIMARY KEY, amount numeric, updated_at timestamptz);
INSERT INTO app.orders
SELECT i, i * 10, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour'
  FROM generate_series(1, 10) AS i;
SELECT incetl.create_pipeline('orders', source => 'app.orders', target => 'dw.orders',
							  watermark_column => 'updated_at');

CREATE TABLE app.fragile (id integer PRIMARY KEY, note text, updated_at timestamptz NOT NULL);
CREATE TABLE dw.fragile (id integer PRIMARY KEY, note text, updated_at timestamptz);
SELECT incetl.create_pipeline('fragile', source => 'app.fragile', target => 'dw.fragile',
							  watermark_column => 'updated_at');
});

###
### 1. a scheduled run
###
my $jobid = etl(
	q{SELECT cron.schedule('incetl-users', '* * * * *', $$CALL incetl.run('users')$$)});
ok($jobid =~ /^\d+$/, "etl scheduled incetl-users (job $jobid)");
is( $node->safe_psql('postgres',
		"SELECT username FROM cron.job WHERE jobid = $jobid"),
	'etl',
	'the job runs as etl');

ok( wait_for(
		qq{SELECT EXISTS (SELECT 1 FROM cron.job_run_details
						  WHERE jobid = $jobid AND status IN ('succeeded', 'failed'))},
		'the first tick of incetl-users'),
	'pg_cron ran incetl-users');

is( $node->safe_psql(
		'postgres', qq{
SELECT status || ' ' || coalesce(return_message, '') FROM cron.job_run_details
 WHERE jobid = $jobid ORDER BY runid LIMIT 1}),
	'succeeded CALL',
	'cron.job_run_details: the job succeeded');

is( $node->safe_psql(
		'postgres', q{
SELECT kind, status, batches, rows_extracted, rows_inserted, rows_updated,
	   rows_deleted, watermark_after, run_by, error IS NULL AS no_error
  FROM incetl.run_log WHERE pipeline = 'users' ORDER BY run_id LIMIT 1}),
	'run|succeeded|4|100|100|0|0|2024-01-01 01:40:00+00|etl|t',
	'run_log: the scheduled run loaded 100 rows in 4 batches of 30, run by etl');

is( $node->safe_psql(
		'postgres', qq{
SELECT r.pid = d.job_pid AND r.pid <> pg_backend_pid()
  FROM incetl.run_log r, cron.job_run_details d
 WHERE r.pipeline = 'users' AND d.jobid = $jobid
 ORDER BY r.run_id, d.runid LIMIT 1}),
	't',
	"run_log.pid is the pid of pg_cron's connection");

target_equals_source($node, 'app.users', 'dw.users', 'id, name, updated_at',
	'target equals source after the scheduled run');
is( $node->safe_psql('postgres',
		"SELECT count(DISTINCT etl_run_id) FROM dw.users"),
	'1', 'every target row carries the run id of that run');

###
### 2. a tick during a long run is skipped, not queued
###
# Stop the job while we set up the long run, so that it cannot be the one
# that takes the pipeline's lock, and wait until no run of it is in flight.
$node->safe_psql('postgres', "SELECT cron.alter_job($jobid, active => false)");
ok( wait_for(
		qq{SELECT NOT EXISTS (SELECT 1 FROM cron.job_run_details
							  WHERE jobid = $jobid
								AND status NOT IN ('succeeded', 'failed'))
			  AND NOT EXISTS (SELECT 1 FROM incetl.run_log WHERE status = 'running')},
		'the job to be idle'),
	'incetl-users is paused and idle');
my $runs_before = $node->safe_psql('postgres',
	"SELECT count(*) FROM cron.job_run_details WHERE jobid = $jobid");

# A source row changes; another session locks its target row, so the next run
# blocks in its MERGE while it holds the pipeline's lock.
etl(q{
UPDATE app.users SET name = 'renamed', updated_at = '2024-06-01 00:00:00+00' WHERE id = 1;
UPDATE app.orders SET amount = 1000, updated_at = '2024-06-01 00:00:00+00' WHERE id = 1;
ALTER TABLE app.fragile DROP COLUMN note;
});
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; SELECT id FROM dw.users WHERE id = 1 FOR UPDATE');

my $runner = $node->background_psql('postgres', extra_params => [ '-U', 'etl' ]);
my $runner_pid = $runner->query_safe('SELECT pg_backend_pid()');
$runner->query_until(qr/started/, "\\echo started\nCALL incetl.run('users');\n");
ok( wait_for(
		qq{SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $runner_pid},
		'the long run to block on the row lock'),
	'a run of users is blocked on a target row lock, holding the pipeline lock');

# Now the next ticks: incetl-users and a run_all job fire together.
$node->safe_psql('postgres', "SELECT cron.alter_job($jobid, active => true)");
my $alljob = etl(
	q{SELECT cron.schedule('incetl-all', '* * * * *', $$CALL incetl.run_all()$$)});
ok( wait_for(
		qq{SELECT count(*) > $runs_before FROM cron.job_run_details
			WHERE jobid = $jobid AND status IN ('succeeded', 'failed')}
		  . qq{ AND EXISTS (SELECT 1 FROM cron.job_run_details
							WHERE jobid = $alljob AND status IN ('succeeded', 'failed'))},
		'the next tick of both jobs'),
	'pg_cron ran incetl-users and incetl-all again');

# the first tick of each after the long run started
my %tick;
for my $j ($jobid, $alljob)
{
	$tick{$j} = $node->safe_psql(
		'postgres', qq{
SELECT job_pid || '|' || status || '|' || coalesce(return_message, '')
  FROM cron.job_run_details WHERE jobid = $j AND status IN ('succeeded', 'failed')
 ORDER BY runid DESC LIMIT 1});
}
my ($users_pid, $users_status) = split /\|/, $tick{$jobid};
my ($all_pid, $all_status, $all_msg) = split /\|/, $tick{$alljob}, 3;

is($users_status, 'succeeded', 'the incetl-users tick during the long run succeeded');
is( $node->safe_psql(
		'postgres', qq{
SELECT string_agg(status || ' ' || run_by || ' ' || batches || ' ' || rows_extracted, ', '
				  ORDER BY run_id)
  FROM incetl.run_log WHERE pipeline = 'users' AND pid = $users_pid}),
	'skipped etl 0 0',
	'... and it logged a skipped run that read nothing');
is( $node->safe_psql(
		'postgres', qq{
SELECT string_agg(pipeline || ' ' || status, ', ' ORDER BY run_id)
  FROM incetl.run_log WHERE pid = $all_pid}),
	'users skipped, orders succeeded, fragile failed',
	'run_all from pg_cron: users skipped, orders loaded, fragile failed');
is($all_status, 'failed', 'the run_all job is recorded as failed');
like(
	$all_msg,
	qr/1 pipeline failed: "fragile"/,
	'... with a message naming the failed pipeline');
like(
	$node->safe_psql(
		'postgres',
		"SELECT error FROM incetl.run_log WHERE pid = $all_pid AND pipeline = 'fragile'"),
	qr/was dropped/,
	"run_log has fragile's error");
is( $node->safe_psql('postgres', 'SELECT amount FROM dw.orders WHERE id = 1'),
	'1000', 'run_all loaded the change to orders');

# no run of users was queued behind the long one: the long run still waits,
# and it is the only run of users in flight
is( $node->safe_psql(
		'postgres', qq{
SELECT string_agg(pid::text, ',') = '$runner_pid'
  FROM incetl.run_log WHERE pipeline = 'users' AND status = 'running'}),
	't',
	'only the long run of users is running');

# Let the long run finish.
$node->safe_psql('postgres',
	"SELECT cron.unschedule($jobid), cron.unschedule($alljob)");
$locker->query_safe('ROLLBACK');
$locker->quit;
my ($out, $err) = $runner->query('SELECT 1');
$runner->quit;
is( $node->safe_psql(
		'postgres', qq{
SELECT status || ' ' || rows_updated || ' ' || rows_unchanged
  FROM incetl.run_log WHERE pid = $runner_pid AND pipeline = 'users'}),
	'succeeded 1 0',
	'the long run finished and updated the one changed row');
target_equals_source($node, 'app.users', 'dw.users', 'id, name, updated_at',
	'target equals source after the long run');
is( $node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'),
	'0', 'jobs unscheduled');

$node->stop;
done_testing();
