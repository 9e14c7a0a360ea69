# test/t/086_logical_slot_heal.pl -- a 'logical' pipeline whose slot is left
# behind by a restore, or invalidated, heals itself and loses nothing
#
# (1) pg_dump / pg_restore of a database with a logical pipeline into a new
#     database of the same cluster: the restored pipeline's stored slot
#     belongs to the original database, so its first run makes a slot of its
#     own and compares the whole source with the target; the original
#     pipeline and its slot are untouched, and dropping the restored pipeline
#     drops only its own slot.
# (2) a slot invalidated by max_slot_wal_keep_size (wal_status 'lost') while
#     the source changed: the next run says so, drops it, creates a new slot,
#     compares the whole source with the target and loses nothing; the run
#     after that is incremental again.
use strict;
use warnings;

use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = incetl_node('slot_heal', conf => "max_connections = 20\n");

$node->safe_psql('postgres', q{
CREATE TABLE src (id integer PRIMARY KEY, v text NOT NULL);
CREATE TABLE tgt (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO src SELECT g, 'v' || g FROM generate_series(1, 100) g;
SELECT incetl.create_pipeline('p', 'src', 'tgt', strategy => 'logical');
CALL incetl.run('p');
});

my $last_run_sql = q{
SELECT status, rows_extracted, rows_inserted, rows_updated, rows_deleted
  FROM incetl.run_log WHERE pipeline = 'p' ORDER BY run_id DESC LIMIT 1};
is($node->safe_psql('postgres', $last_run_sql), 'succeeded|100|100|0|0', 'first run loads everything');

#
# (1) a restore into another database
#
{
	my $dump = $PostgreSQL::Test::Utils::tmp_check . '/slot_heal.dump';
	$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ],
		'restore: pg_dump');
	$node->safe_psql('postgres', 'CREATE DATABASE restored');
	$node->command_ok(
		[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
		'restore: pg_restore into a new database');
	my $slots_sql = q{SELECT database, count(*) FROM pg_replication_slots GROUP BY 1 ORDER BY 1};
	is($node->safe_psql('postgres', $slots_sql), 'postgres|1', 'restore: one slot, the original\'s');

	$node->safe_psql('restored', q{
UPDATE src SET v = 'restored' WHERE id = 3;
DELETE FROM tgt WHERE id = 4;	-- a target that drifted: the compare repairs it
});
	my ($ret, $out, $err) = $node->psql('restored', "CALL incetl.run('p')");
	is($ret, 0, 'restore: the restored pipeline runs');
	like($err, qr/the replication slot of pipeline "p" is gone/,
		'restore: it says it compares everything');
	is($node->safe_psql('restored', $last_run_sql), 'succeeded|2|1|1|0',
		'restore: the run compared the whole source with the target');
	is( rows_differing($node, 'src', 'tgt', undef, dbname => 'restored'),
		0, 'restore: restored target equals restored source');
	is($node->safe_psql('postgres', $slots_sql), "postgres|1\nrestored|1",
		'restore: a slot of its own in the restored database');
	is( $node->safe_psql('restored',
			q{SELECT s.slot_name = r.slot_name FROM incetl.state s
			  JOIN pg_replication_slots r ON r.database = current_database()}),
		't', 'restore: the restored pipeline stores its own slot');

	# the original goes on from where it was
	$node->safe_psql('postgres', "UPDATE src SET v = 'original' WHERE id = 5");
	($ret, $out, $err) = $node->psql('postgres', "CALL incetl.run('p')");
	is($ret, 0, 'restore: the original pipeline runs');
	unlike($err, qr/replication slot/, 'restore: without a resync');
	is($node->safe_psql('postgres', $last_run_sql), 'succeeded|1|0|1|0',
		'restore: the original reads only its new change');

	$node->safe_psql('restored', "SELECT incetl.drop_pipeline('p')");
	is($node->safe_psql('postgres', $slots_sql), 'postgres|1',
		'restore: dropping the restored pipeline dropped only its own slot');
	$node->safe_psql('postgres', 'DROP DATABASE restored');
}

#
# (2) a slot invalidated by max_slot_wal_keep_size
#
{
	$node->safe_psql('postgres', q{
ALTER SYSTEM SET max_slot_wal_keep_size = '1MB';
SELECT pg_reload_conf();
CREATE TABLE filler (pad text);
});
	# changes the slot will never deliver
	$node->safe_psql('postgres', q{
UPDATE src SET v = 'while lost' WHERE id BETWEEN 10 AND 19;
DELETE FROM src WHERE id BETWEEN 20 AND 24;
INSERT INTO src SELECT g, 'while lost' FROM generate_series(200, 209) g;
});
	for (1 .. 3)
	{
		$node->safe_psql('postgres',
			"INSERT INTO filler SELECT repeat('x', 100) FROM generate_series(1, 1000); SELECT pg_switch_wal();");
	}
	$node->safe_psql('postgres', 'CHECKPOINT');
	$node->poll_query_until('postgres',
		"SELECT wal_status = 'lost' FROM pg_replication_slots WHERE database = 'postgres'")
	  or die 'the slot was not invalidated';
	pass('lost: the slot is invalidated');
	$node->safe_psql('postgres', q{
ALTER SYSTEM RESET max_slot_wal_keep_size;
SELECT pg_reload_conf();
});

	my ($ret, $out, $err) = $node->psql('postgres', "CALL incetl.run('p')");
	is($ret, 0, 'lost: the next run succeeds');
	like($err, qr/the replication slot of pipeline "p" was invalidated/,
		'lost: it says it compares everything');
	is($node->safe_psql('postgres', $last_run_sql), 'succeeded|25|10|10|5',
		'lost: the run compared the whole source and applied what the slot missed');
	target_equals_source($node, 'src', 'tgt', undef, 'lost: target equals source');
	is( $node->safe_psql('postgres',
			"SELECT count(*), bool_and(wal_status <> 'lost') FROM pg_replication_slots"),
		'1|t', 'lost: one slot, a new one');
	$node->safe_psql('postgres', "UPDATE src SET v = 'after' WHERE id = 1");
	$node->safe_psql('postgres', "CALL incetl.run('p')");
	is($node->safe_psql('postgres', $last_run_sql), 'succeeded|1|0|1|0',
		'lost: then incremental again');
	target_equals_source($node, 'src', 'tgt', undef, 'lost: target still equals source');
}

$node->safe_psql('postgres', "SELECT incetl.drop_pipeline('p')");
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'), 0,
	'drop_pipeline dropped the slot');

$node->stop;
done_testing();
