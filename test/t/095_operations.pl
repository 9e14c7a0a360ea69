# test/t/095_operations.pl -- operations (SPEC 6, issue 15) on real servers
#
# One server with 1 MB WAL segments (so that slots fill and release WAL
# quickly) and a session that LISTENs on incetl_alert throughout.  Proves:
# (1) alerts: a failed run sends {"pipeline", "run_id", "status", "error",
#     "kind": "failed"} (valid JSON, the run's id); a failed run inside a
#     transaction block that is rolled back sends nothing; an error longer
#     than NOTIFY allows is cut and the payload still parses; a pipeline
#     whose last success is older than its freshness_target turns stale
#     (status.fresh false, one 'stale' alert however often guard checks)
#     and back (fresh true after a successful run);
# (2) progress: a first load paused half-way shows progress 0.5 (its rows
#     so far over its own estimate) and an eta in incetl.status, and
#     neither once it is done;
# (3) max_retained_wal: a logical pipeline that is not run while its source
#     is written holds more WAL than its limit; CALL incetl.guard() drops
#     its slot (pg_replication_slots), leaves alone the slot of another one
#     over its limit whose run is under way, sends a 'resync' alert, status shows
#     needs_resync; after a CHECKPOINT the WAL directory shrinks; the next
#     run compares everything, the target equals the source, needs_resync
#     is false and the slot is back;
# (4) a slot invalidated by max_slot_wal_keep_size while writers keep
#     writing, then a slot dropped by hand while they write: runs during
#     and after the writes leave target = source, a healthy slot, and
#     needs_resync false (the run's 'resync' alert carries its run_id);
# (5) pg_dump / pg_restore into a new cluster: the restored logical
#     pipeline shows needs_resync, its first run resyncs and loses nothing;
# (6) the Prometheus PostgreSQL exporter (Debian's
#     prometheus-postgres-exporter), started on loopback with the shipped
#     queries file, serves the incetl metrics with the values incetl.status
#     shows (skipped when the exporter is not installed).
use strict;
use warnings;

use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = incetl_node('ops', initdb => ['--wal-segsize=1'],
	conf => "max_connections = 30\nmin_wal_size = 2MB\nmax_wal_size = 4MB\n"
	  . "wal_keep_size = 0\nincetl.late_commit_margin = 0\n");

sub sql { return $node->safe_psql('postgres', $_[0]); }

#
# the listener, and the alerts it has received
#
my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN incetl_alert');
my @received;    # [ raw payload, decoded ]

sub collect
{
	my $out = $listener->query_safe('SELECT 1');
	while ($out =~
		/^Asynchronous notification "incetl_alert" with payload "(.*)" received from server process with PID \d+\.$/mg)
	{
		my $raw = $1;
		my $json = eval { JSON::PP->new->utf8->decode($raw) };
		push @received, [ $raw, $json ];
	}
	return;
}

# wait for the next alert of a kind (and pipeline); returns [raw, decoded]
# of it and drops everything received before it, or dies
sub next_alert
{
	my ($kind, $pipeline) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (1)
	{
		collect();
		while (my $a = shift @received)
		{
			return $a
			  if $a->[1]
			  && $a->[1]{kind} eq $kind
			  && (!defined $pipeline || $a->[1]{pipeline} eq $pipeline);
			note "alert skipped: $a->[0]";
		}
		die "no '$kind' alert came" if time > $deadline;
		usleep(100_000);
	}
}

sub is_alert
{
	my ($a, $want, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	ok($a->[1], "$name: the payload parses as JSON") or diag $a->[0];
	is_deeply([ sort keys %{ $a->[1] } ], [qw(error kind pipeline run_id status)],
		"$name: the payload's keys");
	for my $k (sort keys %$want)
	{
		if (ref $want->{$k} eq 'Regexp')
		{
			like($a->[1]{$k}, $want->{$k}, "$name: $k");
		}
		else
		{
			is($a->[1]{$k}, $want->{$k}, "$name: $k");
		}
	}
	return;
}

#
# (1) alerts and freshness
#
sql(q{
CREATE TABLE a_src (id integer PRIMARY KEY, v text NOT NULL,
					updated_at timestamptz NOT NULL DEFAULT '2024-01-01');
CREATE TABLE a_tgt (id integer PRIMARY KEY, v text CHECK (v <> 'bad'), updated_at timestamptz);
INSERT INTO a_src (id, v) SELECT g, 'v' || g FROM generate_series(1, 10) g;
SELECT incetl.create_pipeline('alerty', 'a_src', 'a_tgt', watermark_column => 'updated_at',
							  freshness_target => '1 hour');
CALL incetl.run('alerty');
});
is(sql("SELECT fresh, consecutive_failures FROM incetl.status WHERE pipeline = 'alerty'"),
	't|0', 'alerts: fresh after its first run');

sql("UPDATE a_src SET v = 'bad', updated_at = '2024-01-02' WHERE id = 2");
my ($ret, $out, $err) = $node->psql('postgres', "CALL incetl.run('alerty')");
isnt($ret, 0, 'alerts: the run fails');
my $run_id = sql("SELECT max(run_id) FROM incetl.run_log WHERE pipeline = 'alerty'");
is_alert(next_alert('failed', 'alerty'),
	{ pipeline => 'alerty', run_id => $run_id, status => 'failed', kind => 'failed',
	  error => qr/violates check constraint "a_tgt_v_check"/ },
	'failed');

# rolled back: no run_log row, no alert; the next committed failure's alert
# is the next one received
($ret, $out, $err) = $node->psql('postgres',
	"BEGIN; CALL incetl.run('alerty'); ROLLBACK;");
like($err, qr/violates check constraint/, 'alerts: a failure inside a transaction block');
is(sql("SELECT count(*) FROM incetl.run_log WHERE pipeline = 'alerty' AND run_id > $run_id"),
	0, 'alerts: its rollback leaves no run_log row');
($ret, $out, $err) = $node->psql('postgres', "CALL incetl.run('alerty')");
$run_id = sql("SELECT max(run_id) FROM incetl.run_log WHERE pipeline = 'alerty'");
# (had the rolled-back run sent one, it would come first, with another id)
is_alert(next_alert('failed', 'alerty'), { run_id => $run_id }, 'failed again, nothing before');
is(sql("SELECT consecutive_failures FROM incetl.status WHERE pipeline = 'alerty'"), 2,
	'alerts: two failures in a row');

# an error longer than a NOTIFY payload may be
sql(q{
CREATE FUNCTION a_long_error() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'long: %', repeat('é"\', 3000);
END;
$$;
CREATE TRIGGER a_long BEFORE INSERT OR UPDATE ON a_tgt FOR EACH ROW EXECUTE FUNCTION a_long_error();
UPDATE a_src SET v = 'ok' WHERE id = 2;
});
($ret, $out, $err) = $node->psql('postgres', "CALL incetl.run('alerty')");
my $long = next_alert('failed', 'alerty');
ok(length($long->[0]) < 8000, 'long error: the payload fits in a NOTIFY (' . length($long->[0]) . ' bytes)');
is_alert($long, { error => qr/^long: (\x{e9}"\\)+.*\(truncated\)$/s }, 'long error');
sql('DROP TRIGGER a_long ON a_tgt');

# stale: the last success started two hours ago, as the log tells
sql("UPDATE incetl.run_log SET started_at = started_at - interval '2 hours' WHERE pipeline = 'alerty'");
is(sql("SELECT fresh FROM incetl.status WHERE pipeline = 'alerty'"), 'f', 'freshness: turns false');
sql('CALL incetl.guard()');
my $last = sql("SELECT max(run_id) FROM incetl.run_log WHERE pipeline = 'alerty'");
is_alert(next_alert('stale', 'alerty'),
	{ pipeline => 'alerty', run_id => $last, status => 'failed', kind => 'stale',
	  error => qr/^long: / },
	'stale');
# checked again and again: no second alert for the same turn
sql('CALL incetl.guard()');
sql('CALL incetl.run_all()');    # runs it: it succeeds, and is fresh again
is(sql("SELECT fresh, consecutive_failures FROM incetl.status WHERE pipeline = 'alerty'"),
	't|0', 'freshness: back to true after a successful run');
collect();
is(scalar(grep { $_->[1] && $_->[1]{kind} eq 'stale' } @received), 0,
	'stale: one alert per turn');
target_equals_source($node, 'a_src', 'a_tgt', undef, 'alerts: target equals source in the end');

#
# (2) progress and eta of a running first load
#
sql(q{
CREATE TABLE b_src (id integer PRIMARY KEY, v text, updated_at timestamptz NOT NULL);
CREATE INDEX ON b_src (updated_at, id);
INSERT INTO b_src SELECT g, 'v', timestamptz '2024-01-01' + g * interval '1 second'
  FROM generate_series(1, 20000) g;
ANALYZE b_src;
CREATE TABLE b_tgt (id integer PRIMARY KEY, v text, updated_at timestamptz);
-- a trigger that makes the insert of key TG_ARGV[0] wait for advisory
-- lock TG_ARGV[1], which the test holds
CREATE FUNCTION wait_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id = TG_ARGV[0]::integer THEN
		PERFORM pg_advisory_xact_lock_shared(TG_ARGV[1]::bigint);
	END IF;
	RETURN NEW;
END;
$$;
-- the 11th batch waits
CREATE TRIGGER b_wait BEFORE INSERT ON b_tgt FOR EACH ROW EXECUTE FUNCTION wait_at(10001, 4242);
SELECT incetl.create_pipeline('big', 'b_src', 'b_tgt', watermark_column => 'updated_at',
							  batch_size => 1000);
});
{
	my $holder = $node->background_psql('postgres');
	$holder->query_safe('SELECT pg_advisory_lock(4242)');
	my $bg = start_run($node, 'big');
	wait_batches($node, 'big', 10);
	is( sql(q{SELECT s.last_status, s.progress > 0 AND s.progress < 1,
					 s.progress = round(r.rows_extracted::numeric / 20000, 4),
					 s.eta > interval '0', r.rows_estimated
				FROM incetl.status s JOIN incetl.run_log r ON r.run_id = s.last_run_id
			   WHERE s.pipeline = 'big'}),
		'running|t|t|t|20000', 'progress: part-way through a first load, its rows so far over its estimate, with an eta');
	$holder->query_safe('SELECT pg_advisory_unlock(4242)');
	$bg->query_safe('SELECT 1');    # the run has ended
	$bg->quit;
	$holder->quit;
	is(sql("SELECT last_status, progress IS NULL AND eta IS NULL FROM incetl.status WHERE pipeline = 'big'"),
		'succeeded|t', 'progress: none once the run is done');
	sql("SELECT incetl.drop_pipeline('big')");
}

#
# (3) max_retained_wal, the pipeline not run: guard drops the slot
#
sub waldir_bytes { return sql('SELECT sum(size) FROM pg_ls_waldir()'); }
sql(q{
CREATE TABLE c_src (id integer PRIMARY KEY, v text);
CREATE TABLE c_tgt (id integer PRIMARY KEY, v text);
CREATE TABLE filler (pad text);
INSERT INTO c_src SELECT g, 'v' || g FROM generate_series(1, 100) g;
SELECT incetl.create_pipeline('capped', 'c_src', 'c_tgt', strategy => 'logical',
							  max_retained_wal => '4MB');
CALL incetl.run('capped');
});
my $slot = sql("SELECT s.slot_name FROM incetl.state s JOIN incetl.pipelines p ON p.id = s.pipeline_id WHERE p.name = 'capped'");

# another one over its limit, but running: its first run waits (for an
# advisory lock the test holds) in the middle of its first batch
sql(q{
CREATE TABLE d_src (id integer PRIMARY KEY, v text);
CREATE TABLE d_tgt (id integer PRIMARY KEY, v text);
INSERT INTO d_src SELECT g, 'v' || g FROM generate_series(1, 20) g;
CREATE TRIGGER d_wait BEFORE INSERT ON d_tgt FOR EACH ROW EXECUTE FUNCTION wait_at(5, 4343);
SELECT incetl.create_pipeline('busy', 'd_src', 'd_tgt', strategy => 'logical',
							  max_retained_wal => '4MB');
});
my $holder = $node->background_psql('postgres');
$holder->query_safe('SELECT pg_advisory_lock(4343)');
my $busy = start_run($node, 'busy');
$node->poll_query_until('postgres',
	q{SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory')})
  or die 'the run of "busy" does not wait';
# writes the slot must keep: changes of the source, and a lot of other WAL
sql(q{
UPDATE c_src SET v = 'changed' WHERE id <= 20;
DELETE FROM c_src WHERE id > 90;
INSERT INTO c_src SELECT g, 'new' FROM generate_series(1000, 1100) g;
});
for (1 .. 12)
{
	sql("INSERT INTO filler SELECT repeat('x', 200) FROM generate_series(1, 5000); SELECT pg_switch_wal();");
}
sql('CHECKPOINT');
my $before = waldir_bytes();
is(sql("SELECT retained_wal_bytes > 4 * 1024 * 1024, needs_resync FROM incetl.status WHERE pipeline = 'capped'"),
	't|f', 'max_retained_wal: the slot holds more WAL than the limit');
note "WAL directory: $before bytes";

($ret, $out, $err) = $node->psql('postgres', 'CALL incetl.guard()');
is($ret, 0, 'guard: succeeds');
like($err, qr/pipeline "busy" is running, guard left it alone/,
	'guard: leaves a running pipeline alone');
is( sql(q{SELECT s.needs_resync, r.slot_name IS NOT NULL
			FROM incetl.status s JOIN incetl.pipelines p ON p.name = s.pipeline
			JOIN incetl.state st ON st.pipeline_id = p.id
			LEFT JOIN pg_replication_slots r ON r.slot_name = st.slot_name
		   WHERE s.pipeline = 'busy'}),
	'f|t', 'guard: the running pipeline keeps its slot');
$holder->query_safe('SELECT pg_advisory_unlock(4343)');
$busy->query_safe('SELECT 1');
$busy->quit;
$holder->quit;
target_equals_source($node, 'd_src', 'd_tgt', undef, 'guard: the running run finished');
sql("SELECT incetl.drop_pipeline('busy')");
like($err, qr/the replication slot of pipeline "capped" held more WAL than max_retained_wal \(4MB\) and was dropped/,
	'guard: says what it did');
is(sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'"), 0,
	'guard: the slot is gone');
is(sql("SELECT needs_resync FROM incetl.status WHERE pipeline = 'capped'"), 't',
	'guard: the pipeline needs a resync');
is_alert(next_alert('resync', 'capped'),
	{ pipeline => 'capped', run_id => undef, status => undef, kind => 'resync',
	  error => qr/held more WAL than max_retained_wal \(4MB\) and was dropped \(it held \d+ bytes\)/ },
	'resync by guard');
sql('SELECT pg_switch_wal(); CHECKPOINT;');
sql('SELECT pg_switch_wal(); CHECKPOINT;');
my $after = waldir_bytes();
note "WAL directory after the drop and a checkpoint: $after bytes";
ok($after < $before / 2, "guard: the WAL is released ($before -> $after bytes)");

($ret, $out, $err) = $node->psql('postgres', "CALL incetl.run('capped')");
is($ret, 0, 'resync: the next run succeeds');
like($err, qr/the replication slot of pipeline "capped" is gone/, 'resync: it compares everything');
target_equals_source($node, 'c_src', 'c_tgt', undef, 'resync: nothing lost');
is(sql("SELECT needs_resync, retained_wal_bytes IS NOT NULL FROM incetl.status WHERE pipeline = 'capped'"),
	'f|t', 'resync: needs_resync is false, the slot is back');
sql("SELECT incetl.drop_pipeline('capped')");

#
# (4) invalidated by max_slot_wal_keep_size, then dropped by hand, while
# writers keep writing
#
sql(q{
CREATE TABLE w_src (id serial PRIMARY KEY, v integer NOT NULL);
CREATE TABLE w_tgt (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE w_stop (stop boolean);
INSERT INTO w_src (v) SELECT g FROM generate_series(1, 200) g;
-- writes, a transaction at a time, until told to stop
CREATE PROCEDURE w_write() LANGUAGE plpgsql AS $$
DECLARE
	i integer := 0;
BEGIN
	WHILE NOT EXISTS (SELECT 1 FROM w_stop) LOOP
		i := i + 1;
		INSERT INTO w_src (v) VALUES (i);
		UPDATE w_src SET v = v + 1 WHERE id = i % 150 + 1;
		IF i % 5 = 0 THEN
			DELETE FROM w_src WHERE id = (SELECT min(id) FROM w_src WHERE id > 150);
		END IF;
		COMMIT;
	END LOOP;
END;
$$;
SELECT incetl.create_pipeline('lost', 'w_src', 'w_tgt', strategy => 'logical');
CALL incetl.run('lost');
});

# start writers; returns their session
sub start_writers
{
	sql('DELETE FROM w_stop');
	my $w = $node->background_psql('postgres');
	$w->query_until(qr/writing/, "\\echo writing\nCALL w_write();\n");
	$node->poll_query_until('postgres', 'SELECT count(*) > 250 FROM w_src')
	  or die 'the writers do not write';
	return $w;
}

sub stop_writers
{
	my ($w) = @_;
	sql('INSERT INTO w_stop VALUES (true)');
	$w->query_safe('SELECT 1');
	$w->quit;
	return;
}

# stop the writers, run once more: target = source, a healthy slot, no
# resync pending
sub healed
{
	my ($w, $case) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	stop_writers($w);
	sql("CALL incetl.run('lost')");
	target_equals_source($node, 'w_src', 'w_tgt', undef, "$case: target equals source");
	is( sql(q{SELECT s.needs_resync, r.wal_status IN ('reserved', 'extended')
				FROM incetl.status s, pg_replication_slots r WHERE s.pipeline = 'lost'}),
		'f|t', "$case: the slot is healthy, no resync pending");
	return;
}

my $writers = start_writers();
sql(q{ALTER SYSTEM SET max_slot_wal_keep_size = '2MB'; SELECT pg_reload_conf();});
my $lost = 0;
for (1 .. 30)
{
	sql("INSERT INTO filler SELECT repeat('x', 200) FROM generate_series(1, 5000); SELECT pg_switch_wal(); CHECKPOINT;");
	$lost = sql("SELECT wal_status = 'lost' FROM pg_replication_slots WHERE slot_name LIKE 'incetl%'") eq 't';
	last if $lost;
}
ok($lost, 'lost: the slot is invalidated while the writers write');
sql(q{ALTER SYSTEM RESET max_slot_wal_keep_size; SELECT pg_reload_conf();});
is(sql("SELECT needs_resync FROM incetl.status WHERE pipeline = 'lost'"), 't',
	'lost: status shows needs_resync before any run');

($ret, $out, $err) = $node->psql('postgres', "CALL incetl.run('lost')");
is($ret, 0, 'lost: a run while the writers write succeeds');
like($err, qr/the replication slot of pipeline "lost" was invalidated/, 'lost: it resyncs');
my $lost_run = sql("SELECT max(run_id) FROM incetl.run_log WHERE pipeline = 'lost'");
is_alert(next_alert('resync', 'lost'),
	{ pipeline => 'lost', run_id => $lost_run, status => 'running', kind => 'resync',
	  error => qr/was invalidated/ },
	'resync by a run');
healed($writers, 'lost');

# dropped by hand while they write
$writers = start_writers();
sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'incetl%'");
($ret, $out, $err) = $node->psql('postgres', "CALL incetl.run('lost')");
is($ret, 0, 'dropped: a run while the writers write succeeds');
like($err, qr/the replication slot of pipeline "lost" is gone/, 'dropped: it resyncs');
healed($writers, 'dropped');

#
# (5) pg_dump / pg_restore into a new cluster
#
{
	sql("UPDATE w_src SET v = -1 WHERE id = 1");    # not run before the dump
	my $dump = $PostgreSQL::Test::Utils::tmp_check . '/ops.dump';
	$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ],
		'restore: pg_dump');
	my $other = incetl_node('ops_other');
	$other->safe_psql('postgres', 'CREATE DATABASE restored');
	$other->command_ok(
		[ 'pg_restore', '--exit-on-error', '-d', $other->connstr('restored'), $dump ],
		'restore: pg_restore into a new cluster');
	is($other->safe_psql('restored', "SELECT needs_resync FROM incetl.status WHERE pipeline = 'lost'"),
		't', 'restore: the restored pipeline needs a resync');
	($ret, $out, $err) = $other->psql('restored', "CALL incetl.run('lost')");
	is($ret, 0, 'restore: its first run succeeds');
	like($err, qr/the replication slot of pipeline "lost" is gone/, 'restore: it resyncs');
	is(rows_differing($other, 'w_src', 'w_tgt', undef, dbname => 'restored'), 0,
		'restore: target equals source');
	is($other->safe_psql('restored', "SELECT needs_resync FROM incetl.status WHERE pipeline = 'lost'"),
		'f', 'restore: no resync pending');
	$other->stop;
}

#
# (6) the exporter
#
SKIP:
{
	my $exporter = '/usr/bin/prometheus-postgres-exporter';
	skip 'prometheus-postgres-exporter is not installed (apt-get install prometheus-postgres-exporter; test/run_all.sh does as root)', 1
	  unless -x $exporter;

	my $queries = dirname(__FILE__) . '/../monitoring/incetl-exporter-queries.yaml';
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $user = getpwuid($<);
	local $ENV{DATA_SOURCE_NAME} = 'host=' . $node->host . ' port=' . $node->port
	  . " user=$user dbname=postgres sslmode=disable";
	my ($eout, $eerr) = ('', '');
	my $h = IPC::Run::start(
		[ $exporter, "--web.listen-address=127.0.0.1:$port", "--extend.query-path=$queries",
		  '--disable-default-metrics', '--disable-settings-metrics' ],
		'>', \$eout, '2>', \$eerr);
	my $http = HTTP::Tiny->new(timeout => 10);
	my $metrics = '';
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		my $res = $http->get("http://127.0.0.1:$port/metrics");
		if ($res->{success} && $res->{content} =~ /^incetl_pipeline_consecutive_failures\{/m)
		{
			$metrics = $res->{content};
			last;
		}
		usleep(200_000);
	}
	$h->kill_kill;
	note "exporter stderr:\n$eerr" if $eerr;
	ok($metrics ne '', 'exporter: serves the incetl metrics on /metrics')
	  or diag $eerr;

	# a failing pipeline with a freshness target, a logical one with WAL held
	my %metric;
	while ($metrics =~ /^(incetl_\w+)\{([^}]*)\} (\S+)$/mg)
	{
		my ($name, $labels, $value) = ($1, $2, $3);
		my ($p) = $labels =~ /pipeline="([^"]*)"/;
		my ($st) = $labels =~ /last_status="([^"]*)"/;
		$metric{$name}{$p} = $value;
		$metric{"$name/$st"}{$p} = $value if defined $st;
	}
	for my $p (qw(alerty lost))
	{
		my ($fresh, $failures, $resync, $status, $rows, $wal) = split /\|/, sql(qq{
SELECT coalesce(s.fresh::int::text, 'NaN'), s.consecutive_failures, s.needs_resync::int,
	   s.last_status, r.rows_extracted, coalesce(s.retained_wal_bytes::text, 'NaN')
  FROM incetl.status s JOIN incetl.run_log r ON r.run_id = s.last_run_id
 WHERE s.pipeline = '$p'});
		is($metric{incetl_pipeline_fresh}{$p}, $fresh, "exporter: $p fresh");
		is($metric{incetl_pipeline_consecutive_failures}{$p}, $failures,
			"exporter: $p consecutive_failures");
		is($metric{incetl_pipeline_needs_resync}{$p}, $resync, "exporter: $p needs_resync");
		is($metric{incetl_pipeline_last_run_rows}{$p}, $rows, "exporter: $p last_run_rows");
		is($metric{"incetl_pipeline_last_status_info/$status"}{$p}, 1,
			"exporter: $p last_status $status");
		ok(defined $metric{incetl_pipeline_last_run_seconds}{$p}, "exporter: $p last_run_seconds");
		ok(defined $metric{incetl_pipeline_lag_seconds}{$p}, "exporter: $p lag_seconds");
		if ($wal eq 'NaN')
		{
			is($metric{incetl_pipeline_retained_wal_bytes}{$p}, 'NaN', "exporter: $p retained_wal_bytes");
		}
		else
		{
			# WAL moves on between the scrape and this query
			ok($metric{incetl_pipeline_retained_wal_bytes}{$p} > 0,
				"exporter: $p retained_wal_bytes");
		}
	}
}

$listener->quit;
$node->stop;
done_testing();
