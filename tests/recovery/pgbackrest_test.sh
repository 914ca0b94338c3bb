#!/usr/bin/env bash
# Point-in-time restore with pgBackRest, for real: a throwaway PostgreSQL 15 archives its WAL
# through pgBackRest into an encrypted repository, configured by deploy/pgbackrest/pgbackrest.conf
# as shipped (a byte-identical copy; only the repository, log and lock paths, the data directory,
# the socket and the port are moved into the temp dir, by PGBACKREST_* variables) and by the
# archive_command, archive_timeout, restore_command and replica command of
# deploy/pgbackrest/patroni-pgbackrest.yml as written there.
#
# stanza-create, check, a full backup; rows written, a time T noted (with a pause either side),
# more rows, a WAL switch; the cluster stopped; `restore --type=time --target=T
# --target-action=promote` into a NEW data directory, which is started and must hold the rows
# from before T and none from after. Then `info` must list the backup and `verify` must pass.
# Prints the backup and restore times. Everything it starts runs as `postgres` when run as root
# (PostgreSQL refuses root), and is stopped and removed at the end, on failure too.
#
# usage: tests/recovery/pgbackrest_test.sh [--keep]     (--keep: leave the temp dir for a look)
#   env PG_BINDIR   PostgreSQL 15's binaries (default /usr/lib/postgresql/15/bin)
# Needs the Debian packages pgbackrest and postgresql-15 (deploy/install_deps.sh --test).
# Output: `pgbackrest_test: ok: ...` lines, exit 0; `pgbackrest_test: FAIL: ...`, exit 1.
set -euo pipefail

readonly kStanza=chartflow
readonly kCmdTimeout=120 # seconds for any one pgbackrest or PostgreSQL command
here="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"
readonly conf_shipped="$repo_root/deploy/pgbackrest/pgbackrest.conf"
readonly patroni_snippet="$repo_root/deploy/pgbackrest/patroni-pgbackrest.yml"
pg_bindir="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"

start_ns=$EPOCHREALTIME
keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    *)
      echo "usage: $0 [--keep]" >&2
      exit 2
      ;;
  esac
done

# The script's own stdout and stderr, kept as fds 3 and 4: a failure inside a function whose
# output is redirected to a file (pgbr ... >file) must still reach the caller.
exec 3>&1 4>&2
reported=0
tmp=""
fail() {
  echo "pgbackrest_test: FAIL: $*" >&4
  reported=1
  exit 1
}
ok() { echo "pgbackrest_test: ok: $*" >&3; }
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# --- what is needed ---------------------------------------------------------------------------

command -v pgbackrest >/dev/null 2>&1 ||
  fail "pgbackrest is not installed: apt-get install pgbackrest (or deploy/install_deps.sh --test)"
pgbackrest_bin="$(command -v pgbackrest)"
pgbackrest_version="$("$pgbackrest_bin" version)" || fail "pgbackrest version did not run"
[[ "$pgbackrest_version" =~ ^pgBackRest\ 2\. ]] || fail "expected pgBackRest 2.x, found: $pgbackrest_version"
"$pgbackrest_bin" help verify >/dev/null 2>&1 ||
  fail "$pgbackrest_version has no verify command (Debian 12's 2.45 has it)"
[[ -x "$pg_bindir/pg_ctl" && -x "$pg_bindir/initdb" ]] ||
  fail "no PostgreSQL 15 in $pg_bindir: apt-get install postgresql-15 (or set PG_BINDIR)"
pg_version="$("$pg_bindir/pg_ctl" --version)"
[[ "$pg_version" =~ \)\ 15\. ]] || fail "expected PostgreSQL 15 in $pg_bindir, found: $pg_version"
[[ -r "$conf_shipped" ]] || fail "missing $conf_shipped"
[[ -r "$patroni_snippet" ]] || fail "missing $patroni_snippet"
if ((EUID == 0)); then
  id postgres >/dev/null 2>&1 || fail "running as root but there is no postgres user to run PostgreSQL as"
fi

# The value of `key:` in the Patroni snippet (one line, a trailing comment and quotes removed).
snippet_value() {
  local v
  v="$(sed -nE "s/^[[:space:]]*$1:[[:space:]]*//p" "$patroni_snippet" | head -n1)"
  v="$(sed -E 's/[[:space:]]+#.*$//; s/[[:space:]]+$//' <<<"$v")"
  if [[ "$v" =~ ^\'(.*)\'$ || "$v" =~ ^\"(.*)\"$ ]]; then v="${BASH_REMATCH[1]}"; fi
  [[ -n "$v" ]] || fail "no '$1:' in $patroni_snippet"
  printf '%s' "$v"
}
archive_command="$(snippet_value archive_command)"
archive_timeout="$(snippet_value archive_timeout)"
restore_command="$(snippet_value restore_command)"
replica_command="$(snippet_value command)" # the create_replica_methods pgbackrest method
[[ "$archive_command" == "pgbackrest --stanza=$kStanza archive-push %p" ]] ||
  fail "unexpected archive_command in the snippet: $archive_command"
[[ "$replica_command" == pgbackrest\ * ]] || fail "unexpected pgbackrest method command: $replica_command"
read -ra replica_argv <<<"$replica_command"

# --- the temp dir, and cleaning up whatever happens --------------------------------------------

tmp="$(mktemp -d /tmp/pgbackrest-test.XXXXXX)"
data="$tmp/data"         # the original cluster
restored="$tmp/restored" # the cluster restored to time T
sock="$tmp/sock"
pgdata="$data" # the cluster the next as_pg command concerns (pgBackRest's pg1-path)

# A command as the cluster's owner, with nothing from the caller's environment except what is set
# here: pgbackrest resolves to the wrapper below, PGBACKREST_PG1_PATH names the data directory.
as_pg() {
  local env=(PATH="$tmp/bin:$pg_bindir:/usr/sbin:/usr/bin:/sbin:/bin" HOME="$tmp"
    LANG=C.UTF-8 LC_ALL=C.UTF-8 TZ=UTC PGHOST="$sock" PGPORT="${port:-5432}" PGDATABASE=postgres
    PGBACKREST_PG1_PATH="$pgdata" PGDATA="$pgdata")
  if ((EUID == 0)); then
    runuser -u postgres -- env -i "${env[@]}" "$@" 3>&- 4>&-
  else
    env -i "${env[@]}" "$@" 3>&- 4>&-
  fi
}
psql_value() { as_pg timeout "$kCmdTimeout" psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
stop_cluster() { # dir: stop the postmaster, kill it if it will not stop
  local dir="$1" pid
  [[ -f "$dir/postmaster.pid" ]] || return 0
  pid="$(head -n1 "$dir/postmaster.pid" 2>/dev/null || true)"
  pgdata="$dir" as_pg timeout 60 pg_ctl -D "$dir" stop -m "${2:-immediate}" -w -t 50 >/dev/null 2>&1 || true
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
}
cleanup() {
  local status=$? pids=()
  set +e
  exec 1>&3 2>&4
  [[ -n "$tmp" && -d "$tmp" ]] || exit "$status"
  stop_cluster "$restored"
  stop_cluster "$data"
  # Anything else this run started (an archive-push, a pgbackrest local) names the temp dir.
  mapfile -t pids < <(pgrep -f -- "$tmp/")
  if ((${#pids[@]} > 0)); then
    sleep 1
    mapfile -t pids < <(pgrep -f -- "$tmp/")
    ((${#pids[@]} == 0)) || kill -9 "${pids[@]}" 2>/dev/null
  fi
  if ((status != 0)); then
    ((reported)) || echo "pgbackrest_test: FAIL: unexpected error (exit status $status), see above" >&2
    # PostgreSQL's logs and the newest pgBackRest log (the command that failed).
    for f in "$tmp/data.log" "$tmp/restored.log" \
      "$(find "$tmp/log" -name '*.log' -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -n1 | cut -d' ' -f2-)"; do
      [[ -s "$f" ]] || continue
      echo "--- last lines of ${f#"$tmp"/}" >&2
      tail -n 12 "$f" >&2
    done
  fi
  if ((keep)); then
    echo "pgbackrest_test: kept $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo "pgbackrest_test: FAIL: interrupted" >&4; reported=1; exit 130' INT TERM

mkdir -p "$tmp"/{bin,etc/conf.d,repo,log,lock,sock}
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

# The shipped configuration, unchanged, and the passphrase the way production keeps it: a conf.d
# file beside it, mode 0600.
cp "$conf_shipped" "$tmp/etc/pgbackrest.conf"
cmp -s "$conf_shipped" "$tmp/etc/pgbackrest.conf" || fail "could not copy $conf_shipped"
passphrase="$(head -c 36 /dev/urandom | base64)"
printf '[global]\nrepo1-cipher-pass=%s\n' "$passphrase" >"$tmp/etc/conf.d/chartflow-cipher.conf"
chmod 600 "$tmp/etc/conf.d/chartflow-cipher.conf"
# `pgbackrest` for this test: the real binary with the shipped file, the paths moved here. By
# environment, which overrides the file (the command line would too, but there pgBackRest
# rejects an option the command does not take, such as lock-path for check).
cat >"$tmp/bin/pgbackrest" <<EOF
#!/bin/sh
export PGBACKREST_CONFIG="$tmp/etc/pgbackrest.conf" PGBACKREST_CONFIG_INCLUDE_PATH="$tmp/etc/conf.d"
export PGBACKREST_REPO1_PATH="$tmp/repo" PGBACKREST_PG1_SOCKET_PATH="$sock" PGBACKREST_PG1_PORT="$port"
export PGBACKREST_LOG_PATH="$tmp/log" PGBACKREST_LOCK_PATH="$tmp/lock"
exec "$pgbackrest_bin" "\$@"
EOF
chmod 755 "$tmp/bin/pgbackrest"
chmod 700 "$tmp"
if ((EUID == 0)); then chown -R postgres: "$tmp"; fi
cd "$tmp" # the postgres user may not be able to enter the caller's directory

# --- a cluster that archives through pgBackRest --------------------------------------------------

as_pg initdb --data-checksums --encoding=UTF8 --locale=C.UTF-8 --auth=trust -D "$data" >"$tmp/initdb.log" 2>&1 ||
  fail "initdb failed: $(tail -n 3 "$tmp/initdb.log")"
conf_quote() { printf "'%s'" "${1//\'/\'\'}"; }
cat >>"$data/postgresql.conf" <<EOF
# pgbackrest_test.sh
listen_addresses = ''
port = $port
unix_socket_directories = '$sock'
wal_level = replica
archive_mode = on
archive_command = $(conf_quote "$archive_command")
archive_timeout = $archive_timeout
EOF
as_pg pg_ctl -D "$data" -l "$tmp/data.log" -w -t 60 start >/dev/null || fail "PostgreSQL did not start (data.log below)"
[[ "$(psql_value "SHOW data_checksums")" == on ]] || fail "data checksums are off"
ok "PostgreSQL 15 with data checksums on port $port, archive_command: $archive_command"

pgbr() { as_pg timeout "$kCmdTimeout" pgbackrest --stanza="$kStanza" "$@"; }
pgbr stanza-create >"$tmp/stanza-create.out" 2>&1 || fail "stanza-create failed: $(tail -n 5 "$tmp/stanza-create.out")"
pgbr check >"$tmp/check.out" 2>&1 || fail "check failed (archive_command not archiving?): $(tail -n 5 "$tmp/check.out")"
ok "stanza-create and check: $pgbackrest_version archives the WAL"

psql_value "CREATE TABLE t (x int PRIMARY KEY, phase text NOT NULL);
            INSERT INTO t SELECT g, 'base' FROM generate_series(1, 5000) g;" || fail "could not write rows"
t0=$EPOCHREALTIME
pgbr --type=full backup >"$tmp/backup.out" 2>&1 || fail "full backup failed: $(tail -n 5 "$tmp/backup.out")"
backup_s="$(seconds_since "$t0")"
ok "full backup in ${backup_s}s"

# Rows committed before T (two transactions), T, rows committed after T (two transactions). The
# pauses keep every commit's timestamp at least a second away from T.
psql_value "INSERT INTO t SELECT g, 'before' FROM generate_series(5001, 5500) g;" || fail "insert failed"
psql_value "INSERT INTO t SELECT g, 'before' FROM generate_series(5501, 6000) g;" || fail "insert failed"
sleep 1.5
target="$(psql_value "SELECT to_char(clock_timestamp(), 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")" ||
  fail "could not read the server's clock"
sleep 1.5
psql_value "INSERT INTO t SELECT g, 'after' FROM generate_series(6001, 6500) g;" || fail "insert failed"
psql_value "INSERT INTO t SELECT g, 'after' FROM generate_series(6501, 7000) g;" || fail "insert failed"
# check switches the WAL segment and waits until it is archived: the commits after T are in the
# repository, so recovery finds the first one and stops before it.
pgbr check >"$tmp/check2.out" 2>&1 || fail "WAL switch not archived: $(tail -n 5 "$tmp/check2.out")"
read -r archived failed <<<"$(psql_value "SELECT archived_count, failed_count FROM pg_stat_archiver" | tr '|' ' ')"
((archived > 0 && failed == 0)) || fail "pg_stat_archiver: $archived archived, $failed failed"
ok "6000 rows before T=$target, 1000 after, WAL switched ($archived segments archived, none failed)"

# The repository holds no readable data: info files and WAL are encrypted (OpenSSL's "Salted__").
wal_file="$(find "$tmp/repo/archive/$kStanza" -name '0000000100000000000000*' -type f -print -quit)"
for f in "$tmp/repo/backup/$kStanza/backup.info" "$tmp/repo/archive/$kStanza/archive.info" "$wal_file"; do
  [[ -f "$f" && "$(head -c 8 "$f")" == "Salted__" ]] || fail "not encrypted in the repository: ${f:-no WAL file}"
done
ok "repository encrypted (backup.info, archive.info, WAL)"

# The cluster is lost (in production: every Patroni node stopped); restore T into a new directory.
stop_cluster "$data" fast
mkdir "$restored"
chmod 700 "$restored"
if ((EUID == 0)); then chown postgres: "$restored"; fi
t0=$EPOCHREALTIME
pgdata="$restored" as_pg timeout "$kCmdTimeout" "${replica_argv[@]}" --type=time --target="$target" \
  --target-action=promote --recovery-option="restore_command=$restore_command" \
  >"$tmp/restore.out" 2>&1 || fail "restore failed: $(tail -n 5 "$tmp/restore.out")"
restore_files_s="$(seconds_since "$t0")"
pgdata="$restored"
as_pg pg_ctl -D "$restored" -l "$tmp/restored.log" -w -t 60 start >/dev/null ||
  fail "the restored cluster did not start (restored.log below)"
in_recovery=t
for _ in $(seq 1 120); do
  in_recovery="$(psql_value "SELECT pg_is_in_recovery()" 2>/dev/null || echo t)"
  [[ "$in_recovery" == f ]] && break
  if ! as_pg pg_ctl -D "$restored" status >/dev/null 2>&1; then
    fail "the restored cluster stopped during recovery: $(grep -m1 -E 'FATAL|PANIC' "$tmp/restored.log")"
  fi
  sleep 0.5
done
[[ "$in_recovery" == f ]] || fail "the restored cluster was not promoted within 60 s (restored.log below)"
restore_s="$(seconds_since "$t0")"
grep -q "recovery stopping before commit of transaction" "$tmp/restored.log" ||
  fail "recovery did not stop at a commit after T (restored.log below)"
grep -q "archive recovery complete" "$tmp/restored.log" || fail "no 'archive recovery complete' in restored.log"
db_size="$(psql_value "SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database")"
ok "restored to T and promoted in ${restore_s}s (files ${restore_files_s}s, then WAL replay; $db_size)"

counts="$(psql_value "SELECT count(*) FILTER (WHERE phase IN ('base', 'before')),
                             count(*) FILTER (WHERE phase = 'after') FROM t")" ||
  fail "could not read table t on the restored cluster"
[[ "$counts" == "6000|0" ]] ||
  fail "restored rows (before T|after T) = $counts, expected 6000|0"
ok "restored cluster has the 6000 rows committed before T and none of the 1000 after"

pgbr info --output=json >"$tmp/info.json" 2>"$tmp/info.err" || fail "info failed: $(cat "$tmp/info.err")"
info_summary="$(python3 - "$tmp/info.json" "$kStanza" <<'EOF'
import json, sys
stanzas = json.load(open(sys.argv[1]))
s = next((s for s in stanzas if s["name"] == sys.argv[2]), None)
if s is None or s["status"]["code"] != 0:
    sys.exit(f"stanza {sys.argv[2]} missing or not ok: {s and s['status']}")
full = [b for b in s["backup"] if b["type"] == "full"]
if not full:
    sys.exit("no full backup listed")
if s.get("cipher") != "aes-256-cbc":
    sys.exit(f"cipher {s.get('cipher')!r}, expected aes-256-cbc")
print(f"{full[-1]['label']}, {len(full)} full backup, cipher {s['cipher']}")
EOF
)" || fail "pgbackrest info does not list the backup: $info_summary"
ok "info lists $info_summary"

pgbr verify --output=text --verbose >"$tmp/verify.out" 2>&1 || fail "verify failed: $(tail -n 5 "$tmp/verify.out")"
if ! grep -qx "status: ok" "$tmp/verify.out" || ! grep -q "backup: .*, status: valid" "$tmp/verify.out"; then
  fail "verify did not report the repository ok: $(tail -n 5 "$tmp/verify.out")"
fi
ok "verify: status ok; $(sed -nE 's/^ *archiveId: [^,]*, (total WAL checked: .*)$/\1/p' "$tmp/verify.out" | head -n1); $(sed -nE 's/^ *backup: ([^,]*), status: ([a-z]+).*/backup \1 \2/p' "$tmp/verify.out" | head -n1)"

stop_cluster "$restored" fast
ok "done in $(seconds_since "$start_ns")s"
