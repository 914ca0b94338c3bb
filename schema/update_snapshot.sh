#!/usr/bin/env bash
# Regenerates schema/snapshot.sql: migrates an empty schema with `chartflow migrate` (the engine's
# migrations, then the chart application's), dumps it with `pg_dump --schema-only` and normalises
# the dump with schema/normalise_dump.py, as the test SchemaSnapshot
# (tests/integration/schema_snapshot_pgtest.cpp) does before comparing.
#
# Usage: schema/update_snapshot.sh [DSN]
#   DSN  a postgresql:// URL of a database to work in: the script creates the schema
#        chartflow_snapshot there and drops it again. Without one, a throwaway cluster is started
#        with deploy/start_test_postgres.sh and stopped at the end.
#   env CHARTFLOW_BINARY         the chartflow executable (default: build/chartflow)
#   env CHARTFLOW_TEST_PG_PORT   port of the throwaway cluster (default 54359)
#   env CHARTFLOW_PG_BINDIR      where pg_dump and psql are (default: pg_config --bindir, else
#                                /usr/lib/postgresql/15/bin)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd -P)"
readonly schema=chartflow_snapshot
log() { echo "update_snapshot: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

bin="${CHARTFLOW_BINARY:-$root/build/chartflow}"
[[ -x "$bin" ]] || die "no chartflow executable at $bin: build it, or set CHARTFLOW_BINARY"
bindir="${CHARTFLOW_PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}"
[[ -x "$bindir/pg_dump" ]] || bindir=/usr/lib/postgresql/15/bin
[[ -x "$bindir/pg_dump" ]] || die "pg_dump not found (set CHARTFLOW_PG_BINDIR)"

cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c" || true; done' EXIT
if (($# >= 1)); then
  dsn="$1"
else
  tmp="$(mktemp -d /tmp/chartflow-snapshot-XXXXXX)"
  chmod 0755 "$tmp" # as root the cluster runs as postgres, which must reach it
  cleanup+=("bash '$root/deploy/stop_test_postgres.sh' '$tmp/pg' 2>/dev/null; rmdir '$tmp'")
  dsn="$(CHARTFLOW_TEST_PG_PORT="${CHARTFLOW_TEST_PG_PORT:-54359}" \
    bash "$root/deploy/start_test_postgres.sh" "$tmp/pg")"
fi
[[ "$dsn" == postgres://* || "$dsn" == postgresql://* ]] || die "the DSN must be a postgresql:// URL"

psql() { PGOPTIONS='-c client_min_messages=warning' "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d "$dsn" "$@"; }
psql -c "DROP SCHEMA IF EXISTS $schema CASCADE" -c "CREATE SCHEMA $schema"
cleanup=("psql -c 'DROP SCHEMA IF EXISTS $schema CASCADE'" "${cleanup[@]}")

sep='?'
[[ "$dsn" == *\?* ]] && sep='&'
cleanup+=("rm -f '$root/schema/snapshot.sql.tmp'")
"$bin" migrate --database-url "${dsn}${sep}options=-csearch_path%3D$schema" >&2
"$bindir/pg_dump" --schema-only -n "$schema" -d "$dsn" |
  python3 "$root/schema/normalise_dump.py" "$schema" >"$root/schema/snapshot.sql.tmp"
mv "$root/schema/snapshot.sql.tmp" "$root/schema/snapshot.sql"
log "wrote schema/snapshot.sql"
