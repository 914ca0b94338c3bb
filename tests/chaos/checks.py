"""What a run left behind (SQL, receivers, bill folder) and the invariants over it.

snapshot() reads the database once the load has drained; check_run() checks one run on its own;
compare() checks the fault run against the fault-free control. Each violated invariant is
(name, count, evidence lines).
"""

import json
import re
import time
from collections import Counter, defaultdict

TERMINAL = ("succeeded", "failed", "cancelled")

# History types that hand an attempt back (a lost lease, a restart reclaiming, a release).
GIVEN_BACK = ("lease_expired",)

QUERIES = {
    "runs_by_status": "SELECT status, count(*) AS n FROM workflow_run GROUP BY status",
    "runs_total": "SELECT count(*) AS n FROM workflow_run",
    "nonterminal_runs": (
        "SELECT r.id, r.status, e.body->>'chart_id' AS chart_id, "
        "(SELECT string_agg(s.step_key || ':' || s.status || '#' || s.attempt || '/' || "
        "s.max_attempts, ' ' ORDER BY s.step_key) FROM step_run s WHERE s.run_id = r.id) AS steps "
        "FROM workflow_run r JOIN event e ON e.id = r.event_id "
        "WHERE r.status NOT IN ('succeeded', 'failed', 'cancelled') ORDER BY r.id"),
    "failed_runs": (
        "SELECT r.id, r.status, r.error, e.body->>'chart_id' AS chart_id FROM workflow_run r "
        "JOIN event e ON e.id = r.event_id WHERE r.status IN ('failed', 'cancelled') "
        "ORDER BY r.id"),
    "uploads": ("SELECT chart_id, content_hash, revision FROM chart_revision "
                "WHERE source = 'upload'"),
    "writebacks": ("SELECT chart_id, count(*) AS n FROM chart_revision WHERE source = 'writeback' "
                   "GROUP BY chart_id"),
    "upload_events": (
        "SELECT e.id, e.body->>'chart_id' AS chart_id, e.body->>'content_hash' AS sha, "
        "(SELECT count(*) FROM workflow_run r WHERE r.event_id = e.id) AS runs "
        "FROM event e WHERE e.type = 'chart.uploaded'"),
    "ledger": (
        "SELECT chart_id, source_ref, kind, code, code_system, quantity::text AS quantity, "
        "amount::text AS amount, currency, amount_source, payor FROM ledger_entry"),
    "invoices": ("SELECT id, chart_id, revision, total::text AS total, currency, status, fhir, "
                 "bill_text FROM invoice"),
    "bill_deliveries": "SELECT chart_id, channel, count(*) AS n FROM bill_delivery GROUP BY 1, 2",
    "questions": (
        "SELECT chart_id, rule_id, resource_ref, severity, status, opened_revision, "
        "closed_revision FROM chart_question"),
    "reviews": (
        "SELECT id, chart_id, revision, assignee, original_assignee, status, decision, "
        "escalations FROM review"),
    "outbox": (
        "SELECT o.id, o.chart_id, o.payor, o.kind, o.idempotency_key, o.payload, o.status, "
        "o.attempts, (SELECT count(*) FROM insurer_delivery_attempt a WHERE a.outbox_id = o.id) "
        "AS attempt_rows FROM insurer_outbox o"),
    # For an undelivered notification: what the chart's insurance steps did, attempt by attempt.
    "outbox_undelivered_context": (
        "SELECT o.idempotency_key, s.run_id, s.status, s.attempt, s.output::text AS output, "
        "(SELECT string_agg(h.type || '#' || coalesce(h.attempt::text, '-') || '@' || "
        "to_char(h.at, 'HH24:MI:SS.MS') || coalesce(' ' || left(h.worker, 8), ''), ', ' "
        "ORDER BY h.id) FROM run_history h WHERE h.run_id = s.run_id AND h.step = s.step_key) "
        "AS history FROM insurer_outbox o JOIN event e ON e.type = 'chart.uploaded' "
        "AND e.body->>'chart_id' = o.chart_id JOIN workflow_run r ON r.event_id = e.id "
        "JOIN step_run s ON s.run_id = r.id "
        "AND s.step_key = CASE o.kind WHEN 'final' THEN 'discharge' ELSE 'insurance' END "
        "WHERE o.status NOT IN ('delivered', 'skipped')"),
    "history_totals": "SELECT type, count(*) AS n FROM run_history GROUP BY type",
    # Every step whose attempts are not all explained by its handler's own failures.
    "attempt_anomalies": (
        "WITH h AS (SELECT run_id, step, "
        "  count(*) FILTER (WHERE type = 'started') AS started, "
        # A for_each step's planning gives its attempt back, as a wait does ('scheduled').
        "  count(*) FILTER (WHERE type IN ('waiting', 'scheduled')) AS waits, "
        "  count(*) FILTER (WHERE type IN ('lease_expired')) AS given_back, "
        "  count(*) FILTER (WHERE type = 'timed_out') AS timed_out, "
        "  count(*) FILTER (WHERE type = 'retried' AND coalesce(detail->>'by', '') <> 'operator') "
        "    AS handler_retries, "
        "  count(*) FILTER (WHERE type = 'failed') AS failed "
        "  FROM run_history WHERE step IS NOT NULL GROUP BY run_id, step) "
        "SELECT s.run_id, s.step_key, s.status, s.attempt, s.max_attempts, s.error, "
        "  e.body->>'chart_id' AS chart_id, h.started, h.waits, h.given_back, h.timed_out, "
        "  h.handler_retries, h.failed, "
        "  h.started - h.waits - h.given_back AS charged "
        "FROM step_run s JOIN h ON h.run_id = s.run_id AND h.step = s.step_key "
        "JOIN workflow_run r ON r.id = s.run_id JOIN event e ON e.id = r.event_id "
        "WHERE s.status IN ('failed', 'parked') OR s.attempt > s.max_attempts "
        "  OR h.timed_out > 0 "
        "  OR h.started - h.waits - h.given_back > 1 + h.handler_retries "
        "ORDER BY s.run_id, s.step_key"),
    "figures": (
        "SELECT count(*) AS runs, "
        "extract(epoch FROM max(finished_at) - min(created_at)) AS span_s, "
        "extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY finished_at - created_at))"
        " AS run_p50_s FROM workflow_run"),
    "scan_latency": (
        "SELECT extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY s.started_at - "
        "r.created_at)) AS p50_s, extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY "
        "s.started_at - r.created_at)) AS p99_s, extract(epoch FROM max(s.started_at - "
        "r.created_at)) AS max_s FROM step_run s JOIN workflow_run r ON r.id = s.run_id "
        "WHERE s.step_key = 'scan' AND s.started_at IS NOT NULL"),
}


def snapshot(cluster):
    snap = {"errors": {}}
    for name, q in QUERIES.items():
        try:
            snap[name] = cluster.sql_json(q, timeout=300)
        except Exception as e:  # noqa: BLE001 - a schema change must not hide the rest
            snap[name] = []
            snap["errors"][name] = str(e)
    return snap


# --- normalisation for the comparison with the control ---------------------------------------

RUN_KEY = re.compile(r"run-\d+/")


def norm_key(key):
    """Insurer keys carry the run id (`run-42/billing:claim:...`); runs number differently."""
    return RUN_KEY.sub("run-N/", key)


def norm_payload(p):
    return json.loads(RUN_KEY.sub("run-N/", json.dumps(p, sort_keys=True)))


def norm_bill_text(text):
    return "\n".join(line for line in (text or "").splitlines() if not line.startswith("Issued:"))


def norm_invoice_fhir(f):
    f = dict(f or {})
    f.pop("date", None)
    return json.dumps(f, sort_keys=True)


def by_chart(rows, fields):
    out = defaultdict(list)
    for r in rows:
        out[r["chart_id"]].append(tuple(
            json.dumps(r[f], sort_keys=True) if isinstance(r[f], (dict, list)) else r[f]
            for f in fields))
    return {k: sorted(v, key=repr) for k, v in out.items()}


# --- invariants ------------------------------------------------------------------------------


class Verdict:
    def __init__(self, label):
        self.label = label
        self.results = []  # (name, ok, count, evidence)

    def add(self, name, bad, describe=str, limit=8):
        bad = list(bad)
        self.results.append((name, not bad, len(bad), [describe(b) for b in bad[:limit]]))

    def violations(self):
        return [r for r in self.results if not r[1]]


def check_run(label, snap, uploads, plan, insurer, bills, folder, audit, procs_report):
    """The invariants one run must hold on its own."""
    v = Verdict(label)
    for name, err in snap["errors"].items():
        v.results.append((f"snapshot query {name}", False, 1, [err]))

    accepted = {(r["chart_id"], r["sha"]) for r in uploads.values()
                if r["status"] is not None and 200 <= r["status"] < 300}
    stored = {(r["chart_id"], r["content_hash"]) for r in snap["uploads"]}
    v.add("0 lost accepted uploads", sorted(accepted - stored),
          lambda x: f"chart {x[0]} content {x[1][:12]}: 2xx to the client, no revision stored")
    v.add("every upload accepted (client retried to its deadline)",
          [r for r in uploads.values() if r["status"] is None or not 200 <= r["status"] < 300],
          lambda r: f"chart {r['chart_id']}: last {r['status']} after {r['attempts']} tries "
                    f"({Counter(map(str, r['seen'])).most_common(4)}) {r.get('error', '')[:120]}")

    events = defaultdict(list)
    for e in snap["upload_events"]:
        events[(e["chart_id"], e["sha"])].append(e["runs"])
    v.add("exactly one event and one run per stored upload",
          sorted(k for k in stored if events.get(k) != [1]) +
          sorted(k for k in events if k not in stored),
          lambda k: f"chart {k[0]} content {k[1][:12]}: events/runs {events.get(k)}")

    v.add("every run terminal", snap["nonterminal_runs"],
          lambda r: f"run {r['id']} ({r['chart_id']}) {r['status']}: {r['steps']}")
    v.add("every run succeeded", snap["failed_runs"],
          lambda r: f"run {r['id']} ({r['chart_id']}) {r['status']}: {(r['error'] or '')[:200]}")

    v.add("attempts never spent or exhausted by crashes", snap["attempt_anomalies"],
          lambda s: (f"run {s['run_id']} ({s['chart_id']}) step {s['step_key']} {s['status']} at "
                     f"attempt {s['attempt']}/{s['max_attempts']}: {s['charged']} charged, "
                     f"{s['handler_retries']} handler failures, {s['given_back']} given back, "
                     f"{s['timed_out']} timeouts"
                     f"{('; ' + s['error'][:120]) if s['error'] else ''}"))

    # --- insurer ------------------------------------------------------------------------------
    records, bodies, _ = insurer
    outbox = {o["idempotency_key"]: o for o in snap["outbox"]}
    answered = {r["key"] for r in records if r["mode"] == "ok"}
    shas = defaultdict(set)
    for r in records:
        shas[r["key"]].add(r["sha"])
    context = defaultdict(list)
    for c in snap.get("outbox_undelivered_context", []):
        context[c["idempotency_key"]].append(
            f"run {c['run_id']} step {c['status']} #{c['attempt']} output {c['output']}; "
            f"history {c['history']}")
    v.add("each insurer key delivered at least once",
          sorted(k for k, o in outbox.items() if o["status"] != "skipped"
                 and (k not in answered or o["status"] != "delivered")),
          lambda k: f"{k}: outbox {outbox[k]['status']} after {outbox[k]['attempts']} attempts "
                    f"({outbox[k]['attempt_rows']} attempt rows), receiver got it "
                    f"{_modes(records, k)}; " + " | ".join(context.get(k, [])))
    v.add("no insurer key with two different bodies",
          sorted(k for k, s in shas.items() if len(s) > 1),
          lambda k: f"{k}: {len(shas[k])} bodies "
                    f"{_body_diff(bodies, k, shas[k])}")
    v.add("every insurer call is a notification the database holds",
          sorted(k for k in shas if k not in outbox),
          lambda k: f"{k}: sent {sum(1 for r in records if r['key'] == k)}x, no outbox row")
    mismatched = []
    for k, o in outbox.items():
        for sha in shas.get(k, ()):
            try:
                if json.loads(bodies[(k, sha)]) != o["payload"]:
                    mismatched.append(k)
            except ValueError:
                mismatched.append(k)
    v.add("insurer received what the outbox holds", sorted(set(mismatched)))

    # --- bills --------------------------------------------------------------------------------
    brecords, bbodies, _ = bills
    invoices = defaultdict(list)
    for i in snap["invoices"]:
        invoices[i["chart_id"]].append(i)
    released = {op["chart_id"] for op in plan if op["released"]}
    accepted_charts = {c for c, _ in accepted}
    bill_key = {c: f"bill:{c}:webhook" for c in invoices}
    banswered = {r["key"] for r in brecords if r["mode"] == "ok"}
    bshas = defaultdict(set)
    for r in brecords:
        bshas[r["key"]].add(r["sha"])
    v.add("each bill key delivered at least once",
          sorted(c for c in invoices if bill_key[c] not in banswered),
          lambda c: f"{bill_key[c]}: never answered 2xx "
                    f"({sum(1 for r in brecords if r['key'] == bill_key[c])} tries)")
    v.add("no bill key with two different bodies",
          sorted(k for k, s in bshas.items() if len(s) > 1),
          lambda k: f"{k}: {len(bshas[k])} different bodies {_bill_diff(bbodies, k, bshas[k])}")

    once = []
    for c in sorted(released & accepted_charts):
        if len(invoices.get(c, [])) != 1:
            once.append(f"released chart {c}: {len(invoices.get(c, []))} invoices")
    for c in sorted(set(invoices) - released):
        once.append(f"chart {c} is not released but has an invoice")
    seen_files = folder.seen if folder else {}
    for c, inv in sorted(invoices.items()):
        text = inv[0]["bill_text"]
        name = f"{c}-invoice.txt"
        hist = seen_files.get(name, [])
        distinct = {sha for _, sha in hist}
        if not hist:
            once.append(f"chart {c}: no bill file in the folder")
        elif len(distinct) > 1:
            once.append(f"chart {c}: bill file written with {len(distinct)} different contents "
                        f"({len(hist)} writes seen)")
        elif folder.contents.get((name, next(iter(distinct)))) != text:
            once.append(f"chart {c}: bill file differs from the invoice in the database")
        wb = [json.loads(bbodies[(bill_key[c], s)]) for s in bshas.get(bill_key[c], ())
              if (bill_key[c], s) in bbodies]
        ids = {b.get("invoice_id") for b in wb}
        if len(ids) > 1:
            once.append(f"chart {c}: webhook got invoice ids {sorted(map(str, ids))}")
        if any(b.get("bill_text") != text for b in wb):
            once.append(f"chart {c}: a webhook bill differs from the invoice in the database")
    for k in bshas:
        c = k.split(":")[1] if k.count(":") >= 2 else k
        if c not in invoices:
            once.append(f"{k}: bill sent for a chart without an invoice")
    for name in seen_files:
        if name[: -len("-invoice.txt")] not in invoices:
            once.append(f"bill file {name} without an invoice")
    v.add("bills to patients exactly once", once)

    v.add("audit chain intact", [] if audit["ok"] else [audit["detail"]])
    v.add("no chartflow process died unasked (ASan/UBSan, abort, exit)",
          procs_report["unexpected"])
    v.add("no sanitizer report in chartflow logs", procs_report["sanitizer"])
    v.add("/healthz answers within 2 s while PostgreSQL is frozen",
          procs_report["healthz_frozen"])
    return v


def _modes(records, key):
    got = [time.strftime("%H:%M:%S", time.localtime(r["t"])) + f".{int(r['t'] % 1 * 1000):03d} "
           + r["mode"] for r in records if r["key"] == key]
    return "never" if not got else "[" + ", ".join(got) + "]"


def _body_diff(bodies, key, shas):
    docs = [bodies.get((key, s), b"") for s in sorted(shas)]
    try:
        a, b = (json.loads(d) for d in docs[:2])
    except ValueError:
        return ""
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return f"(differ in {', '.join(keys)})"


def _bill_diff(bodies, key, shas):
    out = []
    for s in sorted(shas):
        try:
            b = json.loads(bodies.get((key, s), b"{}"))
        except ValueError:
            continue
        issued = next((ln for ln in (b.get("bill_text") or "").splitlines()
                       if ln.startswith("Issued:")), "?")
        out.append(f"invoice_id={b.get('invoice_id')} {issued.strip()}")
    return "[" + "; ".join(out[:5]) + "]"


def compare(control, fault, c_uploads, f_uploads):
    """The fault run against the fault-free control: the same charts, the same outcome."""
    v = Verdict("fault vs control")

    def accepted(u):
        return {r["chart_id"] for r in u.values()
                if r["status"] is not None and 200 <= r["status"] < 300}

    charts = accepted(c_uploads) & accepted(f_uploads)
    v.add("same charts stored as the control",
          sorted(accepted(c_uploads) ^ accepted(f_uploads)))

    def diff(name, fields, rows_c, rows_f, norm=lambda t: t):
        a = {k: [norm(t) for t in x] for k, x in by_chart(rows_c, fields).items() if k in charts}
        b = {k: [norm(t) for t in x] for k, x in by_chart(rows_f, fields).items() if k in charts}
        bad = sorted(k for k in set(a) | set(b) if sorted(a.get(k, []), key=repr)
                     != sorted(b.get(k, []), key=repr))
        v.add(name, bad, lambda k: f"chart {k}: control {_short(a.get(k))} / fault "
                                   f"{_short(b.get(k))}")

    diff("ledger identical to the control",
         ["source_ref", "kind", "code", "code_system", "quantity", "amount", "currency",
          "amount_source", "payor"], control["ledger"], fault["ledger"])

    def inv_rows(snap):
        return [{"chart_id": i["chart_id"], "total": i["total"], "currency": i["currency"],
                 "status": i["status"], "fhir": norm_invoice_fhir(i["fhir"]),
                 "bill": norm_bill_text(i["bill_text"])} for i in snap["invoices"]]
    diff("invoices identical to the control", ["total", "currency", "status", "fhir", "bill"],
         inv_rows(control), inv_rows(fault))
    diff("bill deliveries identical to the control", ["channel", "n"],
         control["bill_deliveries"], fault["bill_deliveries"])
    diff("questions identical to the control",
         ["rule_id", "resource_ref", "severity", "status", "opened_revision", "closed_revision"],
         control["questions"], fault["questions"])
    diff("write-backs identical to the control", ["n"], control["writebacks"],
         fault["writebacks"])
    diff("reviews identical to the control",
         ["revision", "assignee", "original_assignee", "status", "decision", "escalations"],
         control["reviews"], fault["reviews"])

    def ob_rows(snap):
        return [{"chart_id": o["chart_id"], "payor": o["payor"], "kind": o["kind"],
                 "key": norm_key(o["idempotency_key"]), "payload": norm_payload(o["payload"]),
                 "status": o["status"]} for o in snap["outbox"]]
    diff("insurer notifications identical to the control",
         ["payor", "kind", "key", "payload", "status"], ob_rows(control), ob_rows(fault))
    return v


def _short(x):
    s = repr(x)
    return s if len(s) < 160 else s[:157] + "..."
