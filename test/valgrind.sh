#!/bin/bash
# test/valgrind.sh -- the regression and isolation suites under Valgrind
#
#   make valgrind            (or: bash test/valgrind.sh)
#
# Run as root on Debian 12.  Memory errors are found by a tool, not by luck:
# this builds PostgreSQL 15 from source with assertions and Valgrind support
# (--enable-cassert, USE_VALGRIND defined in src/include/pg_config_manual.h,
# so that pfree'd and unused memory-context space is marked inaccessible),
# with all of contrib and the isolation tester, installs incetl into it,
# and runs the regression tests ("make installcheck ISOLATION=") and the
# isolation specs ("make isolationcheck") with every server process under
# Valgrind's memcheck.  It then reads the Valgrind logs and prints each
# distinct error once, with its stack.  Exit status: non-zero when a suite
# failed or Valgrind saw an invalid read, write or free.
#
# The source is the one of the installed postgresql-15 package (apt-get
# source; a deb-src entry mirroring the configured deb ones is added when
# there is none), the newest 15.x the archive serves when it no longer has
# that one, or the tarball named by INCETL_PG_TARBALL.  The build is cached:
# on 2 cores it takes 2 to 4 minutes the first time, later runs reuse it.
#
# Slow: the suites take about 17 minutes on 2 cores under Valgrind;
# not in CI.
#
# Environment:
#   INCETL_VALGRIND_PREFIX   where the PostgreSQL build is cached
#                            (default /var/cache/incetl-valgrind/pg15)
#   INCETL_PG_TARBALL        build from this postgresql-15.x.tar.* instead
#   INCETL_VALGRIND_CFLAGS   CFLAGS of that build (default "-Og -g")
#   INCETL_VALGRIND_REBUILD=1   rebuild PostgreSQL even if cached
#   INCETL_VALGRIND_TIMEOUT  seconds per suite before it is killed (14400)
#   INCETL_VALGRIND_EXITCODE=N  a process with a Valgrind error exits with N
#                            (the server then restarts as after a crash and
#                            the running test fails); default: off, the
#                            suites run through and the logs are the verdict
#   INCETL_VALGRIND_STRICT=1 uninitialised-value errors fail the run too
#   INCETL_VALGRIND_EXTRA    more valgrind options for the server
#   KEEP=1                   keep the scratch directory even on success
#                            (it is always kept when something was found)

set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
SRC=$(pwd)
. test/lib.sh

export LC_ALL=C.UTF-8 LANG=C.UTF-8
unset PGHOST PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS

CACHE=${INCETL_VALGRIND_PREFIX:-/var/cache/incetl-valgrind/pg15}
INSTALL=$CACHE/install
VG_CFLAGS=${INCETL_VALGRIND_CFLAGS:-"-Og -g"}
SUITE_TIMEOUT=${INCETL_VALGRIND_TIMEOUT:-14400}
START=$SECONDS

die() {
	echo "error: $*" >&2
	[ -n "${WORK:-}" ] && echo "scratch directory kept: $WORK" >&2
	exit 2
}

# --- dependencies -----------------------------------------------------------

incetl_install_deps build || die "installing the build dependencies failed"
want=(valgrind bzip2 xz-utils libreadline-dev zlib1g-dev libssl-dev pkg-config)
missing=()
for p in "${want[@]}"; do
	_incetl_pkg_installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (run as root)"
	incetl_log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q "${missing[@]}" </dev/null ||
		{ apt-get update -q </dev/null && apt-get install -y -q "${missing[@]}" </dev/null; } ||
		die "apt-get install ${missing[*]} failed"
fi

# --- the PostgreSQL source --------------------------------------------------

# add_deb_src: a deb-src entry for every deb entry of this release's suites
# (codename, codename-updates, codename-security), so apt-get source works.
add_deb_src() {
	local codename out=/etc/apt/sources.list.d/incetl-deb-src
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[ -n "$codename" ] || return 1
	# deb822 files: copy the "Types: deb" stanzas naming one of our suites
	cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v cn="$codename" '
		function flush() {
			if (st != "" && deb && ours) printf "%s\n", st
			st = ""; deb = 0; ours = 0
		}
		/^[ \t]*$/ { flush(); next }
		/^Types:/ { if ($0 ~ /[ \t]deb([ \t]|$)/) deb = 1; $0 = "Types: deb-src" }
		/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == cn || index($i, cn "-") == 1) ours = 1 }
		/^#/ { next }
		{ st = st $0 "\n" }
		END { flush() }' >"$out.sources"
	[ -s "$out.sources" ] || rm -f "$out.sources"
	# one-line files
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		awk -v cn="$codename" '$1 == "deb" {
			for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /=/ && $i !~ /\]$/) break
			s = $(i + 1)
			if (s == cn || index(s, cn "-") == 1) { $1 = "deb-src"; print }
		}' >"$out.list"
	[ -s "$out.list" ] || rm -f "$out.list"
	[ -e "$out.sources" ] || [ -e "$out.list" ] || return 1
	incetl_log "added deb-src entries: $(ls "$out".* | tr '\n' ' ')"
	apt-get update -q </dev/null >/dev/null
}

# fetch_source DIR: put the orig tarball of postgresql-15 in DIR; prints its path
fetch_source() {
	local dir=$1 ver
	if [ -n "${INCETL_PG_TARBALL:-}" ]; then
		echo "$INCETL_PG_TARBALL"
		return 0
	fi
	mkdir -p "$dir" || return 1
	ver=$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR" 2>/dev/null)
	if ! apt-cache showsrc "postgresql-$PG_MAJOR" 2>/dev/null | grep -c '^Version:' >/dev/null; then
		add_deb_src >&2 || { incetl_err "no deb-src entry could be added for apt-get source"; return 1; }
	fi
	# the installed version first, then the others the archive lists,
	# newest first (a mirror may list a source it no longer serves)
	(
		cd "$dir" || exit 1
		for v in $(apt-cache showsrc "postgresql-$PG_MAJOR" | sed -n 's/^Version: //p' |
				sort -rV | awk -v v="$ver" 'BEGIN { if (v != "") print v } $0 != v'); do
			rm -f ./*.dsc ./*.orig.tar.* ./*.debian.tar.*
			apt-get source -q --download-only "postgresql-$PG_MAJOR=$v" </dev/null >&2 && exit 0
			incetl_log "could not download the source of postgresql-$PG_MAJOR $v" >&2
		done
		exit 1
	) || return 1
	[ "$(ls "$dir"/*.dsc)" = "$dir/postgresql-${PG_MAJOR}_$ver.dsc" ] ||
		incetl_log "note: the installed server is $ver, the source is $(ls "$dir"/*.dsc)" >&2
	ls "$dir"/postgresql-"$PG_MAJOR"_*.orig.tar.* 2>/dev/null | head -n 1
}

# --- the PostgreSQL build (cached) ------------------------------------------

CONFIGURE_FLAGS=(--prefix="$INSTALL" --enable-cassert --enable-debug
	--with-openssl --without-icu)
STAMP=$CACHE/stamp

build_postgres() {
	local tarball srcdir t0=$SECONDS
	[ "$(id -u)" -eq 0 ] || [ -w "$(dirname "$CACHE")" ] || incetl_err "$CACHE is not writable (run as root)" || return 1
	mkdir -p "$CACHE" || return 1
	tarball=$(fetch_source "$CACHE/download") || return 1
	[ -f "$tarball" ] || { incetl_err "no PostgreSQL source tarball found"; return 1; }
	incetl_log "building PostgreSQL from $tarball into $INSTALL (CFLAGS=$VG_CFLAGS)"
	rm -rf "$CACHE/build" "$INSTALL" "$STAMP"
	mkdir -p "$CACHE/build" || return 1
	tar -C "$CACHE/build" -xf "$tarball" || return 1
	srcdir=$(ls -d "$CACHE"/build/postgresql-* | head -n 1)
	[ -f "$srcdir/configure" ] || { incetl_err "no configure in $srcdir"; return 1; }
	case $(sed -n 's/^PACKAGE_VERSION=.\([0-9]*\).*/\1/p' "$srcdir/configure") in
	"$PG_MAJOR") ;;
	*) incetl_err "$tarball is not PostgreSQL $PG_MAJOR"; return 1 ;;
	esac
	# USE_VALGRIND: memory contexts tell memcheck what is allocated and what
	# is freed, so a read of pfree'd memory is an error
	sed -i 's|^/\* *#define USE_VALGRIND *\*/|#define USE_VALGRIND|' \
		"$srcdir/src/include/pg_config_manual.h" || return 1
	grep -q '^#define USE_VALGRIND' "$srcdir/src/include/pg_config_manual.h" ||
		{ incetl_err "could not define USE_VALGRIND in pg_config_manual.h"; return 1; }
	(
		set -e
		cd "$srcdir"
		./configure "${CONFIGURE_FLAGS[@]}" CFLAGS="$VG_CFLAGS" >"$CACHE/configure.log" 2>&1
		make -s -j2 >"$CACHE/make.log" 2>&1
		make -s install >>"$CACHE/make.log" 2>&1
		# all of contrib: incetl requires pgcrypto, and the tests use
		# test_decoding, postgres_fdw, dblink, citext, ltree, isn, cube...
		for d in contrib src/test/isolation; do
			make -s -j2 -C "$d" >>"$CACHE/make.log" 2>&1
			make -s -C "$d" install >>"$CACHE/make.log" 2>&1
		done
	) || { incetl_err "PostgreSQL build failed: see $CACHE/configure.log and $CACHE/make.log"; tail -n 30 "$CACHE/make.log" >&2; return 1; }
	cp "$srcdir/src/tools/valgrind.supp" "$CACHE/valgrind.supp" || return 1

	# bin/postgres becomes a wrapper that runs the real one under valgrind;
	# pg_regress --temp-instance starts "$bindir/postgres", and the processes
	# the postmaster forks stay under valgrind.  initdb's bootstrap and
	# single-user runs and the quick queries (-V, -C, --describe-config) go
	# straight to the real binary: valgrinding them costs minutes and tests
	# nothing of incetl.
	mv "$INSTALL/bin/postgres" "$INSTALL/bin/postgres.orig" || return 1
	cat >"$INSTALL/bin/postgres" <<-EOF
	#!/bin/bash
	# written by incetl's test/valgrind.sh: the server under Valgrind
	# (INCETL_VALGRIND=0 runs it without; logs in \$INCETL_VALGRIND_LOGDIR)
	orig=$INSTALL/bin/postgres.orig
	for a in "\$@"; do
		case \$a in
		--boot|--single|--describe-config|-C|-V|--version) exec "\$orig" "\$@" ;;
		esac
	done
	[ "\${INCETL_VALGRIND:-1}" = 0 ] && exec "\$orig" "\$@"
	logdir=\${INCETL_VALGRIND_LOGDIR:-/tmp/incetl-valgrind-\$(id -un)}
	mkdir -p "\$logdir"
	exec valgrind --quiet --trace-children=yes --track-origins=yes \\
		--read-var-info=yes --num-callers=40 --leak-check=no \\
		--error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END \\
		--suppressions=$CACHE/valgrind.supp \\
		\${INCETL_VALGRIND_EXITCODE:+--error-exitcode=\$INCETL_VALGRIND_EXITCODE} \\
		\${INCETL_VALGRIND_EXTRA:-} \\
		--log-file="\$logdir/%p.log" "\$orig" "\$@"
	EOF
	chmod 755 "$INSTALL/bin/postgres" || return 1
	printf '%s\n' "$(basename "$tarball") $want_stamp" >"$STAMP"
	incetl_log "PostgreSQL built in $((SECONDS - t0))s"
}

want_stamp="${CONFIGURE_FLAGS[*]} CFLAGS=$VG_CFLAGS USE_VALGRIND contrib"
if [ -z "${INCETL_VALGRIND_REBUILD:-}" ] && [ -f "$STAMP" ] &&
   [ -x "$INSTALL/bin/postgres.orig" ] && grep -qF -- "$want_stamp" "$STAMP"; then
	incetl_log "reusing the PostgreSQL build in $INSTALL ($(cut -d' ' -f1 "$STAMP"))"
else
	build_postgres || die "could not build PostgreSQL with Valgrind support"
fi
PG_BUILD_SECS=$((SECONDS - START))

# --- incetl, built against it -----------------------------------------------

PG_CONFIG=$INSTALL/bin/pg_config
export PG_CONFIG
incetl_log "server: $("$INSTALL/bin/postgres.orig" -V)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/incetl-valgrind.XXXXXX") || die "mktemp failed"
chmod 755 "$WORK"
incetl_snapshot "$SRC" "$WORK" || die "copying the checkout to $WORK failed"
LOGDIR=$WORK/valgrind
mkdir -p "$LOGDIR" && chmod 777 "$LOGDIR"
incetl_build_install "$WORK" || die "building incetl against $PG_CONFIG failed"
# the server logs then name the test of every backend (application_name),
# also of those that log nothing else
echo "log_connections = on" >>"$WORK/test/regress.conf"

# --- the suites -------------------------------------------------------------

# the server takes long to start and stop under valgrind, and isolation
# steps long to finish
export PGCTLTIMEOUT=${PGCTLTIMEOUT:-1200}
export PGISOLATIONTIMEOUT=${PGISOLATIONTIMEOUT:-3600}

SUITES_FAILED=0
SUITE_LINES=()
run_suite() {
	local name=$1 target=$2 t0=$SECONDS rc ok bad
	shift 2
	echo
	incetl_log "$name (make $target${*:+ $*}) under valgrind"
	# a directory of logs per suite: the pids of two servers may repeat
	(cd "$WORK" && INCETL_VALGRIND_LOGDIR=$LOGDIR/$name incetl_as_user \
		timeout -k 60 "$SUITE_TIMEOUT" \
		make PG_CONFIG="$PG_CONFIG" ${REGRESS:+REGRESS="$REGRESS"} \
		${ISO_TESTS:+ISO_TESTS="$ISO_TESTS"} "$@" "$target" </dev/null) 2>&1 | tee "$WORK/$name.log"
	rc=${PIPESTATUS[0]}
	ok=$(grep -cE '^(test )? *[^ ]+ +\.\.\. ok( |$)' "$WORK/$name.log")
	bad=$(grep -cE '^(test )? *[^ ]+ +\.\.\. (FAILED|failed)' "$WORK/$name.log")
	[ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "$name: killed after ${SUITE_TIMEOUT}s"
	[ "$rc" -ne 0 ] && SUITES_FAILED=1
	SUITE_LINES+=("$(printf '%-10s %3d passed, %d failed, exit %d (%ds)' "$name:" "$ok" "$bad" "$rc" $((SECONDS - t0)))")
}

SUITES_START=$SECONDS
# installcheck without its isolation half (ISOLATION=), which runs as a
# suite of its own: a log directory and counts per suite, no spec twice
run_suite regress installcheck ISOLATION=
run_suite isolation isolationcheck
SUITES_SECS=$((SECONDS - SUITES_START))

# --- what valgrind saw ------------------------------------------------------

# a log with no error in it is empty, or holds only valgrind's own warnings
# ("--PID-- warning: ..." about debug info)
for f in "$LOGDIR"/*/*.log; do
	[ -e "$f" ] && ! grep -qE '^==[0-9]+==' "$f" && rm -f "$f"
done
SUMMARY=$WORK/valgrind-summary.txt

# test_of SUITE PID: the test a backend served, from its application name
# in the suite's server log (pg_regress's log_line_prefix has %p and %a)
test_of() {
	local log=$WORK/log/postmaster.log
	[ "$1" = isolation ] && log=$WORK/output_iso/log/postmaster.log
	grep -h -oE "\[$2\] .*application_name=[^ ]+|\[$2\] (pg_regress|isolation)/[^ ]+" \
		"$log" 2>/dev/null | grep -oE '(pg_regress|isolation)/[^ ]+' | head -n 1
}

# every error block once, keyed by its kind and first stack; each stack cut
# to 16 frames (the logs have 40)
{
	for f in "$LOGDIR"/*/*.log; do
		[ -e "$f" ] || continue
		pid=$(basename "$f" .log)
		suite=$(basename "$(dirname "$f")")
		awk -v pid="$suite pid $pid" -v test="$(test_of "$suite" "$pid")" '
			/VALGRINDERROR-BEGIN/ { inb = 1; blk = ""; key = ""; frames = 0; first = 1; next }
			/VALGRINDERROR-END/ {
				inb = 0
				gsub(/\034/, " ", blk)   # the field separator below
				printf "%s\034%s\034%s\034%s\n", key, pid, test, blk
				next
			}
			inb {
				line = $0; sub(/^==[0-9]+== ?/, "", line)
				if (line ~ /^ +(at|by) 0x/) {
					if (++frames > 16) next
					if (first) { k = line; sub(/0x[0-9A-Fa-f]+: /, "", k); key = key "|" k }
				} else if (line != "") {
					if (key != "") first = 0
					if (key == "") key = line
					frames = 0
				}
				blk = blk line "\035"
			}' "$f"
	done
} | awk -F '\034' '
	{
		if (!($1 in n)) { order[++nk] = $1; blk[$1] = $4; where[$1] = "" }
		n[$1]++
		w = $3 != "" ? $3 : $2
		if (index(" " where[$1] " ", " " w " ") == 0 && length(where[$1]) < 400)
			where[$1] = where[$1] (where[$1] == "" ? "" : " ") w
	}
	END {
		for (i = 1; i <= nk; i++) {
			k = order[i]
			b = blk[k]; gsub(/\035/, "\n", b)
			printf "---- %d time(s); in: %s\n%s\n", n[k], where[k], b
		}
	}' >"$SUMMARY"

count() { cat "$LOGDIR"/*/*.log 2>/dev/null | grep -cE -- "$1"; }
n_read=$(count 'Invalid read')
n_write=$(count 'Invalid write')
n_free=$(count 'Invalid free|Mismatched free')
n_uninit=$(count 'uninitialised')
n_cond=$(count 'Conditional jump')

echo
if [ -s "$SUMMARY" ]; then
	echo "======== distinct valgrind errors ($SUMMARY)"
	head -n 3000 "$SUMMARY"
fi
echo
echo "======== valgrind summary"
for r in "${SUITE_LINES[@]}"; do
	echo "$r"
done
printf 'valgrind: %d invalid read, %d invalid write, %d invalid/mismatched free, %d uninitialised (%d conditional jump)\n' \
	"$n_read" "$n_write" "$n_free" "$n_uninit" "$n_cond"
echo "PostgreSQL build: ${PG_BUILD_SECS}s, suites under valgrind: ${SUITES_SECS}s, total $((SECONDS - START))s"

bad=0
[ $((n_read + n_write + n_free)) -gt 0 ] && bad=1
[ -n "${INCETL_VALGRIND_STRICT:-}" ] && [ "$n_uninit" -gt 0 ] && bad=1
[ "$SUITES_FAILED" -ne 0 ] && bad=1
if [ "$bad" -eq 0 ] && [ -z "${KEEP:-}" ]; then
	rm -rf "$WORK"
	echo "no invalid read, write or free"
else
	echo "valgrind logs (one per process): $LOGDIR/{regress,isolation}"
	echo "suite output: $WORK/{regress,isolation}.log; diffs: $WORK/regression.diffs,"
	echo "  $WORK/output_iso/regression.diffs; server logs: $WORK/log, $WORK/output_iso/log"
fi
[ "$bad" -eq 0 ]
