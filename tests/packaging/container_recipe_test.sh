#!/usr/bin/env bash
# What can be checked of deploy/container/ without a container registry (our build machines
# reach none, so no base image can be pulled and the Containerfile is not built here):
#   - compose.yaml is valid YAML whose services mount files that exist in the repository;
#   - every COPY source of the Containerfile exists;
#   - the container's chartflow.yaml passes `chartflow config check` (with the workflows the
#     package installs) and listens on every interface, as the published port needs.
# The run stage itself installs the Debian package, which tests/packaging/deb_install_test.sh
# installs and runs the same way.
#
# Usage: tests/packaging/container_recipe_test.sh CHARTFLOW_BINARY
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$(readlink -f "${1:-build-test/chartflow}")"
fail() {
  echo "container_recipe_test: FAIL: $*" >&2
  exit 1
}

python3 - <<'PY' || fail "deploy/container/compose.yaml"
import os, sys, yaml
base = "deploy/container"
compose = yaml.safe_load(open(os.path.join(base, "compose.yaml")))
services = compose["services"]
for name in ("chartflow", "postgres", "prometheus", "alertmanager"):
    assert name in services, f"no {name} service"
for name, service in services.items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            path = os.path.normpath(os.path.join(base, source))
            assert os.path.exists(path), f"{name} mounts {source}, which does not exist"
build = services["chartflow"]["build"]
assert os.path.exists(os.path.join(base, build["context"], build["dockerfile"])), "no Containerfile"
PY

while read -r src; do
  [[ -e "$src" ]] || fail "the Containerfile copies $src, which does not exist"
done < <(awk '$1 == "COPY" && $2 !~ /^--from/ && $2 != "." { print $2 }' deploy/container/Containerfile)

out="$(ASAN_OPTIONS=detect_leaks=0 "$bin" config check --config deploy/container/chartflow.yaml \
  --workflows workflows 2>&1)" || fail "config check of deploy/container/chartflow.yaml: $out"
listen="$(ASAN_OPTIONS=detect_leaks=0 "$bin" config get listen --config deploy/container/chartflow.yaml)"
[[ "$listen" == 0.0.0.0:* ]] || fail "the container listens on $listen, not every interface"
echo "container_recipe_test: ok: compose.yaml, the Containerfile's sources, the container's settings"
