# test/t/030_concurrent_writers.pl -- runs keep up with concurrent writers and lose nothing
#
# pgbench drives 4 clients for 60 seconds against one source table: each
# transaction inserts a new id and updates random existing rows setting
# updated_at = now(); one script in five sleeps inside BEGIN..COMMIT, so
# transactions stay open across runs and commit with times older than rows
# that committed before them.  Meanwhile the test calls CALL incetl.run for
# every pipeline again and again from a background psql session, with the
# DEFAULT incetl.late_commit_margin.  After the writers stop, one final run
# (margin 0 in that session, nothing is open any more) must leave every
# target equal to the source row for row.  A lost late commit shows up as a
# source row that the target lacks or holds in an older version.
#
# Every pipeline in @strategies reads the same source into its own target;
# adding a strategy is one line there.
use strict;
use warnings;

use IncetlTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $DURATION = $ENV{INCETL_WRITERS_SECONDS} // 60;	# seconds of pgbench
my $CLIENTS = 4;
my $MAX_RUNS = 10_000;		# bound on the run loop besides the time
my $PACE_US = 20_000;		# pause between rounds of runs, to leave the writers CPU
my $PRELOAD = 10_000;

# The pipelines under test: a name (also its target's suffix), the options
# given to create_pipeline, and whether it detects deletes.  Any entry with
# deletes => 1 also turns on the DELETE in the pgbench scripts (see
# $delete_sql); entries without it are then only checked for the rows that
# still exist.
my @strategies = (
	{ name => 'ts', options => "watermark_column => 'updated_at'", deletes => 0 },
	{ name => 'ts_compare', options => "watermark_column => 'updated_at', delete_detection => 'compare'", deletes => 1 },
	{ name => 'hash', options => "strategy => 'hash'", deletes => 1 },
	{ name => 'trig', options => "strategy => 'trigger'", deletes => 1 },
	{ name => 'logi', options => "strategy => 'logical'", deletes => 1 },
);
my $with_deletes = grep { $_->{deletes} } @strategies;

# a node that can run every strategy (wal_level=logical)
my $node = incetl_node('writers', conf => "shared_buffers = 128MB\nmax_connections = 20\n");
is($node->safe_psql('postgres', "LOAD 'incetl'; SHOW incetl.late_commit_margin"), '1s',
	'the runs use the default late_commit_margin');

$node->safe_psql(
	'postgres', qq{
CREATE TABLE src (id bigint PRIMARY KEY, v integer NOT NULL, note text,
				  updated_at timestamptz NOT NULL);
CREATE INDEX ON src (updated_at, id);
CREATE SEQUENCE src_new_id START 1000001;
INSERT INTO src
SELECT g, 0, 'preloaded', timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
  FROM generate_series(1, $PRELOAD) g;
});
foreach my $s (@strategies)
{
	$node->safe_psql(
		'postgres', qq{
CREATE TABLE tgt_$s->{name} (id bigint PRIMARY KEY, v integer, note text,
							 updated_at timestamptz);
SELECT incetl.create_pipeline('$s->{name}', 'src', 'tgt_$s->{name}', $s->{options},
							  batch_size => 500);
});
}

# Rows are updated in ascending id order (a from the lower half, b from the
# upper), so writers never deadlock.
my $half = $PRELOAD / 2;
my $delete_sql = $with_deletes
  ? "\\set d random(1, $PRELOAD)\nDELETE FROM src WHERE id = :d;\n"
  : '';
my $short = qq{\\set a random(1, $half)
\\set b random($half + 1, $PRELOAD)
BEGIN;
UPDATE src SET v = v + 1, updated_at = now() WHERE id = :a;
INSERT INTO src VALUES (nextval('src_new_id'), 0, 'short', now());
UPDATE src SET v = v + 1, note = 'short', updated_at = now() WHERE id = :b;
${delete_sql}COMMIT;
};
my $long = qq{\\set a random(1, $half)
\\set b random($half + 1, $PRELOAD)
\\set nap random(100, 1500)
BEGIN;
UPDATE src SET v = v + 1, updated_at = now() WHERE id = :a;
INSERT INTO src VALUES (nextval('src_new_id'), 0, 'long', now());
\\sleep :nap ms
UPDATE src SET v = v + 1, note = 'long', updated_at = now() WHERE id = :b;
INSERT INTO src VALUES (nextval('src_new_id'), 0, 'long late', now());
${delete_sql}COMMIT;
};
my $dir = $PostgreSQL::Test::Utils::tmp_check;
my %scripts = (short => "$dir/writers_short.sql", long => "$dir/writers_long.sql");
{
	open my $fh, '>', $scripts{short} or die $!;
	print $fh $short;
	close $fh;
	open $fh, '>', $scripts{long} or die $!;
	print $fh $long;
	close $fh;
}

# the writers, in the background
my ($pgb_out, $pgb_err) = ('', '');
local $ENV{PGAPPNAME} = 'writers';
my $pgbench = IPC::Run::start(
	[
		'pgbench', '-n', '-h', $node->host, '-p', $node->port,
		'-c', $CLIENTS, '-j', 2, '-T', $DURATION,
		'-f', "$scripts{short}\@8", '-f', "$scripts{long}\@2", 'postgres'
	],
	'>', \$pgb_out, '2>', \$pgb_err);

# the runs, again and again, until the writers are done
my $runner = $node->background_psql('postgres');
my $runs = 0;
my $deadline = time + $DURATION + 5;
# wait for the writers to be connected before the first run
until ($node->safe_psql('postgres',
		"SELECT count(*) >= $CLIENTS FROM pg_stat_activity WHERE application_name = 'writers'")
	  eq 't')
{
	$pgbench->pump_nb;
	if (!$pgbench->pumpable || time > $deadline)
	{
		$pgbench->kill_kill;
		die "pgbench did not start:\n$pgb_out\n$pgb_err";
	}
	usleep(100_000);
}
while ($runs < $MAX_RUNS && time < $deadline)
{
	foreach my $s (@strategies)
	{
		$runner->query_safe("CALL incetl.run('$s->{name}')");
	}
	$runs++;
	usleep($PACE_US);
	# stop once the writers have disconnected
	last
	  if $runs % 10 == 0
	  && $node->safe_psql('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'writers'") eq 't';
}
ok($pgbench->finish, 'pgbench ran without errors') or diag $pgb_err;
my ($xacts) = $pgb_out =~ /number of transactions actually processed: (\d+)/;
note "pgbench: $xacts transactions by $CLIENTS clients in ${DURATION}s; "
  . "$runs rounds of runs of " . scalar(@strategies) . ' pipeline(s) meanwhile';
note "pgbench output:\n$pgb_out";
cmp_ok($xacts // 0, '>', 0, 'the writers wrote');
cmp_ok($runs, '>', 1, 'the runs ran while the writers wrote');

foreach my $s (@strategies)
{
	my $n = $s->{name};
	my ($ok, $failed, $moved) = split /\|/, $node->safe_psql('postgres', qq{
SELECT count(*) FILTER (WHERE status = 'succeeded'),
	   count(*) FILTER (WHERE status NOT IN ('succeeded', 'skipped')),
	   coalesce(sum(rows_extracted), 0)
  FROM incetl.run_log WHERE pipeline = '$n'});
	note "$n: $ok runs succeeded during the writes, $moved rows extracted";
	is($failed, 0, "$n: no run failed during the writes");
	cmp_ok($moved, '>', $PRELOAD, "$n: runs moved rows while the writers wrote");
}

# the final run: nothing is open any more
$runner->query_safe('SET incetl.late_commit_margin = 0');
foreach my $s (@strategies)
{
	$runner->query_safe("CALL incetl.run('$s->{name}')");
}
$runner->quit;

foreach my $s (@strategies)
{
	my $n = $s->{name};
	# rows of the source that the target lacks or holds differently
	my $missing = $node->safe_psql('postgres',
		"SELECT count(*) FROM (TABLE src EXCEPT TABLE tgt_$n) a");
	# rows of the target that the source lacks or holds differently; without
	# delete detection, rows deleted from the source are expected to stay
	my $extra = $node->safe_psql('postgres',
		"SELECT count(*) FROM (TABLE tgt_$n EXCEPT TABLE src) b"
		  . ($s->{deletes} ? '' : " WHERE b.id IN (SELECT id FROM src)"));
	is($missing, 0, "$n: every source row is in the target, with its values");
	is($extra, 0, "$n: the target holds no other version");
	if ($missing || $extra)
	{
		diag $node->safe_psql('postgres', qq{
SELECT 'src', s.* FROM (TABLE src EXCEPT TABLE tgt_$n) s
UNION ALL SELECT 'tgt', t.* FROM (TABLE tgt_$n EXCEPT TABLE src) t
ORDER BY 3, 1 LIMIT 20});
	}
}
note 'source rows at the end: ' . $node->safe_psql('postgres', 'SELECT count(*) FROM src');

$node->stop;
done_testing();
