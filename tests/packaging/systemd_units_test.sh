#!/usr/bin/env bash
# Checks the systemd units in deploy/systemd/ offline, in seconds, with no running systemd, no
# chartflow user and no installed chartflow binary:
#   - `systemd-analyze verify` must report nothing (it exits 0 on unknown keys and bad values, so
#     any output fails the test);
#   - `systemd-analyze security --offline=true` prints each unit's exposure score, which must stay
#     under 2.0 ("OK").
# Skipped (exit 0) only when systemd-analyze is not installed (Debian: apt-get install systemd).
#
# Usage: tests/packaging/systemd_units_test.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

readonly kMaxExposure=2.0
readonly kUnits=(deploy/systemd/chartflow.service "deploy/systemd/chartflow-worker@.service")

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd_units_test: skipped: systemd-analyze not found"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# verify insists that each Exec*= program exists; the units name the installed /usr/bin/chartflow,
# so it checks copies that run an executable every machine has instead.
stand_in="$(type -P true)"

status=0
for unit in "${kUnits[@]}"; do
  name="$(basename "$unit")"
  if [[ ! -f "$unit" ]]; then
    echo "systemd_units_test: FAIL: $unit is missing"
    status=1
    continue
  fi

  sed "s#/usr/bin/chartflow#${stand_in}#g" "$unit" >"$work/$name"
  verify_rc=0
  # --man=false: no man pages to find; --recursive-errors=no: judge this unit, not the host's.
  verify_out="$(systemd-analyze verify --man=false --recursive-errors=no "$work/$name" 2>&1)" ||
    verify_rc=$?
  if ((verify_rc != 0)) || [[ -n "$verify_out" ]]; then
    echo "systemd_units_test: FAIL: systemd-analyze verify $unit (exit $verify_rc):"
    printf '%s\n' "$verify_out" | sed "s#${work}/#deploy/systemd/#g"
    status=1
  else
    echo "systemd_units_test: ok: systemd-analyze verify $unit"
  fi

  # The shipped file itself: the score is the one an installed unit gets.
  security_rc=0
  security_out="$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)" ||
    security_rc=$?
  score="$(printf '%s\n' "$security_out" |
    awk '/Overall exposure level/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+$/) print $i }')"
  if [[ -z "$score" ]]; then
    echo "systemd_units_test: FAIL: no exposure score for $unit (exit $security_rc):"
    printf '%s\n' "$security_out"
    status=1
  elif awk -v s="$score" -v max="$kMaxExposure" 'BEGIN { exit !(s + 0 < max + 0) }'; then
    echo "systemd_units_test: ok: $name exposure $score (under $kMaxExposure)"
  else
    echo "systemd_units_test: FAIL: $name exposure $score, must be under $kMaxExposure:"
    printf '%s\n' "$security_out" | grep -v '✓' || true
    status=1
  fi
done

exit "$status"
