# test/t/050_logical_kill.pl -- a 'logical' run that dies applies nothing twice
#
# A logical run peeks the slot's changes, applies their keys in batches
# (each committed), stores the LSN of the last change with its last batch,
# and confirms the slot only after that commit.  So a run can die
#   (1) after some batches committed, before the last one (killed by
#       pg_terminate_backend, or by SIGKILL of the whole server), or
#   (2) after the last batch committed its applied LSN, before it confirmed
#       the slot (made exact here by a run inside BEGIN ... COMMIT, where
#       incetl never confirms, and by a server crash right after a run, when
#       the slot's confirmed position on disk may lag).
# After each, the next run completes, the target equals the source, and no
# change is applied twice: the next run inserts exactly the keys the target
# lacks, updates exactly the rows that differ and deletes exactly the rows
# the source no longer has, all else counts as unchanged; in case (2) it
# applies nothing at all and confirms the slot.  Throughout, the stored
# applied LSN is never behind the slot's confirmed_flush_lsn.
#
# The kill in (1) comes while the run waits on a row lock that another
# session holds on a target row of a late batch, once run_log shows
# committed batches (polled; no sleeps).
use strict;
use warnings;

use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $N = 20_000;				# rows of the initial load
my $BATCH = 1000;
my $SENTINEL = 15_001;		# an updated key of batch 16 (of 22)

# a node that can decode with incetl's plugin (wal_level=logical)
my $node = incetl_node('logical_kill', conf => "max_connections = 20\n");

$node->safe_psql('postgres', qq{
CREATE TABLE src (id integer PRIMARY KEY, v text NOT NULL, n integer NOT NULL);
CREATE TABLE tgt (id integer PRIMARY KEY, v text NOT NULL, n integer NOT NULL);
INSERT INTO src SELECT g, 'v0 ' || g, 0 FROM generate_series(1, $N) g;
});
# the slot cannot be created in a transaction that has written
$node->safe_psql('postgres', qq{
SELECT incetl.create_pipeline('p', 'src', 'tgt', strategy => 'logical',
							  batch_size => $BATCH);
});

# what the next run must do, from the data: keys to insert, rows to
# update, rows to delete
my $todo_sql = q{
SELECT (SELECT count(*) FROM src WHERE NOT EXISTS (SELECT 1 FROM tgt WHERE tgt.id = src.id)),
	   (SELECT count(*) FROM src JOIN tgt USING (id) WHERE (src.v, src.n) <> (tgt.v, tgt.n)),
	   (SELECT count(*) FROM tgt WHERE NOT EXISTS (SELECT 1 FROM src WHERE src.id = tgt.id))
};
# stored applied LSN against the slot: 'ahead', 'equal', 'behind' or
# 'none' (nothing applied yet)
my $lsn_sql = q{
SELECT CASE WHEN s.applied_lsn IS NULL THEN 'none'
			WHEN s.applied_lsn > r.confirmed_flush_lsn THEN 'ahead'
			WHEN s.applied_lsn = r.confirmed_flush_lsn THEN 'equal'
			ELSE 'behind' END
  FROM incetl.state s JOIN incetl.pipelines p ON p.id = s.pipeline_id
  JOIN pg_replication_slots r ON r.slot_name = s.slot_name
 WHERE p.name = 'p'
};
my $last_run_sql = q{
SELECT status, rows_extracted, rows_inserted, rows_updated, rows_deleted, rows_unchanged
  FROM incetl.run_log WHERE pipeline = 'p' ORDER BY run_id DESC LIMIT 1
};

sub lsn_state
{
	return $node->safe_psql('postgres', $lsn_sql);
}

# the xmins of every target row, as one digest: equal before and after a
# run when the run rewrote no row
sub target_xmins
{
	return $node->safe_psql('postgres',
		q{SELECT md5(string_agg(xmin::text, ',' ORDER BY id)) FROM tgt});
}

# one complete run; returns its run_log counts
sub run_ok
{
	my ($label) = @_;
	$node->safe_psql('postgres', "CALL incetl.run('p')");
	my $row = $node->safe_psql('postgres', $last_run_sql);
	like($row, qr/^succeeded\|/, "$label: the run succeeded");
	return $row;
}

# a round of changes: every tenth key (by rank, never the sentinel)
# deleted, every other one updated, 2000 new keys above them; returns the
# number of changed keys (22000 in the first round: 22 batches, the
# sentinel in batch 16)
sub make_changes
{
	my ($round) = @_;
	my ($count, $max) = split /\|/,
	  $node->safe_psql('postgres', 'SELECT count(*), max(id) FROM src');
	$node->safe_psql('postgres', qq{
DELETE FROM src WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn
											   FROM src) x
							  WHERE rn % 10 = 0 AND id <> $SENTINEL);
UPDATE src SET v = 'v$round ' || id, n = $round;
INSERT INTO src SELECT g, 'v$round ' || g, $round FROM generate_series($max + 1, $max + 2000) g;
});
	return $count + 2000;
}

# After a run died: the applied LSN did not move past the slot, the next
# run does exactly what the data says is left, and the target then equals
# the source.
sub check_after_death
{
	my ($label, $killed_run, $lsn_before, $total) = @_;

	is(lsn_state(), $lsn_before,
		"$label: applied LSN and slot as before the killed run");
	my ($ins, $upd, $del) = split /\|/, $node->safe_psql('postgres', $todo_sql);
	note "$label: left to do: $ins inserts, $upd updates, $del deletes";
	cmp_ok($ins + $upd + $del, '>', 0, "$label: the run died before it finished");
	cmp_ok($ins + $upd + $del, '<', $total,
		"$label: the run had applied some batches before it died");

	my $row = run_ok("$label: next run");
	my $unchanged = $total - $ins - $upd - $del;
	is($row, "succeeded|$total|$ins|$upd|$del|$unchanged",
		"$label: next run re-reads the $total changed keys and applies only what was left");
	is($node->safe_psql('postgres',
			"SELECT status FROM incetl.run_log WHERE run_id = $killed_run"),
		'failed', "$label: the killed run is marked failed");
	target_equals_source($node, 'src', 'tgt', undef, "$label: target equals source");
	is(lsn_state(), 'equal', "$label: the slot is confirmed up to the applied LSN");
	is(run_ok("$label: a further run"), 'succeeded|0|0|0|0|0',
		"$label: a further run finds nothing to do");
	return;
}

#
# the first run loads everything; a small change gives an applied LSN
#
is(run_ok('initial load'), "succeeded|$N|$N|0|0|0", 'initial load: all rows');
$node->safe_psql('postgres', "UPDATE src SET n = 1 WHERE id = 1");
is(run_ok('small change'), 'succeeded|1|0|1|0|0', 'small change applied');
is(lsn_state(), 'equal', 'applied LSN stored and confirmed');

#
# (1a) pg_terminate_backend after some batches
#
{
	my $total = make_changes(1);
	my $before = lsn_state();
	my $run_id = kill_run_midway($node, 'p', 'terminate', batches => 3,
		lock => [ 'tgt', $SENTINEL ], test_name => 'terminate: backend terminated');
	check_after_death('terminate', $run_id, $before, $total);
}

#
# (1b) SIGKILL of the server after some batches
#
{
	my $total = make_changes(2);
	$node->safe_psql('postgres', 'CHECKPOINT');
	my $before = lsn_state();
	my $run_id = kill_run_midway($node, 'p', 'kill9', batches => 5,
		lock => [ 'tgt', $SENTINEL ]);
	check_after_death('kill9', $run_id, $before, $total);
}

#
# (2a) the window between applying and confirming: a run in a transaction
# block stores the applied LSN with its writes but leaves the slot alone
#
{
	my $total = make_changes(3);
	my ($ins, $upd, $del) = split /\|/, $node->safe_psql('postgres', $todo_sql);
	my $out = $node->safe_psql('postgres', qq{
BEGIN;
CALL incetl.run('p');
COMMIT;
$last_run_sql;
});
	is($out, "succeeded|$total|$ins|$upd|$del|0", 'block: the run applied every change');
	is(lsn_state(), 'ahead', 'block: applied LSN stored, slot not confirmed');
	target_equals_source($node, 'src', 'tgt', undef, 'block: target equals source');
	is($node->safe_psql('postgres', "SELECT count(*) FROM incetl.preview('p')"),
		0, 'block: preview shows nothing left');
	my $xmins = target_xmins();
	is(run_ok('block: next run'), 'succeeded|0|0|0|0|0',
		'block: the next run applies nothing again');
	is(target_xmins(), $xmins, 'block: no target row rewritten');
	is(lsn_state(), 'equal', 'block: the next run confirmed the slot');
}

#
# (2b) a server crash right after a complete run: whatever position of the
# slot survives on disk, the next run applies nothing twice
#
{
	$node->safe_psql('postgres', 'CHECKPOINT');
	my $total = make_changes(4);
	my ($ins, $upd, $del) = split /\|/, $node->safe_psql('postgres', $todo_sql);
	is(run_ok('crash after run'), "succeeded|$total|$ins|$upd|$del|0",
		'crash after run: the run applied every change');
	is(lsn_state(), 'equal', 'crash after run: slot confirmed');
	kill_server($node);
	$node->start;
	my $state = lsn_state();
	note "crash after run: applied LSN against the slot after restart: $state";
	like($state, qr/^(equal|ahead)$/, 'crash after run: applied LSN not behind the slot');
	my $xmins = target_xmins();
	is(run_ok('crash after run: next run'), 'succeeded|0|0|0|0|0',
		'crash after run: the next run applies nothing again');
	is(target_xmins(), $xmins, 'crash after run: no target row rewritten');
	is(lsn_state(), 'equal', 'crash after run: the slot is confirmed');
	target_equals_source($node, 'src', 'tgt', undef, 'crash after run: target equals source');
}

#
# drop_pipeline drops the slot
#
$node->safe_psql('postgres', "SELECT incetl.drop_pipeline('p')");
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'),
	0, 'drop_pipeline dropped the slot');

$node->stop;
done_testing();
