# incetl: incremental ETL inside PostgreSQL
#
# make && make install                 build and install (PGXS)
# make installcheck                    pg_regress tests, then the isolation specs,
#                                      each on a temporary instance of its own
# make isolationcheck                  the isolation specs alone
# make tapcheck                        TAP tests (PostgreSQL::Test::Cluster)
# make check-all                       everything above
# make valgrind                        installcheck under Valgrind (slow)
# make soak [SOAK_SECONDS=600]         the randomized differential test, long (as root)
# make bench                           incetl against hand-written SQL, 1M rows (as root)
# make bench-scale                     the same 1% and nothing-changed runs at 1M and
#                                      10M rows: cost follows the change (as root, ~10 GB)
# make bench-citus                     the same runs into Citus and local tables (as root)

MODULE_big = incetl
OBJS = \
	src/incetl.o \
	src/role.o \
	src/lock.o \
	src/state.o \
	src/catalog.o \
	src/validate.o \
	src/schema.o \
	src/watermark.o \
	src/deparse.o \
	src/plancache.o \
	src/changeset.o \
	src/strategy_timestamp.o \
	src/strategy_hash.o \
	src/strategy_trigger.o \
	src/strategy_logical.o \
	src/strategy.o \
	src/engine.o \
	src/run.o \
	src/pipeline.o \
	src/audit.o \
	src/alert.o \
	src/guard.o \
	src/preview.o \
	src/explain.o \
	src/hash.o \
	src/decode.o \
	src/bulkinsert.o

EXTENSION = incetl
DATA = $(wildcard incetl--*.sql)
# the Prometheus exporter's queries file and the Grafana dashboard built on
# it (README "Operations"), installed into $(pg_config --docdir)/extension/
DOCS = test/monitoring/incetl-exporter-queries.yaml \
	test/monitoring/incetl-grafana-dashboard.json
PGFILEDESC = "incetl - incremental ETL inside PostgreSQL"

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --temp-instance=tmp_check --temp-config=tmp_regress.conf --load-extension=pgcrypto

# The isolation specs are PGXS's own ISOLATION suite: installcheck runs
# pg_isolation_regress after pg_regress.  They live under test/ (specs in
# test/specs/NAME.spec, expected output in test/expected/NAME.out), hence
# --inputdir=test; their own temporary instance and output directory
# (tmp_check_iso, output_iso: PGXS's names, which its clean removes) keep the
# two servers and their regression.diffs apart; they run one after the other.
# ISO_TESTS='run_lock ...' narrows them (so does ISOLATION=... itself);
# ISOLATION= (empty) leaves them out, which is how test/run_all.sh runs the
# regression suite alone before "make isolationcheck" runs the specs alone:
# each suite then has its own log and counts, and no spec runs twice.
# (:= so that PGXS's "ifdef ISOLATION" sees an empty list as none.)
ISO_TESTS = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION := $(ISO_TESTS)
ISOLATION_OPTS = --temp-instance=tmp_check_iso --temp-config=tmp_regress.conf \
	--inputdir=test --outputdir=output_iso --load-extension=pgcrypto

PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers -Wno-cast-function-type

# Only what PostgreSQL looks up by name is exported (PG_FUNCTION_INFO_V1's
# functions, the magic block, _PG_init, _PG_output_plugin_init: declared
# PGDLLEXPORT), as PostgreSQL 16's PGXS does for every module.  Each
# exported symbol that the library also calls itself is bound when a
# session loads it (the server links with -z now) by a search of the server
# and all of its ~40 libraries before the library itself: ~140 such
# look-ups made LOAD 'incetl' cost about 0.8 ms, most of what a run with
# nothing to do costs more than the SQL a user would write.
PG_CPPFLAGS = -fvisibility=hidden '-DPGDLLEXPORT=__attribute__((visibility("default")))'

# what the check targets leave behind (regression.diffs, results/ and
# tmp_check/ are PGXS's own)
EXTRA_CLEAN = output_iso tmp_check_iso tmp_check_tap tmp_regress.conf

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: a changed struct must rebuild every
# object, or objects disagree on its layout
$(OBJS): $(wildcard src/*.h)

# with no specs (or no t/*.pl) these targets say so and succeed
# test/regress.conf, plus incetl in output_plugin_libraries on a server that
# has that setting
tmp_regress.conf: test/regress.conf
	cp test/regress.conf $@
	if "$(bindir)/postgres" --describe-config 2>/dev/null | grep -q '^output_plugin_libraries'; then \
		echo "output_plugin_libraries = 'pgoutput, test_decoding, incetl'" >> $@; \
	fi

installcheck: tmp_regress.conf

# the isolation half of installcheck, on its own (PGXS has added --dbname
# to ISOLATION_OPTS by now)
isolationcheck: all tmp_regress.conf
ifndef ISOLATION
	@echo "isolationcheck: no specs in test/specs, nothing to run"
else
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)
endif

# PROVE_TESTS='t/010_x.pl' narrows the TAP run
TAP_SCRIPTS = $(patsubst test/%,%,$(sort $(wildcard test/t/*.pl)))

tapcheck: all
	rm -rf '$(CURDIR)'/tmp_check_tap && $(MKDIR_P) '$(CURDIR)'/tmp_check_tap
ifeq ($(strip $(PROVE_TESTS)$(TAP_SCRIPTS)),)
	@echo "tapcheck: no TAP tests in test/t, nothing to run"
else
	cd test && TESTDIR='$(CURDIR)/tmp_check_tap' PATH="$(bindir):$$PATH" \
		PG_REGRESS='$(top_builddir)/src/test/regress/pg_regress' \
		$(PROVE) -I '$(top_builddir)/src/test/perl' -I . $(PROVE_FLAGS) \
		$(if $(PROVE_TESTS),$(PROVE_TESTS),$(TAP_SCRIPTS))
endif

check-all: installcheck tapcheck

.PHONY: isolationcheck tapcheck check-all tmp_regress.conf

# make bench [BENCH_N=rows]: incetl against hand-written SQL (test/bench.sh, as root)
bench:
	bash test/bench.sh $(BENCH_N)

# make bench-scale [BENCH_SCALE_SIZES="1000000 10000000"]: the timestamp 1%
# and nothing-changed cases at both sizes, their time ratios and peak memory
# against issue 13's limits (test/bench.sh in scale mode, as root;
# BENCH_SCALE_STRICT=1 exits 1 when a limit is exceeded)
bench-scale:
	BENCH_SCALE=1 $(if $(BENCH_SCALE_SIZES),BENCH_SCALE_SIZES='$(BENCH_SCALE_SIZES)') bash test/bench.sh

# make bench-citus [BENCH_N=rows]: the same runs on local tables and on Citus
# tables (a coordinator and two workers started for it), side by side
# (test/bench_citus.sh, as root; skipped, saying so, without Citus)
bench-citus:
	bash test/bench_citus.sh $(BENCH_N)

.PHONY: bench bench-scale bench-citus

# make valgrind: the regression and isolation suites with every server
# process under Valgrind, on PostgreSQL 15 built from source with
# --enable-cassert and USE_VALGRIND (test/valgrind.sh, as root; slow, not in CI)
valgrind:
	bash test/valgrind.sh

.PHONY: valgrind

# make soak [SOAK_SECONDS=s] [SOAK_SEED=n] [SOAK_ROUNDS=n] [SOAK_KNOWN=gates]:
# the randomized differential test (test/t/080_differential.pl) for SOAK_SECONDS
# (default 600), starting at SOAK_SEED (default: random), through
# test/run_all.sh like CI (as root: it installs the build).  A failing round
# prints its seed and the command that replays it; SOAK_ROUNDS=1 with that
# seed replays one round.  SOAK_KNOWN=1 (or a list of gate names) also
# generates the workloads that known bugs break.
SOAK_SECONDS ?= 600
soak:
	INCETL_DIFF_SEED=$${SOAK_SEED:-$$(od -An -N3 -tu4 /dev/urandom | tr -d ' ')} \
	INCETL_DIFF_SECONDS=$(if $(SOAK_ROUNDS),,$(SOAK_SECONDS)) \
	INCETL_DIFF_ROUNDS=$(SOAK_ROUNDS) INCETL_DIFF_KNOWN=$(SOAK_KNOWN) \
	INCETL_SUITE_TIMEOUT=$$(( $(SOAK_SECONDS) + 1200 )) \
	SUITES=tap PROVE_TESTS=t/080_differential.pl bash test/run_all.sh

.PHONY: soak
