#!/usr/bin/env bash
# Three-node Patroni + etcd cluster on this machine, chartflow on it, and four faults under
# chart load: a planned switchover, kill -9 of the leader's postgres, the loss of the leader's
# whole node, and a frozen leader node (SIGSTOP for 40 s). Prints how long each fault kept a
# primary and chartflow's uploads away, and fails when an invariant broke: every upload answered
# 2xx stored once with one run, every run `succeeded`, no 500s, the audit chain intact.
# deploy/ha/README.md explains the configuration and the figures.
#
# Usage: deploy/ha/run-ha-test.sh [--no-install] [options of deploy/ha/ha_test.py]
#   --binary PATH     chartflow binary (default build-test/chartflow; build it first)
#   --via haproxy     connect through HAProxy with Patroni's REST checks instead of the
#                     multi-host URL with target_session_attrs=read-write
#   --faults LIST     e.g. --faults switchover,freeze (default all four, in that order)
#   --keep            keep the work directory (/tmp/cfha.*: every node's logs, chartflow.log)
#   --port-base N     ports N+1..N+50 on 127.0.0.1 (default 25400)
#   --help            all options
#   --no-install      skip deploy/install_deps.sh --ha (Patroni, etcd, HAProxy)
#
# As root the cluster runs as the `postgres` user (PostgreSQL and Patroni refuse root);
# otherwise as the current user. Nothing is left running, whatever the outcome.
# Exit status: 0 passed, 1 an invariant was violated, 2 the test could not run.
set -euo pipefail
cd "$(dirname "$0")/../.."

install=1
args=()
for arg in "$@"; do
  case "$arg" in
    --no-install) install=0 ;;
    *) args+=("$arg") ;;
  esac
done
if ((install)); then
  bash deploy/install_deps.sh --ha
fi

# libpq and OpenSSL keep process-lifetime allocations that LeakSanitizer reports as leaks.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
exec python3 deploy/ha/ha_test.py "${args[@]}"
