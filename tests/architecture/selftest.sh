#!/usr/bin/env bash
# Proves check_includes.sh can fail: each breach below, planted in a scratch tree, must be
# reported; the same tree without breaches must pass.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

plant() {  # plant FILE HEADER: a scratch tree whose FILE includes HEADER
  rm -rf "$tmp/tree"
  mkdir -p "$tmp/tree/engine/include/engine" "$tmp/tree/engine/core" "$tmp/tree/handlers"
  echo '#pragma once' >"$tmp/tree/engine/include/engine/handler.hpp"
  echo '#include "engine/handler.hpp"' >"$tmp/tree/handlers/ok.cpp"
  mkdir -p "$tmp/tree/$(dirname "$1")"
  echo "#include \"$2\"" >>"$tmp/tree/$1"
}

expect() {  # expect pass|fail FILE HEADER
  plant "$2" "$3"
  if bash "$here/check_includes.sh" "$tmp/tree" >/dev/null 2>&1; then got=pass; else got=fail; fi
  if [[ "$got" != "$1" ]]; then
    echo "selftest: $2 including \"$3\" should $1, did $got" >&2
    exit 1
  fi
}

expect pass handlers/ok.cpp engine/handler.hpp
expect fail engine/runtime/x.cpp handlers/chart_intake/chart_upload.hpp
expect fail engine/http/x.cpp app/modules.hpp
expect fail handlers/x.cpp runtime/engine.hpp
expect fail handlers/x.cpp engine/store/store.hpp
expect fail engine/core/x.cpp store/store.hpp
expect fail engine/store/x.cpp runtime/engine.hpp
expect fail engine/runtime/x.cpp http/router.hpp

sql_expect() {  # sql_expect pass|fail FILE LINE: a scratch tree whose FILE holds LINE
  rm -rf "$tmp/sql"
  mkdir -p "$tmp/sql/schema/engine" "$tmp/sql/engine/store" "$tmp/sql/handlers" \
    "$tmp/sql/$(dirname "$2")"
  echo 'CREATE TABLE step_run (id int);' >"$tmp/sql/schema/engine/0001_x.sql"
  echo "$3" >"$tmp/sql/$2"
  if bash "$here/check_sql.sh" "$tmp/sql" >/dev/null 2>&1; then got=pass; else got=fail; fi
  if [[ "$got" != "$1" ]]; then
    echo "selftest: $2 holding $3 should $1, did $got" >&2
    exit 1
  fi
}
sql_expect pass engine/store/x.cpp 'q("SELECT 1 FROM step_run");'
sql_expect pass handlers/x.cpp 'q("SELECT * FROM chart");'
sql_expect fail engine/http/x.cpp 'q("SELECT 1 FROM step_run");'
sql_expect fail engine/auth/x.cpp 'q("INSERT INTO api_token (a) VALUES (1)");'
sql_expect fail handlers/x.cpp 'q("UPDATE step_run SET x = 1");'
echo "selftest: check_includes.sh and check_sql.sh report every planted breach"
