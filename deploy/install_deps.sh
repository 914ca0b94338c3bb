#!/usr/bin/env bash
# Installs the Debian 12 packages chartflow needs to build, run and test.
#
# Usage: deploy/install_deps.sh [--test] [--ha]
#   --test  also installs the test-only packages (headless browser, S3 clients, promtool from
#           `prometheus` for the metrics format and the deploy/ config checks, amtool from
#           `prometheus-alertmanager`, dpkg-dev for the package test, clang for fuzzing,
#           systemd for systemd-analyze on deploy/systemd/: container images come without it,
#           pgbackrest for tests/recovery/pgbackrest_test.sh, which backs up and restores a
#           throwaway PostgreSQL with deploy/pgbackrest/pgbackrest.conf).
#   --ha    also installs the high-availability test stack deploy/ha/run-ha-test.sh drives
#           (Patroni, etcd server and client, HAProxy for --via haproxy; PostgreSQL is base).
#
# Idempotent: packages are checked with dpkg-query first, so when everything is present the
# script touches neither apt nor the network. Works as root, or as a user with sudo.
set -euo pipefail

readonly kBasePackages=(
  build-essential cmake ninja-build pkg-config
  libboost-dev libboost-system-dev libboost-program-options-dev
  libpqxx-dev nlohmann-json3-dev prometheus-cpp-dev libyaml-cpp-dev libfmt-dev
  libgtest-dev libgmock-dev libssl-dev libcurl4-openssl-dev libargon2-dev libhowardhinnant-date-dev libmimalloc-dev tzdata
  postgresql postgresql-contrib
  clang-format python3 nodejs npm
)
readonly kTestPackages=(chromium chromium-driver awscli s3cmd prometheus prometheus-alertmanager dpkg-dev clang clang-tidy libclang-rt-14-dev systemd pgbackrest)
readonly kHaPackages=(patroni etcd-server etcd-client haproxy)

usage() {
  echo "usage: $0 [--test] [--ha]" >&2
  exit 2
}

want=("${kBasePackages[@]}")
for arg in "$@"; do
  case "$arg" in
    --test) want+=("${kTestPackages[@]}") ;;
    --ha) want+=("${kHaPackages[@]}") ;;
    -h | --help) usage ;;
    *)
      echo "install_deps: unknown argument: $arg" >&2
      usage
      ;;
  esac
done

# Names satisfied by what is installed: the packages themselves plus what they Provide. The
# latter matters for npm: NodeSource's nodejs provides (and conflicts with) Debian's npm, so
# asking apt for npm there would try to replace nodejs.
declare -A have=()
while IFS='|' read -r status name provides; do
  [[ "$status" == ii* ]] || continue
  have["$name"]=1
  if [[ -n "$provides" ]]; then
    IFS=',' read -ra provided <<<"$provides"
    for p in "${provided[@]}"; do
      p="${p%%(*}"           # drop a version constraint, "npm (= 1.0)" -> "npm "
      p="${p//[[:space:]]/}" # and the blanks around the name
      [[ -n "$p" ]] && have["$p"]=1
    done
  fi
done < <(dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Provides}\n' 2>/dev/null)

missing=()
for p in "${want[@]}"; do
  [[ -n "${have[$p]:-}" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install_deps: all ${#want[@]} packages already installed" >&2
  exit 0
fi

sudo_cmd=()
if ((EUID != 0)); then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install_deps: missing packages (${missing[*]}) and not root; install sudo or run as root" >&2
    exit 1
  fi
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive

echo "install_deps: installing: ${missing[*]}" >&2
"${sudo_cmd[@]}" apt-get update -q

# Drop names this distribution does not carry rather than failing the whole install on them.
installable=()
for p in "${missing[@]}"; do
  candidate="$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')"
  if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
    echo "install_deps: warning: package $p is not available here, skipping" >&2
  else
    installable+=("$p")
  fi
done
((${#installable[@]} > 0)) || exit 0

# sudo resets the environment, so pass the frontend on the command line as well.
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${installable[@]}"
