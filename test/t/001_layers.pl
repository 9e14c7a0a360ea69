# test/t/001_layers.pl -- the C files call only files below them
#
# README's "Code layout" puts every file of src/ in a layer; a file may call
# functions of its own layer's files and of the layers below, never above
# (and so no two files depend on each other in a circle).  This reads the
# symbols of the built object files (nm): for each function or variable a
# file uses and another file defines, the definer's layer must not be above
# the user's.  Within a layer, a circle is an error too.  A new file must be
# given a layer here, or this test fails.
use strict;
use warnings;

use Test::More;

my @layers = (
	[qw(incetl role lock watermark bulkinsert)],
	[qw(validate)],
	[qw(catalog)],
	[qw(state audit alert)],
	[qw(deparse plancache schema)],
	[qw(changeset)],
	[qw(strategy_timestamp strategy_hash strategy_trigger strategy_logical decode hash)],
	[qw(strategy)],
	[qw(engine)],
	[qw(run pipeline preview explain guard)],
);
my %layer;
for my $i (0 .. $#layers)
{
	$layer{$_} = $i for @{ $layers[$i] };
}

# the objects the Makefile links (a checkout may hold stale others)
my $src = '../src';
open(my $mk, '<', '../Makefile') or die "no Makefile: $!";
my $makefile = do { local $/; <$mk> };
close $mk;
my ($objs) = $makefile =~ /^OBJS\s*=\s*((?:.*\\\n)*.*)$/m;
my @objs = grep { -e $_ } map { s{^src/}{$src/}r } ($objs =~ m{(src/\w+\.o)}g);
plan skip_all => "no object files in $src (build first)" unless @objs;

my (%defs, %uses);
for my $o (@objs)
{
	my ($m) = $o =~ m{/([^/]+)\.o$};
	ok(exists $layer{$m}, "src/$m.c has a layer in this test and in README")
	  or next;
	for my $line (`nm $o`)
	{
		my @f = split ' ', $line;
		if (@f == 3 && $f[1] =~ /^[TDRB]$/) { $defs{ $f[2] } = $m }
		elsif (@f == 2 && $f[0] eq 'U') { push @{ $uses{$m} }, $f[1] }
	}
}

my %edges;
for my $m (sort keys %uses)
{
	for my $sym (@{ $uses{$m} })
	{
		my $d = $defs{$sym};
		next unless defined $d && $d ne $m;
		next unless exists $layer{$d} && exists $layer{$m};
		$edges{$m}{$d} = 1;
		ok($layer{$d} <= $layer{$m}, "src/$m.c uses $sym of src/$d.c")
		  if $layer{$d} > $layer{$m};
	}
}

# no circles (within a layer, where the rule above allows both directions)
for my $m (sort keys %edges)
{
	my %seen;
	my @todo = keys %{ $edges{$m} };
	while (my $x = shift @todo)
	{
		next if $seen{$x}++;
		push @todo, keys %{ $edges{$x} || {} };
	}
	ok(!$seen{$m}, "src/$m.c is not in a circle of calls");
}

done_testing();
