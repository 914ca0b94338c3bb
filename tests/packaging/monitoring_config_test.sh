#!/usr/bin/env bash
# Checks the monitoring files in deploy/ as shipped, offline, in seconds:
#   - `promtool check config deploy/prometheus.yml` passes on the file itself (not a copy), which
#     also checks the rule files it names and that its credentials_file exists;
#   - `promtool check rules deploy/alert-rules.yml` passes, and `promtool test rules` passes on the
#     rules' own tests (tests/unit/testdata/prometheus/*_test.yml);
#   - deploy/grafana-dashboard.json is valid JSON; every panel, query and query variable uses the
#     datasource its `__inputs` declares (`${DS_PROMETHEUS}`); panel ids are unique and panels do
#     not overlap; the database (query p99 by kind, pool connections) and handler-process panels
#     exist;
#   - every chartflow_* metric the dashboard and the alert rules name is one that
#     engine/metrics/metrics.cpp registers (a histogram's _bucket, _count and _sum included);
#   - deploy/alertmanager.yml sends to chartflow's /v1/alertmanager with
#     http_config.authorization.credentials_file (and passes `amtool check-config` when amtool is
#     installed: Debian package prometheus-alertmanager).
# Needs promtool (Debian: apt-get install prometheus; deploy/install_deps.sh --test) and python3.
#
# Usage: tests/packaging/monitoring_config_test.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

status=0
ok() { echo "monitoring_config_test: ok: $*"; }
fail() {
  echo "monitoring_config_test: FAIL: $*"
  status=1
}

# Runs a command; passes when it exits 0 (and its output contains $2 when given).
check() {
  local what="$1" want="$2"
  shift 2
  local out rc=0
  out="$("$@" 2>&1)" || rc=$?
  if ((rc == 0)) && [[ -z "$want" || "$out" == *"$want"* ]]; then
    ok "$what"
  else
    fail "$what (exit $rc):"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
}

if ! command -v promtool >/dev/null 2>&1; then
  fail "promtool not found (apt-get install prometheus, or deploy/install_deps.sh --test)"
else
  # The scrape config names alert-rules.yml; promtool loads it too, so a missing file fails here.
  check "promtool check config deploy/prometheus.yml" "alert-rules.yml" \
    promtool check config deploy/prometheus.yml
  check "promtool check rules deploy/alert-rules.yml" "SUCCESS" \
    promtool check rules deploy/alert-rules.yml
  for rules_test in tests/unit/testdata/prometheus/*_test.yml; do
    check "promtool test rules $rules_test" "SUCCESS" promtool test rules "$rules_test"
  done
fi

if [[ ! -f deploy/alertmanager.yml ]]; then
  fail "deploy/alertmanager.yml is missing"
elif command -v amtool >/dev/null 2>&1; then
  check "amtool check-config deploy/alertmanager.yml" "SUCCESS" \
    amtool check-config deploy/alertmanager.yml
else
  echo "monitoring_config_test: note: amtool not found, deploy/alertmanager.yml checked by python only"
fi

python3 - <<'PY' || status=1
import json
import os
import re
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print(f"monitoring_config_test: FAIL: {msg}")


def ok(msg):
    print(f"monitoring_config_test: ok: {msg}")


# The metrics chartflow registers, and which of them are histograms.
src = open("engine/metrics/metrics.cpp", encoding="utf-8").read()
registered = {}
for kind, name in re.findall(r'Build(Counter|Gauge|Histogram|Summary)\(\)\s*\.Name\("([a-z0-9_]+)"\)', src):
    registered[name] = kind
for name in re.findall(r'gauge\(\*registry_,\s*"([a-z0-9_]+)"', src):
    registered[name] = "Gauge"
if not registered:
    fail("found no metric registered in engine/metrics/metrics.cpp")


def known_metric(name):
    if name in registered:
        return True
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and registered.get(name[: -len(suffix)]) == "Histogram":
            return True
    return False


def metric_names(text):
    return set(re.findall(r"\bchartflow_[a-z0-9_]*[a-z0-9]", text))


# --- Grafana dashboard ---
path = "deploy/grafana-dashboard.json"
try:
    with open(path, encoding="utf-8") as f:
        dashboard = json.load(f)
except (OSError, ValueError) as e:
    fail(f"{path} is not valid JSON: {e}")
    dashboard = None

if dashboard is not None:
    ok(f"{path} is valid JSON")
    inputs = [i for i in dashboard.get("__inputs", []) if i.get("type") == "datasource"]
    if len(inputs) != 1 or inputs[0].get("pluginId") != "prometheus":
        fail(f"{path}: __inputs must declare one Prometheus datasource, found {inputs}")
        ds_ref = None
    else:
        ds_ref = "${" + inputs[0]["name"] + "}"

    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    panels = list(walk(dashboard.get("panels", [])))
    exprs = []  # (panel title, expr)
    bad_ds = []
    for p in panels:
        title = p.get("title", f"id {p.get('id')}")
        targets = p.get("targets", [])
        ds = p.get("datasource")
        if (targets or ds is not None) and (not isinstance(ds, dict) or ds.get("uid") != ds_ref):
            bad_ds.append(f"panel '{title}': {ds}")
        for t in targets:
            tds = t.get("datasource")
            if not isinstance(tds, dict) or tds.get("uid") != ds_ref:
                bad_ds.append(f"panel '{title}' query {t.get('refId')}: {tds}")
            exprs.append((title, t.get("expr", "")))
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            vds = v.get("datasource")
            if not isinstance(vds, dict) or vds.get("uid") != ds_ref:
                bad_ds.append(f"variable '{v.get('name')}': {vds}")
            q = v.get("query")
            exprs.append((f"variable {v.get('name')}", q.get("query", "") if isinstance(q, dict) else str(q)))
    if ds_ref and not bad_ds:
        ok(f"{path}: every panel, query and query variable uses {ds_ref}")
    elif ds_ref:
        more = f"\n    ... and {len(bad_ds) - 8} more" if len(bad_ds) > 8 else ""
        fail(f"{path}: {len(bad_ds)} not using the declared datasource {ds_ref}:\n    "
             + "\n    ".join(bad_ds[:8]) + more)

    ids = [p.get("id") for p in panels]
    dupes = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    if dupes:
        fail(f"{path}: panel ids used twice: {dupes}")
    else:
        ok(f"{path}: {len(ids)} panels, unique ids")

    boxes = []
    for p in dashboard.get("panels", []):
        g = p.get("gridPos", {})
        boxes.append((p.get("title"), g.get("x", 0), g.get("y", 0), g.get("w", 0), g.get("h", 0)))
    overlaps = [
        f"'{a[0]}' and '{b[0]}'"
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[1] < b[1] + b[3] and b[1] < a[1] + a[3] and a[2] < b[2] + b[4] and b[2] < a[2] + a[4]
    ]
    if any(b[1] + b[3] > 24 for b in boxes):
        fail(f"{path}: a panel is wider than the 24-column grid")
    if overlaps:
        fail(f"{path}: overlapping panels: {', '.join(overlaps)}")

    # The panels the database and external handlers need.
    def panel_with(pattern, what):
        hits = [t for t, e in exprs if re.search(pattern, e)]
        if hits:
            ok(f"{path}: {what}: '{hits[0]}'")
        else:
            fail(f"{path}: no panel for {what}")

    panel_with(
        r"histogram_quantile\(\s*0\.99\s*,\s*sum\s+by\s*\((?=[^)]*\bkind\b)(?=[^)]*\ble\b)[^)]*\)\s*"
        r"\(\s*rate\(\s*chartflow_db_query_duration_seconds_bucket\b",
        "chartflow_db_query_duration_seconds p99 by kind",
    )
    panel_with(r"\bchartflow_db_pool_connections\b(?!_)", "chartflow_db_pool_connections")
    panel_with(r"\bchartflow_handler_processes\b", "chartflow_handler_processes")

    unknown = sorted({n for _, e in exprs for n in metric_names(e) if not known_metric(n)})
    if unknown:
        fail(f"{path}: metrics that engine/metrics/metrics.cpp does not register: {unknown}")
    else:
        ok(f"{path}: every metric queried is registered in engine/metrics/metrics.cpp")

# --- Alert rules: the metrics they name exist ---
rules = open("deploy/alert-rules.yml", encoding="utf-8").read()
unknown = sorted(n for n in metric_names(rules) if not known_metric(n))
if unknown:
    fail(f"deploy/alert-rules.yml: metrics that engine/metrics/metrics.cpp does not register: {unknown}")
else:
    ok("deploy/alert-rules.yml: every metric named is registered in engine/metrics/metrics.cpp")

# --- Alertmanager: the chartflow receiver carries an operator token from a file ---
path = "deploy/alertmanager.yml"
if os.path.exists(path):
    try:
        import yaml
    except ImportError:
        yaml = None
        print(f"monitoring_config_test: note: python3-yaml not found, {path} not parsed")
    if yaml is not None:
        try:
            with open(path, encoding="utf-8") as f:
                am = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            fail(f"{path} is not valid YAML: {e}")
            am = {}
        hooks = [
            (r.get("name"), w)
            for r in am.get("receivers", []) or []
            for w in r.get("webhook_configs", []) or []
            if str(w.get("url", "")).endswith("/v1/alertmanager")
        ]
        if not hooks:
            fail(f"{path}: no webhook_configs receiver sends to chartflow's /v1/alertmanager")
        for name, w in hooks:
            auth = (w.get("http_config") or {}).get("authorization") or {}
            if auth.get("credentials_file"):
                ok(f"{path}: receiver {name} sends an operator token from {auth['credentials_file']}")
            else:
                fail(f"{path}: receiver {name} has no http_config.authorization.credentials_file")

sys.exit(1 if failures else 0)
PY

exit "$status"
