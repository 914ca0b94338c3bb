#!/usr/bin/env bash
# Browser tests of the dashboard: builds it, starts a real `chartflow serve` on a throwaway
# schema of the test database with the test workflows, and drives Debian's headless Chromium
# through playwright-core (tests/browser/dashboard.test.mjs, node's test runner). Screenshots of
# the main pages land in test-output/screenshots/, the server's log in test-output/browser/.
#
# Usage: tests/browser/run.sh            (deploy/test.sh calls it after ctest)
#   env CHARTFLOW_TEST_DSN  PostgreSQL DSN of the test database (required)
#   env CHARTFLOW_BIN       the chartflow binary (default build-test/chartflow, else build/chartflow)
#   env CHARTFLOW_CHROMIUM  the browser (default /usr/bin/chromium; deploy/install_deps.sh --test)
# Prints "browser: N passed, M failed, K skipped" last; exits non-zero when a test failed or
# was skipped, or when a workflow in workflows/ or tests/browser/workflows/ fails validate.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd -P)"
here="$repo/tests/browser"
out="$repo/test-output"
log() { echo "browser-tests: $*" >&2; }
die() {
  log "error: $*"
  echo "browser: 0 passed, 1 failed"
  exit 1
}

dsn="${CHARTFLOW_TEST_DSN:-}"
[[ -n "$dsn" ]] || die "CHARTFLOW_TEST_DSN is not set; start a database with deploy/start_test_postgres.sh"

bin="${CHARTFLOW_BIN:-}"
if [[ -z "$bin" ]]; then
  bin="$repo/build-test/chartflow"
  [[ -x "$bin" ]] || bin="$repo/build/chartflow"
fi
[[ -x "$bin" ]] || die "chartflow binary not found at $bin; build it first or set CHARTFLOW_BIN"

chromium="${CHARTFLOW_CHROMIUM:-/usr/bin/chromium}"
[[ -x "$chromium" ]] || die "Chromium not found at $chromium; run deploy/install_deps.sh --test (apt-get install chromium)"
command -v node >/dev/null || die "node not found; run deploy/install_deps.sh --test"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "node $node_major is too old; the tests need node 20 or newer"
command -v psql >/dev/null || die "psql not found (postgresql-client)"

# Dependencies at their locked versions; npm ci only when node_modules is stale.
bash "$repo/dashboard/build.sh"
if [[ ! -f "$here/node_modules/.package-lock.json" ||
  "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  log "npm ci (tests/browser)"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

mkdir -p "$out/browser" "$out/screenshots"
rm -f "$out/screenshots/"*.png

tmp="$(mktemp -d "${TMPDIR:-/tmp}/chartflow-browser.XXXXXX")"
schema="cf_browser_$$_$(date +%s)"
server_pid=""

cleanup() {
  local status=$?
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  psql "$dsn" -X -q -v ON_ERROR_STOP=1 -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 ||
    log "could not drop schema $schema"
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$dsn" -X -q -v ON_ERROR_STOP=1 -c "CREATE SCHEMA $schema" >/dev/null ||
  die "cannot create schema $schema in $dsn"
if [[ "$dsn" == *\?* ]]; then sep='&'; else sep='?'; fi
db_url="${dsn}${sep}options=-csearch_path%3D${schema}"

# The test workflows, plus the repository's own (diamond, the chart workflow and the rules and
# settings the chart handlers read), so the chart pages are tested against the real flow. A
# workflow this binary refuses would leave its pages untested: stop instead of dropping it.
wf="$tmp/workflows"
mkdir -p "$wf"
shopt -s nullglob
invalid=()
for f in "$repo"/workflows/*.yaml "$repo"/workflows/*.yml "$repo"/workflows/*.json \
  "$here"/workflows/*.yaml "$here"/workflows/*.yml "$here"/workflows/*.json; do
  if "$bin" validate "$f" >/dev/null 2>"$tmp/validate.err"; then
    cp "$f" "$wf/"
  else
    log "${f#"$repo"/} fails chartflow validate: $(head -n1 "$tmp/validate.err")"
    invalid+=("${f#"$repo"/}")
  fi
done
((${#invalid[@]} == 0)) || die "workflows failing chartflow validate: ${invalid[*]}"
for d in "$repo"/workflows/*/; do cp -R "$d" "$wf/"; done
# Their Python handlers (external steps run with the workflows folder as working directory).
for d in "$here"/workflows/*/; do cp -R "$d" "$wf/"; done
shopt -u nullglob

port="$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
base="http://127.0.0.1:$port"
server_log="$out/browser/server.log"
log "starting $bin serve on $base (schema $schema, log $server_log)"
# Chart handlers' outside world: bills go to a folder under $tmp; no insurer or bill webhook
# (the handlers record those deliveries as skipped).
CHARTFLOW_BILL_DIR="$tmp/bills" CHARTFLOW_INSURER_URL="" CHARTFLOW_BILL_WEBHOOK_URL="" \
  "$bin" serve --database-url "$db_url" --listen "127.0.0.1:$port" --workflows "$wf" \
  --data-dir "$tmp/data" >"$server_log" 2>&1 &
server_pid=$!

healthy=0
for _ in $(seq 1 300); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    tail -n 40 "$server_log" >&2 || true
    die "chartflow exited during start-up"
  fi
  if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' \
    "$base/healthz" 2>/dev/null; then
    healthy=1
    break
  fi
  sleep 0.2
done
((healthy)) || {
  tail -n 40 "$server_log" >&2 || true
  die "chartflow did not answer $base/healthz within 60 s"
}

# Credentials for the tests, made the way an administrator makes them. The server started on an
# empty database, so its log also holds the one-time first-start sign-in link, which the first
# test uses; the tokens are created after that on purpose.
make_token() {
  "$bin" tokens create --role "$1" --name "browser-$1" --database-url "$db_url" 2>>"$server_log"
}
admin_token="$(make_token admin)" || die "chartflow tokens create failed"
uploader_token="$(make_token uploader)" || die "chartflow tokens create failed"
user_password="pw-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$user_password" |
  "$bin" users create --name browser-operator --role operator --database-url "$db_url" \
    >>"$server_log" 2>&1 || die "chartflow users create failed"

tap="$tmp/results.tap"
status=0
(cd "$here" && CHARTFLOW_URL="$base" CHARTFLOW_CHROMIUM="$chromium" \
  CHARTFLOW_TOKEN="$admin_token" CHARTFLOW_UPLOADER_TOKEN="$uploader_token" \
  CHARTFLOW_USER=browser-operator CHARTFLOW_PASSWORD="$user_password" \
  CHARTFLOW_SERVER_LOG="$server_log" \
  CHARTFLOW_BIN="$bin" CHARTFLOW_DATABASE_URL="$db_url" CHARTFLOW_WORKFLOWS_DIR="$wf" \
  CHARTFLOW_SCREENSHOTS="$out/screenshots" CHARTFLOW_REPO="$repo" \
  node --test --test-concurrency=1 \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" \
    dashboard.test.mjs) || status=$?

count() { sed -n "s/^# $1 \([0-9][0-9]*\)$/\1/p" "$tap" | tail -n1; }
passed="$(count pass)"
failed="$(count fail)"
skipped="$(count skipped)"
# A missing precondition is a failure here, never a skip (issue #20): a skipped or todo test
# fails the run.
todo="$(count todo)"
if ((${skipped:-0} + ${todo:-0} > 0)); then
  log "${skipped:-0} skipped and ${todo:-0} todo tests: every test must run"
  ((status != 0)) || status=1
fi
if ((status != 0)); then
  log "some tests failed; last lines of the server log:"
  tail -n 30 "$server_log" >&2 || true
fi
log "screenshots in $out/screenshots"
echo "browser: ${passed:-0} passed, ${failed:-$((status != 0))} failed, ${skipped:-0} skipped"
exit "$status"
