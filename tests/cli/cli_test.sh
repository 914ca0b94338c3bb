#!/usr/bin/env bash
# The command line a first day meets (issue #16): every subcommand answers --help and does
# nothing else, unknown flags and bad config files are named with file and line, `config show`
# redacts secrets, client commands say which server they could not reach and what is wrong with
# a file that is not a chart, and a relocated binary finds its dashboard and config file beside
# its bin/ and says so at start.
#
# Usage: tests/cli/cli_test.sh CHARTFLOW_BINARY REPO
set -euo pipefail

bin="$(readlink -f "$1")"
repo="$(readlink -f "$2")"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/chartflow-cli.XXXXXX")"
chmod 0755 "$tmp" # as root the embedded cluster runs as postgres and must reach the data dir
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [[ -n "${KEEP:-}" ]] || rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "cli_test: FAIL: $*" >&2
  exit 1
}
pass() { echo "cli_test: ok: $*"; }
cd "$tmp"

# --help: usage on stdout, exit 0, no data dir, no database, within seconds. A database URL
# that cannot answer makes any attempt to connect fail or hang.
export CHARTFLOW_DATABASE_URL="postgresql://nobody@192.0.2.1:1/none?connect_timeout=30"
for cmd in serve worker config migrate validate upload logs workflows runs reprocess tokens users audit; do
  out="$(timeout 10 "$bin" "$cmd" --help)" || fail "$cmd --help exited $?"
  [[ "$out" == usage:* ]] || fail "$cmd --help printed no usage: $out"
  [[ ! -e chartflow-data ]] || fail "$cmd --help created ./chartflow-data"
done
serve_help="$("$bin" serve --help)"
for opt in --log-level --lease-ms --poll-ms --log-retention-days --config --dashboard-dir; do
  grep -q -- "$opt" <<<"$serve_help" || fail "serve --help does not list $opt"
done
pass "every subcommand answers --help and does nothing else"
unset CHARTFLOW_DATABASE_URL

# Unknown flags and bad config files stop serve before it does anything.
if out="$("$bin" serve --wokers 3 2>&1)"; then fail "serve accepted --wokers"; fi
grep -q "unknown option --wokers (did you mean 'workers'?)" <<<"$out" || fail "unknown flag: $out"
[[ ! -e chartflow-data ]] || fail "serve with a bad flag created ./chartflow-data"
printf 'listen: 127.0.0.1:8080\nuplod-limit: 8M\n' >bad.yaml
if out="$("$bin" serve --config bad.yaml 2>&1)"; then fail "serve accepted bad.yaml"; fi
grep -q "bad.yaml:2: unknown setting 'uplod-limit' (did you mean 'upload-limit'?)" <<<"$out" ||
  fail "bad key: $out"
if out="$("$bin" config check --config bad.yaml 2>&1)"; then fail "config check passed bad.yaml"; fi
grep -q "bad.yaml:2: unknown setting" <<<"$out" || fail "config check: $out"
# config check refuses FILE (written with CONTENT) naming EXPECTED.
config_check_refuses() {
  local file="$1" content="$2" expected="$3" out
  printf '%b' "$content" >"$file"
  if out="$("$bin" config check --config "$file" --workflows "$repo/workflows" 2>&1)"; then
    fail "config check passed $file: $content"
  fi
  grep -qF "$expected" <<<"$out" || fail "$file: expected '$expected', got: $out"
}
config_check_refuses badlisten.yaml 'workers: 2\nlisten: nowhere\n' \
  "badlisten.yaml:2: listen must be HOST:PORT, got 'nowhere'"
# config check makes every check serve makes before it starts (one function): a setting that
# stops serve stops the check too, located in the file.
config_check_refuses badinterval.yaml 'workers: 2\naudit-head-interval: 0s\n' \
  "badinterval.yaml:2: audit-head-interval must be a duration of at least 1s"
config_check_refuses badarchive.yaml \
  'database-url: postgresql://x@127.0.0.1/db\nwal-archive: /var/lib/wal\n' \
  "badarchive.yaml:2: wal-archive archives the embedded PostgreSQL"
if out="$(CHARTFLOW_WEBHOOK_SECRETS=/nonexistent/secrets.yaml "$bin" config check \
  --workflows "$repo/workflows" 2>&1)"; then
  fail "config check passed a webhook secrets file that does not exist"
fi
grep -q "secrets.yaml" <<<"$out" || fail "webhook secrets: $out"
pass "unknown flags and bad settings are refused with file and line"

# config check and show on a good file; the database password never appears.
cat >good.yaml <<YAML
listen: 127.0.0.1:8181
workflows: $repo/workflows
database-url: postgresql://app:hunter2-secret@db.example:5432/chartflow
upload-limit: 16M
YAML
out="$("$bin" config check --config good.yaml)" || fail "config check of good.yaml failed"
grep -q "good.yaml: ok; [0-9]* workflow(s)" <<<"$out" || fail "config check: $out"
out="$(CHARTFLOW_UPLOAD_LIMIT=20M "$bin" config show --config good.yaml --listen 127.0.0.1:8282)"
grep -q 'listen: "127.0.0.1:8282"  # flag' <<<"$out" || fail "show listen: $out"
grep -q 'upload-limit: "20M"  # CHARTFLOW_UPLOAD_LIMIT' <<<"$out" || fail "show env: $out"
grep -q 'database-url: "postgresql://app:\*\*\*@db.example:5432/chartflow"  # .*good.yaml:3' \
  <<<"$out" || fail "show redaction: $out"
! grep -q hunter2 <<<"$out" || fail "config show printed the database password"
grep -q '^# lease-ms: 15000  # default' <<<"$out" || fail "show default: $out"
pass "config check and show"

# Client commands: what is wrong with the file, and which server could not be reached.
printf '{"resourceType":"Patient","id":"p1"}' >patient.json
if out="$("$bin" upload patient.json 2>&1)"; then fail "upload accepted a bare Patient"; fi
grep -q "patient.json: is not a FHIR Bundle (resourceType 'Patient')" <<<"$out" || fail "upload: $out"
chart="$(ls "$repo"/tests/data/charts/*.json | head -1)"
if out="$("$bin" upload --server http://127.0.0.1:1 "$chart" 2>&1)"; then fail "upload to :1"; fi
grep -q "cannot reach http://127.0.0.1:1: Connection refused" <<<"$out" || fail "refused: $out"
if out="$(CHARTFLOW_SERVER=http://127.0.0.1:2 "$bin" logs 2>&1)"; then fail "logs from :2"; fi
grep -q "cannot reach http://127.0.0.1:2" <<<"$out" || fail "CHARTFLOW_SERVER: $out"
pass "client commands name the file's problem and the server tried"

# A relocated install: PREFIX/bin/chartflow finds PREFIX/share/chartflow/dashboard and
# PREFIX/etc/chartflow/chartflow.yaml without being told.
prefix="$tmp/prefix"
mkdir -p "$prefix/bin" "$prefix/share/chartflow/dashboard" "$prefix/etc/chartflow"
cp "$bin" "$prefix/bin/chartflow"
echo '<html>relocated dashboard marker</html>' >"$prefix/share/chartflow/dashboard/index.html"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$prefix/etc/chartflow/chartflow.yaml" <<YAML
listen: 127.0.0.1:$port
data-dir: $tmp/data
workflows: $repo/workflows
retention:
  logs: 20d
YAML
out="$("$prefix/bin/chartflow" config show)"
grep -q "listen: \"127.0.0.1:$port\"  # $prefix/etc/chartflow/chartflow.yaml:1" <<<"$out" ||
  fail "installed config not read: $out"
# The retention classes are one mapping in the file, each with its own line.
grep -q "retention-logs: \"20d\"  # $prefix/etc/chartflow/chartflow.yaml:5" <<<"$out" ||
  fail "retention: {logs} not read: $out"
if out="$("$prefix/bin/chartflow" serve --dashboard-dir "$tmp/nowhere" 2>&1)"; then
  fail "serve accepted a dashboard dir without index.html"
fi
grep -q "dashboard-dir $tmp/nowhere holds no index.html" <<<"$out" || fail "dashboard-dir: $out"
# In a process group of its own, as a terminal or runuser would start it.
(cd "$tmp" && exec setsid "$prefix/bin/chartflow" serve >"$tmp/serve.out" 2>"$tmp/serve.log") &
server_pid=$!
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/serve.log" >&2; fail "serve exited"; }
  sleep 0.2
done
page="$(curl -fsS "http://127.0.0.1:$port/")" || { cat "$tmp/serve.log" >&2; fail "GET / failed"; }
grep -q "relocated dashboard marker" <<<"$page" || fail "GET / did not serve the relocated dashboard"
grep -q "\"dir\":\"$prefix/share/chartflow/dashboard\".*\"message\":\"dashboard_served\"" \
  "$tmp/serve.log" ||
  fail "serve did not say where it serves the dashboard from"
grep -q "$prefix/etc/chartflow/chartflow.yaml\".*\"message\":\"config_file_read\"" "$tmp/serve.log" ||
  fail "serve did not say which config file it read"
pass "a relocated binary serves its dashboard and reads its config file"

# Pausing from the command line, with an operator's token (issue #17 item 1).
token="$("$prefix/bin/chartflow" tokens create --role operator --name cli-pause)" ||
  fail "tokens create exited $?"
export CHARTFLOW_SERVER="http://127.0.0.1:$port"
if out="$("$bin" workflows pause chart-update 2>&1)"; then fail "paused without a token"; fi
grep -q "server answered 401: .*set CHARTFLOW_TOKEN" <<<"$out" || fail "no token: $out"
export CHARTFLOW_TOKEN="$token"
out="$("$bin" workflows pause chart-update --reason "EHR maintenance")" || fail "pause: $out"
grep -q '"result":"workflow chart-update paused"' <<<"$out" || fail "pause said: $out"
out="$("$bin" workflows list)" || fail "workflows list exited $?"
grep -Eq "^chart-update v[0-9]+ paused since .* by cli-pause \\(token:[0-9]+\\), 0 run\(s\) queued, 0 step\(s\) finishing: EHR maintenance$" <<<"$out" ||
  fail "workflows list: $out"
if out="$("$bin" workflows pause chart-update 2>&1)"; then fail "paused twice"; fi
grep -q "server answered 409: .*workflow chart-update is already paused" <<<"$out" || fail "twice: $out"
out="$("$bin" workflows resume chart-update)" || fail "resume: $out"
grep -q '"released":0' <<<"$out" || fail "resume said: $out"
"$bin" workflows list | grep -Eq "^chart-update v[0-9]+ running$" || fail "still paused after resume"
if out="$("$bin" runs pause 999999 2>&1)"; then fail "paused a run that does not exist"; fi
grep -q "server answered 404: .*run 999999 not found" <<<"$out" || fail "runs pause: $out"
# Parked steps (issue #17 item 2, elements by issue #18 part 3): a fresh server has none; the
# server names what is wrong with a decision about a step that is not there or a bad key. A
# parked element's retry, skip and fail are in tests/integration/park_pgtest.cpp.
out="$("$bin" runs parked)" || fail "runs parked: $out"
grep -q "^0 parked step(s)$" <<<"$out" || fail "runs parked said: $out"
if out="$("$bin" runs skip 999999 'send_bill[1]' 2>&1)"; then fail "skipped without a reason"; fi
grep -q "server answered 400: .*a skip needs a reason" <<<"$out" || fail "runs skip: $out"
if out="$("$bin" runs retry 999999 'send_bill[1]' 2>&1)"; then fail "retried a missing run"; fi
grep -q "server answered 404: .*run 999999 not found" <<<"$out" || fail "runs retry: $out"
if out="$("$bin" runs fail 999999 'send bill' 2>&1)"; then fail "accepted step 'send bill'"; fi
grep -q "server answered 400: .*step must be a step name" <<<"$out" || fail "runs fail: $out"
pass "runs parked, retry, skip and fail reach the parked-step API"
# Retention (issue #17 item 5): the settings and the held partitions are listed; a hold is made
# once, listed and released with a reason; a dry expiry of a fresh server drops nothing.
# Holds and expiry are an admin's: an operator's token is refused.
if out="$("$bin" holds add chart-cli-0 --reason test 2>&1)"; then fail "an operator held a chart"; fi
grep -q "server answered 403" <<<"$out" || fail "holds add as operator: $out"
CHARTFLOW_TOKEN="$("$prefix/bin/chartflow" tokens create --role admin --name cli-retention)" ||
  fail "tokens create exited $?"
out="$("$bin" retention)" || fail "retention: $out"
grep -q "^runs kept 400d (archived 30d after they finish), logs kept 20d$" <<<"$out" ||
  fail "retention said: $out"
grep -q "^workflow_run_archive_held " <<<"$out" || fail "retention lists no held partition: $out"
out="$("$bin" holds add chart-cli-1 --reason 'litigation 2026-17')" || fail "holds add: $out"
if out="$("$bin" holds add chart-cli-1 --reason again 2>&1)"; then fail "held twice"; fi
grep -q "server answered 409: .*already held" <<<"$out" || fail "holds add twice: $out"
out="$("$bin" holds list)" || fail "holds list: $out"
grep -q "^chart-cli-1  held since .*: litigation 2026-17$" <<<"$out" || fail "holds list said: $out"
if out="$("$bin" holds release chart-cli-1 2>&1)"; then fail "released without a reason"; fi
grep -q "reason TEXT is required" <<<"$out" || fail "holds release without a reason: $out"
out="$("$bin" holds release chart-cli-1 --reason 'case closed')" || fail "holds release: $out"
out="$("$bin" holds list)" || fail "holds list: $out"
[[ -z "$out" ]] || fail "released hold still listed: $out"
out="$("$bin" retention expire --dry-run)" || fail "retention expire --dry-run: $out"
grep -q "^would free 0 B in 0 partition(s)$" <<<"$out" || fail "dry expiry said: $out"
pass "retention, holds add, list and release, and a dry expiry reach the retention API"
CHARTFLOW_TOKEN="$token"
if out="$("$bin" workflows stop chart-update 2>&1)"; then fail "accepted workflows stop"; fi
grep -q "usage: chartflow workflows list" <<<"$out" || fail "bad subcommand: $out"
# Moving runs (issue #17 item 6): a fresh server has one version of each workflow, so a move to
# version 2 is refused naming it; a --map without OLD=NEW never reaches the server.
if out="$("$bin" workflows migrate --workflow chart-update --from 1 --to 2 --dry-run 2>&1)"; then
  fail "planned a move to a version that does not exist"
fi
grep -q "server answered 404: .*workflow chart-update has no version 2" <<<"$out" ||
  fail "migrate: $out"
if out="$("$bin" workflows migrate --workflow chart-update --from 1 --to 2 --map review 2>&1)"; then
  fail "migrate accepted --map review"
fi
grep -q -- "--map takes OLD=NEW" <<<"$out" || fail "migrate --map: $out"
if out="$("$bin" workflows migrate --workflow chart-update --from 1 2>&1)"; then
  fail "migrate without --to"
fi
grep -q "usage: chartflow workflows migrate --workflow W --from N --to M" <<<"$out" ||
  fail "migrate usage: $out"
pass "workflows migrate names a missing version and a bad --map"
# Reprocessing (issue #17 item 3): a dry run on a fresh server covers no run and changes nothing;
# force without a reason, and an unknown workflow, are refused by the server.
out="$("$bin" reprocess --workflow chart-update --status failed --dry-run)" || fail "reprocess: $out"
grep -q "^runs: 0 of 0 chart(s)$" <<<"$out" || fail "reprocess dry run: $out"
if out="$("$bin" reprocess --workflow chart-update --force 2>&1)"; then
  fail "reprocess forced without a reason"
fi
grep -q "server answered 400: .*force needs a reason" <<<"$out" || fail "reprocess force: $out"
if out="$("$bin" reprocess --workflow nope --dry-run 2>&1)"; then fail "reprocessed workflow nope"; fi
grep -q "server answered 404: .*no workflow nope" <<<"$out" || fail "reprocess nope: $out"
out="$("$bin" reprocess --workflow chart-update --chart none-such)" || fail "reprocess start: $out"
grep -Eq "^job [0-9]+ \(chart-update\): (running|done), 0 of 0 run\(s\) started$" <<<"$out" ||
  fail "reprocess start: $out"
pass "reprocess: dry run, a job, refusals"
unset CHARTFLOW_TOKEN CHARTFLOW_SERVER
pass "workflows pause, list and resume; runs pause names a missing run"

# A SIGTERM to the whole process group (Ctrl-C, runuser passing it on) drains: the embedded
# PostgreSQL is chartflow's to stop, after the drain, not the signal's.
kill -TERM -- "-$server_pid"
wait "$server_pid" || fail "serve exited $? on SIGTERM"
server_pid=""
grep -q '"message":"stopped"' "$tmp/serve.log" || fail "serve did not drain and stop"
if grep -q '"message":"embedded_postgres_died"' "$tmp/serve.log"; then
  fail "the group's SIGTERM killed the embedded PostgreSQL under the drain"
fi
if pgrep -f "postgres -D $tmp/data" >/dev/null; then fail "PostgreSQL still runs after serve stopped"; fi
pass "a SIGTERM to serve's process group drains before PostgreSQL stops"
