# test/t/085_logical_async_commit.pl -- a 'logical' run applies what committed
# before it, synchronous_commit = off included
#
# A writer with synchronous_commit = off makes its commit visible before its
# WAL is flushed, and logical decoding through SQL reads only up to the
# flush position.  With the WAL writer stopped (SIGSTOP; and nothing else
# that would flush that WAL: see the node's settings), a change
# committed asynchronously in one session is applied by a run started right
# after it in another session.  And that flush works when the last WAL record
# ends exactly at a page boundary (the insert position then points past the
# next page's header, where nothing is written yet).
use strict;
use warnings;

use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# no buffer evictions (a dirty page written out flushes the WAL up to it),
# no autovacuum, no background writer writes: nothing but the run may flush
# the writer's WAL
my $node = incetl_node('async_commit',
	conf => "shared_buffers = 128MB\nautovacuum = off\nbgwriter_lru_maxpages = 0\nmax_connections = 20\n");

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
# an asynchronous commit just before the run
#
{
	my $walwriter = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'");
	ok($walwriter =~ /^\d+$/, 'found the WAL writer');
	kill 'STOP', $walwriter;
	my $ok = eval {
		$node->safe_psql('postgres', q{
SET synchronous_commit = off;
UPDATE src SET v = 'async' WHERE id = 1;
INSERT INTO src VALUES (101, 'async');
DELETE FROM src WHERE id = 2;
});
		is( $node->safe_psql('postgres',
				'SELECT pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn()'),
			't', 'async: the commit is not flushed yet');
		$node->safe_psql('postgres', "CALL incetl.run('p')");
		1;
	};
	kill 'CONT', $walwriter;
	die $@ unless $ok;
	is($node->safe_psql('postgres', $last_run_sql), 'succeeded|3|1|1|1',
		'async: the run applied the three changes committed before it');
	target_equals_source($node, 'src', 'tgt', undef, 'async: target equals source');
}

#
# The flush at a page boundary.  When the last WAL record ends exactly at the
# end of a page, the insert position points past the next page's header,
# where nothing is written yet: flushing up to it is an error.  A logical
# message sized to end a page, then a preview (which flushes, and writes no
# WAL of its own before that), in one DO block: no other WAL comes between.
#
{
	my $hits = 0;
	foreach my $try (1 .. 5)
	{
		$node->safe_psql('postgres', "SELECT count(*) FROM incetl.preview('p')");
		my ($ret, $out, $err) = $node->psql('postgres', q{
DO $$
DECLARE
	page constant integer := current_setting('wal_block_size')::integer;
	room integer;
	main integer;
BEGIN
	LOOP
		room := page - ((pg_current_wal_insert_lsn() - '0/0'::pg_lsn) % page)::integer;
		EXIT WHEN room >= 512;
		PERFORM pg_logical_emit_message(false, 'incetl test', repeat('x', 600));
	END LOOP;
	-- record header 24, main data header 5, message header 24, prefix 12
	main := room - 24 - 5;
	PERFORM pg_logical_emit_message(false, 'incetl test', repeat('x', main - 24 - 12));
	-- just past a page header (short, or long at a segment's start)
	RAISE NOTICE 'at a page boundary: %',
		((pg_current_wal_insert_lsn() - '0/0'::pg_lsn) % page)::integer IN (24, 40);
	PERFORM count(*) FROM incetl.preview('p');
END
$$;
});
		is($ret, 0, "page boundary, try $try: the preview flushed without an error")
		  or diag($err);
		$hits++ if $err =~ /at a page boundary: t/;
	}
	cmp_ok($hits, '>', 0, 'page boundary: the insert position was at a page boundary at least once');
}

$node->safe_psql('postgres', "SELECT incetl.drop_pipeline('p')");
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_replication_slots'), 0,
	'drop_pipeline dropped the slot');

$node->stop;
done_testing();
