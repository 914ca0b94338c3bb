#!/usr/bin/env bash
# The dependency rule, checked on the source (CMake makes most breaches a build error too; this
# catches the rest, such as a handlers/ file reaching an engine-internal header through the
# repository root, and names the file and line):
#   - nothing under engine/ includes the chart application (handlers/), the composition root
#     (app/) or the benchmarks (tools/);
#   - handlers/ includes only its own headers and the engine's public API (engine/include/engine/);
#   - within the engine, lower layers never include higher ones: core and util see nothing but
#     themselves and the public API; store, config and metrics no runtime, auth or http; runtime
#     no auth or http.
# Usage: tests/architecture/check_includes.sh [REPO_ROOT]
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$root"

failures=0
fail() {
  echo "architecture: $1" >&2
  failures=$((failures + 1))
}

# Quoted includes of every tracked-or-present C++ file under a folder: "file:line:header".
includes() {
  find "$1" -name '*.cpp' -o -name '*.hpp' | sort | while read -r f; do
    { grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" || true; } |
      sed -E "s|^([0-9]+):.*\"([^\"]+)\".*|$f:\1:\2|"
  done
}

while IFS=: read -r file line header; do
  case "$header" in
    handlers/* | app/* | tools/*) fail "$file:$line includes \"$header\": the engine knows no application" ;;
  esac
  layer="${file#engine/}"
  layer="${layer%%/*}"
  case "$layer" in
    core | util | include) allowed='^(core/|engine/)' ;;
    store | config | metrics) allowed='^(core/|store/|config/|metrics/|engine/)' ;;
    runtime) allowed='^(core/|store/|config/|metrics/|runtime/|engine/)' ;;
    *) allowed='' ;;
  esac
  if [[ -n "$allowed" && "$file" != *_test.cpp && "$file" != *_pgtest.cpp ]] &&
    ! [[ "$header" =~ $allowed ]]; then
    fail "$file:$line includes \"$header\": engine/$layer may not depend on that layer"
  fi
done < <(includes engine)

while IFS=: read -r file line header; do
  [[ "$file" == *_test.cpp || "$file" == *_pgtest.cpp ]] && continue
  case "$header" in
    handlers/*) ;;
    engine/*)
      [[ -f "engine/include/$header" ]] ||
        fail "$file:$line includes \"$header\": not a public engine header (engine/include/engine/)"
      ;;
    *) fail "$file:$line includes \"$header\": handlers/ sees only the engine's public API" ;;
  esac
done < <(includes handlers)

if ((failures > 0)); then
  echo "architecture: $failures breach(es) of the dependency rule (see docs/architecture.md)" >&2
  exit 1
fi
echo "architecture: dependency rule holds"
