# test/t/010_crash.pl -- a run killed mid-way loses at most its batch in flight
#
# A 300k-row load with batch_size 10000 is killed mid-run, (a) by
# pg_terminate_backend from another session, (b) by SIGKILL of the whole
# server (then restarted: crash recovery); and (c) a run is cancelled with
# pg_cancel_backend while it waits in batch 29.  After each proves:
#   - the saved cursor is never ahead of the data: every source row at or
#     below (watermark, watermark_key) is in the target with its values;
#   - nor behind it: no source row above the cursor is in the target with its
#     new values (the batch in flight rolled back with its watermark move);
#   - incetl.status shows the run as 'interrupted' until the next run, which
#     marks it 'failed' in run_log (after a cancel the run itself records
#     'failed' with the error, and the caller gets the error with the batch
#     in its context); the next run resumes from the cursor (it extracts
#     exactly the rows above it) and completes; then the target equals the
#     source (EXCEPT both ways is empty).
#
# So that the run cannot finish before the kill on a fast machine, a session
# holds a row lock on a target row of batch 29: the run, if it gets that far,
# waits there.  The kill itself comes as soon as run_log shows the wanted
# number of committed batches (polled; no sleeps).
use strict;
use warnings;

use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $ROWS = 300_000;
my $SENTINEL = 290_000;		# a key of batch 29

my $node = incetl_node('crash', conf => "shared_buffers = 128MB\nmax_connections = 20\n");

$node->safe_psql(
	'postgres', qq{
CREATE TABLE src (id integer PRIMARY KEY, v text NOT NULL,
				  updated_at timestamptz NOT NULL);
CREATE INDEX ON src (updated_at, id);
CREATE TABLE tgt (id integer PRIMARY KEY, v text NOT NULL,
				  updated_at timestamptz NOT NULL);
INSERT INTO src
SELECT g, 'v1 ' || g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
  FROM generate_series(1, $ROWS) g;
-- a stale copy of one row, for the lock that keeps the run from finishing
INSERT INTO tgt VALUES ($SENTINEL, 'stale', '2000-01-01 00:00:00+00');
SELECT incetl.create_pipeline('p', 'src', 'tgt',
							  watermark_column => 'updated_at', batch_size => 10000);
});

# The cursor against the data.  upto: source rows at or below the cursor;
# behind: those missing from the target or different there; ahead: source
# rows above the cursor already in the target with their current values.
my $cursor_sql = q{
WITH c AS (SELECT s.watermark::timestamptz AS w, s.watermark_key[1]::integer AS k
			 FROM incetl.state s JOIN incetl.pipelines p ON p.id = s.pipeline_id
			WHERE p.name = 'p')
SELECT (SELECT count(*) FROM src, c
		 WHERE (src.updated_at, src.id) <= (c.w, c.k)),
	   (SELECT count(*) FROM src, c
		 WHERE (src.updated_at, src.id) <= (c.w, c.k)
		   AND NOT EXISTS (SELECT 1 FROM tgt t WHERE t.id = src.id
						   AND t.v = src.v AND t.updated_at = src.updated_at)),
	   (SELECT count(*) FROM src, c
		 WHERE (src.updated_at, src.id) > (c.w, c.k)
		   AND EXISTS (SELECT 1 FROM tgt t WHERE t.id = src.id
					   AND t.v = src.v AND t.updated_at = src.updated_at))
};

# the checks after a kill (or a cancel), then the next run
sub check_after_kill
{
	my ($label, $killed_run, $min_batches, $cancelled) = @_;

	my ($upto, $behind, $ahead) = split /\|/, $node->safe_psql('postgres', $cursor_sql);
	note "$label: $upto rows at or below the cursor";
	cmp_ok($upto, '>=', $min_batches * 10000,
		"$label: the committed batches and their cursor survived");
	cmp_ok($upto, '<', $ROWS, "$label: the run was killed before it finished");
	is($behind, 0, "$label: every source row up to the cursor is in the target");
	is($ahead, 0, "$label: no row above the cursor was written (batch in flight rolled back)");

	if ($cancelled)
	{
		# the run caught the error: recorded at once, no 'interrupted' phase
		is( $node->safe_psql('postgres',
				"SELECT last_run_id || ' ' || last_status FROM incetl.status WHERE pipeline = 'p'"),
			"$killed_run failed", "$label: status shows the run as failed");
		like($node->safe_psql('postgres',
				"SELECT error FROM incetl.run_log WHERE run_id = $killed_run"),
			qr/^canceling statement due to user request$/,
			"$label: run_log holds the error");
		$node->safe_psql('postgres', "CALL incetl.run('p')");
	}
	else
	{
		is( $node->safe_psql('postgres',
				"SELECT last_run_id || ' ' || last_status FROM incetl.status WHERE pipeline = 'p'"),
			"$killed_run interrupted",
			"$label: status shows the killed run as interrupted");
		is($node->safe_psql('postgres',
				"SELECT status FROM incetl.run_log WHERE run_id = $killed_run"),
			'running', "$label: run_log still says running before the next run");

		$node->safe_psql('postgres', "CALL incetl.run('p')");

		is( $node->safe_psql('postgres',
				"SELECT status, error LIKE 'interrupted%', finished_at IS NOT NULL "
				  . "FROM incetl.run_log WHERE run_id = $killed_run"),
			'failed|t|t', "$label: the next run marked the killed run failed");
	}
	my ($status, $extracted) = split /\|/, $node->safe_psql('postgres',
		"SELECT status, rows_extracted FROM incetl.run_log "
		  . "WHERE pipeline = 'p' AND run_id > $killed_run ORDER BY run_id DESC LIMIT 1");
	is($status, 'succeeded', "$label: the next run succeeded");
	is($extracted, $ROWS - $upto, "$label: the next run resumed from the cursor");
	target_equals_source($node, 'src', 'tgt', undef, "$label: target equals source");
	is($node->safe_psql('postgres', $cursor_sql), "$ROWS|0|0",
		"$label: the cursor is at the last row");
}

#
# (a) pg_terminate_backend mid-run, during the first load
#
{
	my $run_id = kill_run_midway($node, 'p', 'terminate', batches => 2,
		lock => [ 'tgt', $SENTINEL ], test_name => 'terminated the running backend');
	check_after_kill('terminate', $run_id, 2);
}

#
# (b) SIGKILL of the server mid-run, while updating every row
#
{
	$node->safe_psql('postgres', qq{
UPDATE src SET v = 'v2 ' || id,
			   updated_at = timestamptz '2025-01-01 00:00:00+00' + id * interval '1 second';
VACUUM ANALYZE src, tgt;
});
	my $run_id = kill_run_midway($node, 'p', 'kill9', batches => 5,
		lock => [ 'tgt', $SENTINEL ]);
	check_after_kill('kill9', $run_id, 5);
}

#
# (c) pg_cancel_backend while the run waits for the row lock in batch 29:
# the run records itself failed and raises the error; nothing to mark later
#
{
	$node->safe_psql('postgres', qq{
UPDATE src SET v = 'v3 ' || id,
			   updated_at = timestamptz '2025-06-01 00:00:00+00' + id * interval '1 second';
});
	my $locker = lock_target_row($node, 'tgt', $SENTINEL);
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_until(qr/run starts/, "\\echo run starts\nCALL incetl.run('p');\n\\echo run ended\n\\warn run ended\n");
	$node->poll_query_until('postgres', q{
SELECT EXISTS (SELECT 1 FROM pg_stat_activity a JOIN incetl.run_log r ON r.pid = a.pid
				WHERE r.status = 'running' AND a.wait_event_type = 'Lock')})
	  or die 'the run never waited for the row lock';
	my $run_id = $node->safe_psql('postgres',
		"SELECT run_id FROM incetl.run_log WHERE pipeline = 'p' AND status = 'running'");
	$node->safe_psql('postgres',
		"SELECT pg_cancel_backend(pid) FROM incetl.run_log WHERE run_id = $run_id");
	$bg->query_until(qr/run ended/, '');
	pump_until($bg->{run}, $bg->{timeout}, \$bg->{stderr}, qr/run ended/);
	like($bg->{stderr}, qr/ERROR:  canceling statement due to user request\n.*CONTEXT:  incetl run of pipeline "p", batch 29/s,
		'cancel: the caller gets the error, with the batch that failed');
	$bg->quit;
	$locker->query_safe('COMMIT');
	$locker->quit;
	check_after_kill('cancel', $run_id, 28, 1);
}

$node->stop;
done_testing();
