#!/usr/bin/env bash
# Builds the Debian package chartflow_VERSION_ARCH.deb with CPack (docs/install.md): the binary,
# the dashboard, /etc/chartflow/{chartflow.yaml,workflows/}, the systemd units and the
# maintainer scripts (the chartflow user, /var/lib/chartflow).
#
# Usage: deploy/package.sh [BUILD_DIR]     default: build (a Release tree, configured if missing)
#   BUILD_DIR may be any configured tree; CI packages its sanitizer tree build-test, so that the
#   package test runs without a second full build (the release package is built from build/).
# Prints the path of the .deb on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"

if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
fi
# The dashboard is served from its built files; build them if this tree has none yet.
[[ -f dashboard/dist/index.html ]] || bash dashboard/build.sh >&2
cmake --build "$build" -j2 --target chartflow >&2
# cpack runs the install rules into a staging dir and packs that.
(cd "$build" && cpack -G DEB >&2)
ls -t "$build"/chartflow_*.deb | head -1 | xargs readlink -f
