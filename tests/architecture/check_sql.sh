#!/usr/bin/env bash
# Where SQL may live (docs/architecture.md): statements on the engine's tables only in
# engine/store (and schema/); the chart application's statements only on its own tables.
#   - no SQL statement text in engine/ outside engine/store;
#   - no statement in handlers/ that names an engine table (from schema/engine/).
# Tests are exempt: they read tables to assert on them.
# Usage: tests/architecture/check_sql.sh [REPO_ROOT]
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$root"

failures=0
sources() {  # non-test C++ sources under $1
  find "$1" \( -name '*.cpp' -o -name '*.hpp' \) ! -name '*_test.cpp' ! -name '*_pgtest.cpp' | sort
}

# A statement starts a string literal: "SELECT ...", "INSERT INTO ...", "UPDATE x SET", ...
readonly kStatement='"[[:space:]]*(SELECT|INSERT[[:space:]]+INTO|UPDATE[[:space:]]+[a-z_]+|DELETE[[:space:]]+FROM|WITH[[:space:]]+[a-z_]+[[:space:]]+AS|CREATE|ALTER|DROP|TRUNCATE)[[:space:]"]'
# The embedded cluster's administration goes through psql as its admin role: creating its
# database before any store can connect, reading server settings for a backup. No engine table.
readonly kExempt='^engine/runtime/embedded_(postgres|backup)\.cpp$'
while read -r f; do
  [[ "$f" == engine/store/* || "$f" =~ $kExempt ]] && continue
  if grep -nE "$kStatement" "$f" >/tmp/check_sql.$$ 2>/dev/null; then
    sed "s|^|architecture: SQL outside engine/store: $f:|" /tmp/check_sql.$$ >&2
    failures=$((failures + 1))
  fi
done < <(sources engine)
rm -f /tmp/check_sql.$$

mapfile -t engine_tables < <(cat schema/engine/*.sql | grep -oE 'CREATE TABLE( IF NOT EXISTS)? [a-z_]+' |
  awk '{print $NF}' | sort -u)
if ((${#engine_tables[@]} == 0)); then
  echo "architecture: found no engine tables in schema/engine/*.sql" >&2
  exit 1
fi
pattern="\\b(FROM|JOIN|INTO|UPDATE)[[:space:]]+($(IFS='|'; echo "${engine_tables[*]}"))\\b"
while read -r f; do
  if grep -nE "$pattern" "$f" >/tmp/check_sql.$$ 2>/dev/null; then
    sed "s|^|architecture: chart code reaches an engine table: $f:|" /tmp/check_sql.$$ >&2
    failures=$((failures + 1))
  fi
done < <(sources handlers)
rm -f /tmp/check_sql.$$

if ((failures > 0)); then
  echo "architecture: $failures file(s) hold SQL where it does not belong" >&2
  exit 1
fi
echo "architecture: SQL only in engine/store and on the chart application's own tables"
