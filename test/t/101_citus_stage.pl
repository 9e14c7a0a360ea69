# test/t/101_citus_stage.pl -- attacks on the stage of a 'timestamp'
# pipeline into a hash-distributed Citus target (incetl.tstage_<id>):
# who owns, reads and writes it, what a failed batch leaves in it, and the
# exactness of staged batches (collations, ties, composite keys, the
# distribution column elsewhere than first, a target re-distributed).
# Setup copied from t/100_citus.pl.
use strict;
use warnings;

use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my @nodes = citus_cluster();
my ($coord, $w1, $w2) = @nodes;

sub last_run
{
	my ($p) = @_;
	return $coord->safe_psql('postgres',
		"SELECT rows_inserted || '|' || rows_updated || '|' || rows_deleted || '|' || status "
		  . "FROM incetl.run_log WHERE pipeline = '$p' ORDER BY run_id DESC LIMIT 1");
}

sub pid_of
{
	my ($p) = @_;
	return $coord->safe_psql('postgres', "SELECT id FROM incetl.pipelines WHERE name = '$p'");
}

# run($p, $role): run it with citus.log_remote_commands; its stderr
sub run
{
	my ($p, $role) = @_;
	my $set = $role ? "SET ROLE $role;" : '';
	my ($rc, $out, $err) = $coord->psql('postgres', qq{
$set
SET citus.log_remote_commands = on;
SET client_min_messages = notice;
CALL incetl.run('$p');
});
	return $err;
}

sub staged
{
	my ($p, $err, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my $id = pid_of($p);
	like($err, qr/tstage_${id}_\d+/, "$name: the batch went through the stage");
	is($coord->safe_psql('postgres', "SELECT count(*) FROM incetl.tstage_$id"), '0',
		"$name: the stage is empty after the run");
}

sub equal
{
	my ($src, $tgt, $cols, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is(rows_differing($coord, $src, $tgt, $cols), 0, $name);
}

$coord->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE SCHEMA app;
CREATE SCHEMA dw;
GRANT USAGE, CREATE ON SCHEMA app, dw TO alice;
GRANT USAGE ON SCHEMA app, dw TO bob;
});

# ---------------------------------------------------------------------------
# 1. SECURITY: a plain role's pipeline; who owns and who may use the stage
$coord->safe_psql('postgres', q{
SET ROLE alice;
CREATE TABLE app.a_src (id integer PRIMARY KEY, v text, n integer NOT NULL);
INSERT INTO app.a_src SELECT g, 'v' || g, g / 3 FROM generate_series(1, 100) g;
CREATE TABLE dw.a_tgt (id integer PRIMARY KEY, v text, n integer);
SELECT create_distributed_table('dw.a_tgt', 'id');
SELECT incetl.create_pipeline('a', 'app.a_src', 'dw.a_tgt', watermark_column => 'n', batch_size => 7);
});
my $a_id = pid_of('a');
is($coord->safe_psql('postgres', qq{
SELECT c.relowner::regrole || ':' ||
       EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.refclassid = 'pg_extension'::regclass) || ':' ||
       (SELECT p.colocationid = t.colocationid FROM pg_dist_partition p, pg_dist_partition t
         WHERE p.logicalrelid = c.oid AND t.logicalrelid = 'dw.a_tgt'::regclass)
  FROM pg_class c WHERE c.oid = 'incetl.tstage_$a_id'::regclass}),
	'postgres:true:true', "alice's stage: the extension owner's, depends on the extension, colocated");
is($coord->safe_psql('postgres', qq{
SELECT string_agg(r || ':' || pr || ':' || has_table_privilege(r, 'incetl.tstage_$a_id', pr), ',' ORDER BY r, pr)
  FROM unnest(ARRAY['alice', 'bob']) r,
       unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) pr}),
	'alice:DELETE:true,alice:INSERT:true,alice:REFERENCES:false,alice:SELECT:true,alice:TRIGGER:false,'
	  . 'alice:TRUNCATE:false,alice:UPDATE:false,'
	  . 'bob:DELETE:false,bob:INSERT:false,bob:REFERENCES:false,bob:SELECT:false,bob:TRIGGER:false,'
	  . 'bob:TRUNCATE:false,bob:UPDATE:false',
	'the pipeline owner may select, insert, delete; another role nothing');
is($coord->safe_psql('postgres', qq{
SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a
 WHERE c.oid = 'incetl.tstage_$a_id'::regclass AND a.grantee = 0}), '0', 'PUBLIC has no grant on the stage');
# what the owner might try on the superuser's table, and in incetl's schema
foreach my $sql (
	"ALTER TABLE incetl.tstage_$a_id ALTER COLUMN c2 SET DEFAULT 'x'",
	"CREATE TRIGGER t BEFORE INSERT ON incetl.tstage_$a_id FOR EACH ROW EXECUTE FUNCTION pg_catalog.suppress_redundant_updates_trigger()",
	"ALTER TABLE incetl.tstage_$a_id ENABLE ROW LEVEL SECURITY",
	"CREATE POLICY p ON incetl.tstage_$a_id USING (true)",
	"CREATE INDEX ON incetl.tstage_$a_id (c2)",
	"CREATE TABLE incetl.x (i integer)",
	"CREATE FUNCTION incetl.f() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
	"ALTER TABLE incetl.tstage_$a_id OWNER TO alice",
	"SELECT alter_distributed_table('incetl.tstage_$a_id', shard_count => 8)",
	"SELECT undistribute_table('incetl.tstage_$a_id')")
{
	my ($rc, $out, $err) = $coord->psql('postgres', "SET ROLE alice; $sql");
	isnt($rc, 0, "alice may not: $sql");
}
$coord->psql('postgres', "SET ROLE alice; GRANT SELECT ON incetl.tstage_$a_id TO bob");
my (undef, undef, $berr) = $coord->psql('postgres', "SET ROLE bob; SELECT * FROM incetl.tstage_$a_id");
like($berr, qr/permission denied/, 'bob may not read the stage');

my $err = run('a', 'alice');
is(last_run('a'), '100|0|0|succeeded', "alice's staged pipeline: first load");
equal('app.a_src', 'dw.a_tgt', 'id, v, n', "alice's staged pipeline: target equals source");
$coord->safe_psql('postgres', q{
SET ROLE alice;
UPDATE app.a_src SET v = v || '!', n = 1000 WHERE id % 10 = 0;
INSERT INTO app.a_src SELECT g, 'v' || g, 1000 FROM generate_series(101, 110) g;
});
$err = run('a', 'alice');
is(last_run('a'), '10|10|0|succeeded', "alice's staged pipeline: changes counted");
staged('a', $err, "alice's pipeline");
equal('app.a_src', 'dw.a_tgt', 'id, v, n', "alice's staged pipeline: equal after changes");

# a domain (user's code: its CHECK) in the columns: no stage
$coord->safe_psql('postgres', q{
SET ROLE alice;
CREATE DOMAIN app.pos AS integer CHECK (VALUE > 0);
CREATE TABLE app.d_src (id integer PRIMARY KEY, v app.pos, n integer NOT NULL);
CREATE TABLE dw.d_tgt (id integer PRIMARY KEY, v app.pos, n integer);
SELECT create_distributed_table('dw.d_tgt', 'id');
SELECT incetl.create_pipeline('d', 'app.d_src', 'dw.d_tgt', watermark_column => 'n');
});
is($coord->safe_psql('postgres', "SELECT count(*) FROM pg_class WHERE relname = 'tstage_" . pid_of('d') . "'"),
	'0', 'a domain column: no stage');

# ---------------------------------------------------------------------------
# 2. A batch that fails after its rows reached the stage leaves it empty,
# and the cursor where it was
$coord->safe_psql('postgres', q{
ALTER TABLE dw.a_tgt ADD CONSTRAINT no_boom CHECK (v <> 'boom');
UPDATE app.a_src SET v = 'boom', n = 2000 WHERE id = 5;
UPDATE app.a_src SET v = 'ok', n = 1999 WHERE id = 6;
});
$err = run('a', 'alice');
like($err, qr/no_boom/, 'the failing batch reports the constraint');
isnt(last_run('a') =~ /succeeded$/ ? 1 : 0, 1, 'the run with the failing batch did not succeed');
is($coord->safe_psql('postgres', "SELECT count(*) FROM incetl.tstage_$a_id"), '0',
	'the stage is empty after the failed batch');
$coord->safe_psql('postgres', "UPDATE app.a_src SET v = 'fixed', n = 2001 WHERE id = 5");
$err = run('a', 'alice');
is(last_run('a'), '0|2|0|succeeded', 'after the fix: both rows applied, counted once');
equal('app.a_src', 'dw.a_tgt', 'id, v, n', 'after the failed batch: equal');

# ---------------------------------------------------------------------------
# 3. A target distributed by a column under a collation other than its
# type's default: the stage's c columns take the type's default collation
# and Citus will not colocate them
$coord->safe_psql('postgres', q{
CREATE TABLE app.ct (k text COLLATE "C" PRIMARY KEY, v text, n integer NOT NULL);
INSERT INTO app.ct SELECT 'k' || g, 'v' || g, g FROM generate_series(1, 20) g;
CREATE TABLE dw.ct (k text COLLATE "C" PRIMARY KEY, v text, n integer);
SELECT create_distributed_table('dw.ct', 'k', colocate_with => 'none');
});
my ($ct_rc, undef, $ct_err) = $coord->psql('postgres',
	"SELECT incetl.create_pipeline('ct', 'app.ct', 'dw.ct', watermark_column => 'n', batch_size => 6)");
is($ct_rc, 0, 'create_pipeline into a target distributed by a "C"-collated text key succeeds')
  or diag($ct_err);
if ($ct_rc == 0)
{
	run('ct');
	is(last_run('ct'), '20|0|0|succeeded', 'a "C"-collated distribution column: first load');
	equal('app.ct', 'dw.ct', 'k, v, n', 'a "C"-collated distribution column: equal');
}

# EXACTNESS: many ties on an integer watermark, a text key under an ICU
# collation (its order differs from C), batches of 3, with and without an
# index on (watermark, key) (edge probe or ORDER BY ... LIMIT)
foreach my $idx (0, 1)
{
	$coord->safe_psql('postgres', qq{
CREATE TABLE app.k$idx (k text COLLATE "und-x-icu" PRIMARY KEY, v text, n integer NOT NULL);
INSERT INTO app.k$idx SELECT chr(65 + g % 26) || chr(97 + g / 26) || g, 'v' || g, g % 4
  FROM generate_series(0, 199) g;
INSERT INTO app.k$idx SELECT lower(chr(65 + g % 26)) || g, 'w' || g, g % 4 FROM generate_series(0, 99) g;
CREATE TABLE dw.k$idx (k text PRIMARY KEY, v text, n integer);
SELECT create_distributed_table('dw.k$idx', 'k', colocate_with => 'none');
SELECT incetl.create_pipeline('k$idx', 'app.k$idx', 'dw.k$idx', watermark_column => 'n', batch_size => 3);
});
	$coord->safe_psql('postgres', "CREATE INDEX ON app.k$idx (n, k)") if $idx;
	$err = run("k$idx");
	is(last_run("k$idx"), '300|0|0|succeeded', "icu key, ties, index $idx: first load counted");
	equal("app.k$idx", "dw.k$idx", 'k, v, n', "icu key, ties, index $idx: equal");
	$coord->safe_psql('postgres', "UPDATE app.k$idx SET v = v || '!', n = 7 WHERE v LIKE '%1'");
	$err = run("k$idx");
	is(last_run("k$idx"), '0|30|0|succeeded', "icu key, ties, index $idx: updates counted");
	staged("k$idx", $err, "icu key, index $idx");
	equal("app.k$idx", "dw.k$idx", 'k, v, n', "icu key, ties, index $idx: equal after updates");
}

# a target column under a collation other than its type's (the stage's
# c columns take the type's)
$coord->safe_psql('postgres', q{
CREATE TABLE app.cc (id integer PRIMARY KEY, v text COLLATE "C", n integer NOT NULL);
INSERT INTO app.cc SELECT g, 'v' || g, g FROM generate_series(1, 20) g;
CREATE TABLE dw.cc (id integer PRIMARY KEY, v text COLLATE "C", n integer);
SELECT create_distributed_table('dw.cc', 'id');
SELECT incetl.create_pipeline('cc', 'app.cc', 'dw.cc', watermark_column => 'n', batch_size => 6);
});
run('cc');
is(last_run('cc'), '20|0|0|succeeded', 'a "C" target column: first load');
$coord->safe_psql('postgres', "UPDATE app.cc SET v = v || '!', n = n + 100 WHERE id % 4 = 0");
$err = run('cc');
is(last_run('cc'), '0|5|0|succeeded', 'a "C" target column: updates counted');
staged('cc', $err, 'a "C" target column');
equal('app.cc', 'dw.cc', 'id, v, n', 'a "C" target column: equal');

# a composite key whose second column is the distribution column, placed
# after the non-key columns
$coord->safe_psql('postgres', q{
CREATE TABLE app.ck (id integer, v text, region integer, n integer NOT NULL, PRIMARY KEY (id, region));
INSERT INTO app.ck SELECT g % 50, 'v' || g, g / 50, g % 5 FROM generate_series(0, 199) g;
CREATE TABLE dw.ck (id integer, v text, region integer, n integer, PRIMARY KEY (id, region));
SELECT create_distributed_table('dw.ck', 'region');
SELECT incetl.create_pipeline('ck', 'app.ck', 'dw.ck', watermark_column => 'n', batch_size => 9);
});
run('ck');
is(last_run('ck'), '200|0|0|succeeded', 'distributed by a later key column: first load');
$coord->safe_psql('postgres', "UPDATE app.ck SET v = v || '!', n = 9 WHERE id % 10 = 1");
$err = run('ck');
is(last_run('ck'), '0|20|0|succeeded', 'distributed by a later key column: updates counted');
staged('ck', $err, 'distributed by a later key column');
equal('app.ck', 'dw.ck', 'id, v, region, n', 'distributed by a later key column: equal');

# NULLs in non-key columns and a target with an extra column
$coord->safe_psql('postgres', q{
CREATE TABLE app.nl (id integer PRIMARY KEY, v text, x numeric, n integer NOT NULL);
INSERT INTO app.nl SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'v' || g END,
  CASE WHEN g % 2 = 0 THEN NULL ELSE g END, g FROM generate_series(1, 30) g;
CREATE TABLE dw.nl (id integer PRIMARY KEY, v text, x numeric, n integer, extra text DEFAULT 'e');
SELECT create_distributed_table('dw.nl', 'id');
SELECT incetl.create_pipeline('nl', 'app.nl', 'dw.nl', watermark_column => 'n', batch_size => 4);
});
run('nl');
is(last_run('nl'), '30|0|0|succeeded', 'NULLs and an extra target column: first load');
$coord->safe_psql('postgres', q{
UPDATE app.nl SET v = NULL, n = 100 WHERE id IN (1, 2);
UPDATE app.nl SET x = NULL, n = 100 WHERE id IN (5, 7);
UPDATE app.nl SET n = 100 WHERE id IN (3, 4);   -- no change but the watermark
});
$err = run('nl');
is(last_run('nl'), '0|6|0|succeeded', 'NULLs: updates counted');
staged('nl', $err, 'NULLs');
equal('app.nl', 'dw.nl', 'id, v, x, n', 'NULLs and an extra target column: equal');

# sequence_column, delete_detection 'compare', preview, backfill,
# alter_pipeline(batch_size), explain on a staged pipeline
$coord->safe_psql('postgres', q{
CREATE TABLE app.cmp (id integer PRIMARY KEY, v text, n bigint NOT NULL, sq bigint);
INSERT INTO app.cmp SELECT g, 'v' || g, g % 6, g FROM generate_series(1, 40) g;
CREATE TABLE dw.cmp (id integer PRIMARY KEY, v text, n bigint, sq bigint);
SELECT create_distributed_table('dw.cmp', 'id', colocate_with => 'none');
SELECT incetl.create_pipeline('cmp', 'app.cmp', 'dw.cmp', watermark_column => 'n',
	sequence_column => 'sq', delete_detection => 'compare', batch_size => 5);
});
is($coord->safe_psql('postgres', "SELECT count(*) FROM pg_attribute WHERE attrelid = 'incetl.tstage_" . pid_of('cmp') . "'::regclass AND attname = 'q'"),
	'1', 'sequence_column: the stage has q');
run('cmp');
is(last_run('cmp'), '40|0|0|succeeded', 'sequence + compare: first load');
$coord->safe_psql('postgres', q{
UPDATE app.cmp SET v = v || '!', n = 10, sq = sq + 100 WHERE id % 8 = 0;
INSERT INTO app.cmp SELECT g, 'v' || g, 10, g FROM generate_series(41, 43) g;
DELETE FROM app.cmp WHERE id IN (3, 4);
});
is($coord->safe_psql('postgres', "SELECT string_agg(op || ':' || n, ',' ORDER BY op) FROM (SELECT op, count(*) n FROM incetl.preview('cmp') GROUP BY op) x"),
	'delete:2,insert:3,update:5', 'preview of a staged pipeline');
is($coord->safe_psql('postgres', "SELECT count(*) FROM incetl.tstage_" . pid_of('cmp')), '0', 'the stage is empty after a preview');
$err = run('cmp');
is(last_run('cmp'), '3|5|2|succeeded', 'sequence + compare: changes counted');
staged('cmp', $err, 'sequence + compare');
equal('app.cmp', 'dw.cmp', 'id, v, n, sq', 'sequence + compare: equal');
$coord->safe_psql('postgres', "UPDATE dw.cmp SET v = 'broken' WHERE id IN (5, 6, 7)");
$coord->safe_psql('postgres', "CALL incetl.backfill('cmp', 0::bigint, 100::bigint, 3::bigint)");
equal('app.cmp', 'dw.cmp', 'id, v, n, sq', 'a backfill of a staged pipeline repairs the target');
is($coord->safe_psql('postgres', "SELECT count(*) FROM incetl.tstage_" . pid_of('cmp')), '0', 'the stage is empty after a backfill');
$coord->safe_psql('postgres', "SELECT incetl.alter_pipeline('cmp', batch_size => 2)");
$coord->safe_psql('postgres', "UPDATE app.cmp SET v = v || '2', n = 20, sq = sq + 1000 WHERE id % 5 = 0");
$err = run('cmp');
is(last_run('cmp'), '0|8|0|succeeded', 'after alter_pipeline(batch_size): changes counted');
staged('cmp', $err, 'after alter_pipeline(batch_size)');
equal('app.cmp', 'dw.cmp', 'id, v, n, sq', 'after alter_pipeline(batch_size): equal');
my ($ex_rc) = $coord->psql('postgres', "SELECT count(*) FROM incetl.explain('cmp')");
is($ex_rc, 0, 'explain of a staged pipeline');

# a date watermark with lookback: rows re-read in the window count once
$coord->safe_psql('postgres', q{
CREATE TABLE app.lb (id integer PRIMARY KEY, v text, d date NOT NULL);
INSERT INTO app.lb SELECT g, 'v' || g, date '2020-01-01' + g FROM generate_series(1, 30) g;
CREATE TABLE dw.lb (id integer PRIMARY KEY, v text, d date);
SELECT create_distributed_table('dw.lb', 'id', colocate_with => 'none');
SELECT incetl.create_pipeline('lb', 'app.lb', 'dw.lb', watermark_column => 'd',
	lookback => interval '10 days', batch_size => 4);
});
run('lb');
is(last_run('lb'), '30|0|0|succeeded', 'date + lookback: first load');
$coord->safe_psql('postgres', "UPDATE app.lb SET v = v || '!' WHERE id IN (25, 27, 29)");
$err = run('lb');
is(last_run('lb'), '0|3|0|succeeded', 'date + lookback: updates in the window counted once');
staged('lb', $err, 'date + lookback');
equal('app.lb', 'dw.lb', 'id, v, d', 'date + lookback: equal');
run('lb');
is(last_run('lb'), '0|0|0|succeeded', 'date + lookback: a re-run writes nothing');

# a run (in an open transaction, its staged batches not committed) and a
# backfill of the same pipeline: the backfill waits for the run's apply
# lock; both together leave the target equal and the stage empty
$coord->safe_psql('postgres', "UPDATE app.lb SET v = v || '+', d = d + 40 WHERE id % 3 = 0");
my $ba = $coord->background_psql('postgres', on_error_stop => 0);
$ba->query_safe("BEGIN; CALL incetl.run('lb')");
my $bb = $coord->background_psql('postgres', on_error_stop => 0);
$bb->query_until(qr/backfill starts/,
	"\\echo backfill starts\nCALL incetl.backfill('lb', date '2019-01-01', date '2021-01-01', interval '7 days');\n\\echo backfill ends\n");
is($coord->safe_psql('postgres', "SELECT count(*) FROM incetl.tstage_" . pid_of('lb')), '0',
	'another session sees nothing in the stage of an uncommitted staged run');
$ba->query_safe('COMMIT');
$bb->query_until(qr/backfill ends/, '');
$ba->quit;
$bb->quit;
equal('app.lb', 'dw.lb', 'id, v, d', 'a run and a backfill of one staged pipeline at once: equal');
is($coord->safe_psql('postgres', "SELECT count(*) FROM incetl.tstage_" . pid_of('lb')), '0',
	'and the stage is empty');
is($coord->safe_psql('postgres', "SELECT string_agg(status, ',' ORDER BY run_id) FROM (SELECT run_id, status FROM incetl.run_log WHERE pipeline = 'lb' ORDER BY run_id DESC LIMIT 2) x"),
	'succeeded,succeeded', 'both succeeded');

# ---------------------------------------------------------------------------
# 4. ROBUSTNESS

# a shard of a staged pipeline's target moved the default way (logical
# replication, writes not blocked): the stage, colocated, moves with it
my $move = q{
SELECT citus_move_shard_placement(s.shardid, p.nodename, p.nodeport, o.nodename, o.nodeport)
  FROM (SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'dw.nl'::regclass
		ORDER BY shardid LIMIT 1) s
  JOIN pg_dist_shard_placement p USING (shardid)
  JOIN pg_dist_node o ON o.nodeport <> p.nodeport AND o.noderole = 'primary'
					 AND o.groupid <> 0 AND o.isactive};
my ($mv_rc, undef, $mv_err) = $coord->psql('postgres', $move);
is($mv_rc, 0, "a staged pipeline's target: a shard moves with the default transfer mode")
  or diag($mv_err);
$coord->safe_psql('postgres', "UPDATE app.nl SET v = 'moved', n = 200 WHERE id <= 10");
$err = run('nl');
is(last_run('nl'), '0|10|0|succeeded', 'after the move: changes counted');
equal('app.nl', 'dw.nl', 'id, v, x, n', 'after the move: equal');

# a collation of the pipeline owner's in the stage's key: the owner can
# then change the extension owner's table (DROP COLLATION ... CASCADE)
$coord->safe_psql('postgres', q{
SET ROLE alice;
CREATE COLLATION app.mycoll (provider = icu, locale = 'und');
CREATE TABLE app.uc (k text COLLATE app.mycoll PRIMARY KEY, v text, n integer NOT NULL);
INSERT INTO app.uc SELECT 'k' || g, 'v' || g, g FROM generate_series(1, 10) g;
CREATE TABLE dw.uc (k text PRIMARY KEY, v text, n integer);
SELECT create_distributed_table('dw.uc', 'k', colocate_with => 'none');
SELECT incetl.create_pipeline('uc', 'app.uc', 'dw.uc', watermark_column => 'n', batch_size => 4);
});
my $uc_id = pid_of('uc');
$coord->psql('postgres', q{
SET ROLE alice;
ALTER TABLE app.uc ALTER COLUMN k TYPE text COLLATE "C";
DROP COLLATION app.mycoll CASCADE;
});
is($coord->safe_psql('postgres', "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname = 'tstage_$uc_id' AND a.attisdropped"),
	'0', "the pipeline owner cannot drop a column of the extension owner's stage (DROP COLLATION ... CASCADE)");

# pg_dump carries the stage as a plain table (it depends on the extension,
# it is not a member); a stage that is not distributed with the target (as
# such a dump restores it) is not used: the batch upserts from the source
my $dump = $coord->safe_psql('postgres', 'SELECT 1');
{
	my ($stdout, $stderr);
	IPC::Run::run([ 'pg_dump', '-s', '-d', $coord->connstr('postgres') ], '>', \$stdout, '2>', \$stderr);
	$dump = $stdout // '';
}
like($dump, qr/CREATE TABLE incetl\.tstage_/, 'a schema dump carries the stage, as a plain table');
$coord->safe_psql('postgres', qq{
CREATE TABLE incetl.tstage_local (LIKE incetl.tstage_$a_id);
DROP TABLE incetl.tstage_$a_id;
ALTER TABLE incetl.tstage_local RENAME TO tstage_$a_id;
GRANT SELECT, INSERT, DELETE ON incetl.tstage_$a_id TO alice;
UPDATE app.a_src SET v = v || '\@', n = 3000 + id WHERE id <= 5;
});
my $err_local = run('a', 'alice');
unlike($err_local, qr/tstage_${a_id}/, 'a stage not distributed with the target is not used');
is(last_run('a'), '0|5|0|succeeded', 'and the run applies the changes the old way');
equal('app.a_src', 'dw.a_tgt', 'id, v, n', 'a local stage: the target equals the source');

# ---------------------------------------------------------------------------
# rev8 attacks: names quoted into the extension owner's statements (an odd
# owner, source, target and column name), the batch's GUC nest
# (citus.max_adaptive_executor_pool_size) not outliving a run, a batch that
# fails, or a run caught by an exception block
$coord->safe_psql('postgres', q{
CREATE ROLE "O'dd r" LOGIN;
GRANT USAGE, CREATE ON SCHEMA app, dw TO "O'dd r";
SET ROLE "O'dd r";
CREATE TABLE app."g s'rc" (id integer PRIMARY KEY, "v""x; y" text, n integer NOT NULL);
INSERT INTO app."g s'rc" SELECT g, 'v' || g, g FROM generate_series(1, 50) g;
CREATE TABLE dw."g t'gt;x" (id integer PRIMARY KEY, "v""x; y" text, n integer);
SELECT create_distributed_table('dw."g t''gt;x"', 'id');
SELECT incetl.create_pipeline('g', 'app."g s''rc"', 'dw."g t''gt;x"', watermark_column => 'n', batch_size => 9);
});
my $g_id = pid_of('g');
is($coord->safe_psql('postgres', qq{
SELECT has_table_privilege('O''dd r', 'incetl.tstage_$g_id', 'INSERT') || ':' ||
       (SELECT p.colocationid = t.colocationid FROM pg_dist_partition p, pg_dist_partition t
         WHERE p.logicalrelid = 'incetl.tstage_$g_id'::regclass AND t.logicalrelid = 'dw."g t''gt;x"'::regclass)}),
	'true:true', 'odd names: the stage is granted to the odd owner and colocated with the odd target');
my $pool0 = $coord->safe_psql('postgres', 'SHOW citus.max_adaptive_executor_pool_size');
my ($grc, $gout, $gerr) = $coord->psql('postgres', qq{
SET ROLE "O'dd r";
SET citus.log_remote_commands = on;
SET client_min_messages = notice;
CALL incetl.run('g');
UPDATE app."g s'rc" SET "v""x; y" = 'w', n = 100 + id WHERE id <= 20;
CALL incetl.run('g');
RESET client_min_messages;
SHOW citus.max_adaptive_executor_pool_size;
});
like($gerr, qr/tstage_${g_id}_\d+/, 'odd names: the batch went through the stage');
is($gout, $pool0, 'the batch GUC nest does not outlive a run in the caller\'s session');
is(last_run('g'), '0|20|0|succeeded', 'odd names: the changes counted');
equal('app."g s\'rc"', 'dw."g t\'gt;x"', 'id, "v""x; y", n', 'odd names: the target equals the source');
$coord->safe_psql('postgres', q{
ALTER TABLE dw."g t'gt;x" ADD CONSTRAINT no_boom CHECK ("v""x; y" <> 'boom');
UPDATE app."g s'rc" SET "v""x; y" = 'boom', n = 500 WHERE id = 30;
});
($grc, $gout, $gerr) = $coord->psql('postgres', qq{
SET ROLE "O'dd r";
CALL incetl.run('g');
SHOW citus.max_adaptive_executor_pool_size;
DO \$\$BEGIN CALL incetl.run('g'); EXCEPTION WHEN others THEN RAISE NOTICE 'caught %', SQLERRM; END\$\$;
SHOW citus.max_adaptive_executor_pool_size;
BEGIN;
SAVEPOINT s;
SELECT incetl.preview('g');
ROLLBACK TO SAVEPOINT s;
SHOW citus.max_adaptive_executor_pool_size;
COMMIT;
}, on_error_stop => 0);
like($gerr, qr/no_boom/, 'the failing batch fails');
my @pools = grep { /^\d+$/ } split /\n/, $gout;
is(join(',', @pools), "$pool0,$pool0,$pool0",
	'the pool size is the session\'s again after a failed batch, a caught run, a preview');
is($coord->safe_psql('postgres', "SELECT count(*) FROM incetl.tstage_$g_id"), '0',
	'the stage is empty after the failed runs');

# a pipeline owner cannot pre-create or take over another pipeline's stage
my ($prc, $pout, $perr) = $coord->psql('postgres',
	"SET ROLE alice; CREATE TABLE incetl.tstage_" . ($g_id + 1000) . " (w integer)");
like($perr, qr/permission denied/, 'a pipeline owner cannot create a table in incetl');
($prc, $pout, $perr) = $coord->psql('postgres',
	"SET ROLE alice; INSERT INTO incetl.tstage_$g_id (w) VALUES (1)");
like($perr, qr/permission denied/, "another role cannot write the odd owner's stage");

# rev8: the extension owner's statements run with search_path pg_catalog,
# pg_temp: her temp views, named like every relation of Citus's, incetl's
# and public's that pg_catalog does not have, calling her function, in the
# session that creates, runs and drops timestamp and hash pipelines through
# their Citus stages: her function never runs as another role
$coord->safe_psql('postgres', q{
CREATE TABLE app.probe_log (usr name, sess name);
GRANT INSERT, SELECT ON app.probe_log TO PUBLIC;
CREATE FUNCTION app.probe() RETURNS integer LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO app.probe_log VALUES (current_user, session_user); RETURN 1; END$$;
GRANT EXECUTE ON FUNCTION app.probe() TO PUBLIC;
});
my ($trc, $tout, $terr) = $coord->psql('postgres', q{
SET ROLE alice;
CREATE TABLE app.tp_src (id integer PRIMARY KEY, v text, n integer NOT NULL);
INSERT INTO app.tp_src SELECT g, 'v' || g, g FROM generate_series(1, 30) g;
CREATE TABLE dw.tp_tgt (id integer PRIMARY KEY, v text, n integer);
SELECT create_distributed_table('dw.tp_tgt', 'id');
CREATE TABLE app.hp_src (id integer PRIMARY KEY, v text);
SELECT create_distributed_table('app.hp_src', 'id');
INSERT INTO app.hp_src SELECT g, 'v' || g FROM generate_series(1, 30) g;
CREATE TABLE dw.hp_tgt (id integer PRIMARY KEY, v text);
SELECT create_distributed_table('dw.hp_tgt', 'id');
SELECT format('CREATE TEMP VIEW %I AS SELECT app.probe() AS probe', c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('citus', 'citus_internal', 'columnar', 'columnar_internal', 'public', 'incetl')
   AND c.relkind IN ('r', 'v', 'p', 'm', 'f')
   AND NOT EXISTS (SELECT 1 FROM pg_class c2 WHERE c2.relnamespace = 'pg_catalog'::regnamespace
                      AND c2.relname = c.relname)
 GROUP BY c.relname \gexec
SELECT count(*) > 10 AS shadowed FROM pg_class WHERE relnamespace = pg_my_temp_schema();
SELECT incetl.create_pipeline('tp', 'app.tp_src', 'dw.tp_tgt', watermark_column => 'n', batch_size => 7) > 0;
SELECT incetl.create_pipeline('hp', 'app.hp_src', 'dw.hp_tgt', strategy => 'hash') > 0;
CALL incetl.run('tp');
UPDATE app.tp_src SET v = 'x', n = 100 + id WHERE id <= 10;
CALL incetl.run('tp');
CALL incetl.run('hp');
SELECT incetl.drop_pipeline('tp');
SELECT incetl.drop_pipeline('hp');
}, on_error_stop => 0);
diag("temp views: " . ($terr =~ s/\n/ | /gr)) if $terr =~ /ERROR/;
like($tout, qr/^t$/m, 'her temp views shadow Citus\'s and incetl\'s relation names');
is($coord->safe_psql('postgres', "SELECT count(*) FROM app.probe_log WHERE usr <> 'alice'"), '0',
	'her function under a shadowing temp view never ran as another role');
unlike($terr, qr/ERROR/, 'and the pipelines were made, run and dropped');

# drop_pipeline drops the stage; DROP EXTENSION leaves no stage behind
$coord->safe_psql('postgres', "SET ROLE alice; SELECT incetl.drop_pipeline('a')");
is($coord->safe_psql('postgres', "SELECT count(*) FROM pg_class WHERE relname = 'tstage_$a_id'"),
	'0', 'drop_pipeline (by its owner) drops the stage');
my $cc_id = pid_of('cc');
diag($coord->safe_psql('postgres', q{
SELECT c.oid::regclass || ' ' || coalesce((SELECT string_agg(d.refclassid::regclass || ':' || d.refobjid || ':' || d.deptype::text, ' ')
  FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid), '')
  FROM pg_class c WHERE relname LIKE 'tstage\_%'}));
diag($coord->safe_psql('postgres', q{SELECT string_agg(name || ':' || id, ' ') FROM incetl.pipelines}));
$coord->safe_psql('postgres', 'DROP EXTENSION incetl CASCADE');
diag($coord->safe_psql('postgres', q{SELECT string_agg(c.oid::regclass::text, ' ') FROM pg_class c WHERE relname LIKE 'tstage\_%'}));
is($coord->safe_psql('postgres', "SELECT count(*) FROM pg_class WHERE relname LIKE 'tstage\\_%'"),
	'0', 'DROP EXTENSION drops every stage');
is($coord->safe_psql('postgres', "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'incetl.tstage%'"),
	'0', 'and Citus forgets them');
# (the old placements of the shards moved above go when Citus cleans up)
$coord->safe_psql('postgres', 'CALL citus_cleanup_orphaned_resources()');
foreach my $w ($w1, $w2)
{
	is($w->safe_psql('postgres', "SELECT count(*) FROM pg_class WHERE relname LIKE 'tstage\\_%'"),
		'0', 'no stage shard left on a worker');
}

$_->stop foreach @nodes;
done_testing();
