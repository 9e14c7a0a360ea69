# test/t/100_citus.pl -- incetl on a Citus coordinator with two workers
#
# SPEC section 7.  Three nodes on this machine: a coordinator, where incetl
# runs, and two workers holding the shards.  Proves:
#   - 'timestamp' into a distributed target (distributed by the key) and into
#     a reference target: first load in batches, then inserts, updates and
#     deletes (delete_detection 'compare') with exact counts; a re-run
#     writes nothing; the target equals the source;
#   - 'hash' on a distributed source into a colocated distributed target,
#     and 'timestamp' from a distributed source into a local target; the
#     hash pipeline keeps its hash state and a stage of each run's keys
#     distributed with the source (the stage holds the last run's keys; the
#     keyed batches read it on the shards: citus.log_remote_commands shows
#     the join of stage and source shards), a reconcile repairs through it,
#     a preview lists the changes (it crashed on Citus's error before),
#     and a plain role's pipeline can write both, which stay the extension
#     owner's (Citus creates a moved shard as its table's owner, who must
#     be able to create it in incetl's schema), through shard moves;
#   - 'trigger' and 'logical' on a distributed or reference source are
#     refused at create time (0A000), and nothing is left behind;
#   - a shard of the target and of the source moved to the other worker
#     between runs, and a shard of the target moved while a run applies
#     its batches (writers active), lose nothing.
#
# Skipped, saying so, where Citus is not installed (test/run_all.sh builds it
# from ../shared/vendor when that folder exists).
use strict;
use warnings;

use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my @nodes = citus_cluster();
my ($coord, $w1, $w2) = @nodes;

$coord->safe_psql(
	'postgres', q{
CREATE SCHEMA app;
CREATE SCHEMA dw;
CREATE TABLE app.src (id integer PRIMARY KEY, v text, ts timestamptz NOT NULL);
CREATE INDEX ON app.src (ts, id);
INSERT INTO app.src SELECT g, 'v' || g, now() - interval '1 day' + g * interval '1 second'
  FROM generate_series(1, 2000) g;

CREATE TABLE dw.dist (id integer PRIMARY KEY, v text, ts timestamptz);
SELECT create_distributed_table('dw.dist', 'id');
CREATE TABLE dw.ref (id integer PRIMARY KEY, v text, ts timestamptz);
SELECT create_reference_table('dw.ref');

-- a distributed source, its colocated target, and a local target
CREATE TABLE app.dsrc (id integer PRIMARY KEY, v text, ts timestamptz NOT NULL);
SELECT create_distributed_table('app.dsrc', 'id');
INSERT INTO app.dsrc SELECT g, 'd' || g, now() - interval '1 day' + g * interval '1 second'
  FROM generate_series(1, 2000) g;
CREATE TABLE dw.dist2 (id integer PRIMARY KEY, v text, ts timestamptz);
SELECT create_distributed_table('dw.dist2', 'id', colocate_with => 'app.dsrc');
CREATE TABLE dw.loc (id integer PRIMARY KEY, v text, ts timestamptz);
CREATE TABLE dw.hloc (id integer PRIMARY KEY, v text, ts timestamptz);
});

# last_run($pipeline): "inserted|updated|deleted|status" of its last run
sub last_run
{
	my ($p) = @_;
	return $coord->safe_psql('postgres',
		"SELECT rows_inserted || '|' || rows_updated || '|' || rows_deleted || '|' || status "
		  . "FROM incetl.run_log WHERE pipeline = '$p' ORDER BY run_id DESC LIMIT 1");
}

# wait_settled($table): every other transaction open in this database
# started after the newest row's stamp in $table.  A timestamp run reads
# only rows stamped before every transaction open at its start (the
# late-commit bound), and Citus's maintenance daemon opens some of its own
# now and then: a run that met one would leave the rows to the next run.
sub wait_settled
{
	my ($table) = @_;
	$coord->poll_query_until(
		'postgres', qq{
SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity a
  WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
    AND a.backend_type NOT IN ('autovacuum worker', 'walsender')
    AND a.xact_start <= (SELECT max(ts) FROM $table))})
	  or die "transactions older than the rows of $table stay open";
	return;
}

sub equal
{
	my ($src, $tgt, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is(rows_differing($coord, $src, $tgt, 'id, v, ts'), 0, $name);
}

# run_logged($pipeline): run it with citus.log_remote_commands on; returns
# what went to the workers (the notices)
sub run_logged
{
	my ($p) = @_;
	my ($rc, $out, $err) = $coord->psql('postgres', qq{
SET citus.log_remote_commands = on;
SET client_min_messages = notice;
CALL incetl.run('$p');
});
	return $err;
}

# --- timestamp into a distributed and a reference target
foreach my $t ('dist', 'ref')
{
	$coord->safe_psql('postgres',
		"SELECT incetl.create_pipeline('ts_$t', 'app.src', 'dw.$t', watermark_column => 'ts', "
		  . "delete_detection => 'compare', batch_size => 300)");
	$coord->safe_psql('postgres', "CALL incetl.run('ts_$t')");
	is(last_run("ts_$t"), '2000|0|0|succeeded', "$t target: first load counted");
	equal('app.src', "dw.$t", "$t target: equals the source after the first load");
}

$coord->safe_psql(
	'postgres', q{
UPDATE app.src SET v = v || '!', ts = now() WHERE id % 100 = 7;
INSERT INTO app.src SELECT g, 'v' || g, now() FROM generate_series(2001, 2005) g;
DELETE FROM app.src WHERE id IN (3, 4, 5);
});
sleep 2;    # past incetl.late_commit_margin: the run reads what committed
wait_settled('app.src');
foreach my $t ('dist', 'ref')
{
	$coord->safe_psql('postgres', "CALL incetl.run('ts_$t')");
	is(last_run("ts_$t"), '5|20|3|succeeded',
		"$t target: inserts, updates and deletes counted exactly");
	equal('app.src', "dw.$t", "$t target: equals the source");
	$coord->safe_psql('postgres', "CALL incetl.run('ts_$t')");
	is(last_run("ts_$t"), '0|0|0|succeeded', "$t target: a re-run writes nothing");
}

# a batch into a distributed target is one INSERT ... ON CONFLICT DO UPDATE
# per shard, which tells the rows it inserted from those it updated
$coord->safe_psql('postgres', q{
UPDATE app.src SET v = v || '^', ts = now() WHERE id IN (100, 200);
INSERT INTO app.src VALUES (2006, 'v2006', now());
});
sleep 2;
wait_settled('app.src');
my $err0 = run_logged('ts_dist');
like($err0, qr/INSERT INTO dw\.dist_\d+ AS t .* ON CONFLICT\(id\) DO UPDATE SET/,
	'a batch into a distributed target upserts on each shard');
# (the compare pass that follows sends its keys to the workers: not the batch)
my ($upsert_part) = split /DO UPDATE SET/, $err0;
unlike($upsert_part, qr/COPY "\d+_\d+" FROM STDIN/,
	'and the batch is not first sent to every worker as an intermediate result');
is(last_run('ts_dist'), '1|2|0|succeeded', 'the upsert counts inserts and updates apart');
$coord->safe_psql('postgres', "CALL incetl.run('ts_ref')");
is(last_run('ts_ref'), '1|2|0|succeeded', 'the same into a reference target');
equal('app.src', 'dw.dist', 'distributed target equals the source after the upsert');

# the batch's rows go through the pipeline's stage, distributed with the
# target: one connection per worker, so one prepared transaction per worker
# (not one per shard, as an upsert of a local source's rows takes)
my $d_id = $coord->safe_psql('postgres', "SELECT id FROM incetl.pipelines WHERE name = 'ts_dist'");
is($coord->safe_psql('postgres', qq{
SELECT c.relowner::regrole || ':' || (p.colocationid = t.colocationid)
  FROM pg_class c
  JOIN pg_dist_partition p ON p.logicalrelid = c.oid
  JOIN pg_dist_partition t ON t.logicalrelid = 'dw.dist'::regclass
 WHERE c.oid = 'incetl.tstage_$d_id'::regclass}),
	'postgres:true', "a timestamp pipeline into a distributed target has a stage distributed with it");
like($err0, qr/COPY incetl\.tstage_${d_id}_\d+ /, "the batch's rows go to the stage's shards");
$coord->safe_psql('postgres', "UPDATE app.src SET v = v || '&', ts = now() WHERE id % 50 = 1");
sleep 2;
wait_settled('app.src');
my $err1 = run_logged('ts_dist');
my ($batch_part) = split /COMMIT PREPARED/, $err1;
my $prepares = () = $batch_part =~ /PREPARE TRANSACTION/g;
is($prepares, 2, 'a batch into a 4-shard target on 2 workers prepares 2 transactions');
is(last_run('ts_dist'), '0|41|0|succeeded', 'the staged batch counted');
is($coord->safe_psql('postgres', "SELECT count(*) FROM incetl.tstage_$d_id"), '0',
	'the stage is empty after the run');
$coord->safe_psql('postgres', "UPDATE app.src SET v = v || '*', ts = now() WHERE id = 1");
sleep 2;
wait_settled('app.src');
is($coord->safe_psql('postgres',
		"SELECT string_agg(step, ',' ORDER BY ord) FROM incetl.explain('ts_dist') WITH ORDINALITY AS e(step, statement, plan, ord) "
		  . "WHERE step LIKE 'forward%'"),
	'forward probe,forward edge,forward stage,forward',
	"incetl.explain shows the batch's copy to the stage, then the batch");
$coord->safe_psql('postgres', "CALL incetl.run('ts_dist')");
is(last_run('ts_dist'), '0|1|0|succeeded', 'and the run does it');

# into a distributed target with etl columns and soft deletes: the upsert
# sets them from what the insert would have (Citus takes no now() in an ON
# CONFLICT's SET)
$coord->safe_psql('postgres', q{
CREATE TABLE app.s2 (id integer PRIMARY KEY, v text, ts timestamptz NOT NULL);
INSERT INTO app.s2 SELECT g, 'v' || g, now() - interval '1 hour' FROM generate_series(1, 50) g;
CREATE TABLE dw.soft (id integer PRIMARY KEY, v text, ts timestamptz, is_deleted boolean,
					  etl_inserted_at timestamptz, etl_updated_at timestamptz, etl_run_id bigint);
SELECT create_distributed_table('dw.soft', 'id');
SELECT incetl.create_pipeline('ts_soft', 'app.s2', 'dw.soft', watermark_column => 'ts',
							  delete_detection => 'compare', delete_mode => 'soft', batch_size => 20);
CALL incetl.run('ts_soft');
DELETE FROM app.s2 WHERE id = 2;
UPDATE app.s2 SET v = v || '!', ts = now() WHERE id IN (3, 4);
});
sleep 2;
wait_settled('app.s2');
$coord->safe_psql('postgres', "CALL incetl.run('ts_soft')");
is(last_run('ts_soft'), '0|2|1|succeeded', 'etl columns and a soft delete into a distributed target');
$coord->safe_psql('postgres', "INSERT INTO app.s2 VALUES (2, 'back', now())");
sleep 2;
wait_settled('app.s2');
$coord->safe_psql('postgres', "CALL incetl.run('ts_soft')");
is(last_run('ts_soft'), '0|1|0|succeeded', 'a soft-deleted key that comes back is an update');
is($coord->safe_psql('postgres', q{
SELECT string_agg(id || ':' || v || ':' || is_deleted || ':' || (etl_updated_at > etl_inserted_at)
				  || ':' || (etl_run_id = (SELECT max(run_id) FROM incetl.run_log WHERE pipeline = 'ts_soft')),
				  ',' ORDER BY id)
  FROM dw.soft WHERE id <= 5}),
	'1:v1:false:false:false,2:back:false:true:true,3:v3!:false:true:false,4:v4!:false:true:false,5:v5:false:false:false',
	'the upsert set the soft-delete flag and etl columns as an update does');

# --- a distributed source: hash into a colocated target, timestamp into a local one
$coord->safe_psql('postgres',
	"SELECT incetl.create_pipeline('h_dist', 'app.dsrc', 'dw.dist2', strategy => 'hash', batch_size => 300)");
$coord->safe_psql('postgres',
	"SELECT incetl.create_pipeline('ts_dsrc', 'app.dsrc', 'dw.loc', watermark_column => 'ts', batch_size => 300)");
$coord->safe_psql('postgres',
	"SELECT incetl.create_pipeline('h_dloc', 'app.dsrc', 'dw.hloc', strategy => 'hash', batch_size => 300)");
$coord->safe_psql('postgres', "CALL incetl.run('h_dist')");
is(last_run('h_dist'), '2000|0|0|succeeded', 'hash on a distributed source: first run counted');
$coord->safe_psql('postgres', "CALL incetl.run('h_dloc')");
is(last_run('h_dloc'), '2000|0|0|succeeded', 'hash from a distributed source into a local target');
$coord->safe_psql('postgres', "CALL incetl.run('ts_dsrc')");
is(last_run('ts_dsrc'), '2000|0|0|succeeded', 'distributed source into a local target: first run');
$coord->safe_psql(
	'postgres', q{
UPDATE app.dsrc SET v = v || '!', ts = now() WHERE id % 100 = 9;
INSERT INTO app.dsrc SELECT g, 'd' || g, now() FROM generate_series(2001, 2004) g;
DELETE FROM app.dsrc WHERE id IN (10, 11);
});
sleep 2;
$coord->safe_psql('postgres', "CALL incetl.run('h_dist')");
is(last_run('h_dist'), '4|20|2|succeeded', 'hash on a distributed source: changes counted exactly');
equal('app.dsrc', 'dw.dist2', 'hash on a distributed source: target equals source');
$coord->safe_psql('postgres', "CALL incetl.run('h_dloc')");
is(last_run('h_dloc'), '4|20|2|succeeded', 'hash from a distributed source into a local target: changes');
equal('app.dsrc', 'dw.hloc', 'hash from a distributed source into a local target: equal');
is($coord->safe_psql('postgres', q{
SELECT count(*) FROM pg_dist_partition
 WHERE colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'app.dsrc'::regclass)
   AND logicalrelid::text IN (SELECT 'incetl.' || t || '_' || id FROM incetl.pipelines,
							   unnest(ARRAY['hash_state', 'stage']) t WHERE name = 'h_dist')}),
	'2', 'hash on a distributed source: hash state and stage are colocated with the source');
my $h_id = $coord->safe_psql('postgres', "SELECT id FROM incetl.pipelines WHERE name = 'h_dist'");
is($coord->safe_psql('postgres', "SELECT count(*) FROM incetl.stage_$h_id"), '26',
	"the stage holds the last run's keys");
# the keyed batch joins stage and source shard by shard
$coord->safe_psql('postgres', "UPDATE app.dsrc SET v = v || '~' WHERE id IN (20, 21, 22)");
my $err = run_logged('h_dist');
like($err, qr/FROM \(incetl\.stage_${h_id}_\d+ b LEFT JOIN app\.dsrc_\d+ s/,
	'a keyed batch reads its source rows by a join of stage and source on each shard');
is(last_run('h_dist'), '0|3|0|succeeded', 'hash on a distributed source: the staged run counted');
$coord->safe_psql('postgres', "CALL incetl.run('h_dist')");
is(last_run('h_dist'), '0|0|0|succeeded', 'hash on a distributed source: a re-run writes nothing');

# a preview of a hash pipeline on distributed tables (it crashed the
# backend: Citus's error, reported after the preview's rollback)
$coord->safe_psql('postgres', q{
UPDATE app.dsrc SET v = v || '?' WHERE id = 50;
DELETE FROM app.dsrc WHERE id = 51;
});
is($coord->safe_psql('postgres',
		"SELECT string_agg(op || ':' || key::text, ',' ORDER BY op) FROM incetl.preview('h_dist')"),
	'delete:{"id": 51},update:{"id": 50}', 'preview of a staged hash pipeline');
$coord->safe_psql('postgres', "CALL incetl.run('h_dist')");
is(last_run('h_dist'), '0|1|1|succeeded', 'and the run does what it previewed');

# a reconcile repairs the target through the stage
$coord->safe_psql('postgres', q{
DELETE FROM dw.dist2 WHERE id IN (30, 31);
UPDATE dw.dist2 SET v = 'broken' WHERE id IN (40, 41, 42);
INSERT INTO dw.dist2 VALUES (99999, 'extra', now());
CALL incetl.reconcile('h_dist');
});
is(last_run('h_dist'), '2|3|1|succeeded', 'reconcile of a staged hash pipeline: exact counts');
equal('app.dsrc', 'dw.dist2', 'reconcile of a staged hash pipeline: target equals source');

# a plain role's hash pipeline on a distributed source: its state and stage
$coord->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
GRANT USAGE ON SCHEMA app TO alice;
GRANT USAGE, CREATE ON SCHEMA dw TO alice;
GRANT SELECT ON app.dsrc TO alice;
CREATE TABLE dw.alice_t (id integer PRIMARY KEY, v text, ts timestamptz);
SELECT create_distributed_table('dw.alice_t', 'id', colocate_with => 'app.dsrc');
ALTER TABLE dw.alice_t OWNER TO alice;
});
$coord->safe_psql('postgres', q{
SET ROLE alice;
SELECT incetl.create_pipeline('h_alice', 'app.dsrc', 'dw.alice_t', strategy => 'hash', batch_size => 500);
CALL incetl.run('h_alice');
});
is(last_run('h_alice'), '2001|0|0|succeeded', "a plain role's staged hash pipeline: first run");
my $a_id = $coord->safe_psql('postgres', "SELECT id FROM incetl.pipelines WHERE name = 'h_alice'");
is($coord->safe_psql('postgres',
		"SELECT string_agg(relname || ':' || relowner::regrole || ':' || "
		  . "has_table_privilege('alice', c.oid, 'SELECT, INSERT, UPDATE, DELETE'), ',' ORDER BY relname) "
		  . "FROM pg_class c WHERE relname IN ('hash_state_$a_id', 'stage_$a_id')"),
	"hash_state_$a_id:postgres:true,stage_$a_id:postgres:true",
	"hash state and stage stay the extension owner's, the pipeline's owner writes them");
equal('app.dsrc', 'dw.alice_t', "a plain role's staged hash pipeline: target equals source");
$coord->safe_psql('postgres', "CALL incetl.run('ts_dsrc')");
is(last_run('ts_dsrc'), '4|20|0|succeeded', 'distributed source into a local target: changes');

# --- a history table with a Citus target is refused (Citus cannot run the
# statements that write versions beside a distributed target)
my ($rc_h, $out_h, $err_h) = $coord->psql('postgres', q{
CREATE TABLE dw.hx (id integer PRIMARY KEY, v text, ts timestamptz);
SELECT create_distributed_table('dw.hx', 'id');
CREATE TABLE dw.hx_hist (id integer, v text, ts timestamptz, valid_from timestamptz NOT NULL,
						 valid_to timestamptz, UNIQUE (id, valid_from));
\set VERBOSITY verbose
SELECT incetl.create_pipeline('hx', 'app.src', 'dw.hx', watermark_column => 'ts', history_table => 'dw.hx_hist');
});
like($err_h, qr/0A000: pipeline "hx" cannot keep a history table with a Citus table as its target/,
	'a history table with a distributed target is refused at create');
is($coord->safe_psql('postgres', "SELECT count(*) FROM incetl.pipelines WHERE name = 'hx'"), '0',
	'and nothing is left behind');

# --- capture strategies on Citus sources are refused
foreach my $case ([ 'trigger', 'app.dsrc' ], [ 'logical', 'app.dsrc' ], [ 'trigger', 'dw.ref' ])
{
	my ($strategy, $src) = @$case;
	my ($rc, $out, $err) = $coord->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT incetl.create_pipeline('cap', '$src', 'dw.loc', strategy => '$strategy')");
	like($err, qr/0A000: source of pipeline "cap" is a Citus \w+ table/,
		"'$strategy' on $src is refused with a clear error");
}
is($coord->safe_psql('postgres', "SELECT count(*) FROM incetl.pipelines WHERE name = 'cap'"),
	'0', 'a refused capture pipeline leaves nothing behind');
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app.dsrc'::regclass AND NOT tgisinternal"),
	'0', 'and no trigger on the distributed source');

# --- shard moves: between runs, then during a run
# move_shard($table, $i): move the $i-th shard of $table to the worker that
# does not hold it
sub move_shard
{
	my ($table, $i, $mode) = @_;
	$mode //= 'block_writes';
	$coord->safe_psql(
		'postgres', qq{
SELECT citus_move_shard_placement(s.shardid, p.nodename, p.nodeport, o.nodename, o.nodeport,
								  shard_transfer_mode => '$mode')
  FROM (SELECT shardid FROM pg_dist_shard WHERE logicalrelid = '$table'::regclass
		ORDER BY shardid OFFSET $i LIMIT 1) s
  JOIN pg_dist_shard_placement p USING (shardid)
  JOIN pg_dist_node o ON o.nodeport <> p.nodeport AND o.noderole = 'primary'
					 AND o.groupid <> 0 AND o.isactive});
	return;
}

move_shard('dw.dist', 0);
# online (logical replication, Citus's default): every table colocated with
# the source needs a replica identity, the hash pipeline's stage too
move_shard('app.dsrc', 1, 'auto');    # moves its colocated dw.dist2 shard with it
$coord->safe_psql(
	'postgres', q{
UPDATE app.src SET v = v || '+', ts = now() WHERE id % 50 = 3;
UPDATE app.dsrc SET v = v || '+', ts = now() WHERE id % 50 = 3;
});
sleep 2;
# ids 3, 53, ... 2003: app.src lost id 3 above, app.dsrc has it
# A timestamp run reads only rows older than every transaction open in the
# database when it starts (the late-commit bound), and Citus's maintenance
# daemon or a shard move's cleanup may hold one open for a moment: a run
# may then leave the rows to the next one.  Count over the runs it takes
# (a few at most), not by waiting a fixed time.
foreach my $case ([ 'ts_dist', 40, 'app.src', 'dw.dist' ], [ 'h_dist', 41, 'app.dsrc', 'dw.dist2' ])
{
	my ($p, $n, $src, $tgt) = @$case;
	my $first = $coord->safe_psql('postgres',
		"SELECT COALESCE(max(run_id), 0) FROM incetl.run_log WHERE pipeline = '$p'");
	for my $try (1 .. 20)
	{
		$coord->safe_psql('postgres', "CALL incetl.run('$p')");
		last if rows_differing($coord, $src, $tgt, 'id, v, ts') == 0;
	}
	is( $coord->safe_psql('postgres',
			"SELECT sum(rows_inserted) || '|' || sum(rows_updated) || '|' || sum(rows_deleted) || '|' "
			  . "|| bool_and(status = 'succeeded') FROM incetl.run_log WHERE pipeline = '$p' AND run_id > $first"),
		"0|$n|0|true", "$p after shard moves: the changes, counted");
}
equal('app.src', 'dw.dist', 'distributed target equals the source after a shard move');
equal('app.dsrc', 'dw.dist2', 'distributed source and target equal after a shard move');
$coord->safe_psql('postgres', "SET ROLE alice; CALL incetl.run('h_alice')");
is(last_run('h_alice'), '0|41|0|succeeded', "a plain role's staged pipeline after the shard moves");
equal('app.dsrc', 'dw.alice_t', "a plain role's staged pipeline: target equals source after the moves");
$coord->safe_psql('postgres', "SELECT incetl.drop_pipeline('h_alice')");
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM pg_class WHERE relname IN ('hash_state_$a_id', 'stage_$a_id')"),
	'0', 'drop_pipeline drops the distributed hash state and stage');

# a run applying 60 batches while a shard of its target moves and a writer writes
$coord->safe_psql('postgres',
	"SELECT incetl.alter_pipeline('ts_dist', batch_size => 20)");
$coord->safe_psql('postgres', "UPDATE app.src SET v = v || '#', ts = now() WHERE id <= 1200");
sleep 2;
my $bg = $coord->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/run starts/, "\\echo run starts\nCALL incetl.run('ts_dist');\n\\echo run ends\n");
move_shard('dw.dist', 1);
$coord->safe_psql('postgres', "UPDATE app.src SET v = v || '%', ts = now() WHERE id % 97 = 0");
$bg->query_until(qr/run ends/, '');
$bg->quit;
sleep 2;
wait_settled('app.src');
$coord->safe_psql('postgres', "CALL incetl.run('ts_dist')");
is($coord->safe_psql('postgres',
		"SELECT count(*) FROM incetl.run_log WHERE pipeline = 'ts_dist' AND status <> 'succeeded'"),
	'0', 'every run around the move succeeded');
equal('app.src', 'dw.dist', 'a shard moved during a run: the target equals the source');

# without its stage (a pipeline made before 0.3, or restored from a dump),
# a run upserts from the source as before
$coord->safe_psql('postgres', "DROP TABLE incetl.tstage_$d_id");
$coord->safe_psql('postgres', "UPDATE app.src SET v = v || '~', ts = now() WHERE id % 100 = 11");
sleep 2;
wait_settled('app.src');
$coord->safe_psql('postgres', "CALL incetl.run('ts_dist')");
is(last_run('ts_dist'), '0|20|0|succeeded', 'without its stage, a run still applies the changes');
equal('app.src', 'dw.dist', 'without its stage: the target equals the source');
my $r_id = $coord->safe_psql('postgres', "SELECT id FROM incetl.pipelines WHERE name = 'ts_soft'");
$coord->safe_psql('postgres', "SELECT incetl.drop_pipeline('ts_soft')");
is($coord->safe_psql('postgres', "SELECT count(*) FROM pg_class WHERE relname = 'tstage_$r_id'"),
	'0', "drop_pipeline drops a timestamp pipeline's stage");

$_->stop foreach @nodes;
done_testing();
