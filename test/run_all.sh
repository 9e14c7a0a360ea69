#!/bin/bash
# test/run_all.sh -- the whole incetl test suite, from a fresh Debian 12
#
#   bash test/run_all.sh
#
# Run as root on a machine with postgresql-15 installed: installs what is
# missing (apt), builds and installs incetl, then runs the regression,
# isolation and TAP suites, each on a temporary instance of its own.  Those
# refuse to run as root, so the checkout is copied to a scratch directory
# owned by the postgres OS user and the suites run there as that user.
# Prints the diffs or logs of what failed and ends with one line,
# "N passed, M failed" (regression tests + isolation specs + TAP scripts);
# the exit status is non-zero when anything failed.
#
# Also works as an ordinary user once the packages are there (make install
# then goes through sudo).  KEEP=1 keeps the scratch directory.
#
# For development: SUITES="regress isolation tap" picks suites, and REGRESS,
# ISO_TESTS and PROVE_TESTS (e.g. REGRESS="00_setup 30_security") narrow
# them.  Runs on one machine take turns (flock on /tmp/incetl-run.lock),
# because each installs its own build of incetl into the server.

set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
SRC=$(pwd)
. test/lib.sh

# Expected outputs are made in a UTF-8 C locale; do not depend on the
# caller's (a fresh container often has none, which gives SQL_ASCII).
export LC_ALL=C.UTF-8 LANG=C.UTF-8
unset PGHOST PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS

PASSED=0
FAILED=0
START=$SECONDS

summary() {
	echo "${PASSED} passed, ${FAILED} failed"
}

setup_failed() {
	echo "error: $*" >&2
	[ -n "${WORK:-}" ] && echo "build directory kept: $WORK" >&2
	FAILED=$((FAILED + 1))
	summary
	exit 1
}

exec 9>/tmp/incetl-run.lock
flock 9

incetl_install_deps test || setup_failed "installing the build and test dependencies failed"

# Citus, for t/100_citus.pl and t/101_citus_stage.pl: Citus's own packages
# on a user's machine; here, when it is missing, built from ../shared/vendor
# if that folder exists (it does in CI).  Without either, those tests say
# they are skipped.
CITUS_NOTE=
if [[ " ${SUITES:-regress isolation tap} " == *" tap "* ]] &&
	[ ! -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ]; then
	CITUS_BUILD=${INCETL_CITUS_BUILD:-$SRC/../shared/vendor/build-citus.sh}
	if [ -f "$CITUS_BUILD" ] && [ "$(id -u)" -eq 0 ]; then
		incetl_log "building Citus from $CITUS_BUILD (a few minutes)"
		bash "$CITUS_BUILD" </dev/null ||
			CITUS_NOTE="building Citus failed: the Citus tests (t/100_citus.pl, t/101_citus_stage.pl) are skipped"
	else
		CITUS_NOTE="Citus is not installed and $CITUS_BUILD is not there (or not root): the Citus tests (t/100_citus.pl, t/101_citus_stage.pl) are skipped"
	fi
	[ -n "$CITUS_NOTE" ] && incetl_log "$CITUS_NOTE"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/incetl-check.XXXXXX") || setup_failed "mktemp failed"
chmod 755 "$WORK"
incetl_snapshot "$SRC" "$WORK" || setup_failed "copying the checkout to $WORK failed"
incetl_build_install "$WORK" || setup_failed "build failed"

# A test that hangs (a run that never ends, say) must not hang CI: each
# suite gets this many seconds, then it is killed and counts as failed.
SUITE_TIMEOUT=${INCETL_SUITE_TIMEOUT:-1200}

# run_suite NAME TARGET [VAR=value...]: run "make TARGET" (with those
# variables) in the scratch copy as the unprivileged user, output to the
# terminal and to $WORK/NAME.log; sets SUITE_RC and SUITE_SECS.
run_suite() {
	local name=$1 target=$2 t0=$SECONDS
	shift 2
	echo
	incetl_log "$name (make $target${*:+ $*})"
	(cd "$WORK" && incetl_as_user timeout -k 30 "$SUITE_TIMEOUT" \
		make PG_CONFIG="$PG_CONFIG" ${REGRESS:+REGRESS="$REGRESS"} \
		${ISO_TESTS:+ISO_TESTS="$ISO_TESTS"} ${PROVE_TESTS:+PROVE_TESTS="$PROVE_TESTS"} \
		"$@" "$target" </dev/null) 2>&1 | tee "$WORK/$name.log"
	SUITE_RC=${PIPESTATUS[0]}
	SUITE_SECS=$((SECONDS - t0))
	SUITE_TIMEDOUT=
	if [ "$SUITE_RC" -eq 124 ] || [ "$SUITE_RC" -eq 137 ]; then
		SUITE_TIMEDOUT=1
		echo "$name: killed after ${SUITE_TIMEOUT}s (INCETL_SUITE_TIMEOUT)" | tee -a "$WORK/$name.log"
	fi
}

# pg_regress and pg_isolation_regress print one line per test, on 15:
#   test name   ... ok   12 ms   /   ... FAILED   /   ... failed (ignored)
# and from 16 on, TAP style:  ok 1  - name  12 ms   /   not ok 2  - name
count_regress() {
	local log=$1 ok bad
	ok=$(grep -cE '^((test )? *[^ ]+ +\.\.\. ok( |$)|ok [0-9]+ )' "$log")
	bad=$(grep -cE '^((test )? *[^ ]+ +\.\.\. (FAILED|failed)|not ok [0-9]+ )' "$log")
	SUITE_OK=$ok SUITE_BAD=$bad
}

# prove prints "Files=N, Tests=..." and lists each failed script in its
# "Test Summary Report" as "t/x.pl (Wstat: ...".
count_prove() {
	local log=$1 files bad
	files=$(sed -n 's/^Files=\([0-9]*\),.*/\1/p' "$log" | tail -n 1)
	bad=$(grep -cE '^t/[^ ]+\.pl +\(Wstat' "$log")
	SUITE_OK=$(( ${files:-0} - bad )) SUITE_BAD=$bad
}

FAILED_SUITES=()

# settle NAME: add the suite's counts to the totals; a suite that failed
# without naming a failed test (it could not start, say) counts as one
# failure, and so does the test that was running when a suite timed out.
settle() {
	local name=$1
	if [ -n "$SUITE_TIMEDOUT" ] || { [ "$SUITE_RC" -ne 0 ] && [ "$SUITE_BAD" -eq 0 ]; }; then
		SUITE_BAD=$((SUITE_BAD + 1))
	fi
	PASSED=$((PASSED + SUITE_OK))
	FAILED=$((FAILED + SUITE_BAD))
	[ "$SUITE_BAD" -gt 0 ] && FAILED_SUITES+=("$name")
	SUITE_RESULTS+=("$(printf '%-14s %3d passed, %d failed (%ds)' "$name:" "$SUITE_OK" "$SUITE_BAD" "$SUITE_SECS")")
}
SUITE_RESULTS=()

SUITES=${SUITES:-regress isolation tap}

# "make installcheck" runs the regression tests and then the isolation specs
# (PGXS's ISOLATION); ISOLATION= leaves the specs to their own suite below,
# so that each suite has its own log and counts and no spec runs twice.
if [[ " $SUITES " == *" regress "* ]]; then
	run_suite regress installcheck ISOLATION=
	count_regress "$WORK/regress.log"
	settle regress
fi

if [[ " $SUITES " == *" isolation "* ]]; then
	run_suite isolation isolationcheck
	count_regress "$WORK/isolation.log"
	settle isolation
fi

if [[ " $SUITES " == *" tap "* ]]; then
	run_suite tap tapcheck
	count_prove "$WORK/tap.log"
	settle tap
fi

# show_file TITLE FILE [LINES]: print (the end of) a file under a banner.
show_file() {
	local title=$1 file=$2 lines=${3:-}
	[ -s "$file" ] || return 0
	echo
	echo "======== $title: $file"
	if [ -n "$lines" ]; then
		tail -n "$lines" "$file"
	else
		head -n 2000 "$file"
	fi
}

for s in "${FAILED_SUITES[@]}"; do
	case $s in
	regress)
		show_file "regression diffs" "$WORK/regression.diffs"
		show_file "regression server log (end)" "$WORK/log/postmaster.log" 40
		;;
	isolation)
		show_file "isolation diffs" "$WORK/output_iso/regression.diffs"
		show_file "isolation server log (end)" "$WORK/output_iso/log/postmaster.log" 40
		;;
	tap)
		logdir=$WORK/tmp_check_tap/tmp_check/log
		for t in $(grep -oE '^t/[^ ]+\.pl +\(Wstat' "$WORK/tap.log" | sed 's/ .*//'); do
			base=$(basename "$t" .pl)
			show_file "TAP log of $t (end)" "$logdir/regress_log_$base" 80
			for f in "$logdir/${base}"_*.log; do
				[ -e "$f" ] && show_file "server log (end)" "$f" 30
			done
		done
		;;
	esac
done

echo
for r in "${SUITE_RESULTS[@]}"; do
	echo "$r"
done
echo "total time $((SECONDS - START))s"
[ -n "$CITUS_NOTE" ] && echo "note: $CITUS_NOTE"
if [ "$FAILED" -eq 0 ] && [ -z "${KEEP:-}" ]; then
	rm -rf "$WORK"
else
	echo "build directory kept: $WORK"
fi
summary
[ "$FAILED" -eq 0 ]
