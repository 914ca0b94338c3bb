#!/usr/bin/env bash
# The Debian package end to end on this machine (issue #16): build it with deploy/package.sh,
# `apt-get install ./chartflow_*.deb`, check the layout and what the maintainer scripts made (the
# chartflow user, /var/lib/chartflow), start `/usr/bin/chartflow serve` as the chartflow user
# with the packaged /etc/chartflow/chartflow.yaml (embedded PostgreSQL under /var/lib/chartflow,
# no systemd needed), see the dashboard served, upload an example chart, decide its review and
# see its run succeed, then purge the package and check that nothing is left running.
#
# Needs root (apt-get, runuser) and a machine where chartflow is not installed already; refuses
# to run otherwise rather than touch an installation.
#
# Usage: tests/packaging/deb_install_test.sh [BUILD_DIR]   default build-test (deploy/test.sh's)
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build-test}"
fail() {
  echo "deb_install_test: FAIL: $*" >&2
  exit 1
}
pass() { echo "deb_install_test: ok: $*"; }

((EUID == 0)) || fail "needs root (apt-get install, runuser)"
if dpkg-query -W -f='${Status}' chartflow 2>/dev/null | grep -q "ok installed"; then
  fail "chartflow is installed on this machine already; this test installs and purges it"
fi
[[ ! -e /var/lib/chartflow ]] || fail "/var/lib/chartflow exists; move it away first"

deb="$(bash deploy/package.sh "$build")"
[[ -f "$deb" ]] || fail "deploy/package.sh made no package"
pass "built $(basename "$deb") ($(du -h "$deb" | cut -f1))"

log="$(mktemp -d)"
server_pid=""
cleanup() {
  local status=$?
  if [[ -n "$server_pid" ]]; then kill -TERM "$server_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  pkill -TERM -u chartflow 2>/dev/null && sleep 5
  pkill -KILL -u chartflow 2>/dev/null || true
  if ((status != 0)); then
    echo "--- server log" >&2
    tail -40 "$log/serve.log" >&2 2>/dev/null || true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q chartflow >/dev/null 2>&1 || true
  rm -rf /var/lib/chartflow "$log"
}
trap cleanup EXIT

# apt resolves the Depends (postgresql-15, curl, the libraries) from the machine's sources.
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" >"$log/apt.log" 2>&1 ||
  { cat "$log/apt.log" >&2; fail "apt-get install $deb"; }
pass "apt-get install ./$(basename "$deb")"

getent passwd chartflow >/dev/null || fail "no chartflow user"
[[ "$(stat -c '%U %a' /var/lib/chartflow)" == "chartflow 700" ]] ||
  fail "/var/lib/chartflow is $(stat -c '%U %a' /var/lib/chartflow), not chartflow 700"
for f in /usr/bin/chartflow /etc/chartflow/chartflow.yaml /etc/chartflow/workflows/chart-update.yaml \
  /usr/share/chartflow/dashboard/index.html /usr/lib/systemd/system/chartflow.service \
  /usr/lib/systemd/system/chartflow-worker@.service /usr/share/chartflow/examples/chartflow.yaml; do
  [[ -f "$f" ]] || fail "$f not installed"
done
compgen -G "/usr/share/chartflow/examples/charts/*.json" >/dev/null || fail "no example charts"
grep -q "/var/lib/chartflow/bills" /etc/chartflow/workflows/settings/bill-delivery.yaml ||
  fail "the packaged bill folder does not point into /var/lib/chartflow"
pass "layout, the chartflow user and /var/lib/chartflow (0700)"

# Everything from the packaged config; only the port moves, through its variable, so the test
# cannot collide with a server on 8080.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
as_chartflow() {
  runuser -u chartflow -- env -C /var/lib/chartflow ASAN_OPTIONS=detect_leaks=0 \
    CHARTFLOW_LISTEN="127.0.0.1:$port" "$@"
}
as_chartflow /usr/bin/chartflow config check >"$log/check.out" 2>&1 ||
  { cat "$log/check.out" >&2; fail "chartflow config check of the packaged config"; }
as_chartflow /usr/bin/chartflow serve >"$log/serve.out" 2>"$log/serve.log" &
server_pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 1 600); do
  curl -fsS "$url/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || fail "chartflow serve exited"
  sleep 0.2
done
curl -fsS "$url/readyz" >/dev/null || fail "not ready after 120 s"
[[ -f /var/lib/chartflow/pg/data/PG_VERSION || -n "$(find /var/lib/chartflow -name PG_VERSION -print -quit)" ]] ||
  fail "no embedded cluster under /var/lib/chartflow"
[[ "$(find /var/lib/chartflow -name PG_VERSION -print -quit | xargs stat -c %U)" == chartflow ]] ||
  fail "the embedded cluster is not the chartflow user's"
grep -q '/etc/chartflow/chartflow.yaml".*"message":"config_file_read"' "$log/serve.log" ||
  fail "serve did not read /etc/chartflow/chartflow.yaml"
curl -fsS "$url/" | grep -qi "<title>chartflow" || fail "GET / is not the dashboard"
pass "serve as chartflow from /usr/bin: embedded PostgreSQL under /var/lib/chartflow, dashboard at /"

token="$(as_chartflow /usr/bin/chartflow tokens create --role admin --name deb-install-test)"
[[ -n "$token" ]] || fail "tokens create printed nothing"
chart="$(ls /usr/share/chartflow/examples/charts/enc-freda-*.json)"
upload="$(CHARTFLOW_TOKEN="$token" CHARTFLOW_SERVER="$url" /usr/bin/chartflow upload "$chart")" ||
  fail "upload: $upload"
api() { curl -fsS -H "authorization: Bearer $token" "$@"; }
run_id=""
for _ in $(seq 1 300); do
  run_id="$(api "$url/v1/runs?workflow=chart-update" | python3 -c \
    'import json,sys; r=json.load(sys.stdin)["runs"]; print(r[0]["id"] if r else "")')"
  [[ -n "$run_id" ]] && break
  sleep 0.2
done
[[ -n "$run_id" ]] || fail "the upload started no chart-update run"
review=""
for _ in $(seq 1 300); do
  review="$(api "$url/v1/reviews?status=pending" | python3 -c \
    'import json,sys; r=json.load(sys.stdin)["reviews"]; print(r[0]["id"] if r else "")')"
  [[ -n "$review" ]] && break
  sleep 0.2
done
[[ -n "$review" ]] || fail "run $run_id opened no review"
api -XPOST "$url/v1/reviews/$review/decision" -H 'content-type: application/json' \
  -d '{"decision":"approve","reason":"package install test"}' >/dev/null || fail "decide review"
status=""
for _ in $(seq 1 600); do
  status="$(api "$url/v1/runs/$run_id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
  [[ "$status" == succeeded || "$status" == failed ]] && break
  sleep 0.2
done
[[ "$status" == succeeded ]] || fail "run $run_id ended '$status', not succeeded"
pass "an example chart uploaded, reviewed, its run $run_id succeeded"

# The signal goes to chartflow itself, as systemd sends it (runuser would SIGKILL its child 2 s
# after passing a SIGTERM on); chartflow drains and stops its PostgreSQL before it exits.
pkill -TERM -u chartflow -x chartflow || fail "no chartflow process to stop"
wait "$server_pid" || true
server_pid=""
for _ in $(seq 1 100); do
  pgrep -u chartflow >/dev/null || break
  sleep 0.2
done
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q chartflow >"$log/purge.log" 2>&1 ||
  { cat "$log/purge.log" >&2; fail "apt-get purge chartflow"; }
[[ ! -e /usr/bin/chartflow && ! -e /etc/chartflow ]] || fail "purge left /usr/bin/chartflow or /etc/chartflow"
if pgrep -u chartflow >/dev/null; then
  pgrep -a -u chartflow >&2
  fail "processes of the chartflow user still run after stop and purge"
fi
pass "purged; nothing of chartflow's is running"
