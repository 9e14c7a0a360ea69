# test/lib.sh -- helpers shared by test/run_all.sh and test/demo.sh
#
# Sourced, not run.  Knows how to install what building and testing incetl
# needs on Debian 12 with PostgreSQL 15, how to build a snapshot of the
# checkout in a scratch directory that the unprivileged user owns, and how
# to run a command as that user (pg_regress, initdb and
# PostgreSQL::Test::Cluster all refuse to run as root).

PG_MAJOR=15
PG_BINDIR=/usr/lib/postgresql/$PG_MAJOR/bin
# Always this major's pg_config: /usr/bin/pg_config picks the newest
# server-dev package installed, which may be another major.
PG_CONFIG=${PG_CONFIG:-$PG_BINDIR/pg_config}
export PG_CONFIG

# The unprivileged user that runs servers and tests when we are root.
INCETL_TEST_USER=${INCETL_TEST_USER:-postgres}

incetl_log() { printf '==> %s\n' "$*"; }
incetl_err() { printf 'error: %s\n' "$*" >&2; return 1; }

# incetl_as_user CMD...: run CMD as the unprivileged user (as ourselves when
# we are not root).
incetl_as_user() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u "$INCETL_TEST_USER" -- "$@"
	else
		"$@"
	fi
}

# incetl_as_root CMD...: run CMD with the rights to write into the system
# PostgreSQL installation.
incetl_as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		"$@"
	fi
}

_incetl_pkg_installed() {
	dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

# incetl_install_deps build|test: install the Debian packages that are
# missing, and only those.  'build' is what compiling and installing the
# extension needs (plus pgcrypto, which it requires); 'test' adds what the
# isolation and TAP suites need.
incetl_install_deps() {
	local want=(make gcc libc6-dev "postgresql-server-dev-$PG_MAJOR")
	local missing=() p

	[ "${1:-build}" = test ] && want+=("postgresql-$PG_MAJOR-cron" libipc-run-perl)
	command -v dpkg >/dev/null 2>&1 ||
		{ incetl_err "dpkg not found: these scripts expect Debian 12"; return 1; }
	# the server itself too, should a machine come without it
	want+=("postgresql-$PG_MAJOR")
	for p in "${want[@]}"; do
		_incetl_pkg_installed "$p" || missing+=("$p")
	done
	# pgcrypto and postgres_fdw ship inside postgresql-15 on Debian 12; the
	# postgresql-contrib package is only a name for them.
	if [ ! -f "/usr/share/postgresql/$PG_MAJOR/extension/pgcrypto.control" ] ||
	   [ ! -f "/usr/share/postgresql/$PG_MAJOR/extension/postgres_fdw.control" ]; then
		missing+=(postgresql-contrib)
	fi
	[ "$(id -u)" -eq 0 ] && ! command -v runuser >/dev/null 2>&1 && missing+=(util-linux)
	# the Prometheus exporter that test/t/095_operations.pl starts with the
	# shipped queries file: installed when we can (as root), else that part
	# of the test is skipped, so it is not required
	if [ "${1:-build}" = test ] && [ "$(id -u)" -eq 0 ] &&
	   ! _incetl_pkg_installed prometheus-postgres-exporter; then
		missing+=(prometheus-postgres-exporter)
	fi

	if [ ${#missing[@]} -eq 0 ]; then
		incetl_log "build and test dependencies already installed"
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		incetl_err "missing packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})"
		return 1
	fi
	incetl_log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q </dev/null || return 1
	apt-get install -y -q -o DPkg::Lock::Timeout=900 "${missing[@]}" </dev/null || return 1

	# pg_regress and PGXS come from the client package and the headers from
	# server-dev: say so when they are a different minor from the server.
	local server client
	server=$(dpkg-query -W -f='${Version}' "postgresql-$PG_MAJOR")
	client=$(dpkg-query -W -f='${Version}' "postgresql-server-dev-$PG_MAJOR")
	[ "$server" = "$client" ] ||
		incetl_log "note: postgresql-$PG_MAJOR is $server, postgresql-server-dev-$PG_MAJOR is $client"
	return 0
}

# incetl_snapshot SRC DEST: copy the checkout (tracked and untracked files,
# no build output, no .git) into DEST and give it to the unprivileged user.
incetl_snapshot() {
	local src=$1 dest=$2
	local rc
	mkdir -p "$dest" || return 1
	tar -C "$src" \
		--exclude=./.git --exclude=./.demo --exclude=./.bench \
		--exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		--exclude=./results --exclude=./output_iso --exclude=./log \
		--exclude='./tmp_check*' --exclude=./regression.diffs --exclude=./regression.out \
		-cf - . | tar -C "$dest" -xf - && rc=(0 0) || rc=("${PIPESTATUS[@]}")
	# tar's 1 means a file changed while it was read (someone is editing):
	# the copy is still usable
	[ "${rc[0]}" -le 1 ] && [ "${rc[1]}" -eq 0 ] || return 1
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$INCETL_TEST_USER": "$dest" || return 1
	fi
}

# incetl_build_install DIR: build the snapshot in DIR as the unprivileged
# user, then install it into the system PostgreSQL.
incetl_build_install() {
	local dir=$1
	incetl_log "building in $dir"
	(cd "$dir" && incetl_as_user make -s PG_CONFIG="$PG_CONFIG") || return 1
	incetl_log "installing into $("$PG_CONFIG" --pkglibdir)"
	# Install scripts left by another checkout's build (an update script of
	# a version this one does not have) would change which versions the
	# server offers: remove those this checkout does not ship.
	local ext_dir f
	ext_dir="$("$PG_CONFIG" --sharedir)/extension"
	for f in "$ext_dir"/incetl--*.sql; do
		[ -e "$f" ] || continue
		[ -e "$dir/$(basename "$f")" ] || incetl_as_root rm -f "$f" || return 1
	done
	(cd "$dir" && incetl_as_root make -s PG_CONFIG="$PG_CONFIG" install) || return 1
}
