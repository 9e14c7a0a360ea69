# test/t/080_differential.pl -- randomized differential test: target = source
#
# A list of examples is never complete, so this test makes up workloads.
# Every round draws, from its own seed, a pipeline (strategy, delete
# detection and mode, key type, payload columns, source kind, batch size,
# lookback, names that need quoting) and then a sequence of steps: writes by
# the test's own session and by two writer sessions that keep transactions
# open across runs and commit or roll back in random order (inserts,
# updates, deletes, key changes, keys that come back, TRUNCATE, ties,
# NULLs, skewed timestamps where the strategy promises to see them,
# savepoints), runs, runs in a transaction block that commit or roll back,
# runs in the background while writers commit, runs that fail on an
# injected error (a target trigger raises on the k-th row written), runs
# whose backend is terminated mid-batch (the trigger waits on a lock, the
# test terminates it), alter_pipeline, backfill, reconcile,
# reset_watermark.
#
# Whenever no writer transaction is open and a run succeeds, the target
# must equal the source (EXCEPT both ways over the mapped columns, by the
# types' equality and by the rows' text, which tells apart values equal
# but stored differently: README, How a run works 5; soft-deleted rows
# must be flagged, live ones not; with delete_detection 'none' only rows
# whose key is still in the source are compared).  At the
# end of a round: a last run, the same comparison, a run that must write
# nothing, and run_log must add up: rows_extracted = inserted + updated +
# deleted + unchanged (a compare-deletes pass adds deletes that were not
# extracted), the target's row count is what the logged inserts and deletes
# say, and every etl_run_id in the target names a run that wrote that many
# rows.  preview() is checked against what the next run does.
#
# A 'logical' round with a history table also checks SPEC 5's as-of
# promise: whenever no writer transaction is open and no run is in flight,
# main copies the source with the time of the copy T (clock_timestamp(),
# after every commit so far returned and before any later one began); at
# the end the history's versions valid at each T (valid_from <= T AND
# (valid_to IS NULL OR valid_to > T)) must be exactly that copy.  Copies
# made between a successful run and a TRUNCATE, reset_watermark or
# reconcile are dropped, and none are made from then to the next run, nor
# before the first: those record the state they see at their own start
# (README, "History"), not each commit.  The new keys of key changes are
# compared too (they were left out while the gate history_key_change_toast
# was open).
#
# Updates sometimes change only how values are stored (numeric scale,
# float 0 and -0, intervals '1 day' and '24 hours', jsonb 1.0 and 1.00,
# case under a case-insensitive collation or citext): the target must take
# the source's (README, How a run works 5).  hash64 by design does not see
# such a change (README, Which hash): rounds that start with it store one
# representation of each value (see `canon` in configure()).  Keys of a
# case-insensitive type (citext; text under the nondeterministic ICU
# collation diff_ci) are written in several spellings and key changes
# sometimes change the case only, with or without anything else.
#
# The generator stays within what README promises.  Workloads that hit a
# known bug are gated: INCETL_DIFF_KNOWN=1 turns on all of them,
# INCETL_DIFF_KNOWN=name,name some (the names are the keys of %GATES).  Once
# a bug is fixed its gate goes into %FIXED, which turns it on for good.
#
# Environment:
#   INCETL_DIFF_SEED=n      first round's seed (default 1); the rounds play
#                           seeds n, n+1, ..., each the whole of its round
#   INCETL_DIFF_ROUNDS=n    rounds to play (default 120: 30-60s on 2 cores;
#                           unlimited with SECONDS)
#   INCETL_DIFF_SECONDS=s   keep starting rounds for s seconds (soak)
#   INCETL_DIFF_KNOWN=...   see above
#   INCETL_DIFF_KEEP_SQL=1  keep every round's SQL log, not only failing ones
#   INCETL_DIFF_ONLY='kind=log strategy=timestamp'
#                           play only seeds whose configuration has these
#                           values (see configure(): strategy, dd, kind,
#                           keytype, soft, roles, ...); others are skipped
#
# Every failure names the round's seed and the command that replays it.
# `make soak SOAK_SECONDS=3600` runs the long version (see Makefile).
use strict;
use warnings;

use Digest::MD5 qw(md5 md5_hex);
use IncetlTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# (empty means unset: make soak passes every variable)
my $SEED = ($ENV{INCETL_DIFF_SEED} // '') ne '' ? $ENV{INCETL_DIFF_SEED} : 1;
my $SECONDS = $ENV{INCETL_DIFF_SECONDS} || 0;
my $ROUNDS = $ENV{INCETL_DIFF_ROUNDS} || ($SECONDS ? 0 : 120);
my $KEEP_SQL = $ENV{INCETL_DIFF_KEEP_SQL} // 0;
my %ONLY = map { split /=/, $_, 2 } grep { /=/ } split ' ', ($ENV{INCETL_DIFF_ONLY} // '');
die "INCETL_DIFF_SEED must be an integer" unless $SEED =~ /^\d+$/;

# Workloads that a known bug breaks, by name: off unless asked for (or in
# %FIXED below, once the bug is fixed).
my %GATES = (
	# lookback: a late row of a key the target already holds (even
	# soft-deleted) is not applied when its watermark is below the target's
	lookback_existing => 'skewed (past) timestamps on keys the target already holds, with lookback',
	# trigger capture misses writes under session_replication_role = replica
	trigger_replica => 'trigger strategy: writes under session_replication_role = replica',
	# trigger capture misses statements that name a partition
	trigger_partition => 'trigger strategy: statements on partitions of a partitioned source',
	# char(n) keys lose their typmod
	char_key => 'char(3) keys',
	# key types outside pg_catalog fail with the hash strategy (the hash
	# state is matched with pg_catalog.=, which ltree does not have)
	ext_key_hash => 'an ltree key with the hash strategy',
	# logical: float keys read back with extra_float_digits = 0
	float_key_logical => 'float8 keys with the logical strategy and extra_float_digits = 0',
	# backfill with an infinite bound never ends
	backfill_infinity => 'backfill with an infinite end',
	# timestamp: versions of one key that share a watermark (an append-only
	# log with sequence_column) are lost at a batch edge
	ties_nonunique => 'log source: several versions of a key with one watermark',
	# logical: a TRUNCATE is lost when a later pass of the run fails
	logical_truncate_fail => 'logical strategy: an injected failure in the run after a TRUNCATE',

	# found by this test (see the commit that added each)
	# reconcile ignores delete_flag_column: it puts rows flagged deleted
	# back into the target
	flag_reconcile => "reconcile of a delete_detection 'flag' pipeline",
	# preview lists a key twice as 'delete' while a TRUNCATE is pending
	# (trigger, logical): once from the queue, once from the compare pass
	preview_truncate => 'preview checked while a TRUNCATE is pending',
	# a hash run with no stored hashes (the first run, or the next after
	# alter_pipeline(hash_algorithm => ...), which empties them) never
	# deletes target rows the source lacks: they stay for good
	hash_empty_state => 'a hash pipeline whose target has rows the source lacks at its first run, or after alter_pipeline(hash_algorithm)',
	# log source, delete flag and lookback: each run re-reads the key's
	# older live version in a batch of its own, inserts it (no target row
	# is left to stop it) and deletes it again: runs write forever
	log_flag_lookback => "a log source with delete_detection 'flag' and lookback",
	# hash64 hashes arrays with PostgreSQL's hash_array, which ignores their
	# dimensions and lower bounds: '{1,2,3,4}' -> '{{1,2},{3,4}}' or
	# '{5,6}' -> '[0:1]={5,6}' is an update that the hash strategy, and a
	# hash64 reconcile, never see
	array_shape => 'arrays that differ only in shape, with hash64',
	# a backfill and a run alongside it both insert a key new to the
	# target: the one that commits second fails on the target's unique index
	backfill_alongside_run => 'a run alongside a backfill',
	# logical history: the new key of a key change gets, for a column whose
	# TOASTed value the change left alone (not in the decoded row), the new
	# key's own previous version's value (or NULL), not the old key's, until
	# the run's end settles it (as-of wrong from the commit to the run)
	history_key_change_toast => 'logical history: as of T for the new key of a key change',
	# hash: a key respelled under its own equality (citext 'Key5' ->
	# 'KEY5', or a case change under a nondeterministic collation) with
	# nothing else changed is never applied, by hash64 or a digest: the
	# hash state is matched by the key's equality and both hashes cover the
	# non-key columns only, so the run finds the row unchanged and the
	# target keeps the old spelling (README, How a run works 5, promises
	# the new one; reconcile, which hashes keys too, repairs it).  Seeds
	# 225, 5100 (5101 with history_key_respell too: it has a history)
	hash_key_respell => 'hash strategy: a key respelled (case only) with nothing else changed',
	# trigger, logical: preview() lists a key twice as 'update' when a
	# write changed its spelling only (UPDATE 'k1' -> 'K1' under a
	# case-insensitive collation or citext, or DELETE 'k2' and INSERT
	# 'K2'): the queue (decoded changes) holds both spellings and the
	# preview does not fold them by the key's collation as the run does;
	# the run writes one update.  Seeds 38, 114, 170.  Fixed: the preview
	# folds keys by the source's collations too
	preview_respell => 'preview checked after a key was respelled (trigger, logical)',
	# history: a key respelled with nothing else changed updates the
	# target (the new spelling) but opens no version: the history's current
	# version keeps the old spelling (its change test compares the non-key
	# columns only), and history as of T shows it too.  Seed 112
	history_key_respell => 'history table: a key respelled (case only) with nothing else changed',
);
my %known;
{
	my $k = $ENV{INCETL_DIFF_KNOWN} // '';
	if ($k eq '1' || $k eq 'all')
	{
		%known = map { $_ => 1 } keys %GATES;
	}
	else
	{
		foreach my $g (grep { $_ ne '' && $_ ne '0' } split /[,\s]+/, $k)
		{
			die "INCETL_DIFF_KNOWN: no gate named $g (gates: "
			  . join(', ', sort keys %GATES) . ')'
			  unless exists $GATES{$g};
			$known{$g} = 1;
		}
	}
}
# Gates whose bug main has since fixed: their workloads are always on, so
# that CI keeps the bug fixed.
my %FIXED = map { $_ => 1 } qw(lookback_existing char_key ext_key_hash backfill_infinity
  ties_nonunique backfill_alongside_run trigger_replica trigger_partition float_key_logical
  logical_truncate_fail flag_reconcile log_flag_lookback hash_empty_state preview_truncate
  array_shape history_key_change_toast preview_respell hash_key_respell);
sub gate { return $FIXED{ $_[0] } || $known{ $_[0] } || 0; }

# ---------------------------------------------------------------------------
# A seeded generator of its own (xorshift128 over 32-bit words), so that
# nothing else calling rand() (File::Temp, IPC::Run) can shift the sequence.

my @S;

sub rng_seed
{
	my ($seed) = @_;
	@S = unpack('N4', md5("incetl-differential:$seed"));
	$S[0] ||= 1;
	return;
}

sub rnd32
{
	my $t = $S[0] ^ (($S[0] << 11) & 0xffffffff);
	@S[ 0 .. 2 ] = @S[ 1 .. 3 ];
	$S[3] = ($S[3] ^ ($S[3] >> 19) ^ ($t ^ ($t >> 8))) & 0xffffffff;
	return $S[3];
}

# an integer in 0 .. n-1
sub rnd { my ($n) = @_; return int(rnd32() / 4294967296 * $n); }
# an integer in lo .. hi
sub between { my ($lo, $hi) = @_; return $lo + rnd($hi - $lo + 1); }
sub chance { my ($p) = @_; return rnd32() / 4294967296 < $p; }
sub pick { return $_[ rnd(scalar @_) ]; }

# pickw(name => weight, ...): a name, by weight; weights of 0 are never picked
sub pickw
{
	my @pairs = @_;
	my $total = 0;
	for (my $i = 1; $i < @pairs; $i += 2) { $total += $pairs[$i]; }
	die 'pickw: nothing to pick' unless $total > 0;
	my $x = rnd32() / 4294967296 * $total;
	for (my $i = 0; $i < @pairs; $i += 2)
	{
		return $pairs[$i] if ($x -= $pairs[ $i + 1 ]) < 0;
	}
	return $pairs[-2];
}

sub shuffled
{
	my @a = @_;
	for (my $i = $#a; $i > 0; $i--)
	{
		my $j = rnd($i + 1);
		@a[ $i, $j ] = @a[ $j, $i ];
	}
	return @a;
}

# ---------------------------------------------------------------------------
# SQL text

sub qi { my ($s) = @_; $s =~ s/"/""/g; return qq{"$s"}; }
sub ql { my ($s) = @_; $s =~ s/'/''/g; return "'$s'"; }

# ---------------------------------------------------------------------------
# Key types: each maps a key number n >= 1 to literals, one per key column,
# injectively.

sub text_key
{
	my ($n) = @_;
	my @deco = ('', ' x', q{'q}, '"dq', '\\bs', 'ü€', ',{}', ' ');
	return ($n % 3 ? 'k' : 'K') . $n . $deco[ $n % @deco ];
}

# key spellings of a case-insensitive key type: variant 0 is the key's
# usual spelling, 1-3 the same key in other cases (ASCII letters only:
# the test's strings are bytes)
sub respell
{
	my ($s, $v) = @_;
	$v //= 0;
	return $v == 1 ? uc($s) : $v == 2 ? lc($s) : $v == 3 ? ucfirst(lc($s)) : $s;
}

# seconds since 1970 as an ISO timestamp (UTC), with microseconds
sub gmt
{
	my ($t) = @_;
	my @g = gmtime(int($t));
	return sprintf('%04d-%02d-%02d %02d:%02d:%02d.%06d', $g[5] + 1900, $g[4] + 1, @g[ 3, 2, 1, 0 ],
		rnd(1000000));
}

sub base36
{
	my ($n) = @_;
	my @d = ('0' .. '9', 'a' .. 'z');
	my $s = '';
	do { $s = $d[ $n % 36 ] . $s; $n = int($n / 36); } while ($n > 0);
	return $s;
}

my %KEYTYPES = (
	bigint => {
		cols => [ [ 'id', 'bigint' ] ],
		lit => sub { return ($_[0] * 37 - 5000) . '::bigint' },
	},
	text => {
		cols => [ [ 'id', 'text' ] ],
		lit => sub { return ql(text_key($_[0])) . '::text' },
	},
	char3 => {
		cols => [ [ 'id', 'char(3)' ] ],
		lit => sub { return ql(base36($_[0])) . '::char(3)' },
		gate => 'char_key',
	},
	numeric => {
		cols => [ [ 'id', 'numeric' ] ],
		lit => sub {
			my $n = shift;
			my $v = sprintf('%.*f', 3 + $n % 3, $n / 8);
			return ($n % 2 ? "'-$v'" : "'$v'") . '::numeric';
		},
	},
	uuid => {
		cols => [ [ 'id', 'uuid' ] ],
		lit => sub {
			my $h = md5_hex("u$_[0]");
			return "'" . join('-', unpack('A8 A4 A4 A4 A12', $h)) . "'::uuid";
		},
	},
	domain => {
		cols => [ [ 'id', 'public.diff_posint' ] ],
		lit => sub { return ($_[0] + 1) . '::public.diff_posint' },
	},
	composite => {
		cols => [ [ 'ka', 'integer' ], [ 'kb', 'text' ] ],
		lit => sub {
			my $n = shift;
			return (int($n / 5) . '::integer', ql('b' . ($n % 5) . ($n % 2 ? ' ü' : '')) . '::text');
		},
	},
	citext => {
		cols => [ [ 'id', 'public.citext' ] ],
		lit => sub { return ql(respell(($_[0] % 2 ? 'Key' : 'kEY') . $_[0], $_[1])) . '::public.citext' },
		spell => 1,
	},
	# text under a nondeterministic (case-insensitive) ICU collation
	ci => {
		cols => [ [ 'id', 'text COLLATE public.diff_ci' ] ],
		lit => sub { return ql(respell(text_key($_[0]), $_[1])) . '::text' },
		spell => 1,
	},
	ltree => {
		cols => [ [ 'id', 'public.ltree' ] ],
		lit => sub { return ql('top.' . ($_[0] % 4) . ".n$_[0]") . '::public.ltree' },
	},
	float8 => {
		cols => [ [ 'id', 'float8' ] ],
		lit => sub { return "($_[0]::float8 / 3)" },
	},
);

# ---------------------------------------------------------------------------
# Payload columns: a type and a generator of typed literals (NULL included).

sub v_text
{
	my $r = pickw(word => 6, empty => 1, space => 1, quote => 1, bs => 1, uni => 1,
		nl => 1, long => 1);
	my %v = (
		word => join('', map { chr(97 + rnd(26)) } 1 .. between(1, 12)),
		empty => '',
		space => '  padded  ',
		quote => q{O'Reilly "x"},
		bs => 'back\\slash \\N',
		uni => 'ünïcødé ☃ 漢字',
		nl => "line1\nline2\ttab",
		long => join('', map { sprintf('%08x', rnd32()) } 1 .. 400),
	);
	return $v{$r};
}

# Representation-only changes.  Values a type calls equal can be stored
# differently (numeric 1.0 and 1.000, float 0 and -0, intervals '1 day'
# and '24 hours', jsonb 1.0 and 1.00, 'abc' and 'ABC' under a
# case-insensitive collation); the target must take the source's (README,
# How a run works 5).  A column's `repr` gives an expression that changes
# only the representation of the value x, for an UPDATE to set; its `canon`
# is `gen` without values that equal another of its values by type: the
# generator of hash64 rounds (see `canon` in configure()).
sub repr_numeric
{
	my ($x) = @_;
	return pick("pg_catalog.round($x, coalesce(pg_catalog.scale($x), 0) + " . between(1, 3) . ')',
		"pg_catalog.trim_scale($x)");
}
sub repr_zero { my ($x) = @_; return "CASE WHEN $x = 0 THEN -$x ELSE $x END"; }
sub repr_case
{
	my ($x, $cast) = @_;
	return pick('upper', 'lower', 'initcap') . "($x)" . ($cast // '');
}

my @PAYLOAD = (
	{ name => 't', type => 'text', gen => sub { ql(v_text()) } },
	{
		name => 'num', type => 'numeric',
		gen => sub {
			ql(pick('0', '-0.0', '1.10', '1.1', '1.100', 'NaN', 'Infinity', '-Infinity',
				'123456789012345678901234567890.123456789', '1e-20', rnd(100000) / 100));
		},
		canon => sub {
			ql(pick('0', '1.1', 'NaN', 'Infinity', '-Infinity', '123456789012345678901234567890.123456789',
				'1e-20', rnd(100000) / 100));
		},
		repr => \&repr_numeric,
	},
	{
		name => 'f8', type => 'float8',
		gen => sub {
			ql(pick('0', '-0', 'NaN', 'Infinity', '-Infinity', '1e308', '5e-324', '0.1',
				'0.30000000000000004', '-123.456', rnd32() / 7));
		},
		canon => sub {
			ql(pick('0', 'NaN', 'Infinity', '-Infinity', '1e308', '5e-324', '0.1',
				'0.30000000000000004', '-123.456', rnd32() / 7));
		},
		repr => \&repr_zero,
	},
	{
		name => 'f4', type => 'real',
		gen => sub { ql(pick('0', '-0', 'NaN', '3.4e38', '1.4e-45', '0.1', rnd(1000) / 3)) },
		canon => sub { ql(pick('0', 'NaN', '3.4e38', '1.4e-45', '0.1', rnd(1000) / 3)) },
		repr => \&repr_zero,
	},
	{
		name => 'tstz', type => 'timestamptz',
		gen => sub {
			ql(pick('infinity', '-infinity', '2024-02-29 12:34:56.789012+05:30',
				'1999-12-31 23:59:59+00', '0044-03-15 12:00:00+00 BC',
				gmt(rnd32()) . '+00'));
		}
	},
	{
		name => 'ts', type => 'timestamp',
		gen => sub {
			ql(pick('infinity', '2024-02-29 12:34:56.789012', '1970-01-01 00:00:00',
				gmt(rnd32() / 3)));
		}
	},
	{
		name => 'iv', type => 'interval',
		gen => sub { ql(pick('1 day', '24 hours', '1 mon', '30 days', '-1 year 2 mons', '00:00:00.000001', '0')) },
		canon => sub { ql(pick('1 day', '1 mon', '-1 year 2 mons', '00:00:00.000001', '0')) },
		repr => sub {
			my ($x) = @_;
			return pick("pg_catalog.justify_hours($x)", "pg_catalog.justify_days($x)",
				"pg_catalog.justify_interval($x)", "($x - interval '1 day' + interval '24 hours')",
				"($x - interval '1 mon' + interval '30 days')");
		},
	},
	{
		name => 'jb', type => 'jsonb',
		gen => sub {
			ql(pick('{}', '[]', 'null', '{"a": 1, "b": [1, 2.0, "x"]}', '1.0', '1', '"str"',
				'{"k": {"nested": true, "n": null}}', sprintf('{"r": %d}', rnd(1000))));
		},
		canon => sub {
			ql(pick('{}', '[]', 'null', '{"a": 1, "b": [1, 2.0, "x"]}', '1', '"str"',
				'{"k": {"nested": true, "n": null}}', sprintf('{"r": %d}', rnd(1000))));
		},
		# its numbers with a 0 more, or integers with '.0', or trailing
		# zeros stripped (no string the generator makes holds a digit)
		repr => sub {
			my ($x) = @_;
			return pick(
				"pg_catalog.regexp_replace(${x}::text, '(\\.[0-9]+)', '\\10', 'g')::jsonb",
				"pg_catalog.regexp_replace(${x}::text, '(?<![0-9.])([0-9]+)(?![0-9.])', '\\1.0', 'g')::jsonb",
				"pg_catalog.regexp_replace(pg_catalog.regexp_replace(${x}::text, '(\\.[0-9]*[1-9])0+(?![0-9])', '\\1', 'g'), "
				  . "'\\.0+(?![0-9])', '', 'g')::jsonb");
		},
	},
	{
		name => 'js', type => 'json', cmp => 'text',
		gen => sub { ql(pick('{"b":1, "a":2}', '{"a":2,"b":1}', ' {"a" : 1} ', '[]', 'null', sprintf('[%d]', rnd(100)))) }
	},
	{
		name => 'arr', type => 'integer[]',
		gen => sub { ql(pick('{}', '{1,2,3}', '{NULL,1}', sprintf('{%d}', rnd(50)))) },
		# '{1,2,3,4}' and '{{1,2},{3,4}}', '{5,6}' and '[0:1]={5,6}' are
		# different arrays with the same hash: see the 'array_shape' gate
		shapes => sub { ql(pick('{1,2,3,4}', '{{1,2},{3,4}}', '{5,6}', '[0:1]={5,6}')) },
	},
	{
		name => 'tarr', type => 'text[]',
		gen => sub { ql(pick('{}', '{a,b}', '{"with space","q\\"uote"}', '{NULL}', sprintf('{x%d}', rnd(50)))) }
	},
	{
		name => 'ci', type => 'public.citext',
		gen => sub { ql(pick('Abc', 'abc', 'ABC', 'ß', 'x' . rnd(100))) },
		canon => sub { ql(pick('abc', 'ß', 'x' . rnd(100))) },
		repr => sub { repr_case($_[0], '::public.citext') },
	},
	# text under a nondeterministic (case-insensitive) collation
	{
		name => 'cit', type => 'text COLLATE public.diff_ci',
		gen => sub { ql(pick('abc', 'ABC', 'Abc', 'straße', 'STRASSE', 'ünï', 'ÜNÏ', v_text())) },
		canon => sub { ql(pick('abc', 'straße', 'ünï', v_text())) },
		repr => sub { repr_case($_[0]) },
	},
	{
		name => 'lt', type => 'public.ltree',
		gen => sub { ql(pick('a', 'a.b', 'top.science.astronomy', '', 'n' . rnd(100) . '.m')) }
	},
	{
		name => 'cu', type => 'public.cube',
		gen => sub { ql(pick('(1,2)', '(1,2),(3,4)', '(0)', '(1e10, -1e-10)', '(' . rnd(100) . ')')) }
	},
	{
		name => 'ean', type => 'public.ean13',
		gen => sub {
			my @d = map { rnd(10) } 1 .. 12;
			my $s = 0;
			$s += $d[$_] * ($_ % 2 ? 3 : 1) for 0 .. 11;
			return ql(join('', @d) . ((10 - $s % 10) % 10));
		}
	},
	{ name => 'c5', type => 'char(5)', gen => sub { ql(pick('', 'a', 'ab   ', 'abcde', ' x')) } },
	{ name => 'vc', type => 'varchar(12)', gen => sub { ql(pick('', 'v', 'varchar ü', 'x' . rnd(1000))) } },
	{
		name => 'by', type => 'bytea',
		gen => sub { ql(pick('\\x', '\\x00ff', '\\xdeadbeef', sprintf('\\x%08x', rnd32()))) }
	},
	{ name => 'mood', type => 'public.diff_mood', gen => sub { ql(pick('sad', 'ok', 'happy')) } },
	{
		name => 'pn', type => 'public.diff_posnum',
		gen => sub { ql(pick('0.5', '1', '1.0', '99.99')) },
		canon => sub { ql(pick('0.5', '1', '99.99')) },
		repr => \&repr_numeric,
	},
	{ name => 'b', type => 'boolean', gen => sub { ql(pick('true', 'false')) } },
	{ name => 'i2', type => 'smallint', gen => sub { ql(pick(-32768, 0, 1, 32767, rnd(100))) } },
);

# ---------------------------------------------------------------------------
# Sessions: background psql with our own separators (BackgroundPsql's
# query() notes every statement into the log and never clears stderr).

my $node;
my $LOGFH;				# the current round's SQL log
my $TIMEOUT = $PostgreSQL::Test::Utils::timeout_default;
# a run that never ends is an error, not a hang (the tables are small)
my $STMT_TIMEOUT = 60;

sub log_sql
{
	my ($tag, $sql) = @_;
	print $LOGFH "-- [$tag]\n$sql;\n" if $LOGFH;
	return;
}

sub session_new
{
	my ($tag, @init) = @_;
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $s = { bg => $bg, tag => $tag, cnt => 0, pending => undef };
	foreach my $sql ('SET client_min_messages = warning', @init)
	{
		my ($out, $err) = sq($s, $sql);
		die "session $tag: $sql: $err" if $err =~ /ERROR|FATAL/;
	}
	return $s;
}

# send a statement without waiting for it
sub ssend
{
	my ($s, $sql) = @_;
	die "session $s->{tag} is busy" if defined $s->{pending};
	my $n = ++$s->{cnt};
	my $bg = $s->{bg};
	$bg->{stdout} = '';
	$bg->{stderr} = '';
	log_sql($s->{tag}, $sql);
	$bg->{stdin} .= "$sql\n;\n\\echo 'diffsep $n'\n\\warn 'diffsep $n'\n";
	$s->{pending} = $n;
	# the session's timer counts from its last statement, not its start
	$bg->{timeout}->start($TIMEOUT);
	$bg->{run}->pump_nb;
	return;
}

# has the statement sent finished?
sub sdone
{
	my ($s) = @_;
	my $bg = $s->{bg};
	my $n = $s->{pending};
	return 1 unless defined $n;
	$bg->{run}->pump_nb;
	return $bg->{stdout} =~ /diffsep $n\n/ && $bg->{stderr} =~ /diffsep $n\n/;
}

# wait for the statement sent; returns (stdout, stderr)
sub swait
{
	my ($s) = @_;
	my $bg = $s->{bg};
	my $n = $s->{pending};
	return ('', '') unless defined $n;
	$bg->{timeout}->start($TIMEOUT);
	$bg->{run}->pump
	  until $bg->{stdout} =~ /diffsep $n\n/ && $bg->{stderr} =~ /diffsep $n\n/;
	$s->{pending} = undef;
	my ($out, $err) = ($bg->{stdout}, $bg->{stderr});
	$out =~ s/\n?diffsep $n\n//;
	$err =~ s/diffsep $n\n//;
	return ($out, $err);
}

# run a statement, wait; returns (stdout, stderr)
sub sq
{
	my ($s, $sql) = @_;
	ssend($s, $sql);
	return swait($s);
}

sub is_error { return $_[0] =~ /\b(ERROR|FATAL|PANIC):/; }

# a statement that must succeed; returns its output
sub sok
{
	my ($s, $sql) = @_;
	my ($out, $err) = sq($s, $sql);
	die "unexpected error in session $s->{tag}\n  statement: "
	  . substr($sql, 0, 2000) . "\n  error: $err"
	  if is_error($err);
	return $out;
}

sub session_end
{
	my ($s) = @_;
	return unless $s;
	eval { $s->{bg}->quit; };
	return;
}

# ---------------------------------------------------------------------------
# The round: its configuration, model of the source's keys, and steps.

our $R;					# the current round
my ($main, @writers);	# sessions: main (runs, checks, its own writes), w1, w2
my $async;				# background runs

sub fail_round
{
	my ($msg) = @_;
	die "$msg\n";
}

sub note_round { note "round $R->{seed}: $_[0]"; return; }

# the name to replay this round with
sub replay_cmd
{
	my ($seed) = @_;
	my $k = join(',', sort keys %known);
	return "INCETL_DIFF_SEED=$seed INCETL_DIFF_ROUNDS=1"
	  . ($k ? " INCETL_DIFF_KNOWN=$k" : '')
	  . " SUITES=tap PROVE_TESTS=t/080_differential.pl bash test/run_all.sh"
	  . "   (or: make soak SOAK_SEED=$seed SOAK_ROUNDS=1"
	  . ($k ? " SOAK_KNOWN=$k" : '') . ')';
}

# choose everything about a round from its seed
sub configure
{
	my ($seed) = @_;
	rng_seed($seed);
	my $r = { seed => $seed };

	$r->{strategy} = pickw(timestamp => 4, hash => 3, trigger => 3, logical => 3);
	my $ts = $r->{strategy} eq 'timestamp';
	$r->{dd} = $ts ? pickw(none => 1, compare => 3, flag => 2) : 'always';
	$r->{soft} = chance(0.4);
	$r->{lookback} = $ts && chance(0.35) ? pick('10 minutes', '1 hour') : undef;
	$r->{wm_type} = $ts && chance(0.2) ? 'timestamp' : 'timestamptz';

	# the source kind
	my @kinds = ('table');
	push @kinds, 'partitioned', 'view' if $ts || $r->{strategy} eq 'hash';
	# an append-only log: every change is a new version (sequence_column)
	push @kinds, 'log' if $ts;
	push @kinds, 'partitioned' if $r->{strategy} eq 'trigger';
	$r->{kind} = chance(0.5) ? 'table' : pick(@kinds);

	# the key
	my @keys = qw(bigint text numeric uuid domain composite citext ci ltree);
	push @keys, 'char3' if gate('char_key');
	push @keys, 'float8' if $r->{strategy} ne 'logical' || gate('float_key_logical');
	@keys = grep { $_ ne 'ltree' } @keys
	  if $r->{strategy} eq 'hash' && !gate('ext_key_hash');
	# a target partitioned by hash of the key
	$r->{tgt_partitioned} = chance(0.15);
	# partitions are by hash of the key, which ltree has no opclass for
	@keys = grep { $_ ne 'ltree' } @keys if $r->{kind} eq 'partitioned' || $r->{tgt_partitioned};
	$r->{keytype} = pick(@keys);
	my $kt = $KEYTYPES{ $r->{keytype} };
	$r->{fancy} = chance(0.3);
	$r->{keys} = [ map { [ ($r->{fancy} && $_->[0] eq 'id' ? 'Id "ü"' : $_->[0]), $_->[1] ] } @{ $kt->{cols} } ];
	$r->{keylit} = $kt->{lit};

	# payload: some of @PAYLOAD, in some order
	my @p = shuffled(@PAYLOAD);
	@p = @p[ 0 .. between(1, 8) - 1 ];
	$r->{payload} = [ map { { %$_ } } @p ];
	# with its gate, hash rounds always have the array column
	push @{ $r->{payload} }, { %{ (grep { $_->{name} eq 'arr' } @PAYLOAD)[0] } }
	  if gate('array_shape') && $r->{strategy} eq 'hash' && !grep { $_->{name} eq 'arr' } @{ $r->{payload} };
	if ($r->{fancy})
	{
		$_->{name} = "Col $_->{name}" foreach grep { chance(0.3) } @{ $r->{payload} };
	}
	$r->{wm} = $r->{fancy} && chance(0.5) ? 'Updated At' : 'updated_at';

	# names
	my $sfx = $r->{fancy} ? " ü'$seed" : "_$seed";
	$r->{schema} = $r->{fancy} ? 'Diff Schema' : 'diff';
	$r->{name} = $r->{fancy} ? "p ü '$seed' \"q\"" : "p$seed";
	$r->{src} = qi($r->{schema}) . '.' . qi("Src$sfx");
	$r->{tgt} = qi($r->{schema}) . '.' . qi("tgt$sfx");
	$r->{base} = qi($r->{schema}) . '.' . qi("src_base$sfx") if $r->{kind} eq 'view';
	$r->{parts} = [ map { qi($r->{schema}) . '.' . qi("src$sfx p$_") } 0 .. 2 ]
	  if $r->{kind} eq 'partitioned';
	$r->{ctl} = 'public.' . qi("ctl_$seed");
	# a history table (SPEC 5) on every third round, drawn from the seed
	# alone so that the other draws stay what they were
	$r->{hist} = $seed % 3 == 1 ? qi($r->{schema}) . '.' . qi("hist$sfx") : undef;
	$r->{guardfn} = 'public.' . qi("guard_$seed");
	$r->{lockkey} = 700000 + $seed % 100000;

	# the flag column: in the source with 'flag'; in the target unless
	# on_schema_change => 'ignore' drops it
	$r->{flag} = $r->{dd} eq 'flag' ? 'deleted' : undef;
	$r->{osc} = chance(0.2) ? 'ignore' : 'fail';
	$r->{src_only} = $r->{osc} eq 'ignore' && chance(0.7) ? 'src_only' : undef;
	$r->{flag_in_target} = defined $r->{flag} && !($r->{osc} eq 'ignore' && chance(0.5));
	$r->{deleted_at} = $r->{soft} && chance(0.5);
	$r->{etl} = chance(0.6);
	$r->{dropped_col} = chance(0.3);
	$r->{hash_algorithm} = chance(0.3) ? 'sha256' : 'hash64';
	# hash64 hashes each value by its type's hash, equal for values the
	# type calls equal: by design (README, Which hash) it does not see a
	# change of representation only (1.0 -> 1.000), and a target may keep
	# the old one.  Rather than let the check accept that (which would hide
	# the same miss elsewhere), a round whose pipeline starts with hash64
	# never stores two representations of one value: its payload comes
	# from the columns' `canon` generators and its updates use no `repr`,
	# so every update hash64 must see changes a value hash64 sees.  Such a
	# round may switch between hash64 and a digest (alter_step); a round
	# that starts with a digest, whose writes change representations
	# freely, never switches to hash64.  Digests see stored bytes and must
	# apply every representation change.
	$r->{canon} = $r->{strategy} eq 'hash' && $r->{hash_algorithm} eq 'hash64';
	$r->{batch_size} = between(1, 50);
	$r->{explicit_keys} = $r->{kind} eq 'view' || $r->{kind} eq 'log' || chance(0.3);
	$r->{seqcol} = $r->{kind} eq 'log' ? 'seq' : undef;
	$r->{lookback} = undef
	  if $r->{kind} eq 'log' && $r->{dd} eq 'flag' && !gate('log_flag_lookback');
	$r->{wm_nullable} = !$ts;

	# what the workload may do
	$r->{can_truncate} = $r->{dd} ne 'flag';
	$r->{can_skew} = !$ts || defined $r->{lookback};
	$r->{silent_updates} = !$ts;	# changes that leave updated_at alone
	$r->{replica_writes} = $r->{strategy} ne 'trigger' || gate('trigger_replica');
	$r->{partition_writes} = $r->{kind} eq 'partitioned'
	  && ($r->{strategy} ne 'trigger' || gate('trigger_partition'));
	# the pipeline's owner an unprivileged role (runs are still called by a
	# superuser), the writer sessions another role with table rights only
	$r->{roles} = chance(0.35);
	$r->{replica_writes} = 0 if $r->{roles};	# needs a superuser
	$r->{settings} = [];
	push @{ $r->{settings} }, 'SET DateStyle = ' . ql(pick('SQL, DMY', 'German', 'Postgres, MDY')) if chance(0.3);
	push @{ $r->{settings} }, 'SET IntervalStyle = ' . ql(pick('sql_standard', 'iso_8601')) if chance(0.3);
	push @{ $r->{settings} }, 'SET extra_float_digits = ' . pick(0, -15, 3)
	  if chance(0.3) && ($r->{keytype} ne 'float8' || $r->{strategy} ne 'logical' || gate('float_key_logical'));
	push @{ $r->{settings} }, "SET bytea_output = 'escape'" if chance(0.2);
	push @{ $r->{settings} }, 'SET TimeZone = ' . ql(pick('America/St_Johns', 'Asia/Kathmandu', 'UTC'))
	  if chance(0.3) && $r->{wm_type} eq 'timestamptz';
	$r->{steps} = between(12, 30);
	return $r;
}

sub describe
{
	my ($r) = @_;
	return join(', ',
		"strategy $r->{strategy}",
		($r->{strategy} eq 'timestamp' ? "delete_detection $r->{dd}" : ()),
		'delete_mode ' . ($r->{soft} ? 'soft' : 'hard'),
		"key $r->{keytype}",
		"source $r->{kind}",
		($r->{tgt_partitioned} ? 'target partitioned' : ()),
		"batch_size $r->{batch_size}",
		(defined $r->{lookback} ? "lookback $r->{lookback}" : ()),
		($r->{wm_type} ne 'timestamptz' ? "watermark $r->{wm_type}" : ()),
		($r->{strategy} eq 'hash' ? "hash $r->{hash_algorithm}" . ($r->{canon} ? ' (canon)' : '') : ()),
		'payload ' . join(' ', map { $_->{type} } @{ $r->{payload} }),
		($r->{osc} ne 'fail' ? "on_schema_change $r->{osc}" : ()),
		($r->{roles} ? 'owner diff_owner, writers diff_writer' : ()),
		(@{ $r->{settings} } ? 'runner ' . join('; ', @{ $r->{settings} }) : ()),
		($r->{hist} ? 'history table' : ()));
}

# ---------------------------------------------------------------------------
# DDL

sub key_names { return map { qi($_->[0]) } @{ $R->{keys} }; }
sub key_list { return join(', ', key_names()); }

# the columns that source and target share, as select-list expressions
sub mapped_cols
{
	my @c = key_names();
	push @c, map { $_->{cmp} ? qi($_->{name}) . "::$_->{cmp}" : qi($_->{name}) } @{ $R->{payload} };
	push @c, qi($R->{wm});
	push @c, qi($R->{flag}) if $R->{flag} && $R->{flag_in_target};
	push @c, qi($R->{seqcol}) if $R->{seqcol};
	return join(', ', @c);
}

sub setup_round
{
	my $r = $R;
	my @kcols = map { qi($_->[0]) . " $_->[1] NOT NULL" } @{ $r->{keys} };
	my @pcols = map { qi($_->{name}) . " $_->{type}" } @{ $r->{payload} };
	my $wmcol = qi($r->{wm}) . " $r->{wm_type}" . ($r->{wm_nullable} ? '' : ' NOT NULL');
	my @scols = shuffled(@kcols, @pcols, $wmcol);
	push @scols, qi($r->{flag}) . ' boolean NOT NULL DEFAULT false' if $r->{flag};
	push @scols, qi($r->{src_only}) . ' integer DEFAULT 7' if $r->{src_only};
	push @scols, qi($r->{seqcol}) . ' bigint GENERATED ALWAYS AS IDENTITY' if $r->{seqcol};
	unshift @scols, 'junk integer' if $r->{dropped_col};

	sok($main, 'CREATE SCHEMA IF NOT EXISTS ' . qi($r->{schema}));
	my $table = $r->{kind} eq 'view' ? $r->{base} : $r->{src};
	my $ddl = "CREATE TABLE $table (" . join(', ', @scols)
	  . ($r->{kind} eq 'log' ? ')' : ', PRIMARY KEY (' . key_list() . '))');
	$ddl .= ' PARTITION BY HASH (' . (key_names())[0] . ')' if $r->{kind} eq 'partitioned';
	sok($main, $ddl);
	if ($r->{kind} eq 'partitioned')
	{
		sok($main, "CREATE TABLE $r->{parts}[$_] PARTITION OF $r->{src} FOR VALUES WITH (MODULUS 3, REMAINDER $_)")
		  foreach 0 .. 2;
	}
	sok($main, "ALTER TABLE $table DROP COLUMN junk") if $r->{dropped_col};
	sok($main, "CREATE INDEX ON $table (" . qi($r->{wm}) . ', ' . key_list() . ')');
	if ($r->{kind} eq 'view')
	{
		my @vcols = shuffled(key_names(), (map { qi($_->{name}) } @{ $r->{payload} }), qi($r->{wm}),
			($r->{flag} ? qi($r->{flag}) : ()), ($r->{src_only} ? qi($r->{src_only}) : ()));
		sok($main, "CREATE VIEW $r->{src} AS SELECT " . join(', ', @vcols) . " FROM $table");
	}
	$r->{table} = $table;

	# the target: the same columns in another order, and incetl's own
	my @tcols = (@kcols, @pcols, qi($r->{wm}) . " $r->{wm_type}");
	push @tcols, qi($r->{flag}) . ' boolean' if $r->{flag} && $r->{flag_in_target};
	push @tcols, qi($r->{seqcol}) . ' bigint' if $r->{seqcol};
	push @tcols, 'is_deleted boolean' if $r->{soft} || chance(0.2);
	push @tcols, 'deleted_at timestamptz' if $r->{deleted_at};
	push @tcols, 'etl_inserted_at timestamptz', 'etl_updated_at timestamptz', 'etl_run_id bigint'
	  if $r->{etl};
	push @tcols, q{note text DEFAULT 'target only'} if chance(0.3);
	sok($main, "CREATE TABLE $r->{tgt} (" . join(', ', shuffled(@tcols)) . ', PRIMARY KEY (' . key_list() . '))'
		  . ($r->{tgt_partitioned} ? ' PARTITION BY HASH (' . (key_names())[0] . ')' : ''));
	if ($r->{tgt_partitioned})
	{
		sok($main, "CREATE TABLE " . qi($r->{schema}) . '.' . qi("tgt_$r->{seed} p$_") . " PARTITION OF $r->{tgt} "
			  . "FOR VALUES WITH (MODULUS 2, REMAINDER $_)") foreach 0 .. 1;
	}

	# the history table: the target's key, payload and watermark columns
	if ($r->{hist})
	{
		my @hcols = (@kcols, @pcols, qi($r->{wm}) . " $r->{wm_type}", 'valid_from timestamptz NOT NULL',
			'valid_to timestamptz', 'etl_run_id bigint');
		sok($main, "CREATE TABLE $r->{hist} (" . join(', ', shuffled(@hcols)) . ', UNIQUE ('
			  . key_list() . ', valid_from))');
	}

	# the as-of copies of the source (see the head of this file)
	if (asof_on())
	{
		$r->{asof_t} = 'public.' . qi("asof_t_$r->{seed}");
		$r->{asof_rows} = 'public.' . qi("asof_rows_$r->{seed}");
		sok($main, "CREATE TABLE $r->{asof_t} (t timestamptz PRIMARY KEY, ok boolean NOT NULL)");
		sok($main, "CREATE TABLE $r->{asof_rows} AS SELECT NULL::timestamptz AS asof_t, "
			  . join(', ', key_names(), (map { qi($_->{name}) } @{ $r->{payload} }), qi($r->{wm}))
			  . " FROM $r->{src} WITH NO DATA");
		$r->{asof_blind} = 1;
	}

	# the failure injector: a row trigger on the target that, when the
	# control row says so, lets `remaining` rows (of the operations in ops)
	# pass, then raises or waits
	sok($main, "CREATE TABLE $r->{ctl} (mode text NOT NULL, remaining integer NOT NULL, ops text[] NOT NULL)");
	sok($main, "INSERT INTO $r->{ctl} VALUES ('off', 0, '{INSERT,UPDATE,DELETE}')");
	sok($main, qq{CREATE FUNCTION $r->{guardfn}() RETURNS trigger LANGUAGE plpgsql AS \$g\$
DECLARE m text; n integer; o text[];
BEGIN
	SELECT mode, ops INTO m, o FROM $r->{ctl};
	IF m <> 'off' AND TG_OP = ANY (o) THEN
		UPDATE $r->{ctl} SET remaining = remaining - 1 RETURNING remaining INTO n;
		IF n < 0 THEN
			IF m = 'error' THEN
				RAISE EXCEPTION 'diff: injected failure';
			ELSE
				PERFORM pg_catalog.pg_advisory_xact_lock($r->{lockkey});
			END IF;
		END IF;
	END IF;
	RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END \$g\$});
	sok($main, "CREATE TRIGGER diff_guard BEFORE INSERT OR UPDATE OR DELETE ON $r->{tgt} "
		  . "FOR EACH ROW EXECUTE FUNCTION $r->{guardfn}()");
	if ($r->{roles})
	{
		my @src = ($r->{src}, ($r->{base} // ()), @{ $r->{parts} // [] });
		sok($main, 'GRANT USAGE ON SCHEMA ' . qi($r->{schema}) . ' TO diff_owner, diff_writer');
		sok($main, "ALTER TABLE $_ OWNER TO diff_owner")
		  foreach ($r->{table}, @{ $r->{parts} // [] }, $r->{tgt}, $r->{ctl}, ($r->{hist} // ()));
		sok($main, "ALTER VIEW $r->{src} OWNER TO diff_owner") if $r->{kind} eq 'view';
		sok($main, "ALTER FUNCTION $r->{guardfn}() OWNER TO diff_owner");
		sok($main, 'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ' . join(', ', @src) . ' TO diff_writer');
		sok($_, 'SET ROLE diff_writer') foreach @writers;
	}
	return;
}

sub create_pipeline
{
	my $r = $R;
	my @o = ('name => ' . ql($r->{name}), "source => " . ql($r->{src}) . '::regclass',
		'target => ' . ql($r->{tgt}) . '::regclass', 'strategy => ' . ql($r->{strategy}));
	push @o, 'key_columns => ARRAY[' . join(', ', map { ql($_->[0]) } @{ $r->{keys} }) . ']'
	  if $r->{explicit_keys};
	push @o, 'watermark_column => ' . ql($r->{wm}) if $r->{strategy} eq 'timestamp';
	push @o, 'sequence_column => ' . ql($r->{seqcol}) if $r->{seqcol};
	push @o, 'lookback => ' . ql($r->{lookback}) if defined $r->{lookback};
	push @o, 'delete_detection => ' . ql($r->{dd}) if $r->{strategy} eq 'timestamp';
	push @o, 'delete_flag_column => ' . ql($r->{flag}) if $r->{flag};
	push @o, q{delete_mode => 'soft'} if $r->{soft};
	push @o, 'hash_algorithm => ' . ql($r->{hash_algorithm}) if $r->{hash_algorithm} ne 'hash64';
	push @o, "batch_size => $r->{batch_size}";
	push @o, q{on_schema_change => 'ignore'} if $r->{osc} eq 'ignore';
	push @o, 'history_table => ' . ql($r->{hist}) . '::regclass' if $r->{hist};
	my $create = 'SELECT incetl.create_pipeline(' . join(', ', @o) . ')';
	$create = "SET ROLE diff_owner;\n$create;\nRESET ROLE" if $r->{roles};
	$r->{id} = sok($main, $create);
	return;
}

# ---------------------------------------------------------------------------
# The model of the source's keys.  Writer w (0 = main, 1, 2) owns the key
# numbers n with n % 3 == w, so no two sessions ever wait for each other.
# $R->{state}[w]{n} is the committed state of a key present in the source
# (0 live, 1 flagged deleted), $R->{view}[w] the same as the open
# transaction of writer w sees it; $R->{used}[w]{n} every key ever used.

sub model_init
{
	$R->{state} = [ {}, {}, {} ];
	$R->{view} = [ undef, undef, undef ];
	$R->{used} = [ {}, {}, {} ];
	$R->{next} = [ 0, 0, 0 ];
	$R->{intx} = [ 0, 0, 0 ];
	$R->{touched} = [ {}, {}, {} ];
	return;
}

sub cur { my ($w) = @_; return $R->{intx}[$w] ? $R->{view}[$w] : $R->{state}[$w]; }

sub fresh_key
{
	my ($w) = @_;
	my $n = 3 * $R->{next}[$w]++ + $w + 1;
	$R->{used}[$w]{$n} = 1;
	return $n;
}

# a key not present now: fresh, or one that comes back
sub absent_key
{
	my ($w, $fresh_only) = @_;
	my $c = cur($w);
	my @back = grep { !exists $c->{$_} } sort { $a <=> $b } keys %{ $R->{used}[$w] };
	return pick(@back) if @back && !$fresh_only && chance(0.35);
	return fresh_key($w);
}

sub present_keys
{
	my ($w, $flagged) = @_;
	my $c = cur($w);
	return grep { $c->{$_} == ($flagged ? 1 : 0) } sort { $a <=> $b } keys %$c;
}

sub some_of
{
	my ($max, @a) = @_;
	@a = shuffled(@a);
	my $n = between(1, $max);
	$n = @a if $n > @a;
	return @a[ 0 .. $n - 1 ];
}

sub keylits { my ($n) = @_; return $R->{keylit}->($n); }

sub key_match
{
	my ($alias, @ns) = @_;
	my @k = map { ($alias ? "$alias." : '') . $_ } key_names();
	my $lhs = @k > 1 ? '(' . join(', ', @k) . ')' : $k[0];
	return "$lhs IN (" . join(', ', map { my @l = keylits($_); @l > 1 ? '(' . join(', ', @l) . ')' : $l[0] } @ns) . ')';
}

# the value written to the watermark column
sub wm_value
{
	my ($skew) = @_;
	my $now = $R->{wm_type} eq 'timestamp' ? 'LOCALTIMESTAMP' : 'now()';
	return $now unless $skew;
	my $past = "$now - interval '" . between(1, 290) . " seconds'";
	return $past if $R->{strategy} eq 'timestamp';
	return pick($past, "$now + interval '" . between(1, 10**6) . " seconds'", 'NULL',
		"'2000-01-01 00:00:00+00'");
}

sub payload_value
{
	my ($c) = @_;
	my $type = $c->{type} =~ s/ COLLATE .*//r;
	return "NULL::$type" if chance(0.15);
	my $g = $c->{shapes} && gate('array_shape') && chance(0.5) ? $c->{shapes}
	  : $R->{canon} && $c->{canon} ? $c->{canon}
	  : $c->{gen};
	return $g->() . "::$type";
}

# a key's literals in one of its spellings (a case-insensitive key type:
# sometimes another than its usual)
sub keylits_spelled
{
	my ($n) = @_;
	return keylits($n) unless $KEYTYPES{ $R->{keytype} }{spell} && chance(0.3);
	$R->{respelled} = 1;
	return $R->{keylit}->($n, between(1, 3));
}

# does a watermark value written change the row for hash64?  now() and
# values relative to it do; NULL and a constant may be what it held
sub fresh_wm { my ($v) = @_; return defined $v && $v =~ /now\(\)|LOCALTIMESTAMP/; }

# may a write respell a key and change nothing else?  Not where a known
# bug misses that (gates hash_key_respell, history_key_respell)
sub bare_respell_ok
{
	return 0 if $R->{strategy} eq 'hash' && !gate('hash_key_respell');
	return 0 if $R->{hist} && !gate('history_key_respell');
	return 1;
}

# the relation a write goes to
sub wrel
{
	return $R->{table} unless $R->{kind} eq 'view';
	return chance(0.5) ? $R->{src} : $R->{table};
}

# ---------------------------------------------------------------------------
# Write operations: each returns SQL and applies itself to the model view
# of writer w (the caller has chosen view or state).

sub op_insert
{
	my ($w, $bulk) = @_;
	my $c = cur($w);
	my $skew = $R->{can_skew} && chance(0.2);
	my $m = $bulk ? between(15, 70) : between(1, 5);
	my @cols = (key_names(), map { qi($_->{name}) } @{ $R->{payload} });
	push @cols, qi($R->{wm});
	my $bulk_wmv = wm_value($skew);
	my @rows;
	my %seen;
	for (1 .. $m)
	{
		my $wmv = $bulk ? $bulk_wmv : wm_value($skew);
		# a late row of the timestamp strategy must be a new key (gate
		# lookback_existing); so must a row whose watermark may be what the
		# key held before it left, where a key that came back in another
		# spelling with nothing else changed is missed (bare_respell_ok)
		my $n = absent_key($w, ($skew && $R->{strategy} eq 'timestamp' && !gate('lookback_existing'))
			  || (!fresh_wm($wmv) && !bare_respell_ok()));
		next if $seen{$n}++;
		my @v = (keylits_spelled($n), map { payload_value($_) } @{ $R->{payload} });
		push @v, $wmv;
		push @rows, '(' . join(', ', @v) . ')';
		$c->{$n} = 0;
		$R->{touched}[$w]{$n} = 1;
	}
	return 'INSERT INTO ' . wrel() . ' (' . join(', ', @cols) . ') VALUES ' . join(",\n  ", @rows);
}

# UPDATE of some live rows: new values for some columns
sub update_sql
{
	my ($rel, $set_wm, @ns) = @_;
	my @pc = grep { chance(0.6) } @{ $R->{payload} };
	# with its gate, a change of the array alone (so only its shape may change)
	@pc = grep { $_->{shapes} } @{ $R->{payload} } if gate('array_shape') && chance(0.4);
	# a change of representation only: of some columns, or (a fifth of the
	# updates) of every column that has one; never in a canon round (see
	# configure())
	my @rc;
	if (!$R->{canon})
	{
		my @can = grep { $_->{repr} } @{ $R->{payload} };
		if (@can && chance(0.2))
		{
			@rc = @can;
			@pc = ();
		}
		else
		{
			@rc = grep { $_->{repr} && chance(0.3) } @pc;
			my %r = map { $_->{name} => 1 } @rc;
			@pc = grep { !$r{ $_->{name} } } @pc;
		}
	}
	my @k = key_names();
	my @alias = map { "k$_" } 1 .. @k;
	my @sets = map { qi($_->{name}) . ' = v.' . qi($_->{name}) } @pc;
	push @sets, map { qi($_->{name}) . ' = ' . $_->{repr}->('s.' . qi($_->{name})) } @rc;
	push @sets, qi($R->{wm}) . " = $set_wm" if defined $set_wm;
	# nothing to set: touch a column with its own value
	push @sets, qi($R->{wm}) . ' = s.' . qi($R->{wm}) unless @sets;
	my @rows;
	foreach my $n (@ns)
	{
		push @rows, '(' . join(', ', keylits($n), map { payload_value($_) } @pc) . ')';
	}
	my $match = join(' AND ', map { "s.$k[$_] = v.$alias[$_]" } 0 .. $#k);
	return "UPDATE $rel AS s SET " . join(', ', @sets)
	  . ' FROM (VALUES ' . join(",\n  ", @rows) . ') AS v(' . join(', ', @alias, map { qi($_->{name}) } @pc) . ")"
	  . " WHERE $match";
}

# keys whose newest version this transaction of writer w may add another
# to: one with the same watermark (its transaction's start) would be a tie
# within a key, which the gate ties_nonunique turns on
sub untied
{
	my ($w, @ns) = @_;
	return @ns unless $R->{kind} eq 'log' && $R->{intx}[$w] && !gate('ties_nonunique');
	return grep { !$R->{touched}[$w]{$_} } @ns;
}

# a new version of each key in a log source; $flag: the delete flag's value
sub log_versions
{
	my ($w, $flag, @ns) = @_;
	my @cols = (key_names(), (map { qi($_->{name}) } @{ $R->{payload} }), qi($R->{wm}));
	push @cols, qi($R->{flag}) if $R->{flag};
	# with the gate, sometimes two versions of a key in one statement
	push @ns, grep { chance(0.3) } @ns if gate('ties_nonunique');
	my $wmv = wm_value(0);
	my @rows;
	foreach my $n (@ns)
	{
		my @v = (keylits_spelled($n), (map { payload_value($_) } @{ $R->{payload} }), $wmv);
		push @v, $flag ? 'true' : 'false' if $R->{flag};
		push @rows, '(' . join(', ', @v) . ')';
		$R->{touched}[$w]{$n} = 1;
	}
	return "INSERT INTO $R->{table} (" . join(', ', @cols) . ') VALUES ' . join(",\n  ", @rows);
}

sub op_update
{
	my ($w) = @_;
	my @live = untied($w, present_keys($w, 0));
	return undef unless @live;
	return log_versions($w, 0, some_of(chance(0.2) ? 40 : 5, @live)) if $R->{kind} eq 'log';
	my @ns = some_of(chance(0.2) ? 40 : 5, @live);
	my $how = pickw(
		now => 8,
		skew => ($R->{can_skew} && ($R->{strategy} ne 'timestamp' || gate('lookback_existing')) ? 2 : 0),
		silent => ($R->{silent_updates} ? 2 : 0));
	my $wmv = $how eq 'now' ? wm_value(0) : $how eq 'skew' ? wm_value(1) : undef;
	if ($R->{partition_writes} && chance(0.4))
	{
		# one statement per partition: each changes the rows it holds
		return join(";\n", map { update_sql($_, $wmv, @ns) } @{ $R->{parts} });
	}
	return update_sql(wrel(), $wmv, @ns);
}

sub op_delete
{
	my ($w) = @_;
	my $c = cur($w);
	my @live = untied($w, present_keys($w, 0));
	return undef unless @live;
	my @ns = some_of(chance(0.2) ? 30 : 4, @live);
	if ($R->{flag} && $R->{kind} eq 'log')
	{
		$c->{$_} = 1 foreach @ns;
		return log_versions($w, 1, @ns);
	}
	if ($R->{flag})
	{
		# deleting means setting the flag
		$c->{$_} = 1 foreach @ns;
		return 'UPDATE ' . wrel() . ' SET ' . qi($R->{flag}) . ' = true, ' . qi($R->{wm}) . ' = ' . wm_value(0)
		  . ' WHERE ' . key_match('', @ns);
	}
	delete $c->{$_} foreach @ns;
	if ($R->{partition_writes} && chance(0.4))
	{
		return join(";\n", map { "DELETE FROM $_ WHERE " . key_match('', @ns) } @{ $R->{parts} });
	}
	return 'DELETE FROM ' . wrel() . ' WHERE ' . key_match('', @ns);
}

# a flagged row that is live again (flag mode)
sub op_undelete
{
	my ($w) = @_;
	my $c = cur($w);
	my @dead = untied($w, present_keys($w, 1));
	return undef unless @dead;
	my @ns = some_of(3, @dead);
	$c->{$_} = 0 foreach @ns;
	return log_versions($w, 0, @ns) if $R->{kind} eq 'log';
	return 'UPDATE ' . wrel() . ' SET ' . qi($R->{flag}) . ' = false, ' . qi($R->{wm}) . ' = ' . wm_value(0)
	  . ' WHERE ' . key_match('', @ns);
}

sub op_keychange
{
	my ($w) = @_;
	return undef if $R->{flag} || $R->{kind} eq 'log';
	my $c = cur($w);
	my @live = present_keys($w, 0);
	return undef unless @live;
	my $old = pick(@live);
	my @k = key_names();
	if ($KEYTYPES{ $R->{keytype} }{spell} && chance(0.5))
	{
		# the same key in another spelling (or, by chance, its own): a key
		# change its type's equality does not see; the model's key stays
		my @l = $R->{keylit}->($old, rnd(4));
		$R->{respelled} = 1;
		my @sets = map { "$k[$_] = $l[$_]" } 0 .. $#k;
		# sometimes nothing else changes, where the strategy must see that
		push @sets, qi($R->{wm}) . ' = ' . wm_value(0)
		  unless $R->{silent_updates} && bare_respell_ok() && chance(0.4);
		push @sets, map { qi($_->{name}) . ' = ' . payload_value($_) } grep { chance(0.3) } @{ $R->{payload} };
		$R->{touched}[$w]{$old} = 1;
		return 'UPDATE ' . wrel() . ' SET ' . join(', ', @sets) . ' WHERE ' . key_match('', $old);
	}
	my $new = absent_key($w, 0);
	$R->{asof_skip}{$new} = 1 if asof_on() && !gate('history_key_change_toast');
	delete $c->{$old};
	$c->{$new} = 0;
	my @l = keylits_spelled($new);
	my @sets = map { "$k[$_] = $l[$_]" } 0 .. $#k;
	push @sets, qi($R->{wm}) . ' = ' . wm_value(0);
	push @sets, map { qi($_->{name}) . ' = ' . payload_value($_) } grep { chance(0.3) } @{ $R->{payload} };
	return 'UPDATE ' . wrel() . ' SET ' . join(', ', @sets) . ' WHERE ' . key_match('', $old);
}

# one write of writer w; undef when there is nothing it can do
sub write_op
{
	my ($w) = @_;
	my $op = pickw(
		insert => 5,
		bulk => 1,
		update => 6,
		delete => 3,
		undelete => ($R->{flag} ? 2 : 0),
		keychange => ($R->{flag} ? 0 : 2));
	my $sql =
		$op eq 'insert' ? op_insert($w, 0)
	  : $op eq 'bulk' ? op_insert($w, 1)
	  : $op eq 'update' ? op_update($w)
	  : $op eq 'delete' ? op_delete($w)
	  : $op eq 'undelete' ? op_undelete($w)
	  : op_keychange($w);
	$sql //= op_insert($w, 0);
	return $sql;
}

# ---------------------------------------------------------------------------
# Steps

sub writers_idle { return !$R->{intx}[1] && !$R->{intx}[2]; }
sub quiescent { return writers_idle() && !$R->{async_busy}; }

sub copy_state { my ($h) = @_; return { %$h }; }

# one step of writer w (1 or 2), or of main (0, autocommit)
sub writer_step
{
	my ($w) = @_;
	my $s = $w ? $writers[ $w - 1 ] : $main;
	if ($w && $R->{intx}[$w] && chance(0.35))
	{
		if (chance(0.2))
		{
			sok($s, 'ROLLBACK');
		}
		else
		{
			sok($s, 'COMMIT');
			$R->{state}[$w] = $R->{view}[$w];
		}
		$R->{intx}[$w] = 0;
		$R->{view}[$w] = undef;
		$R->{touched}[$w] = {};
		return;
	}
	my $begin = '';
	if ($w && !$R->{intx}[$w] && chance(0.6))
	{
		$R->{intx}[$w] = 1;
		$R->{view}[$w] = copy_state($R->{state}[$w]);
		$R->{touched}[$w] = {};
		$begin = "BEGIN;\n";
	}
	my $replica = $R->{replica_writes} && chance(0.1);
	my $before = $R->{intx}[$w] ? copy_state($R->{view}[$w]) : undef;
	my $sql = write_op($w);
	if ($R->{intx}[$w])
	{
		my $sp = chance(0.15) ? pick('rollback', 'release') : undef;
		$sql = "SET LOCAL session_replication_role = replica;\n$sql;\nSET LOCAL session_replication_role = origin"
		  if $replica;
		if ($sp)
		{
			$sql = "SAVEPOINT s;\n$sql;\n" . ($sp eq 'rollback' ? 'ROLLBACK TO SAVEPOINT s' : 'RELEASE SAVEPOINT s');
			$R->{view}[$w] = $before if $sp eq 'rollback';
		}
	}
	elsif ($replica)
	{
		$sql = "BEGIN;\nSET LOCAL session_replication_role = replica;\n$sql;\nCOMMIT";
	}
	sok($s, $begin . $sql);
	$R->{touched}[$w] = {} unless $R->{intx}[$w];
	return;
}

sub truncate_step
{
	return 0 unless $R->{can_truncate} && writers_idle() && !$R->{async_busy};
	my $rel = $R->{table};
	if ($R->{kind} eq 'partitioned' && chance(0.4) && $R->{partition_writes})
	{
		# one partition only: the model forgets the keys it held
		my $i = rnd(3);
		my @all = map { my $w = $_; map { [ $w, $_ ] } sort { $a <=> $b } keys %{ $R->{state}[$w] } } 0 .. 2;
		if (@all)
		{
			my @alias = map { "k$_" } 1 .. scalar @{ $R->{keys} };
			my $vals = join(",\n  ", map { '(' . join(', ', $_->[0], $_->[1], keylits($_->[1])) . ')' } @all);
			foreach my $l (split /\n/, sok($main, "SELECT w, n FROM (VALUES $vals) AS v(w, n, "
					  . join(', ', @alias) . ') WHERE (' . join(', ', @alias) . ') IN (SELECT '
					  . key_list() . " FROM $R->{parts}[$i])"))
			{
				my ($w, $n) = split /\|/, $l;
				delete $R->{state}[$w]{$n};
			}
		}
		sok($main, "TRUNCATE $R->{parts}[$i]");
		asof_collapse();
		$R->{truncated} = $R->{truncate_pending} = 1;
		note_round("truncated partition $i");
		return 1;
	}
	sok($main, "TRUNCATE $rel");
	asof_collapse();
	$R->{state}[$_] = {} foreach 0 .. 2;
	$R->{truncated} = $R->{truncate_pending} = 1;
	note_round('truncated the source');
	return 1;
}

sub last_run
{
	return sok($main, "SELECT run_id, kind, status, rows_extracted, rows_inserted, rows_updated, "
		  . "rows_deleted, rows_unchanged, coalesce(error, '') FROM incetl.run_log "
		  . "WHERE pipeline_id = $R->{id} AND status <> 'skipped' ORDER BY run_id DESC LIMIT 1");
}

sub run_call { return 'CALL incetl.run(' . ql($R->{name}) . ')'; }

# a run from main; returns its run_log row
sub run_step
{
	my (%o) = @_;
	my $quiet = quiescent();
	my %pv;
	my $pvrows = '';
	$o{preview} = 0
	  if $R->{truncate_pending} && !gate('preview_truncate')
	  && ($R->{strategy} eq 'trigger' || $R->{strategy} eq 'logical');
	$o{preview} = 0
	  if $R->{respelled} && !gate('preview_respell')
	  && ($R->{strategy} eq 'trigger' || $R->{strategy} eq 'logical');
	# of a log, preview shows the net effect per key; a run inserts a new
	# key in one batch and updates it with a newer version in the next
	$o{preview} = 0 if $R->{kind} eq 'log';
	if ($quiet && $o{preview})
	{
		# its rows, to show when they are not what the run does
		$pvrows = sok($main, 'SELECT op, key FROM incetl.preview(' . ql($R->{name}) . ') ORDER BY 1, 2');
		$pv{ (split /\|/, $_)[0] }++ foreach split /\n/, $pvrows;
	}
	# run_all runs every enabled pipeline: this round's is the only one
	sok($main, chance(0.15) ? 'CALL incetl.run_all()' : run_call());
	my $row = last_run();
	my @f = split /\|/, $row;
	fail_round("the run did not succeed: $row") unless $f[2] eq 'succeeded';
	$R->{runs}++;
	$R->{truncate_pending} = 0;
	# what was respelled before it, this run has applied
	$R->{respelled} = 0 if $quiet;
	asof_confirm();
	if ($quiet)
	{
		check_equal('after a run with no writer transaction open');
		check_history('after a run with no writer transaction open');
		if ($o{preview})
		{
			my $want = join(' ', map { "$_=" . ($pv{$_} // 0) } qw(insert update delete));
			my $got = "insert=$f[4] update=$f[5] delete=$f[6]";
			fail_round("preview() said $want, the run did $got; preview():\n$pvrows") unless $want eq $got;
		}
		if ($o{rerun})
		{
			sok($main, run_call());
			my @g = split /\|/, last_run();
			fail_round("a run with no source change wrote to the target: @g")
			  unless $g[2] eq 'succeeded' && $g[4] + $g[5] + $g[6] == 0;
		}
	}
	return @f;
}

sub set_ctl
{
	my ($mode, $remaining, $deletes_only) = @_;
	# sometimes only deletes count: a failure in a compare-deletes pass
	my $ops = $mode ne 'off' && ($deletes_only || chance(0.3)) ? '{DELETE}' : '{INSERT,UPDATE,DELETE}';
	sok($main, "UPDATE $R->{ctl} SET mode = '$mode', remaining = " . ($remaining // 0) . ", ops = '$ops'");
	return;
}

# a run that fails on an injected error after k rows written
sub failing_run_step
{
	return if $R->{strategy} eq 'logical' && $R->{truncated} && !gate('logical_truncate_fail');
	my $k = pick(0, rnd(5), rnd($R->{batch_size} + 2), rnd(2 * $R->{batch_size} + 3));
	# with its gate, aim at the known bug: the first delete of the compare
	# pass that a pending TRUNCATE asks for fails
	my $aim = $R->{strategy} eq 'logical' && $R->{truncate_pending} && gate('logical_truncate_fail')
	  && chance(0.9);
	$k = 0 if $aim;
	set_ctl('error', $k, $aim);
	my ($out, $err) = sq($main, run_call());
	set_ctl('off');
	my @f = split /\|/, last_run();
	if (is_error($err))
	{
		fail_round("the injected failure is not what the run reported: $err")
		  unless $err =~ /diff: injected failure/;
		fail_round("the failed run is logged as: @f")
		  unless $f[2] eq 'failed' && $f[8] =~ /diff: injected failure/;
		my $st = sok($main, 'SELECT last_status FROM incetl.status WHERE pipeline = ' . ql($R->{name}));
		fail_round("incetl.status says $st after a failed run") unless $st eq 'failed';
		note_round("a run failed as injected after $k rows");
		$R->{failures}++;
	}
	else
	{
		fail_round("the run did not succeed: @f") unless $f[2] eq 'succeeded';
	}
	return;
}

sub new_async
{
	$async = session_new('async', "SET statement_timeout = '${STMT_TIMEOUT}s'");
	return;
}

# a run in the background that waits on a lock after k rows; terminated
sub terminated_run_step
{
	return if $R->{strategy} eq 'logical' && $R->{truncated} && !gate('logical_truncate_fail');
	my $k = pick(0, rnd(5), rnd($R->{batch_size} + 2), rnd(2 * $R->{batch_size} + 3));
	set_ctl('block', $k);
	sok($main, "SELECT pg_advisory_lock($R->{lockkey})");
	ssend($async, run_call());
	my $pid = '';
	my $deadline = time + $TIMEOUT;
	while (time < $deadline)
	{
		$pid = sok($main, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
			  . "AND classid = 0 AND objid = $R->{lockkey} AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
		last if $pid ne '' || sdone($async);
		usleep(10_000);
	}
	if ($pid ne '')
	{
		my $t = sok($main, "SELECT pg_terminate_backend($pid, 60000)");
		fail_round("could not terminate the run's backend $pid") unless $t eq 't';
		eval { $async->{bg}->{run}->kill_kill; };
		new_async();
		note_round("terminated a run after $k rows");
		$R->{terminated}++;
	}
	else
	{
		my ($out, $err) = swait($async);
		fail_round("the run did not succeed: $err") if is_error($err);
	}
	sok($main, "SELECT pg_advisory_unlock($R->{lockkey})");
	set_ctl('off');
	return;
}

# a run in the background while writers commit; another run alongside may
# be skipped.  For a timestamp pipeline the background job is sometimes a
# backfill, which takes a lock of its own: the run alongside then really
# runs, and the backfill must not regress what it wrote
sub async_run_step
{
	my $backfill = $R->{strategy} eq 'timestamp' && chance(0.3);
	ssend($async, $backfill
		? 'CALL incetl.backfill(' . ql($R->{name}) . ", now() - interval '1 day', now() + interval '1 hour', interval '"
		  . pick('1 minute', '1 hour', '1 day') . "')"
		: run_call());
	$R->{async_busy} = 1;
	foreach (1 .. between(1, 4))
	{
		writer_step(between(1, 2));
	}
	if ($backfill ? gate('backfill_alongside_run') && chance(0.8) : chance(0.3))
	{
		my ($out, $err) = sq($main, run_call());
		fail_round("a run alongside another failed: $err") if is_error($err);
	}
	my ($out, $err) = swait($async);
	$R->{async_busy} = 0;
	fail_round("the background run failed: $err") if is_error($err);
	return;
}

# a run in a transaction block, committed or rolled back
sub txn_run_step
{
	my $commit = chance(0.6);
	sok($main, 'BEGIN; ' . run_call() . '; ' . ($commit ? 'COMMIT' : 'ROLLBACK'));
	return;
}

sub alter_step
{
	my @o;
	my $what = pickw(batch => 5, lookback => (defined $R->{lookback} ? 1 : 0),
		hash_algorithm => ($R->{strategy} eq 'hash' && gate('hash_empty_state') ? 1 : 0), enabled => 1,
		dd => ($R->{strategy} eq 'timestamp' && $R->{dd} eq 'none' ? 1 : 0));
	if ($what eq 'batch')
	{
		$R->{batch_size} = between(1, 50);
		@o = ("batch_size => $R->{batch_size}");
	}
	elsif ($what eq 'lookback')
	{
		# never back to 0: a late row may be waiting for the next run
		@o = ('lookback => ' . ql(pick('10 minutes', '1 hour')));
	}
	elsif ($what eq 'hash_algorithm')
	{
		# never from a digest to hash64 unless the round is canon (see
		# configure())
		$R->{hash_algorithm} = $R->{canon} ? pick('hash64', 'sha256') : pick('sha256', 'sha512', 'md5');
		@o = ('hash_algorithm => ' . ql($R->{hash_algorithm}));
	}
	elsif ($what eq 'dd')
	{
		$R->{dd} = 'compare';
		@o = (q{delete_detection => 'compare'});
	}
	else
	{
		sok($main, 'SELECT incetl.alter_pipeline(' . ql($R->{name}) . ', enabled => false)');
		my ($out, $err) = sq($main, run_call());
		fail_round("a disabled pipeline ran: $out") unless $err =~ /is disabled/;
		@o = ('enabled => true');
	}
	sok($main, 'SELECT incetl.alter_pipeline(' . ql($R->{name}) . ', ' . join(', ', @o) . ')');
	note_round("alter_pipeline(@o)");
	return;
}

sub backfill_step
{
	return unless $R->{strategy} eq 'timestamp';
	my $lo = pick("now() - interval '1 day'", "now() - interval '10 minutes'", "'-infinity'");
	my $hi = pick("now() + interval '1 hour'", 'now()');
	$hi = "'infinity'" if gate('backfill_infinity') && chance(0.3);
	$lo = "now() - interval '1 day'" if $lo eq "'-infinity'" && !gate('backfill_infinity');
	my $chunk = pick('1 minute', '1 hour', '1 day');
	my $call = 'CALL incetl.backfill(' . ql($R->{name}) . ", ($lo)::timestamptz, ($hi)::timestamptz, interval '$chunk')";
	# an infinite bound: a backfill still going after 10s never ends
	$call = "SET statement_timeout = '10s';\n$call;\nSET statement_timeout = '${STMT_TIMEOUT}s'"
	  if $hi eq "'infinity'" || $lo eq "'-infinity'";
	sok($main, $call);
	my @f = split /\|/, last_run();
	fail_round("the backfill did not succeed: @f") unless $f[1] eq 'backfill' && $f[2] eq 'succeeded';
	return;
}

sub reconcile_step
{
	return if $R->{flag} && !gate('flag_reconcile');
	sok($main, 'CALL incetl.reconcile(' . ql($R->{name}) . ')');
	asof_collapse();
	my @f = split /\|/, last_run();
	fail_round("the reconcile did not succeed: @f") unless $f[1] eq 'reconcile' && $f[2] eq 'succeeded';
	if (quiescent())
	{
		check_equal('after reconcile with no writer transaction open');
		check_history('after reconcile with no writer transaction open');
	}
	return;
}

sub reset_step
{
	sok($main, 'SELECT incetl.reset_watermark(' . ql($R->{name}) . ')');
	asof_collapse();
	note_round('reset_watermark');
	return;
}

# ---------------------------------------------------------------------------
# Checks

sub diff_rows
{
	my ($a, $b) = @_;
	return sok($main, "SELECT count(*) FROM ($a EXCEPT $b) x");
}

# Rows equal by their types may still differ (numeric 1.0 and 1.000, 'abc'
# and 'ABC' under a case-insensitive collation, ...), and the target must
# hold the source's values (README, How a run works 5): the checks also
# compare the rows' text, which tells those apart.  Both sides are printed
# by main in one statement, so one set of output settings prints them; in
# a transaction of its own whose extra_float_digits prints every float
# exactly (a round's runner may print fewer digits, which would hide a
# difference).  Returns the query's output.
sub in_image_txn
{
	my ($sql) = @_;
	return sok($main, "BEGIN;\nSET LOCAL extra_float_digits = 3;\n$sql;\nCOMMIT");
}

# the rows of query q as their text images
sub images { my ($q) = @_; return "SELECT x::text AS img FROM ($q) AS x"; }

# how many rows of a are not in b, by their text (bag: with ALL)
sub diff_images
{
	my ($a, $b, $all) = @_;
	return (diff_images2($a, $b, $b, $a, $all))[0];
}

# diff_images of (a, b) and of (c, d), in one statement
sub diff_images2
{
	my ($a, $b, $c, $d, $all) = @_;
	$all = $all ? ' ALL' : '';
	return split /\|/, in_image_txn('SELECT (SELECT count(*) FROM (' . images($a) . " EXCEPT$all " . images($b)
		  . ') d), (SELECT count(*) FROM (' . images($c) . " EXCEPT$all " . images($d) . ') d)');
}

# up to 10 of those rows, each as "<label>: <row>"
sub image_detail
{
	my ($label, $a, $b, $all) = @_;
	$all = $all ? ' ALL' : '';
	return in_image_txn("SELECT '$label: ' || img FROM (" . images($a) . " EXCEPT$all " . images($b)
		  . ') d ORDER BY 1 LIMIT 10');
}

# the source's current rows: of a log, the newest version of each key
sub src_current
{
	return $R->{src} unless $R->{kind} eq 'log';
	my $k = key_list();
	return "(SELECT DISTINCT ON ($k) * FROM $R->{src} ORDER BY $k, " . qi($R->{seqcol}) . ' DESC) AS cur';
}

sub check_equal
{
	my ($when) = @_;
	my $cols = mapped_cols();
	my $live = $R->{flag} ? ' WHERE ' . qi($R->{flag}) . ' IS NOT TRUE' : '';
	my $src = "SELECT $cols FROM " . src_current() . $live;
	my $tlive = $R->{soft} ? ' WHERE is_deleted IS NOT TRUE' : '';
	my $tgt = "SELECT $cols FROM $R->{tgt}$tlive";
	my $extra_q = $tgt;
	if ($R->{strategy} eq 'timestamp' && $R->{dd} eq 'none')
	{
		# deletes are not propagated: only keys the source has count
		my $k = key_list();
		$extra_q = "SELECT $cols FROM $R->{tgt} WHERE "
		  . ($R->{soft} ? 'is_deleted IS NOT TRUE AND ' : '')
		  . "($k) IN (SELECT $k FROM " . src_current() . "$live)";
	}
	my $missing = diff_rows($src, $tgt);
	my $extra = diff_rows($extra_q, $src);
	my @bad;
	push @bad, "$missing source row(s) missing or different in the target" if $missing;
	push @bad, "$extra target row(s) not in the source" if $extra;
	# the same by the rows' text, where the types' equality saw none
	my ($imissing, $iextra) = (0, 0);
	if (!@bad)
	{
		($imissing, $iextra) = diff_images2($src, $tgt, $extra_q, $src);
		push @bad, "$imissing source row(s) whose text differs from the target's (equal by their types)"
		  if $imissing;
		push @bad, "$iextra target row(s) whose text is not in the source (equal by their types)" if $iextra;
	}
	if ($R->{soft} && $R->{deleted_at})
	{
		my $n = sok($main, "SELECT count(*) FROM $R->{tgt} WHERE (is_deleted IS TRUE) <> (deleted_at IS NOT NULL)");
		push @bad, "$n target row(s) whose deleted_at disagrees with is_deleted" if $n;
	}
	if (@bad)
	{
		my $detail;
		if ($imissing || $iextra)
		{
			$detail = image_detail('source', $src, $tgt) . "\n" . image_detail('target', $extra_q, $src);
		}
		else
		{
			$detail = sok($main, "SELECT 'source: ' || x::text FROM ($src EXCEPT $tgt) x LIMIT 10");
			$detail .= "\n" . sok($main, "SELECT 'target: ' || x::text FROM ($extra_q EXCEPT $src) x LIMIT 10");
		}
		fail_round("target differs from source $when: " . join('; ', @bad) . "\n$detail");
	}
	$R->{checks}++;
	return;
}

# the history table (SPEC 5), where the target equals the source: at most
# one current version per key, no overlapping versions, valid_to after
# valid_from, and the current versions are the target's live rows
sub check_history
{
	my ($when) = @_;
	return unless $R->{hist};
	my @k = key_names();
	my $k = key_list();
	my @c = @k;
	push @c, map { $_->{cmp} ? qi($_->{name}) . "::$_->{cmp}" : qi($_->{name}) } @{ $R->{payload} };
	push @c, qi($R->{wm});
	my $cols = join(', ', @c);
	my $cur = "SELECT $cols FROM $R->{hist} WHERE valid_to IS NULL";
	my $tgt = "SELECT $cols FROM $R->{tgt}" . ($R->{soft} ? ' WHERE is_deleted IS NOT TRUE' : '');
	my @bad;
	my $n = diff_rows($cur, $tgt) || diff_images($cur, $tgt);
	push @bad, "$n current version(s) unlike any live target row (by type or by text)" if $n;
	$n = diff_rows($tgt, $cur) || diff_images($tgt, $cur);
	push @bad, "$n live target row(s) without an equal current version (by type or by text)" if $n;
	$n = sok($main, "SELECT count(*) FROM (SELECT $k FROM $R->{hist} WHERE valid_to IS NULL "
		  . "GROUP BY $k HAVING count(*) > 1) x");
	push @bad, "$n key(s) with two current versions" if $n;
	$n = sok($main, "SELECT count(*) FROM $R->{hist} a JOIN $R->{hist} b ON ("
		  . join(', ', map { "a.$_" } @k) . ') = (' . join(', ', map { "b.$_" } @k)
		  . ') AND a.valid_from < b.valid_from AND (a.valid_to IS NULL OR a.valid_to > b.valid_from)');
	push @bad, "$n pair(s) of overlapping versions" if $n;
	$n = sok($main, "SELECT count(*) FROM $R->{hist} WHERE valid_to <= valid_from");
	push @bad, "$n version(s) ending before they start" if $n;
	if (@bad)
	{
		my $detail = image_detail('history', $cur, $tgt) . "\n" . image_detail('target', $tgt, $cur);
		fail_round("history table wrong $when: " . join('; ', @bad) . "\n$detail");
	}
	return;
}

# ---------------------------------------------------------------------------
# The as-of promise of a 'logical' history (see the head of this file)

sub asof_on { return $R->{hist} && $R->{strategy} eq 'logical'; }

# the compared columns: key, payload and watermark, <alias> prefixed
sub asof_cols
{
	my ($alias) = @_;
	my @c = map { $alias . $_ } key_names();
	push @c, map { $_->{cmp} ? "$alias" . qi($_->{name}) . "::$_->{cmp}" : $alias . qi($_->{name}) }
	  @{ $R->{payload} };
	push @c, $alias . qi($R->{wm});
	return join(', ', @c);
}

# a copy of the source at T, where the source is as it was at every
# moment since the last commit: no writer transaction open, no run in
# flight (a run does not write the source, but its end is where copies
# stop being dropped)
sub asof_copy
{
	return unless asof_on() && quiescent() && !$R->{asof_blind};
	my @raw = (key_names(), (map { qi($_->{name}) } @{ $R->{payload} }), qi($R->{wm}));
	sok($main, "WITH t AS (INSERT INTO $R->{asof_t} VALUES (clock_timestamp(), false) RETURNING t) "
		  . "INSERT INTO $R->{asof_rows} SELECT t.t, " . join(', ', map { "s.$_" } @raw)
		  . " FROM $R->{src} AS s, t");
	return;
}

# a run succeeded: the copies so far are the history's to match
sub asof_confirm
{
	return unless asof_on();
	sok($main, "UPDATE $R->{asof_t} SET ok = true WHERE NOT ok");
	$R->{asof_blind} = 0;
	return;
}

# a TRUNCATE, reset_watermark or reconcile: copies since the last run go,
# and none are made until the next
sub asof_collapse
{
	return unless asof_on();
	sok($main, "DELETE FROM $R->{asof_rows} WHERE asof_t IN (SELECT t FROM $R->{asof_t} WHERE NOT ok)");
	sok($main, "DELETE FROM $R->{asof_t} WHERE NOT ok");
	$R->{asof_blind} = 1;
	return;
}

sub check_asof
{
	return unless asof_on();
	my $at = "h.valid_from <= a.t AND (h.valid_to IS NULL OR h.valid_to > a.t)";
	my $hist = "SELECT a.t, " . asof_cols('h.') . " FROM $R->{asof_t} AS a JOIN $R->{hist} AS h ON $at"
	  . ' WHERE a.ok';
	my $src = "SELECT r.asof_t, " . asof_cols('r.') . " FROM $R->{asof_rows} AS r JOIN $R->{asof_t} AS a"
	  . ' ON a.t = r.asof_t WHERE a.ok';
	# keys a key change made, unless its gate is on (%GATES)
	my @skip = sort { $a <=> $b } keys %{ $R->{asof_skip} // {} };
	if (@skip)
	{
		$hist .= ' AND NOT ' . key_match('h', @skip);
		$src .= ' AND NOT ' . key_match('r', @skip);
	}
	my $n = sok($main, "SELECT count(*) FROM $R->{asof_t} WHERE ok");
	my $bad = sok($main, "SELECT count(*) FROM (($hist EXCEPT ALL $src) UNION ALL ($src EXCEPT ALL $hist)) x");
	# the same by the rows' text (see diff_images)
	if (!$bad)
	{
		my ($x, $y) = diff_images2($hist, $src, $src, $hist, 1);
		$bad = $x + $y;
	}
	if ($bad)
	{
		my $detail = image_detail('history', $hist, $src, 1) . "\n" . image_detail('source', $src, $hist, 1);
		fail_round("history as of T is not the source at T ($bad row(s) differ over $n copies)\n$detail");
	}
	note_round("history as of T equals the source at T for $n copies") if $n;
	$R->{asof_checked} += $n;
	return;
}

sub check_state_tables
{
	my $live = $R->{flag} ? ' WHERE ' . qi($R->{flag}) . ' IS NOT TRUE' : '';
	if ($R->{strategy} eq 'trigger')
	{
		my $n = sok($main, "SELECT count(*) FROM incetl.queue_$R->{id}");
		fail_round("the capture queue holds $n entries after the last run") if $n;
	}
	if ($R->{strategy} eq 'hash')
	{
		my ($h, $s) = split /\|/, sok($main, "SELECT (SELECT count(*) FROM incetl.hash_state_$R->{id}), (SELECT count(*) FROM $R->{src})");
		fail_round("the hash state holds $h keys, the source $s") unless $h == $s;
	}
	return;
}

sub check_run_log
{
	my $rows = sok($main, "SELECT run_id, kind, status, coalesce(rows_extracted, -1), coalesce(rows_inserted, -1), "
		  . "coalesce(rows_updated, -1), coalesce(rows_deleted, -1), coalesce(rows_unchanged, -1) "
		  . "FROM incetl.run_log WHERE pipeline_id = $R->{id} ORDER BY run_id");
	my ($sum_ins, $sum_del) = (0, 0);
	my %wrote;
	my $compare = ($R->{strategy} eq 'timestamp' && $R->{dd} eq 'compare')
	  || $R->{strategy} eq 'trigger' || $R->{strategy} eq 'logical';
	my @bad;
	foreach my $l (split /\n/, $rows)
	{
		my ($id, $kind, $status, $ex, $ins, $upd, $del, $unch) = split /\|/, $l;
		push @bad, "run $id is still $status" if $status eq 'running';
		next if $status eq 'skipped';
		if (grep { $_ < 0 } $ex, $ins, $upd, $del, $unch)
		{
			push @bad, "run $id ($kind, $status) has a NULL or negative count: $l";
			next;
		}
		my $sum = $ins + $upd + $del + $unch;
		if ($kind eq 'run' && $compare)
		{
			# a compare-deletes pass deletes rows it did not extract
			push @bad, "run $id: extracted $ex, but inserted+updated+deleted+unchanged = $sum (deleted $del)"
			  unless $sum >= $ex && $sum - $ex <= $del;
		}
		else
		{
			push @bad, "run $id ($kind): extracted $ex <> inserted+updated+deleted+unchanged = $sum"
			  unless $sum == $ex;
		}
		$sum_ins += $ins;
		$sum_del += $del;
		$wrote{$id} = $ins + $upd + $del;
	}
	my $count = sok($main, "SELECT count(*) FROM $R->{tgt}");
	my $want = $R->{target_rows0} + $sum_ins - ($R->{soft} ? 0 : $sum_del);
	push @bad, "the target holds $count rows; run_log says " . ($R->{soft}
		  ? "$R->{target_rows0} + $sum_ins inserted"
		  : "$R->{target_rows0} + $sum_ins inserted - $sum_del deleted = $want")
	  unless $count == $want;
	if ($R->{etl})
	{
		foreach my $l (split /\n/, sok($main, "SELECT etl_run_id, count(*), "
				  . "count(*) FILTER (WHERE etl_updated_at IS NULL OR etl_inserted_at > etl_updated_at) "
				  . "FROM $R->{tgt} "
				  . "WHERE etl_run_id IS NOT NULL GROUP BY 1"))
		{
			my ($id, $n, $badts) = split /\|/, $l;
			push @bad, "$n target rows name run $id, which "
			  . (exists $wrote{$id} ? "wrote only $wrote{$id}" : 'is not a run of this pipeline')
			  unless exists $wrote{$id} && $wrote{$id} >= $n;
			push @bad, "$badts target rows of run $id have etl_inserted_at/etl_updated_at wrong" if $badts;
		}
	}
	fail_round("run_log does not add up:\n  " . join("\n  ", @bad)) if @bad;
	return;
}

# ---------------------------------------------------------------------------
# A round

sub preload
{
	# rows before the pipeline exists, and sometimes target rows already
	if (chance(0.7))
	{
		foreach my $w (0 .. 2)
		{
			sok($main, op_insert($w, 1)) if chance(0.7);
		}
	}
	$R->{target_rows0} = 0;
	# a hash pipeline's first run would keep target rows whose keys the
	# source loses before it (gate hash_empty_state)
	if (chance(0.25) && %{ $R->{state}[0] } && ($R->{strategy} ne 'hash' || gate('hash_empty_state')))
	{
		# stale copies of some source rows; for strategies whose first run
		# compares with the target (not hash), also keys the source lacks
		my $cols = join(', ', key_names(), map { qi($_->{name}) } @{ $R->{payload} });
		sok($main, "INSERT INTO $R->{tgt} ($cols) SELECT $cols FROM " . src_current() . ' LIMIT 5');
		my $extra = $R->{strategy} ne 'hash'
		  && !($R->{strategy} eq 'timestamp' && $R->{dd} ne 'compare');
		if ($extra)
		{
			my $n = fresh_key(0);
			sok($main, "INSERT INTO $R->{tgt} (" . key_list() . ') VALUES (' . join(', ', keylits($n)) . ')');
		}
		$R->{target_rows0} = sok($main, "SELECT count(*) FROM $R->{tgt}");
	}
	return;
}

sub finish_round
{
	# writers end their transactions
	foreach my $w (1, 2)
	{
		next unless $R->{intx}[$w];
		if (chance(0.8))
		{
			sok($writers[ $w - 1 ], 'COMMIT');
			$R->{state}[$w] = $R->{view}[$w];
		}
		else
		{
			sok($writers[ $w - 1 ], 'ROLLBACK');
		}
		$R->{intx}[$w] = 0;
	}
	set_ctl('off');
	run_step(preview => chance(0.5));
	run_step(rerun => 1);
	check_equal('at the end');
	check_history('at the end');
	check_asof();
	check_state_tables();
	check_run_log();
	my $st = sok($main, 'SELECT last_status FROM incetl.status WHERE pipeline = ' . ql($R->{name}));
	fail_round("incetl.status says $st after the last run") unless $st eq 'succeeded';
	return;
}

sub cleanup_round
{
	my $r = $R;
	return unless $r && $main;
	foreach my $s (@writers) { eval { sq($s, 'ROLLBACK') }; }
	eval { sq($main, 'ROLLBACK'); };
	eval { sq($main, "SELECT pg_advisory_unlock_all()"); };
	eval { sq($main, 'SELECT incetl.drop_pipeline(' . ql($r->{name}) . ')') if $r->{id}; };
	eval {
		sq($main, "DROP VIEW IF EXISTS $r->{src}") if $r->{kind} eq 'view';
		sq($main, "DROP TABLE IF EXISTS $r->{table}, $r->{tgt}, $r->{ctl} CASCADE") if $r->{table};
		sq($main, "DROP FUNCTION IF EXISTS $r->{guardfn}()");
		sq($main, "DROP TABLE IF EXISTS $r->{asof_t}, $r->{asof_rows}") if $r->{asof_t};
	};
	return;
}

sub play_round
{
	my ($seed) = @_;
	$R = configure($seed);
	my $logfile = "$PostgreSQL::Test::Utils::tmp_check/diff_round_$seed.sql";
	open($LOGFH, '>', $logfile) or die "cannot write $logfile: $!";
	$LOGFH->autoflush(1);
	print $LOGFH "-- round seed $seed: " . describe($R) . "\n";
	note_round(describe($R));
	model_init();

	# settings of the previous round go; this round's come
	sok($main, 'RESET ALL');
	sok($_, 'RESET ROLE') foreach @writers;
	sok($main, $_) foreach ('SET client_min_messages = warning', 'SET incetl.late_commit_margin = 0',
		"SET statement_timeout = '${STMT_TIMEOUT}s'", @{ $R->{settings} });
	setup_round();
	preload();
	create_pipeline();
	# a logical pipeline's first run creates its slot, which waits for
	# transactions that are writing to end (README): it runs now, while the
	# writers have none open, not while the test waits for them
	run_step() if $R->{strategy} eq 'logical' || chance(0.5);

	for my $i (1 .. $R->{steps})
	{
		my $step = pickw(
			write => 10,
			run => 4,
			failing => 1,
			terminated => 1,
			async => 1.5,
			txn_run => 0.7,
			alter => 0.7,
			backfill => ($R->{strategy} eq 'timestamp' ? 0.6 : 0),
			reconcile => 0.5,
			truncate => (!$R->{can_truncate} ? 0
				: $R->{strategy} eq 'logical' && gate('logical_truncate_fail') ? 2 : 0.4),
			reset => 0.2);
		if ($step eq 'write')
		{
			foreach (1 .. between(1, 4))
			{
				writer_step(rnd(3));
				asof_copy();
			}
		}
		elsif ($step eq 'run') { run_step(preview => chance(0.3), rerun => chance(0.2)); }
		elsif ($step eq 'failing') { failing_run_step(); }
		elsif ($step eq 'terminated') { terminated_run_step(); }
		elsif ($step eq 'async') { async_run_step(); }
		elsif ($step eq 'txn_run') { txn_run_step(); }
		elsif ($step eq 'alter') { alter_step(); }
		elsif ($step eq 'backfill') { backfill_step(); }
		elsif ($step eq 'reconcile') { reconcile_step(); }
		elsif ($step eq 'truncate') { truncate_step(); }
		elsif ($step eq 'reset') { reset_step(); }
		asof_copy();
	}
	finish_round();
	note_round(sprintf('%d runs, %d equality checks, %d injected failures, %d terminated runs',
		$R->{runs} // 0, $R->{checks} // 0, $R->{failures} // 0, $R->{terminated} // 0));
	return;
}

# ---------------------------------------------------------------------------
# Main

$node = incetl_node('diff', conf => "max_connections = 40\nmax_replication_slots = 20\n"
	  . "max_wal_senders = 20\nshared_buffers = 64MB\n");
$node->safe_psql('postgres', q{
CREATE EXTENSION citext; CREATE EXTENSION ltree; CREATE EXTENSION cube; CREATE EXTENSION isn;
CREATE DOMAIN public.diff_posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN public.diff_posnum AS numeric CHECK (VALUE > 0);
CREATE TYPE public.diff_mood AS ENUM ('sad', 'ok', 'happy');
CREATE COLLATION public.diff_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE ROLE diff_owner REPLICATION;
CREATE ROLE diff_writer;
});

sub open_sessions
{
	$main = session_new('main', q{LOAD 'incetl'}, 'SET incetl.late_commit_margin = 0');
	@writers = (session_new('w1'), session_new('w2'));
	new_async();
	return;
}

sub close_sessions
{
	my ($hard) = @_;
	if ($hard)
	{
		# after a failure a session may be stuck in a statement: end the
		# backends, then the psql processes, without waiting on them
		$node->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()});
		foreach my $s (grep { defined } $main, @writers, $async)
		{
			eval { $s->{bg}->{run}->kill_kill; };
		}
	}
	else
	{
		session_end($_) foreach ($main, @writers, $async);
	}
	($main, @writers, $async) = (undef);
	@writers = ();
	return;
}

diag "differential test: first seed $SEED, "
  . ($SECONDS ? "rounds for ${SECONDS}s" : "$ROUNDS rounds")
  . (%known ? ', known-bug workloads on: ' . join(', ', sort keys %known) : '');

# does the configuration of a seed match INCETL_DIFF_ONLY?
sub wanted
{
	my ($seed) = @_;
	return 1 unless %ONLY;
	my $c = configure($seed);
	foreach my $k (keys %ONLY)
	{
		return 0 unless ($c->{$k} // '') eq $ONLY{$k};
	}
	return 1;
}

open_sessions();
my $start = time;
my ($played, $failed, $skipped) = (0, 0, 0);
for (my $seed = $SEED;; $seed++)
{
	last if $ROUNDS && $played >= $ROUNDS;
	last if $SECONDS && time - $start >= $SECONDS;
	if (!wanted($seed))
	{
		die 'INCETL_DIFF_ONLY matches no seed in 100000' if ++$skipped > 100_000;
		next;
	}
	my $t0 = time;
	my $ok = eval { play_round($seed); 1 };
	my $err = $@;
	close $LOGFH if $LOGFH;
	undef $LOGFH;
	$played++;
	my $logfile = "$PostgreSQL::Test::Utils::tmp_check/diff_round_$seed.sql";
	if ($ok)
	{
		pass("round seed $seed: " . describe($R) . sprintf(' (%ds)', time - $t0));
		unlink $logfile unless $KEEP_SQL;
		cleanup_round();
	}
	else
	{
		$failed++;
		fail("round seed $seed: " . describe($R));
		diag "round seed $seed FAILED: $err";
		my $dump = eval {
			sok($main, "SELECT run_id, kind, status, batches, rows_extracted, rows_inserted, rows_updated, "
				  . "rows_deleted, rows_unchanged, watermark_before, watermark_after, error FROM incetl.run_log "
				  . "WHERE pipeline_id = $R->{id} ORDER BY run_id")
			  . "\n" . sok($main, "SELECT watermark, watermark_key FROM incetl.state WHERE pipeline_id = $R->{id}");
		};
		diag "  run_log (run_id|kind|status|batches|extracted|ins|upd|del|unch|wm before|wm after|error) and state:\n$dump"
		  if defined $dump;
		diag "  replay: " . replay_cmd($seed);
		diag "  its SQL, session by session: $logfile";
		# the sessions may be unusable now: start afresh
		close_sessions(1);
		open_sessions();
		cleanup_round();
	}
	$R = undef;
}
close_sessions();
diag "differential test: $played rounds, $failed failed, " . (time - $start) . 's';
$node->stop;
done_testing();
