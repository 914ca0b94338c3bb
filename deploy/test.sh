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
# Exits with the first failing stage's code; prints every stage's duration at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage's wall time is printed at the end (and on an early exit), so the suite's cost
# stays visible: CI allows 90 minutes and the whole command should stay under 50.
declare -a stage_names=() stage_seconds=() stage_results=()
status=0
# stage NAME COMMAND...: runs COMMAND, records its time and result; the first failure is the
# command's exit code.
stage() {
  local name="$1" started rc=0
  shift
  echo "test.sh: ${name}"
  started=$SECONDS
  "$@" || rc=$?
  stage_names+=("$name")
  stage_seconds+=($((SECONDS - started)))
  stage_results+=("$([[ $rc == 0 ]] && echo ok || echo "failed ($rc)")")
  if ((status == 0)); then status=$rc; fi
}
print_stages() {
  local i total=0
  echo "test.sh: stage durations"
  for i in "${!stage_names[@]}"; do
    printf 'test.sh:   %-28s %5ds  %s\n' "${stage_names[$i]}" "${stage_seconds[$i]}" "${stage_results[$i]}"
    total=$((total + stage_seconds[i]))
  done
  printf 'test.sh:   %-28s %5ds\n' "total" "$total"
}

build() {
  bash deploy/install_deps.sh --test --ha
  cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCHARTFLOW_SANITIZE=ON \
    -DCMAKE_CXX_FLAGS=-O1
  cmake --build build-test -j2
}
stage "install and build" build
if ((status != 0)); then
  print_stages
  exit "$status"
fi

# libpq and OpenSSL keep process-lifetime allocations that LeakSanitizer reports as leaks.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

pg_dir="${CHARTFLOW_TEST_PG_DIR:-/tmp/chartflow-test-pg}"
trap 'bash deploy/stop_test_postgres.sh "$pg_dir" || true; print_stages' EXIT
CHARTFLOW_TEST_DSN="$(bash deploy/start_test_postgres.sh "$pg_dir")"
export CHARTFLOW_TEST_DSN
echo "test.sh: CHARTFLOW_TEST_DSN=$CHARTFLOW_TEST_DSN"

stage "ctest" ctest --test-dir build-test --output-on-failure -j2 --timeout 600 "$@"

# The fault suite (tests/chaos, docs/chaos.md), bounded: the same charts through a fault-free
# control run and a fault run (SIGKILLs of chartflow and of PostgreSQL, a frozen PostgreSQL,
# insurer and bill webhook outages), each on its own throwaway cluster; CHARTFLOW_CHAOS=0 skips it.
if [[ "${CHARTFLOW_CHAOS:-1}" != 0 ]]; then
  stage "fault suite (chaos.py)" python3 tests/chaos/chaos.py --binary build-test/chartflow \
    --out test-output/chaos --charts 200 --kills 10 --pg-kills 2 --pg-stops 1 --receiver-faults
fi

# A three-node Patroni + etcd cluster on this machine with chartflow on it: switchover, kill -9
# of the leader's postgres, loss and freeze of the leader's node under chart uploads
# (deploy/ha/README.md); CHARTFLOW_HA_TEST=0 skips it. It stops everything it started.
if [[ "${CHARTFLOW_HA_TEST:-1}" != 0 ]]; then
  stage "HA failover (Patroni)" bash deploy/ha/run-ha-test.sh --no-install \
    --binary build-test/chartflow --report test-output/ha-report.json
fi

# clang-format on every file, clang-tidy on the files the last commit changed.
stage "lint" env LINT_JOBS=2 bash deploy/lint.sh --base HEAD~1 build-test

# libFuzzer targets for a bounded time each (CHARTFLOW_FUZZ_SECONDS, 0 skips them).
if [[ "${CHARTFLOW_FUZZ_SECONDS:-45}" != 0 ]]; then
  stage "fuzz" bash deploy/fuzz.sh
fi

# The dashboard in Chromium against a real server. A runner that lost its execute bit is a
# failure, not a reason to skip the stage.
browser() {
  if [[ ! -x tests/browser/run.sh ]]; then
    echo "test.sh: tests/browser/run.sh is missing or not executable" >&2
    return 1
  fi
  tests/browser/run.sh
}
stage "browser" browser

# deploy/systemd/ offline: systemd-analyze verify reports nothing and each unit's security
# exposure stays under 2.0.
stage "systemd units" bash tests/packaging/systemd_units_test.sh
# deploy/prometheus.yml, alert rules (and their promtool rule tests), Alertmanager config and
# the Grafana dashboard as shipped.
stage "monitoring configs" bash tests/packaging/monitoring_config_test.sh
# deploy/container/ as far as it can be checked without a registry (compose file, the
# Containerfile's sources, the container's settings).
stage "container recipe" bash tests/packaging/container_recipe_test.sh build-test/chartflow

# The Debian package built from this tree, installed with apt-get, serving a chart as the
# chartflow user from /usr/bin, then purged (about a minute; CHARTFLOW_DEB_TEST=0 skips it).
if [[ "${CHARTFLOW_DEB_TEST:-1}" != 0 ]]; then
  stage "Debian package" bash tests/packaging/deb_install_test.sh build-test
fi
exit "$status"
