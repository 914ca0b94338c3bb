#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for tests and prints its DSN on stdout.
#
# Usage: deploy/start_test_postgres.sh [DIR]     (DIR defaults to /tmp/chartflow-test-pg)
#   env CHARTFLOW_TEST_PG_PORT  TCP port on 127.0.0.1 (default 54329)
#   env CHARTFLOW_PG_BINDIR     server binaries (default: newest /usr/lib/postgresql/*/bin)
#
# Layout: DIR/data (PGDATA), DIR/postgres.log, DIR/dsn, and the Unix socket in DIR itself.
# Durability is switched off (fsync, synchronous_commit, full_page_writes): tests only, never
# benchmarks. Trust auth: anyone on this machine may connect as any role.
# Idempotent: a cluster already running in DIR is reused. As root the cluster belongs to and
# runs as the `postgres` user, since PostgreSQL refuses to run as root.
# Diagnostics go to stderr, so `dsn=$(deploy/start_test_postgres.sh)` captures only the DSN.
set -euo pipefail

dir="${1:-/tmp/chartflow-test-pg}"
port="${CHARTFLOW_TEST_PG_PORT:-54329}"
readonly kRole=chartflow
readonly kDatabase=chartflow_test

log() { echo "start_test_postgres: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

[[ "$port" =~ ^[0-9]+$ ]] || die "CHARTFLOW_TEST_PG_PORT must be a number, got '$port'"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd -P)"
pgdata="$dir/data"
logfile="$dir/postgres.log"
# sockaddr_un holds 107 bytes plus the terminating NUL.
socket="$dir/.s.PGSQL.$port"
((${#socket} <= 107)) || die "socket path $socket is longer than 107 bytes; choose a shorter DIR"

if [[ -n "${CHARTFLOW_PG_BINDIR:-}" ]]; then
  bindir="$CHARTFLOW_PG_BINDIR"
else
  # Debian keeps server binaries off PATH, one directory per major version; take the newest.
  bindir="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5n | tail -n1)"
fi
[[ -x "$bindir/pg_ctl" ]] ||
  die "PostgreSQL server binaries not found (looked in '${bindir:-/usr/lib/postgresql/*/bin}'); run deploy/install_deps.sh or set CHARTFLOW_PG_BINDIR"

# Runs a command as the cluster owner, from a directory that user can read.
if ((EUID == 0)); then
  id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (install postgresql)"
  chown postgres: "$dir"
  runuser -u postgres -- test -w "$dir" ||
    die "user postgres cannot reach $dir (a parent directory is not searchable); choose another DIR"
  as_owner() { (cd "$dir" && runuser -u postgres -- "$@"); }
else
  as_owner() { (cd "$dir" && "$@"); }
fi
# World-readable so any local user can read the DSN file; PGDATA below stays 0700.
chmod 0755 "$dir"

pg_ctl() { as_owner "$bindir/pg_ctl" "$@"; }
# Reads SQL on stdin.
psql_admin() {
  as_owner env -u PGOPTIONS -u PGSERVICE "$bindir/psql" -X -q -v ON_ERROR_STOP=1 \
    -h "$dir" -p "$port" -U "$kRole" -d postgres
}

if pg_ctl status -D "$pgdata" >/dev/null 2>&1; then
  log "reusing the cluster already running in $pgdata"
else
  if [[ ! -f "$pgdata/PG_VERSION" ]]; then
    # Nothing usable here (first run, or an initdb that was interrupted): start afresh.
    rm -rf "$pgdata"
    log "initdb $pgdata"
    # The bootstrap superuser is our role, so no separate CREATE ROLE is needed.
    as_owner "$bindir/initdb" -D "$pgdata" -U "$kRole" -E UTF8 --locale=C.UTF-8 \
      --auth=trust --no-instructions >"$dir/initdb.log" 2>&1 ||
      {
        cat "$dir/initdb.log" >&2
        die "initdb failed"
      }
    cat >>"$pgdata/postgresql.conf" <<EOF

# chartflow test cluster (deploy/start_test_postgres.sh): throwaway, durability off.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi
  log "starting PostgreSQL on 127.0.0.1:$port (log: $logfile)"
  # -o repeats the port so a cluster reused under a different CHARTFLOW_TEST_PG_PORT follows it.
  if ! pg_ctl start -w -t 120 -D "$pgdata" -l "$logfile" -o "-p $port" >&2; then
    tail -n 30 "$logfile" >&2 || true
    die "PostgreSQL did not start (is port $port taken by another server?)"
  fi
fi

# pg_ctl -w returns once the postmaster accepts connections; make sure it does on TCP too.
for _ in $(seq 1 100); do
  "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U "$kRole" && break
  sleep 0.1
done
"$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres -U "$kRole" ||
  die "PostgreSQL is not accepting connections on 127.0.0.1:$port"

# Both statements are no-ops on a reused cluster.
psql_admin <<SQL
SELECT 'CREATE ROLE $kRole SUPERUSER LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$kRole')\gexec
SELECT 'CREATE DATABASE $kDatabase OWNER $kRole'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$kDatabase')\gexec
SQL

dsn="postgresql://$kRole@127.0.0.1:$port/$kDatabase"
echo "$dsn" >"$dir/dsn"
chmod 0644 "$dir/dsn"
echo "$dsn"
