# test/t/090_trigger_subscriber.pl -- a 'trigger' pipeline whose source is
# written by logical replication
#
# The subscriber's copy of a published table is the source of a 'trigger'
# pipeline (partitioned on the subscriber, so rows land in partitions).  The
# apply worker runs with session_replication_role = replica and fires row
# triggers only, never statement triggers: without incetl's replica-mode
# row trigger every replicated change would be lost.  Proves:
#   - the initial table synchronisation (a COPY in replica mode) and then
#     replicated inserts, updates (one that changes the key and moves the
#     row to another partition), deletes and a TRUNCATE all reach the
#     target, which equals the source after each run;
#   - each replicated change is queued once (the statement triggers, which
#     ordinary sessions fire, stay silent in the apply worker);
#   - a write made locally on the subscriber is captured as well.
use strict;
use warnings;

use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pub = incetl_node('publisher');
my $sub = incetl_node('subscriber', logical => 0);

$pub->safe_psql(
	'postgres', q{
CREATE TABLE items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO items SELECT g, 'initial ' || g FROM generate_series(1, 100) g;
CREATE PUBLICATION items_pub FOR TABLE items;
});

$sub->safe_psql(
	'postgres', q{
CREATE TABLE items (id integer PRIMARY KEY, v text NOT NULL) PARTITION BY RANGE (id);
CREATE TABLE items_low PARTITION OF items FOR VALUES FROM (MINVALUE) TO (1000);
CREATE TABLE items_high PARTITION OF items FOR VALUES FROM (1000) TO (MAXVALUE);
CREATE TABLE items_copy (id integer PRIMARY KEY, v text NOT NULL);
SELECT incetl.create_pipeline('sub', 'items', 'items_copy', strategy => 'trigger',
							  batch_size => 30);
CALL incetl.run('sub');
});

# the queue's entries, by op
sub queued
{
	return $sub->safe_psql('postgres', q{
SELECT coalesce(string_agg(op::text || '=' || n, ' ' ORDER BY op), 'empty')
  FROM (SELECT op, count(*) AS n FROM incetl.queue_1 GROUP BY op) q});
}

sub run_and_compare
{
	my ($name) = @_;
	$sub->safe_psql('postgres', "CALL incetl.run('sub')");
	target_equals_source($sub, 'items', 'items_copy', undef, $name);
}

my $connstr = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION items_sub CONNECTION '$connstr' PUBLICATION items_pub");
$sub->wait_for_subscription_sync($pub, 'items_sub');

is($sub->safe_psql('postgres', 'SELECT count(*) FROM items'), '100',
	'the initial synchronisation copied the rows');
is(queued(), 'i=100', 'the initial synchronisation was captured, each row once');
run_and_compare('target equals source after the initial synchronisation');

$pub->safe_psql(
	'postgres', q{
INSERT INTO items SELECT g, 'new ' || g FROM generate_series(101, 110) g;
UPDATE items SET v = 'updated' WHERE id <= 20;
UPDATE items SET id = 5000 WHERE id = 50;
DELETE FROM items WHERE id BETWEEN 60 AND 64;
});
$pub->wait_for_catchup('items_sub');
# 10 inserts, 20 updates, 5 deletes; the apply worker moves id 50 to the
# other partition as a delete there and an insert here
is(queued(), 'd=6 i=11 u=20', 'replicated changes were captured, each once');
run_and_compare('target equals source after replicated changes');
is($sub->safe_psql('postgres', q{SELECT tableoid::regclass FROM items WHERE id = 5000}),
	'items_high', 'the moved row is in the other partition');

# a local write on the subscriber goes through the statement triggers
$sub->safe_psql('postgres', q{UPDATE items_low SET v = 'local' WHERE id = 1});
is(queued(), 'u=1', 'a local write is captured once');
run_and_compare('target equals source after a local write');

$pub->safe_psql('postgres', q{TRUNCATE items});
$pub->safe_psql('postgres', q{INSERT INTO items VALUES (7, 'after truncate')});
$pub->wait_for_catchup('items_sub');
run_and_compare('target equals source after a replicated TRUNCATE');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM items_copy'), '1',
	'the target holds only the row written after the TRUNCATE');

$sub->safe_psql('postgres', 'DROP SUBSCRIPTION items_sub');
$sub->stop;
$pub->stop;
done_testing();
