#!/usr/bin/env bash
# The "run" command: installs dependencies, builds a Release binary in build/ and serves.
#
# Usage: deploy/run.sh [chartflow serve options...]
#   Defaults of the binary: --listen 127.0.0.1:8080 --data-dir ./chartflow-data (an embedded
#   PostgreSQL unless CHARTFLOW_DATABASE_URL or a database URL is given).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install_deps.sh

if [[ -f dashboard/package.json ]]; then
  npm ci --prefix dashboard
  npm run --prefix dashboard build
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2

# As root, external handlers (workflows/handlers/) run as an unprivileged user of their own when
# that user can read them; otherwise say why they keep root's privileges.
if [[ $EUID == 0 && -z "${CHARTFLOW_HANDLER_USER:-}" && " $* " != *" --handler-user"* ]]; then
  handler_user=chartflow-handler
  id -u "$handler_user" >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      "$handler_user"
  if runuser -u "$handler_user" -- test -r workflows/handlers -a -x workflows/handlers; then
    export CHARTFLOW_HANDLER_USER="$handler_user"
  else
    echo "run.sh: external handlers keep root's privileges: $handler_user cannot read" \
      "$PWD/workflows/handlers (a parent folder is private); move the checkout or set" \
      "CHARTFLOW_HANDLER_USER" >&2
  fi
fi

exec build/chartflow serve --workflows workflows "$@"
