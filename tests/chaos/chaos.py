#!/usr/bin/env python3
"""chartflow's fault suite (issue #15): the same charts through a fault-free control run and a
fault run, then the invariants checked by SQL and by what the fake insurer and bill receivers
recorded. See docs/chaos.md.

  python3 tests/chaos/chaos.py --charts 200 --kills 10 --pg-kills 2 --pg-stops 1 --receiver-faults

Each run starts its own PostgreSQL cluster (deploy/start_test_postgres.sh in a fresh directory
on a free port), two `chartflow serve` processes and one `chartflow worker` on it, a fake insurer
and a fake bill webhook. Exit status: 0 when every invariant holds, 1 when one is violated (each
is named with its evidence), 2 when the suite itself could not run.
"""

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checks  # noqa: E402
from cluster import Cluster  # noqa: E402
from load import Api, ReviewDecider, Uploader, load_charts, make_plan  # noqa: E402
from procs import ChartflowProc, http_get  # noqa: E402
from receivers import BillFolderWatcher, Receiver  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SANITIZER = re.compile(r"ERROR: AddressSanitizer|runtime error:|SUMMARY: \w+Sanitizer|"
                       r"ERROR: LeakSanitizer")


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_binary():
    for p in (REPO / "build-test/chartflow", REPO / "build-rel/chartflow",
              REPO.parent / "build-rel/chartflow"):
        if p.exists():
            return str(p)
    return str(REPO / "build-test/chartflow")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--charts", type=int, default=200, help="distinct charts uploaded (200)")
    p.add_argument("--kills", type=int, default=10,
                   help="SIGKILLs of chartflow processes (serve and worker) in the fault run")
    p.add_argument("--pg-kills", type=int, default=2, help="SIGKILLs of the PostgreSQL postmaster")
    p.add_argument("--pg-stops", type=int, default=1,
                   help="SIGSTOPs of every PostgreSQL process, for --pg-stop-seconds")
    p.add_argument("--pg-stop-seconds", type=float, nargs=2, default=[3.0, 6.0],
                   metavar=("MIN", "MAX"), help="how long PostgreSQL stays frozen (3 6)")
    p.add_argument("--receiver-faults", action="store_true",
                   help="insurer and bill webhook outages (500, reset, hang) in the fault run")
    p.add_argument("--receiver-outages", type=int, default=6,
                   help="number of receiver outages with --receiver-faults (6)")
    p.add_argument("--outage-modes", default="500,reset,hang",
                   help="receiver outage modes, used in turn (500,reset,hang)")
    p.add_argument("--outage-seconds", type=float, nargs=2, default=[3.0, 8.0],
                   metavar=("MIN", "MAX"), help="length of a receiver outage (3 8)")
    p.add_argument("--hang-seconds", type=float, default=12.0,
                   help="how long a hanging receiver holds a request (12; chartflow's outside "
                        "calls time out after 10 s)")
    p.add_argument("--seed", type=int, default=15, help="the plan and the fault schedule (15)")
    p.add_argument("--binary", default=default_binary(),
                   help="chartflow binary (build-test/chartflow, else build-rel/chartflow)")
    p.add_argument("--out", default=str(REPO / "test-output/chaos"),
                   help="reports, logs and receiver records (test-output/chaos)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--control", dest="mode", action="store_const", const="control",
                      help="only the fault-free control run")
    mode.add_argument("--fault", dest="mode", action="store_const", const="fault",
                      help="only the fault run (no comparison)")
    p.set_defaults(mode="both")
    p.add_argument("--workflows-from", default=str(REPO / "workflows"),
                   help="where chart-update.yaml, rules/ and settings/ are copied from "
                        "(workflows/; another tree's for another tree's binary)")
    p.add_argument("--charts-dir", default=str(REPO / "tests/data/charts"),
                   help="FHIR Bundles to draw from (tests/data/charts)")
    p.add_argument("--max-chart-bytes", type=int, default=1_100_000,
                   help="leave out larger sample charts (1100000: all but the 3.9 MB one)")
    p.add_argument("--window", type=float, default=None,
                   help="seconds over which the fault run's uploads and faults are spread "
                        "(default: 6 s per fault, at least 60)")
    p.add_argument("--upload-threads", type=int, default=4)
    p.add_argument("--serves", type=int, default=2, help="chartflow serve processes (2)")
    p.add_argument("--workers", type=int, default=1, help="chartflow worker processes (1)")
    p.add_argument("--worker-threads", type=int, default=4,
                   help="step threads per process (serve --workers, worker --concurrency)")
    p.add_argument("--lease-ms", type=int, default=5000,
                   help="step lease (5000; a killed process's steps come back after it)")
    p.add_argument("--drain-timeout", type=float, default=240.0,
                   help="longest wait for every run to end after the load (240 s)")
    p.add_argument("--give-up-seconds", type=float, default=180.0,
                   help="a client stops retrying one upload after this long (180 s)")
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL clusters")
    a = p.parse_args(argv)
    a.outage_modes = [m.strip() for m in a.outage_modes.split(",") if m.strip()]
    if not a.outage_modes or set(a.outage_modes) - {"500", "reset", "hang"}:
        p.error("--outage-modes takes a comma-separated list of 500, reset and hang")
    if a.window is None:
        a.window = max(60.0, 6.0 * (a.kills + a.pg_kills + a.pg_stops))
    return a


class Run:
    """One run: its own cluster, receivers, chartflow processes, load and (maybe) faults."""

    def __init__(self, name, args, plan, faulty):
        self.name = name
        self.args = args
        self.plan = plan
        self.faulty = faulty
        self.dir = Path(args.out).resolve() / name
        # Separate streams, so the schedules do not depend on how the threads interleave.
        self.rng = random.Random(args.seed * 7919 + (1 if faulty else 0))
        self.outage_rng = random.Random(args.seed * 7919 + 2)
        self.faults = []  # what was done, with recovery figures
        self.outages = []
        self.timings = {}
        self.procs = []
        self.cluster = None
        self.restarts_unasked = []

    # --- setup -------------------------------------------------------------------------------

    def _workflows(self):
        wf = self.dir / "workflows"
        wf.mkdir(parents=True)
        src = Path(self.args.workflows_from)
        shutil.copy(src / "chart-update.yaml", wf / "chart-update.yaml")
        shutil.copytree(src / "rules", wf / "rules")
        shutil.copytree(src / "settings", wf / "settings")
        return wf

    def _env(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env["CHARTFLOW_INSURER_URL"] = self.insurer.url("/insurer")
        env["CHARTFLOW_BILL_WEBHOOK_URL"] = self.bills.url("/bills")
        env["CHARTFLOW_BILL_DIR"] = str(self.bill_dir)
        for k in ("CHARTFLOW_DATABASE_URL", "CHARTFLOW_DATABASE_URL_FILE", "CHARTFLOW_DROP_DIR",
                  "CHARTFLOW_S3_CONFIG", "CHARTFLOW_TOKEN"):
            env.pop(k, None)
        return env

    def _cli(self, *argv):
        r = subprocess.run([self.args.binary, *argv], capture_output=True, text=True,
                           env=self.env, timeout=120, cwd=self.dir)
        if r.returncode != 0:
            raise RuntimeError(f"chartflow {' '.join(argv[:2])} failed: {r.stderr.strip()}")
        return r.stdout.strip()

    def setup(self):
        t0 = time.time()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        (self.dir / "logs").mkdir(parents=True)
        pg_dir = tempfile.mkdtemp(prefix=f"cf-chaos-{self.name}-", dir="/tmp")
        os.chmod(pg_dir, 0o755)
        self.cluster = Cluster(REPO, pg_dir, free_port(), log)
        self.cluster.start()
        self.cluster.configure_durable_commits()
        dsn = self.cluster.dsn
        log(f"{self.name}: PostgreSQL at {dsn} (dir {pg_dir})")
        self.insurer = Receiver("insurer", self.args.hang_seconds).start()
        self.bills = Receiver("bills", self.args.hang_seconds).start()
        self.bill_dir = self.dir / "bills"
        self.folder = BillFolderWatcher(str(self.bill_dir)).start()
        self.workflows = self._workflows()
        self.env = self._env()
        self._cli("migrate", "--database-url", dsn)
        self.upload_token = self._cli("tokens", "create", "--role", "uploader", "--name",
                                      "chaos-tablet", "--database-url", dsn)
        self.admin_token = self._cli("tokens", "create", "--role", "admin", "--name",
                                     "chaos-doctors", "--database-url", dsn)
        common = ["--database-url", dsn, "--workflows", str(self.workflows),
                  "--lease-ms", str(self.args.lease_ms)]
        for i in range(self.args.serves):
            port = free_port()
            self.procs.append(ChartflowProc(
                f"serve-{i + 1}", "serve", self.args.binary,
                common + ["--listen", f"127.0.0.1:{port}", "--workers",
                          str(self.args.worker_threads), "--audit-head-interval", "5s"],
                self.env, self.dir / "logs", self.dir, port))
        for i in range(self.args.workers):
            self.procs.append(ChartflowProc(
                f"worker-{i + 1}", "worker", self.args.binary,
                common + ["--concurrency", str(self.args.worker_threads),
                          "--audit-head-interval", "5s"],
                self.env, self.dir / "logs", self.dir))
        for p in self.procs:
            p.start()
        for p in self.procs:
            if p.wait_ready(180) is None:
                raise RuntimeError(f"{p.name} did not become ready; see {p.logs[-1]}")
        self.ports = [p.port for p in self.procs if p.kind == "serve"]
        self.timings["setup_s"] = round(time.time() - t0, 3)

    # --- faults ------------------------------------------------------------------------------

    def _schedule(self):
        a = self.args
        chartflow = [p for p in self.procs]
        targets = [chartflow[i % len(chartflow)] for i in range(a.kills)]
        self.rng.shuffle(targets)
        events = [("kill", t) for t in targets] + [("pg_kill", None)] * a.pg_kills + \
                 [("pg_stop", None)] * a.pg_stops
        self.rng.shuffle(events)
        n = max(1, len(events))
        start, span = 3.0, a.window - 8.0
        return [(start + span * (i + self.rng.uniform(0.1, 0.9)) / n, kind, target)
                for i, (kind, target) in enumerate(events)]

    def _receiver_schedule(self):
        a = self.args
        if not a.receiver_faults:
            return []
        modes = a.outage_modes
        whom = ["insurer", "bills", "both"]
        n = a.receiver_outages
        out = []
        for i in range(n):
            t = 2.0 + (a.window - 12.0) * (i + self.outage_rng.uniform(0.0, 0.6)) / n
            out.append((t, modes[i % len(modes)], whom[(i // 3 + i) % 3],
                        self.outage_rng.uniform(*a.outage_seconds)))
        return out

    def _wait_serves_ready(self, timeout=180):
        """Seconds until every serve answers /readyz 200, per serve."""
        t0 = time.time()
        out = {}
        while time.time() - t0 < timeout and len(out) < len(self.ports):
            for p in self.procs:
                if p.kind == "serve" and p.name not in out and p.ready(timeout=1.0):
                    out[p.name] = round(time.time() - t0, 3)
            time.sleep(0.05)
        return out

    def _run_faults(self, t_base):
        for at, kind, target in self._schedule():
            delay = t_base + at - time.time()
            if delay > 0:
                time.sleep(delay)
            try:
                if kind == "kill":
                    self._kill(target)
                elif kind == "pg_kill":
                    self._pg_kill()
                else:
                    self._pg_stop()
            except Exception as e:  # noqa: BLE001 - keep going, report it
                self.faults.append({"type": kind, "error": repr(e),
                                    "trace": traceback.format_exc()})
                log(f"{self.name}: fault {kind} raised {e!r}")

    def _kill(self, proc):
        t_kill = proc.kill9()
        time.sleep(self.rng.uniform(0.2, 1.5))
        t_restart = proc.start()
        ready = proc.wait_ready(180)
        f = {"type": "kill", "target": proc.name, "t": t_kill, "t_restart": t_restart,
             "down_s": round(t_restart - t_kill, 3),
             "restart_to_ready_s": None if ready is None else round(ready, 3)}
        self.faults.append(f)
        log(f"{self.name}: SIGKILL {proc.name}, restarted, ready after "
            f"{f['restart_to_ready_s']} s")

    def _pg_kill(self):
        t_kill = time.time()
        self.cluster.kill9()
        time.sleep(self.rng.uniform(0.5, 2.0))
        t_start = time.time()
        self.cluster.start()
        t_up = time.time()
        ready = self._wait_serves_ready()
        f = {"type": "pg_kill", "t": t_kill, "t_restart": t_up,
             "pg_restart_s": round(t_up - t_start, 3), "down_s": round(t_up - t_kill, 3),
             "up_to_ready_s": ready}
        self.faults.append(f)
        log(f"{self.name}: SIGKILL PostgreSQL, up again after {f['down_s']} s, serves ready "
            f"after {ready}")

    def _pg_stop(self):
        seconds = self.rng.uniform(*self.args.pg_stop_seconds)
        pids = self.cluster.freeze()
        t_stop = time.time()
        # While it is frozen: does the liveness probe still answer?
        probe = {}
        for p in self.procs:
            if p.kind == "serve":
                t = time.time()
                status, _ = http_get(p.port, "/healthz", timeout=2.0)
                probe[p.name] = {"status": status, "s": round(time.time() - t, 3)}
        remaining = seconds - (time.time() - t_stop)
        if remaining > 0:
            time.sleep(remaining)
        self.cluster.thaw(pids)
        t_cont = time.time()
        ready = self._wait_serves_ready()
        f = {"type": "pg_stop", "t": t_stop, "t_restart": t_cont,
             "frozen_s": round(t_cont - t_stop, 3), "healthz_while_frozen": probe,
             "cont_to_ready_s": ready}
        self.faults.append(f)
        log(f"{self.name}: SIGSTOP PostgreSQL {f['frozen_s']} s; /healthz while frozen {probe}; "
            f"ready after SIGCONT {ready}")

    def _run_outages(self, t_base):
        for at, mode, whom, seconds in self._receiver_schedule():
            delay = t_base + at - time.time()
            if delay > 0:
                time.sleep(delay)
            rs = {"insurer": [self.insurer], "bills": [self.bills],
                  "both": [self.insurer, self.bills]}[whom]
            for r in rs:
                r.set_mode(mode)
            t = time.time()
            log(f"{self.name}: receiver outage {mode} on {whom} for {seconds:.1f} s")
            time.sleep(seconds)
            for r in rs:
                r.set_mode("ok")
            self.outages.append({"mode": mode, "whom": whom, "t": t,
                                 "seconds": round(time.time() - t, 3)})

    def _monitor(self, stop):
        while not stop.is_set():
            for p in self.procs:
                if p.check_exit():
                    g, rc, path = p.unexpected_exits[-1]
                    log(f"{self.name}: {p.name} exited by itself ({rc}); log {path}; restarting")
                    p.start()
            stop.wait(0.5)

    # --- the run -------------------------------------------------------------------------------

    def execute(self):
        try:
            self.setup()
            return self._load_and_check()
        finally:
            self.teardown()

    def _nonterminal(self):
        try:
            # A parked run waits for an operator, not for time: it ends the wait (and is then
            # reported as not terminal).
            return int(self.cluster.sql_scalar(
                "SELECT count(*) FROM workflow_run WHERE status NOT IN "
                "('succeeded', 'failed', 'cancelled', 'parked')", timeout=15))
        except Exception:  # noqa: BLE001 - down or frozen
            return None

    def _load_and_check(self):
        a = self.args
        lock = threading.Lock()
        self.client_stats = Counter()
        self.api = Api(self.ports, self.upload_token, self.client_stats, lock)
        self.review_stats = Counter()
        review_api = Api(self.ports, self.admin_token, self.review_stats, lock)
        self.decider = ReviewDecider(review_api, self.cluster).start()
        rate = len(self.plan) / (a.window * 0.85) if self.faulty else None
        stop_monitor = threading.Event()
        monitor = threading.Thread(target=self._monitor, args=(stop_monitor,), daemon=True)
        monitor.start()
        t_load = time.time()
        log(f"{self.name}: uploading {len(self.plan)} charts"
            + (f" over ~{a.window:.0f} s with faults" if self.faulty else ""))
        self.uploader = Uploader(self.api, self.plan, a.upload_threads, rate,
                                 a.give_up_seconds).start()
        chaos_threads = []
        if self.faulty:
            for fn in (self._run_faults, self._run_outages):
                t = threading.Thread(target=fn, args=(t_load,), daemon=True)
                t.start()
                chaos_threads.append(t)
        self.uploader.join()
        self.timings["upload_s"] = round(time.time() - t_load, 3)
        for t in chaos_threads:
            t.join()
        self.timings["faults_done_s"] = round(time.time() - t_load, 3)
        log(f"{self.name}: uploads done in {self.timings['upload_s']} s; waiting for every run")
        t_drain = time.time()
        last = None
        while time.time() - t_drain < a.drain_timeout:
            n = self._nonterminal()
            if n == 0:
                break
            if n != last:
                last = n
            time.sleep(0.5)
        self.timings["drain_s"] = round(time.time() - t_drain, 3)
        self.timings["load_to_terminal_s"] = round(time.time() - t_load, 3)
        log(f"{self.name}: {self._nonterminal()} runs still pending, running or waiting after "
            f"{self.timings['drain_s']} s of draining")
        self.decider.stop()
        stop_monitor.set()
        monitor.join()
        # Drain (SIGTERM) so the audit head and logs are final; a non-zero exit is noted.
        self.stop_codes = {}
        for p in self.procs:
            self.stop_codes[p.name] = p.terminate()
        self.folder.stop()
        t_check = time.time()
        self.snapshot = checks.snapshot(self.cluster)
        self.audit = self._audit()
        self.procs_report = self._procs_report()
        self.insurer_data = self.insurer.snapshot()
        self.bills_data = self.bills.snapshot()
        self.verdict = checks.check_run(
            self.name, self.snapshot, self.uploader.results, self.plan, self.insurer_data,
            self.bills_data, self.folder, self.audit, self.procs_report)
        self.timings["check_s"] = round(time.time() - t_check, 3)
        self._recovery_figures()
        self._write_records()
        return self

    def _audit(self):
        heads = []
        for p in self.procs:
            for path in p.logs:
                try:
                    for line in path.read_text(errors="replace").splitlines():
                        if '"message":"audit_head"' in line:
                            try:
                                j = json.loads(line[line.index("{"):])
                                heads.append((int(j.get("count", 0)), j.get("head")))
                            except (ValueError, TypeError):
                                pass
                except OSError:
                    pass
        argv = ["audit", "verify", "--database-url", self.cluster.dsn]
        head = max(heads)[1] if heads else None
        if head:
            argv += ["--expect-head", head]
        r = subprocess.run([self.args.binary, *argv], capture_output=True, text=True,
                           env=self.env, timeout=300, cwd=self.dir)
        detail = (r.stdout + r.stderr).strip()
        return {"ok": r.returncode == 0, "detail": detail[-500:], "expect_head": head}

    def _procs_report(self):
        unexpected, sanitizer = [], []
        for p in self.procs:
            for g, rc, path in p.unexpected_exits:
                unexpected.append(f"{p.name} generation {g} exited {rc} ({path})")
            for path in p.logs:
                try:
                    text = path.read_text(errors="replace")
                except OSError:
                    continue
                for m in SANITIZER.finditer(text):
                    start = text.rfind("\n", 0, m.start()) + 1
                    sanitizer.append(f"{path.name}: {text[start:start + 200].strip()}")
        for name, code in self.stop_codes.items():
            if code not in (0, None):
                unexpected.append(f"{name} did not drain cleanly on SIGTERM: {code}")
        frozen = [f"{name}: {probe['status'] or 'no answer'} after {probe['s']} s "
                  f"(PostgreSQL frozen {f['frozen_s']} s)"
                  for f in self.faults if f["type"] == "pg_stop"
                  for name, probe in f["healthz_while_frozen"].items() if probe["status"] != 200]
        return {"unexpected": unexpected, "sanitizer": sanitizer, "healthz_frozen": frozen}

    def _recovery_figures(self):
        succ = sorted(self.api.successes)
        for f in self.faults:
            if "t_restart" not in f:
                continue
            after = [t for t, port in succ if t >= f["t_restart"]]
            f["restart_to_first_upload_2xx_s"] = round(after[0] - f["t_restart"], 3) if after \
                else None
            after_kill = [t for t, _ in succ if t >= f["t"]]
            f["fault_to_first_upload_2xx_s"] = round(after_kill[0] - f["t"], 3) if after_kill \
                else None
            if f["type"] == "kill":
                proc = next(p for p in self.procs if p.name == f["target"])
                if proc.kind == "serve":
                    own = [t for t, port in succ if port == proc.port and t >= f["t_restart"]]
                    f["restart_to_own_2xx_s"] = round(own[0] - f["t_restart"], 3) if own \
                        else None

    def _write_records(self):
        def dump(name, obj):
            with open(self.dir / name, "w") as f:
                json.dump(obj, f, indent=1, default=str)
        dump("snapshot.json", {k: v for k, v in self.snapshot.items()})
        dump("uploads.json", self.uploader.results)
        dump("faults.json", {"faults": self.faults, "outages": self.outages})
        for r, data in (("insurer", self.insurer_data), ("bills", self.bills_data)):
            dump(f"{r}-requests.json", data[0])
        dump("bill-folder.json", self.folder.seen)

    def teardown(self):
        for p in self.procs:
            try:
                p.terminate(timeout=20)
            except Exception:  # noqa: BLE001
                pass
        for r in ("insurer", "bills"):
            rec = getattr(self, r, None)
            if rec:
                rec.stop()
        if self.cluster and not self.args.keep:
            self.cluster.destroy()

    # --- figures ------------------------------------------------------------------------------

    def figures(self):
        s = self.snapshot
        fig = (s.get("figures") or [{}])[0]
        runs = int(fig.get("runs") or 0)
        span = float(fig.get("span_s") or 0)
        res = self.uploader.results.values()
        ok = [r for r in res if r["status"] is not None and 200 <= r["status"] < 300]
        recs, _, _ = self.insurer_data
        brecs, _, _ = self.bills_data
        scan = (s.get("scan_latency") or [{}])[0]
        return {
            "uploads": len(self.plan), "accepted": len(ok),
            "accepted_new": sum(1 for r in ok if r.get("duplicate") is False),
            "accepted_duplicate": sum(1 for r in ok if r.get("duplicate")),
            "upload_retries": sum(r["attempts"] - 1 for r in res),
            "client_statuses": dict(Counter({str(k): v for k, v in self.client_stats.items()})),
            "review_decisions": dict(Counter({str(k): v for k, v in self.review_stats.items()})),
            "reviews_decided_again": self.decider.counts.get("decided_again", 0),
            "runs": runs, "runs_by_status": {r["status"]: r["n"] for r in s["runs_by_status"]},
            "runs_per_s": round(runs / span, 2) if span > 0 else None,
            "first_upload_to_last_run_end_s": round(span, 1),
            "run_p50_s": fig.get("run_p50_s"),
            "scan_start_p50_s": scan.get("p50_s"), "scan_start_p99_s": scan.get("p99_s"),
            "scan_start_max_s": scan.get("max_s"),
            "invoices": len(s["invoices"]), "ledger_entries": len(s["ledger"]),
            "questions": len(s["questions"]), "reviews": len(s["reviews"]),
            "insurer_requests": len(recs), "insurer_keys": len({r["key"] for r in recs}),
            "insurer_by_mode": dict(Counter(r["mode"] for r in recs)),
            "bill_webhook_requests": len(brecs), "bill_keys": len({r["key"] for r in brecs}),
            "bill_webhook_by_mode": dict(Counter(r["mode"] for r in brecs)),
            "bill_files": len(self.folder.seen),
            "bill_file_writes_seen": sum(len(v) for v in self.folder.seen.values()),
            "history": {r["type"]: r["n"] for r in s["history_totals"]},
            "unasked_restarts": sum(len(p.unexpected_exits) for p in self.procs),
            "timings": self.timings,
        }


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return (f"min {min(values):.2f} / median {statistics.median(values):.2f} / "
            f"max {max(values):.2f} s (n={len(values)})")


def summary(args, runs, verdicts, t0):
    lines = ["", "=" * 78, "chartflow fault suite (tests/chaos/chaos.py)", "=" * 78,
             f"binary {args.binary}; seed {args.seed}; {args.charts} charts "
             f"(+{len(runs[0].plan) - args.charts} identical re-uploads); "
             f"fault run: {args.kills} chartflow SIGKILLs, {args.pg_kills} PostgreSQL SIGKILLs, "
             f"{args.pg_stops} PostgreSQL SIGSTOPs, receiver outages: "
             f"{args.receiver_outages if args.receiver_faults else 0}"]
    report = {"args": vars(args), "runs": {}, "invariants": {}}
    for r in runs:
        fig = r.figures()
        report["runs"][r.name] = {"figures": fig, "faults": r.faults, "outages": r.outages}
        lines.append("")
        lines.append(f"--- {r.name} run ---")
        lines.append(f"uploads {fig['uploads']}: accepted {fig['accepted']} (new "
                     f"{fig['accepted_new']}, duplicate {fig['accepted_duplicate']}), client "
                     f"retries {fig['upload_retries']}, statuses {fig['client_statuses']}")
        lines.append(f"runs {fig['runs']} {fig['runs_by_status']}; {fig['runs_per_s']} runs/s "
                     f"(first upload to last run end {fig['first_upload_to_last_run_end_s']} s); "
                     f"run p50 {_num(fig['run_p50_s'])} s; scan start p50/p99/max "
                     f"{_num(fig['scan_start_p50_s'])}/{_num(fig['scan_start_p99_s'])}/"
                     f"{_num(fig['scan_start_max_s'])} s")
        lines.append(f"ledger {fig['ledger_entries']}, invoices {fig['invoices']}, questions "
                     f"{fig['questions']}, reviews {fig['reviews']} (decision requests "
                     f"{fig['review_decisions']}, decided again {fig['reviews_decided_again']})")
        lines.append(f"insurer: {fig['insurer_requests']} requests for {fig['insurer_keys']} keys "
                     f"{fig['insurer_by_mode']}; bill webhook: {fig['bill_webhook_requests']} "
                     f"requests for {fig['bill_keys']} keys {fig['bill_webhook_by_mode']}; bill "
                     f"files {fig['bill_files']} ({fig['bill_file_writes_seen']} writes seen)")
        lines.append(f"history {fig['history']}")
        lines.append(f"timings {fig['timings']}")
        if r.faulty:
            kills = [f for f in r.faults if f["type"] == "kill"]
            pgk = [f for f in r.faults if f["type"] == "pg_kill"]
            pgs = [f for f in r.faults if f["type"] == "pg_stop"]
            errs = [f for f in r.faults if "error" in f]
            lines.append(f"faults done: {len(kills)} chartflow SIGKILLs "
                         f"({Counter(f['target'] for f in kills)}), {len(pgk)} PostgreSQL "
                         f"SIGKILLs, {len(pgs)} SIGSTOPs, {len(r.outages)} receiver outages "
                         f"({Counter(o['mode'] + ':' + o['whom'] for o in r.outages)})"
                         + (f", {len(errs)} faults failed: {[e['error'] for e in errs]}"
                            if errs else ""))
            lines.append("  chartflow kill, restart -> ready: "
                         + _stats([f["restart_to_ready_s"] for f in kills]))
            lines.append("  chartflow serve kill, restart -> its first 2xx upload: "
                         + _stats([f.get("restart_to_own_2xx_s") for f in kills]))
            lines.append("  chartflow kill -> first 2xx upload (any serve): "
                         + _stats([f.get("fault_to_first_upload_2xx_s") for f in kills]))
            lines.append("  PostgreSQL kill -> up again: " + _stats([f["down_s"] for f in pgk])
                         + "; of which restart with crash recovery: "
                         + _stats([f["pg_restart_s"] for f in pgk]))
            lines.append("  PostgreSQL up -> every serve ready: "
                         + _stats([max(f["up_to_ready_s"].values(), default=None) for f in pgk]))
            lines.append("  PostgreSQL up -> first 2xx upload: "
                         + _stats([f.get("restart_to_first_upload_2xx_s") for f in pgk]))
            for f in pgs:
                lines.append(f"  PostgreSQL frozen {f['frozen_s']} s: /healthz while frozen "
                             f"{f['healthz_while_frozen']}; SIGCONT -> ready "
                             f"{f['cont_to_ready_s']}; SIGCONT -> first 2xx upload "
                             f"{f.get('restart_to_first_upload_2xx_s')} s")
    lines.append("")
    lines.append("--- invariants ---")
    failed = 0
    for v in verdicts:
        for name, ok, count, evidence in v.results:
            report["invariants"][f"{v.label}: {name}"] = {"ok": ok, "count": count,
                                                        "evidence": evidence}
            lines.append(f"{'PASS' if ok else 'FAIL'}  [{v.label}] {name}"
                         + ("" if ok else f": {count}"))
            if not ok:
                failed += 1
                for e in evidence:
                    lines.append(f"        {e}")
    lines.append("")
    lines.append(f"{failed} invariant(s) violated; total {time.time() - t0:.0f} s; records in "
                 f"{args.out}")
    report["violated"] = failed
    report["total_s"] = round(time.time() - t0, 1)
    return "\n".join(lines), report, failed


def _num(x):
    return "n/a" if x is None else f"{float(x):.2f}"


def main(argv=None):
    t0 = time.time()
    args = parse_args(argv if argv is not None else sys.argv[1:])
    args.binary = str(Path(args.binary).resolve())
    if not os.access(args.binary, os.X_OK):
        print(f"chaos: no chartflow binary at {args.binary} (build it, or --binary)",
              file=sys.stderr)
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    charts = load_charts(args.charts_dir, args.max_chart_bytes)
    plan = make_plan(charts, args.charts, args.seed)
    log(f"plan: {args.charts} charts from {len(charts)} sample files, "
        f"{sum(1 for o in plan if o['released'] and not o['duplicate_of'])} released patients, "
        f"{sum(1 for o in plan if o['duplicate_of'])} identical re-uploads; out {args.out}")
    runs = []
    try:
        if args.mode in ("both", "control"):
            runs.append(Run("control", args, plan, faulty=False).execute())
        if args.mode in ("both", "fault"):
            runs.append(Run("fault", args, plan, faulty=True).execute())
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print("chaos: the suite could not run (see above)", file=sys.stderr)
        return 2
    verdicts = [r.verdict for r in runs]
    if len(runs) == 2:
        verdicts.append(checks.compare(runs[0].snapshot, runs[1].snapshot,
                                       runs[0].uploader.results, runs[1].uploader.results))
    text, report, failed = summary(args, runs, verdicts, t0)
    print(text)
    Path(args.out, "summary.txt").write_text(text + "\n")
    with open(Path(args.out, "summary.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
