# test/t/091_trigger_dump_restore.pl -- a 'trigger' pipeline survives
# pg_dump / pg_restore
#
# A partitioned source with a 'trigger' pipeline, run once, then changed
# (the changes wait in the queue), is dumped with pg_dump -Fc and restored
# into a new database.  Proves:
#   - the queue comes back with its entries, its numbering and its owner
#     (the extension owner), the capture triggers on every partition with
#     their firing modes, and incetl.state.capture_relations naming the
#     restored tables;
#   - the next run applies exactly the queued changes (no compare of the
#     whole source: nothing looked missing or changed), a write made after
#     the restore is captured, and the target equals the source.
use strict;
use warnings;

use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = incetl_node('trigdump', logical => 0, dbname => 'orig');

$node->safe_psql(
	'orig', q{
CREATE TABLE ev (id integer PRIMARY KEY, v text NOT NULL) PARTITION BY RANGE (id);
CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM (0) TO (100);
CREATE TABLE ev_2 PARTITION OF ev FOR VALUES FROM (100) TO (200);
CREATE TABLE ev_copy (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO ev SELECT g, 'v' || g FROM generate_series(1, 150) g;
SELECT incetl.create_pipeline('ev', 'ev', 'ev_copy', strategy => 'trigger', batch_size => 40);
CALL incetl.run('ev');
UPDATE ev_1 SET v = 'changed' WHERE id <= 10;
DELETE FROM ev_2 WHERE id > 140;
INSERT INTO ev VALUES (199, 'new');
});

my %catalog = (
	queue => q{SELECT seq, k1, op FROM incetl.queue_1 ORDER BY seq},
	queue_owner => q{SELECT c.relowner = e.extowner FROM pg_class c, pg_extension e
					  WHERE c.oid = 'incetl.queue_1'::regclass AND e.extname = 'incetl'},
	triggers => q{SELECT tgrelid::regclass, tgname, tgenabled FROM pg_trigger
				   WHERE tgname LIKE 'incetl\_capture\_%' ORDER BY 1, 2},
	covered => q{SELECT capture_relations FROM incetl.state},);
my %before;
$before{$_} = $node->safe_psql('orig', $catalog{$_}) foreach keys %catalog;
like($before{queue}, qr/^\d+\|1\|u$/m, 'the queue holds the changes');

my $dump = $PostgreSQL::Test::Utils::tmp_check . '/trig.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('orig') ],
	'pg_dump -Fc');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
	'pg_restore into a new database');
foreach my $what (sort keys %catalog)
{
	is($node->safe_psql('restored', $catalog{$what}), $before{$what},
		"$what identical after the restore");
}

my ($out, $err) = ('', '');
$node->psql('restored', "CALL incetl.run('ev')", stdout => \$out, stderr => \$err);
unlike($err, qr/compares the whole source/, 'the first run after the restore is incremental');
is( $node->safe_psql('restored',
		q{SELECT status, rows_extracted, rows_inserted, rows_updated, rows_deleted
			FROM incetl.run_log ORDER BY run_id DESC LIMIT 1}),
	'succeeded|21|1|10|10', 'it applies exactly the queued changes');
target_equals_source_in('restored', 'after the first run');

$node->safe_psql('restored', q{INSERT INTO ev_2 VALUES (150, 'after the restore')});
$node->safe_psql('restored', q{CALL incetl.run('ev')});
target_equals_source_in('restored', 'a write after the restore is captured');

sub target_equals_source_in
{
	my ($db, $name) = @_;
	is(rows_differing($node, 'ev', 'ev_copy', undef, dbname => $db), 0,
		"target equals source $name");
}

$node->stop;
done_testing();
