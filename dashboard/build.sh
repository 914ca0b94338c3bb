#!/usr/bin/env bash
# Builds the dashboard into dashboard/dist, which chartflow serves at / and /ui/ (the server
# falls back to the unbuilt dashboard/ directory, which only shows a "not built" notice).
# Needs Node.js 20+ and npm (deploy/install_deps.sh installs them). Dependencies come from the
# npm registry at the versions locked in package-lock.json; `npm ci` runs only when
# node_modules is missing or older than the lock file.
#
# Usage: dashboard/build.sh [--check]    --check also type-checks the sources with tsc
set -euo pipefail
cd "$(dirname "$0")"

command -v npm >/dev/null || { echo "dashboard/build.sh: npm not found; install nodejs and npm" >&2; exit 1; }

# npm ci writes node_modules/.package-lock.json; it matches package-lock.json after a clean install.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "dashboard/build.sh: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
if [[ "${1:-}" == "--check" ]]; then
  npx --no-install tsc --noEmit
fi
npm run --silent build -- --logLevel warn
echo "dashboard/build.sh: built $(pwd)/dist" >&2
