#!/usr/bin/env bash
# Stops the throwaway test cluster started by deploy/start_test_postgres.sh and deletes it.
#
# Usage: deploy/stop_test_postgres.sh [DIR]     (DIR defaults to /tmp/chartflow-test-pg)
# Safe to run when nothing is running or DIR does not exist.
set -euo pipefail

dir="${1:-/tmp/chartflow-test-pg}"
log() { echo "stop_test_postgres: $*" >&2; }

[[ -d "$dir" ]] || exit 0
dir="$(cd "$dir" && pwd -P)"
pgdata="$dir/data"

# Refuse to delete a directory that does not look like one of ours.
if [[ "$dir" == / || ! (-f "$pgdata/PG_VERSION" || -f "$dir/dsn" || -z "$(ls -A "$dir")") ]]; then
  log "error: $dir does not look like a chartflow test cluster; not touching it"
  exit 1
fi

if [[ -f "$pgdata/postmaster.pid" ]]; then
  if [[ -n "${CHARTFLOW_PG_BINDIR:-}" ]]; then
    bindir="$CHARTFLOW_PG_BINDIR"
  else
    bindir="/usr/lib/postgresql/$(cat "$pgdata/PG_VERSION")/bin"
  fi
  owner=()
  ((EUID == 0)) && owner=(runuser -u "$(stat -c %U "$pgdata")" --)
  log "stopping PostgreSQL in $pgdata"
  pg_ctl() { (cd "$dir" && "${owner[@]}" "$bindir/pg_ctl" "$@" >&2); }
  if pg_ctl status -D "$pgdata" >/dev/null 2>&1; then
    pg_ctl stop -D "$pgdata" -m fast -w -t 60 || pg_ctl stop -D "$pgdata" -m immediate -w -t 30
  fi
fi
rm -rf "$dir"
