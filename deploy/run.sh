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

exec build/chartflow serve --workflows workflows "$@"
