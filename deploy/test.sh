#!/usr/bin/env bash
# The "test" command: builds the Debug+ASan/UBSan tree in build-test, starts a throwaway
# PostgreSQL, runs every test with ctest, then the bounded fault suite (tests/chaos/chaos.py,
# docs/chaos.md) and the Patroni failover test (deploy/ha/run-ha-test.sh), then each fuzz target
# for a bounded time (deploy/fuzz.sh), then the browser tests if present, then the systemd units
# (tests/packaging/systemd_units_test.sh), the monitoring configs and the Debian package
# (tests/packaging/). deploy/lint.sh checks formatting and clang-tidy
# between the tests and the fuzzers.
#
# Usage: deploy/test.sh [extra ctest args...]     e.g. deploy/test.sh -L unit
#   env CHARTFLOW_TEST_PG_DIR   where the test cluster lives (default /tmp/chartflow-test-pg)
#   env CHARTFLOW_TEST_PG_PORT  its port on 127.0.0.1 (default 54329)
#   env CHARTFLOW_FUZZ_SECONDS  run time per fuzz target (default 45; 0 skips fuzzing)
#   env CHARTFLOW_CHAOS         0 skips the bounded fault suite (tests/chaos/chaos.py)
#   env CHARTFLOW_HA_TEST       0 skips the three-node Patroni failover test (deploy/ha/, ~4.5 min)
#   env CHARTFLOW_DEB_TEST      0 skips the Debian package install test (needs root)
# Exits with ctest's code (or the fault suite's, the HA test's, the fuzzers', the browser tests'
# or the unit checks' if everything before passed).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install_deps.sh --test --ha

cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCHARTFLOW_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS=-O1
cmake --build build-test -j2

# libpq and OpenSSL keep process-lifetime allocations that LeakSanitizer reports as leaks.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

pg_dir="${CHARTFLOW_TEST_PG_DIR:-/tmp/chartflow-test-pg}"
trap 'bash deploy/stop_test_postgres.sh "$pg_dir" || true' EXIT
CHARTFLOW_TEST_DSN="$(bash deploy/start_test_postgres.sh "$pg_dir")"
export CHARTFLOW_TEST_DSN
echo "test.sh: CHARTFLOW_TEST_DSN=$CHARTFLOW_TEST_DSN"

status=0
ctest --test-dir build-test --output-on-failure -j2 --timeout 600 "$@" || status=$?

# The fault suite (tests/chaos, docs/chaos.md), bounded: the same charts through a fault-free
# control run and a fault run (SIGKILLs of chartflow and of PostgreSQL, a frozen PostgreSQL,
# insurer and bill webhook outages), each on its own throwaway cluster; CHARTFLOW_CHAOS=0 skips it.
if [[ "${CHARTFLOW_CHAOS:-1}" != 0 ]]; then
  echo "test.sh: running the fault suite (tests/chaos/chaos.py)"
  chaos_status=0
  python3 tests/chaos/chaos.py --binary build-test/chartflow --out test-output/chaos \
    --charts 200 --kills 10 --pg-kills 2 --pg-stops 1 --receiver-faults || chaos_status=$?
  if ((status == 0)); then status=$chaos_status; fi
fi

# A three-node Patroni + etcd cluster on this machine with chartflow on it: switchover, kill -9
# of the leader's postgres, loss and freeze of the leader's node under chart uploads
# (deploy/ha/README.md); CHARTFLOW_HA_TEST=0 skips it. It stops everything it started.
if [[ "${CHARTFLOW_HA_TEST:-1}" != 0 ]]; then
  echo "test.sh: running the HA failover test (deploy/ha/run-ha-test.sh)"
  ha_status=0
  bash deploy/ha/run-ha-test.sh --no-install --binary build-test/chartflow \
    --report test-output/ha-report.json || ha_status=$?
  if ((status == 0)); then status=$ha_status; fi
fi

# clang-format on every file, clang-tidy on the files the last commit changed.
echo "test.sh: running deploy/lint.sh"
lint_status=0
LINT_JOBS=2 bash deploy/lint.sh --base HEAD~1 build-test || lint_status=$?
if ((status == 0)); then status=$lint_status; fi

# libFuzzer targets for a bounded time each (CHARTFLOW_FUZZ_SECONDS, 0 skips them).
if [[ "${CHARTFLOW_FUZZ_SECONDS:-45}" != 0 ]]; then
  echo "test.sh: running deploy/fuzz.sh"
  fuzz_status=0
  bash deploy/fuzz.sh || fuzz_status=$?
  if ((status == 0)); then status=$fuzz_status; fi
fi

if [[ -x tests/browser/run.sh ]]; then
  echo "test.sh: running tests/browser/run.sh"
  browser_status=0
  tests/browser/run.sh || browser_status=$?
  if ((status == 0)); then status=$browser_status; fi
fi

# deploy/systemd/ offline: systemd-analyze verify reports nothing and each unit's security
# exposure stays under 2.0; seconds.
echo "test.sh: running tests/packaging/systemd_units_test.sh"
units_status=0
bash tests/packaging/systemd_units_test.sh || units_status=$?
if ((status == 0)); then status=$units_status; fi
# deploy/prometheus.yml, alert rules (and their promtool rule tests), Alertmanager config and
# the Grafana dashboard as shipped; seconds.
echo "test.sh: running tests/packaging/monitoring_config_test.sh"
monitoring_status=0
bash tests/packaging/monitoring_config_test.sh || monitoring_status=$?
if ((status == 0)); then status=$monitoring_status; fi

# deploy/container/ as far as it can be checked without a registry (compose file, the
# Containerfile's sources, the container's settings); seconds.
echo "test.sh: running tests/packaging/container_recipe_test.sh"
container_status=0
bash tests/packaging/container_recipe_test.sh build-test/chartflow || container_status=$?
if ((status == 0)); then status=$container_status; fi

# The Debian package built from this tree, installed with apt-get, serving a chart as the
# chartflow user from /usr/bin, then purged (about a minute; CHARTFLOW_DEB_TEST=0 skips it).
if [[ "${CHARTFLOW_DEB_TEST:-1}" != 0 ]]; then
  echo "test.sh: running tests/packaging/deb_install_test.sh"
  deb_status=0
  bash tests/packaging/deb_install_test.sh build-test || deb_status=$?
  if ((status == 0)); then status=$deb_status; fi
fi
exit "$status"
