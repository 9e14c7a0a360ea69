# test/IncetlTest.pm -- what the TAP tests in test/t share
#
# make tapcheck runs prove from test/ with -I ., so a test says
#   use IncetlTest;
# and gets the functions below:
#   incetl_node($name, %opts)        a started node with incetl created
#   citus_cluster()                  a Citus coordinator (incetl created)
#                                    and two workers, or skip_all
#   rows_differing($node, $src, $tgt, $cols, %opts)
#                                    rows of one side the other lacks
#   target_equals_source($node, $src, $tgt, $cols, $test_name)
#                                    the test that there are none
#   kill_run_midway($node, $pipeline, $how, %opts)
#                                    start a run and kill it after some
#                                    batches; built of start_run, quit_dead,
#                                    lock_target_row, wait_batches,
#                                    terminate_run, kill_server
package IncetlTest;

use strict;
use warnings;

use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(
  incetl_node
  citus_cluster
  rows_differing
  target_equals_source
  start_run
  quit_dead
  lock_target_row
  wait_batches
  terminate_run
  kill_server
  kill_run_midway
);

# citus_cluster(): a Citus coordinator and two workers on this machine,
# started, the workers added, incetl created on the coordinator; returns
# (coordinator, worker1, worker2).  The test is skipped, saying so, where
# Citus is not installed (test/run_all.sh builds it from ../shared/vendor
# when that folder exists).  Shards of 4 per table keep moves quick.
sub citus_cluster
{
	my $pkglib = `pg_config --pkglibdir`;
	chomp $pkglib;
	plan skip_all => "Citus is not installed ($pkglib/citus.so is missing): "
	  . 'the Citus tests are skipped; build it with ../shared/vendor/build-citus.sh'
	  unless -f "$pkglib/citus.so";

	my $conf = q{
shared_preload_libraries = 'citus'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
citus.shard_count = 4
citus.shard_replication_factor = 1
max_connections = 60
};
	my @nodes;
	foreach my $name ('coord', 'worker1', 'worker2')
	{
		my $n = PostgreSQL::Test::Cluster->new($name);
		$n->init(allows_streaming => 'logical');
		$n->append_conf('postgresql.conf', $conf);
		# Citus connects to its own node too: over the socket, as the tests do
		$n->append_conf('postgresql.conf', "citus.local_hostname = '" . $n->host . "'");
		$n->start;
		$n->safe_psql('postgres', 'CREATE EXTENSION citus');
		push @nodes, $n;
	}
	my ($coord, $w1, $w2) = @nodes;
	$coord->safe_psql('postgres', sprintf(
			"SELECT citus_set_coordinator_host('%s', %d)", $coord->host, $coord->port));
	foreach my $w ($w1, $w2)
	{
		$coord->safe_psql('postgres',
			sprintf("SELECT citus_add_node('%s', %d)", $w->host, $w->port));
	}
	is($coord->safe_psql('postgres', 'SELECT count(*) FROM citus_get_active_worker_nodes()'),
		'2', 'the coordinator has two workers');
	$coord->safe_psql('postgres', 'CREATE EXTENSION incetl CASCADE');
	return @nodes;
}

# incetl_node($name, %opts): a new node, started, with CREATE EXTENSION
# incetl CASCADE done.  Options:
#   logical => 0    a plain node; by default it can run every strategy
#                   (wal_level=logical), and since this Debian build lists
#                   the libraries allowed as output plugins, ours is named
#                   there when the server knows the setting
#   conf => '...'   lines for postgresql.conf, before the first start
#   dbname => 'db'  the database to create the extension in (created first
#                   unless it is 'postgres', the default)
#   initdb => [...] more initdb options, e.g. ['--wal-segsize=1']
sub incetl_node
{
	my ($name, %opts) = @_;
	my $logical = $opts{logical} // 1;
	my $dbname = $opts{dbname} // 'postgres';

	my $node = PostgreSQL::Test::Cluster->new($name);
	if ($logical)
	{
		$node->init(allows_streaming => 'logical', extra => $opts{initdb} // []);
	}
	else
	{
		$node->init(extra => $opts{initdb} // []);
	}
	$node->append_conf('postgresql.conf', $opts{conf}) if defined $opts{conf};
	if ($logical)
	{
		my ($out, $err) = ('', '');
		if (IPC::Run::run(
				[ 'postgres', '-D', $node->data_dir, '-C', 'output_plugin_libraries' ],
				'>', \$out, '2>', \$err))
		{
			$node->append_conf('postgresql.conf',
				"output_plugin_libraries = 'pgoutput, test_decoding, incetl'");
		}
	}
	$node->start;
	$node->safe_psql('postgres', "CREATE DATABASE $dbname") if $dbname ne 'postgres';
	$node->safe_psql($dbname, 'CREATE EXTENSION incetl CASCADE');
	return $node;
}

# rows_differing($node, $src, $tgt, $cols, %opts): how many rows of $src
# $tgt lacks (or holds with other values) plus how many of $tgt $src lacks,
# comparing the columns $cols ('a, b, c'), or whole rows when $cols is
# undef.  dbname => 'db' (default 'postgres').
sub rows_differing
{
	my ($node, $src, $tgt, $cols, %opts) = @_;
	my $dbname = $opts{dbname} // 'postgres';
	my ($s, $t) = defined $cols
	  ? ("SELECT $cols FROM $src", "SELECT $cols FROM $tgt")
	  : ("TABLE $src", "TABLE $tgt");
	return $node->safe_psql($dbname, qq{
SELECT (SELECT count(*) FROM ($s EXCEPT $t) a)
	 + (SELECT count(*) FROM ($t EXCEPT $s) b)});
}

# target_equals_source($node, $src, $tgt, $cols, $test_name): one test,
# that rows_differing (in database postgres) is 0
sub target_equals_source
{
	my ($node, $src, $tgt, $cols, $test_name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return is(rows_differing($node, $src, $tgt, $cols), 0, $test_name);
}

# start_run($node, $pipeline): CALL incetl.run in a background session,
# which stays open (the run may be waiting); returns the session
sub start_run
{
	my ($node, $pipeline) = @_;
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_until(qr/run starts/,
		"\\echo run starts\nCALL incetl.run('$pipeline');\n");
	return $bg;
}

# quit_dead($session): end a session whose server side is gone (its psql
# may have exited)
sub quit_dead
{
	my ($session) = @_;
	eval { $session->quit; };
	return;
}

# lock_target_row($node, $table, $id): hold a row lock on the row of
# $table with that id, in an open transaction of a background session, so
# that a run that gets to it waits there; returns the session
sub lock_target_row
{
	my ($node, $table, $id) = @_;
	my $locker = $node->background_psql('postgres');
	$locker->query_safe("BEGIN; SELECT 1 FROM $table WHERE id = $id FOR UPDATE");
	return $locker;
}

# wait_batches($node, $pipeline, $n): poll run_log until the running run of
# $pipeline has committed at least $n batches; returns its run_id
sub wait_batches
{
	my ($node, $pipeline, $n) = @_;
	$node->poll_query_until('postgres',
		"SELECT EXISTS (SELECT 1 FROM incetl.run_log WHERE pipeline = '$pipeline' "
		  . "AND status = 'running' AND batches >= $n)")
	  or die "the run never reached $n batches";
	return $node->safe_psql('postgres',
		"SELECT run_id FROM incetl.run_log WHERE pipeline = '$pipeline' AND status = 'running'");
}

# terminate_run($node, $run_id): pg_terminate_backend of the run's backend
# (waiting up to 60s for it to go); returns 't' when it went
sub terminate_run
{
	my ($node, $run_id) = @_;
	return $node->safe_psql('postgres',
		"SELECT pg_terminate_backend(pid, 60000) FROM incetl.run_log WHERE run_id = $run_id");
}

# kill_server($node): SIGKILL the whole server: every child of the
# postmaster, then the postmaster ($node->kill9 alone kills only the
# postmaster; an orphaned backend then goes on working until it notices,
# and may well finish the run).  Returns once every killed process is gone.
sub kill_server
{
	my ($node) = @_;
	my $pm = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
	my @children;
	opendir(my $dh, '/proc') or die "cannot read /proc: $!";
	foreach my $p (grep { /^\d+$/ } readdir $dh)
	{
		my $stat = eval { slurp_file("/proc/$p/stat") };
		next unless defined $stat;
		# pid (comm) state ppid ...: comm may hold spaces, skip past it
		$stat =~ s/^.*\)\s+//s;
		push @children, $p if (split ' ', $stat)[1] == $pm;
	}
	closedir $dh;
	note 'SIGKILL to ' . scalar(@children) . " children of postmaster $pm";
	kill 'KILL', @children;
	$node->kill9;

	# pg_ctl start refuses while the old postmaster's pid is alive: wait
	# until every killed process has been reaped
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (grep { kill 0, $_ } ($pm, @children))
	{
		die 'killed server processes do not go away' if time > $deadline;
		usleep(50_000);
	}
	return;
}

# kill_run_midway($node, $pipeline, $how, batches => $n, lock => [$table,
# $id], test_name => '...'): start a run of $pipeline in the background
# while another session holds a row lock on row $id of $table (so that the
# run cannot finish first: if it gets that far it waits there), wait until
# it has committed $n batches, then kill it, $how:
#   'terminate'  pg_terminate_backend of its backend; that it went is one
#                test, named test_name; then the lock is released
#   'kill9'      SIGKILL of the whole server (kill_server), restarted after
# Returns the run_id of the killed run.
sub kill_run_midway
{
	my ($node, $pipeline, $how, %opts) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $locker = lock_target_row($node, @{ $opts{lock} });
	my $bg = start_run($node, $pipeline);
	my $run_id = wait_batches($node, $pipeline, $opts{batches});
	if ($how eq 'terminate')
	{
		is(terminate_run($node, $run_id), 't', $opts{test_name});
		quit_dead($bg);
		$locker->query_safe('COMMIT');
		$locker->quit;
	}
	elsif ($how eq 'kill9')
	{
		kill_server($node);
		quit_dead($bg);
		quit_dead($locker);
		$node->start;
	}
	else
	{
		die "kill_run_midway: no such way to kill a run: $how";
	}
	return $run_id;
}

1;
