# test/t/020_dump_restore.pl -- pipelines, state and run_log survive pg_dump / pg_restore
#
# A database with two pipelines (a timestamptz watermark with a one-column
# key; a bigint watermark with a two-column key) after some runs is dumped
# with pg_dump -Fc and restored with pg_restore into a new database.
# Proves:
#   - incetl.pipelines, incetl.state (watermark text identical, key too) and
#     incetl.run_log come back row for row, sources and targets resolved to
#     the restored tables;
#   - the id sequences come back too: a pipeline created after the restore
#     gets a fresh id and run_log continues its numbering;
#   - after one new source row, the next run extracts exactly 1
#     (rows_extracted = 1), and the other pipeline, with nothing new,
#     extracts 0; both run in a session whose TimeZone and DateStyle differ
#     from the original's, which must not change what the watermark means.
use strict;
use warnings;

use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = incetl_node('dump', conf => "shared_buffers = 128MB\nmax_connections = 20\n",
	dbname => 'orig');

# incetl.late_commit_margin = 0: these runs follow their writes at once
sub run
{
	my ($db, $pipeline, %opts) = @_;
	return $node->safe_psql($db,
		"SET incetl.late_commit_margin = 0; CALL incetl.run('$pipeline')", %opts);
}

$node->safe_psql(
	'orig', q{
CREATE SCHEMA app;
CREATE SCHEMA dw;
CREATE TABLE app.orders (id integer PRIMARY KEY, amount numeric NOT NULL,
						 updated_at timestamptz NOT NULL);
CREATE TABLE dw.orders (id integer PRIMARY KEY, amount numeric,
						updated_at timestamptz, etl_run_id bigint);
CREATE TABLE app.stock (site integer, sku text, qty integer NOT NULL,
						version bigint NOT NULL, PRIMARY KEY (site, sku));
CREATE TABLE dw.stock (site integer, sku text, qty integer, version bigint,
					   PRIMARY KEY (site, sku));
INSERT INTO app.orders
SELECT g, g * 1.5, timestamptz '2024-03-01 12:00:00.123456+00' + g * interval '1 minute'
  FROM generate_series(1, 50) g;
INSERT INTO app.stock
SELECT g % 3, 'sku ' || g, g, g FROM generate_series(1, 40) g;
SELECT incetl.create_pipeline('orders', 'app.orders', 'dw.orders',
							  watermark_column => 'updated_at', batch_size => 7);
SELECT incetl.create_pipeline('stock "quoted"', 'app.stock', 'dw.stock',
							  watermark_column => 'version', batch_size => 9);
});
run('orig', 'orders');
run('orig', 'stock "quoted"');
$node->safe_psql(
	'orig', q{
UPDATE app.orders SET amount = amount + 1,
	   updated_at = timestamptz '2024-03-02 00:00:00.5+00' + id * interval '1 second'
 WHERE id % 5 = 0;
INSERT INTO app.stock VALUES (7, 'late', 1, 41);
UPDATE app.stock SET qty = qty + 1, version = 42 WHERE site = 1 AND sku = 'sku 1';
});
run('orig', 'orders');
run('orig', 'stock "quoted"');
run('orig', 'orders');

# what must come back, as text
my %catalog = (
	pipelines => q{SELECT id, name, source::text, target::text, strategy, key_columns,
					 watermark_column, lookback, batch_size, enabled, owner::text, created_at
				   FROM incetl.pipelines ORDER BY id},
	state => q{SELECT p.name, s.watermark, s.watermark_key, s.watermark_type
				 FROM incetl.state s JOIN incetl.pipelines p ON p.id = s.pipeline_id
				ORDER BY p.id},
	run_log => q{SELECT run_id, pipeline, pipeline_id, kind, status, started_at, finished_at,
					 batches, rows_extracted, rows_inserted, rows_updated, rows_deleted,
					 rows_unchanged, watermark_before, watermark_after, error, run_by
				FROM incetl.run_log ORDER BY run_id},
	targets => q{SELECT 'orders', to_jsonb(o) FROM dw.orders o
				 UNION ALL SELECT 'stock', to_jsonb(s) FROM dw.stock s ORDER BY 1, 2},);
my %before;
$before{$_} = $node->safe_psql('orig', $catalog{$_}) foreach keys %catalog;
note "state before the dump:\n$before{state}";
like($before{state}, qr/^orders\|2024-03-02 00:00:50\.5\+00\|\{50\}\|timestamp with time zone$/m,
	'the timestamptz watermark is canonical ISO UTC text');
like($before{state}, qr/^stock "quoted"\|42\|\{1,"sku 1"\}\|bigint$/m,
	'the bigint watermark and the two-column key are kept');

my $dump = $PostgreSQL::Test::Utils::tmp_check . '/orig.dump';
$node->command_ok(
	[ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('orig') ],
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
is( $node->safe_psql('restored',
		q{SELECT count(*) FROM incetl.pipelines p
		   WHERE p.source = 'app.orders'::regclass AND p.target = 'dw.orders'::regclass}),
	1, 'the restored pipeline points at the restored tables');

# new work in the restored database, from a session with other settings
$node->safe_psql('restored',
	"INSERT INTO app.orders VALUES (51, 1, timestamptz '2024-03-05 00:00:00+00')");
my $sql_settings = "SET TimeZone = 'America/New_York'; SET DateStyle = 'SQL, DMY';";
$node->safe_psql('restored',
	"$sql_settings SET incetl.late_commit_margin = 0; CALL incetl.run('orders'); "
	  . "CALL incetl.run('stock \"quoted\"')");
is( $node->safe_psql('restored',
		q{SELECT pipeline, status, rows_extracted, rows_inserted, rows_updated
			FROM incetl.run_log WHERE run_id > (SELECT max(run_id) FROM incetl.run_log) - 2
		   ORDER BY run_id}),
	qq{orders|succeeded|1|1|0\nstock "quoted"|succeeded|0|0|0},
	'after the restore the next runs move only the new row');
is( rows_differing($node, 'app.orders', 'dw.orders', 'id, amount, updated_at',
		dbname => 'restored')
	  + rows_differing($node, 'app.stock', 'dw.stock', undef, dbname => 'restored'),
	0, 'restored targets equal their sources');

# the sequences came back: new ids do not collide
$node->safe_psql('restored', q{
CREATE TABLE app.more (id integer PRIMARY KEY, updated_at timestamptz NOT NULL);
CREATE TABLE dw.more (id integer PRIMARY KEY, updated_at timestamptz);
SELECT incetl.create_pipeline('more', 'app.more', 'dw.more', watermark_column => 'updated_at');
CALL incetl.run('more');
});
is( $node->safe_psql('restored',
		q{SELECT (SELECT id FROM incetl.pipelines WHERE name = 'more')
				 > (SELECT max(id) FROM incetl.pipelines WHERE name <> 'more'),
				 (SELECT max(run_id) FROM incetl.run_log WHERE pipeline = 'more')
				 > (SELECT max(run_id) FROM incetl.run_log WHERE pipeline <> 'more')}),
	't|t', 'pipeline and run ids continue after the restore');

# the original is untouched by all this
is($node->safe_psql('orig', $catalog{state}), $before{state},
	'the original database keeps its state');

$node->stop;
done_testing();
