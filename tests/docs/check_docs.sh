#!/usr/bin/env bash
# Keeps the documentation true: runs the examples of README.md and docs/*.md.
#
#  1. Every ```yaml block that is a workflow (top-level `name:` and `steps:` keys) is written to
#     a temporary folder and must pass `chartflow validate`.
#  2. Every ```sh / ```bash block whose preceding line (blank lines aside) is the HTML comment
#     `<!-- doc-test -->` runs, with `bash -eo pipefail`, against a real `chartflow serve` this
#     script starts: an embedded PostgreSQL in a temporary data dir, a free port on 127.0.0.1,
#     the repository's workflows/. A non-zero exit fails the check.
#
# Blocks run one by one, in document order (README.md first), each in a fresh shell whose
# working directory looks like the repository root after deploy/run.sh: `build/chartflow` is
# the binary under test, `./chartflow-data` the server's data dir (so `chartflow tokens create`
# finds its database), `tests/data` and `workflows` are the repository's. Exported to the blocks:
#   CHARTFLOW_URL        http://127.0.0.1:$PORT, the server
#   PORT                 its port
#   LAB_WEBHOOK_SECRET   the secret of the signed event type `lab.result` (--webhook-secrets)
# A block must therefore make its own token (blocks share no shell state). The server's chart
# handlers deliver bills to a temporary folder and reach no insurer.
#
# Usage: tests/docs/check_docs.sh [CHARTFLOW_BINARY]   (default: build/chartflow)
#   env CHECK_DOCS_VERBOSE=1   also print what each passing block wrote
# Exits 0 when every workflow validates and every marked block succeeds; prints a line per check.
# As root it works too: chartflow then runs its embedded cluster as the `postgres` user, so the
# temporary folder is made traversable for it.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd -P)"
log() { echo "check_docs: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

bin="${1:-$repo/build/chartflow}"
[[ -x "$bin" ]] || die "chartflow binary not found at $bin (build it, or pass its path)"
bin="$(cd "$(dirname "$bin")" && pwd -P)/$(basename "$bin")"
command -v curl >/dev/null || die "curl not found"

docs=("$repo/README.md")
shopt -s nullglob
docs+=("$repo"/docs/*.md)
shopt -u nullglob

tmp="$(mktemp -d "${TMPDIR:-/tmp}/chartflow-docs.XXXXXX")"
# As root, the embedded cluster runs as `postgres`, which must reach the data dir below.
chmod 0755 "$tmp"
server_pid=""
cleanup() {
  local status=$?
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if ((status != 0)) && [[ -f "$tmp/server.log" ]]; then
    log "last lines of the server's log:"
    tail -n 30 "$tmp/server.log" >&2 || true
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Splits the documents into blocks: for each fenced block, writes its text (indentation of the
# fence removed) to $tmp/blocks/<n>.<lang> and a line "<n> <lang> <marked> <doc>:<line>" to
# $tmp/blocks/index. `marked` is 1 when the last non-blank line before the fence is the marker.
mkdir -p "$tmp/blocks"
n=0
for doc in "${docs[@]}"; do
  rel="${doc#"$repo"/}"
  in_block=0
  indent=""
  last=""
  lineno=0
  while IFS= read -r line || [[ -n "$line" ]]; do
    lineno=$((lineno + 1))
    if ((in_block)); then
      if [[ "$line" =~ ^[[:space:]]*\`\`\`[[:space:]]*$ ]]; then
        in_block=0
        last=""
        continue
      fi
      printf '%s\n' "${line#"$indent"}" >>"$file"
      continue
    fi
    if [[ "$line" =~ ^([[:space:]]*)\`\`\`([A-Za-z0-9_+-]*) ]]; then
      in_block=1
      indent="${BASH_REMATCH[1]}"
      lang="${BASH_REMATCH[2]:-text}"
      n=$((n + 1))
      file="$tmp/blocks/$n.$lang"
      : >"$file"
      marked=0
      [[ "$last" =~ ^[[:space:]]*\<\!--[[:space:]]*doc-test[[:space:]]*--\>[[:space:]]*$ ]] && marked=1
      echo "$n $lang $marked $rel:$lineno" >>"$tmp/blocks/index"
      continue
    fi
    [[ "$line" =~ ^[[:space:]]*$ ]] || last="$line"
  done <"$doc"
  ((in_block == 0)) || die "$rel: a code block is not closed"
done
[[ -f "$tmp/blocks/index" ]] || die "no code blocks found"

failures=0
workflows=0
commands=0

# 1. Workflows.
# Examples may name the repository's external handler code (workflows/handlers/greet.py).
mkdir -p "$tmp/workflows"
ln -s "$repo/workflows/handlers" "$tmp/workflows/handlers"
while read -r id lang marked where; do
  [[ "$lang" == yaml || "$lang" == yml ]] || continue
  block="$tmp/blocks/$id.$lang"
  grep -q '^name:' "$block" && grep -q '^steps:' "$block" || continue
  workflows=$((workflows + 1))
  wf="$tmp/workflows/doc-$id.yaml"
  cp "$block" "$wf"
  if out="$("$bin" validate "$wf" 2>&1 </dev/null)"; then
    echo "ok    validate  $where"
  else
    echo "FAIL  validate  $where"
    printf '%s\n' "$out" | sed "s|$wf|$where (block)|; s/^/      /"
    failures=$((failures + 1))
  fi
done <"$tmp/blocks/index"

# 2. Marked command blocks, against a real server.
if grep -Eq '^[0-9]+ (sh|bash) 1 ' "$tmp/blocks/index"; then
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
  [[ "$port" =~ ^[0-9]+$ ]] || die "could not find a free port (python3 or node needed)"
  url="http://127.0.0.1:$port"
  lab_secret="doc-test-lab-secret-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"

  # What the blocks see as the repository root.
  work="$tmp/work"
  mkdir -p "$work/build" "$work/tests" "$tmp/bills"
  ln -s "$bin" "$work/build/chartflow"
  ln -s "$repo/tests/data" "$work/tests/data"
  ln -s "$repo/examples" "$work/examples"
  ln -s "$repo/workflows" "$work/workflows"
  echo 'lab.result: { secret_env: LAB_WEBHOOK_SECRET }' >"$tmp/webhook-secrets.yaml"

  log "starting $bin serve on $url (data dir $work/chartflow-data)"
  (cd "$work" && LAB_WEBHOOK_SECRET="$lab_secret" CHARTFLOW_BILL_DIR="$tmp/bills" \
    CHARTFLOW_INSURER_URL="" CHARTFLOW_BILL_WEBHOOK_URL="" \
    exec "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/chartflow-data" \
    --workflows "$repo/workflows" --webhook-secrets "$tmp/webhook-secrets.yaml") \
    >"$tmp/server.log" 2>&1 &
  server_pid=$!
  healthy=0
  for _ in $(seq 1 600); do
    kill -0 "$server_pid" 2>/dev/null || die "chartflow serve exited during start-up"
    if curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; then
      healthy=1
      break
    fi
    sleep 0.2
  done
  ((healthy)) || die "chartflow serve did not answer $url/readyz within 120 s"

  while read -r id lang marked where; do
    [[ "$lang" == sh || "$lang" == bash ]] && ((marked)) || continue
    commands=$((commands + 1))
    if out="$(cd "$work" && env -u CHARTFLOW_TOKEN -u CHARTFLOW_DATABASE_URL -u CHARTFLOW_DATABASE_URL_FILE \
      CHARTFLOW_URL="$url" PORT="$port" LAB_WEBHOOK_SECRET="$lab_secret" timeout 120 bash -eo pipefail "$tmp/blocks/$id.$lang" </dev/null 2>&1)"; then
      echo "ok    run       $where"
      [[ -z "${CHECK_DOCS_VERBOSE:-}" ]] || printf '%s\n' "$out" | sed 's/^/      > /'
    else
      status=$?
      echo "FAIL  run       $where (exit $status)"
      sed 's/^/      | /' "$tmp/blocks/$id.$lang"
      printf '%s\n' "$out" | tail -n 40 | sed 's/^/      > /'
      failures=$((failures + 1))
    fi
    kill -0 "$server_pid" 2>/dev/null || die "chartflow serve died while running $where"
  done <"$tmp/blocks/index"
fi

echo "check_docs: $workflows workflows validated, $commands command blocks run, $failures failed"
((workflows > 0 && commands > 0)) || die "found no workflow or no doc-test block: is the marker right?"
((failures == 0))
