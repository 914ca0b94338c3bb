#!/usr/bin/env python3
"""Point-in-time restore under load (issue #19), with the real binary and its embedded PostgreSQL.

`chartflow serve --wal-archive` takes a steady stream of chart uploads while doctors (this script,
as admin) approve every review. Mid-stream `chartflow backup` takes an online base backup. The
uploads pause, a time T is noted, and more uploads follow. Once the source has finished every
run and archived the WAL past T, `chartflow restore --until T` builds a new data dir, which
`chartflow serve` then starts. Checked there: every upload answered before T is present with
the ledger the source billed for it, none sent after T is, every run finishes (those in flight at
T resume), the audit chain verifies and says where it ends. Prints the restore time for the
database's size (RTO) and how long the source took to archive its last writes (RPO).

usage: backup_restore_test.py CHARTFLOW_BINARY REPO_DIR
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

BINARY = Path(sys.argv[1]).resolve()
REPO = Path(sys.argv[2]).resolve()
CHARTS = sorted((REPO / "tests/data/charts").glob("enc-*.json"))[:6]
BEFORE_BACKUP, BEFORE_T, AFTER_T = 6, 6, 5
DEADLINE_S = 240


def log(msg):
    print(f"backup_restore_test: {msg}", flush=True)


def fail(msg):
    log(f"FAIL: {msg}")
    sys.exit(1)


def listening_port(log_path):
    """The port from serve's "serving" log line, or None before it is written."""
    for line in log_path.read_text(errors="replace").splitlines():
        if '"message":"serving"' in line:
            try:
                return json.loads(line)["fields"]["port"]
            except (ValueError, KeyError):
                return None
    return None


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHARTFLOW_", "PG"))}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    return env


def run(*args, check=True):
    r = subprocess.run([str(BINARY), *args], env=clean_env(), capture_output=True, text=True,
                       timeout=600)
    if check and r.returncode != 0:
        fail(f"chartflow {' '.join(args)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r


class Server:
    def __init__(self, name, data_dir, work, extra=()):
        self.log_path = work / f"{name}.log"
        # Port 0: the server binds a port of its own and logs it (a port picked here could be
        # taken before the server binds it).
        self.proc = subprocess.Popen(
            [str(BINARY), "serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0",
             "--workflows", str(REPO / "workflows"), *extra],
            env=clean_env(), stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        self.port = None
        t0 = time.time()
        while time.time() - t0 < 180:
            if self.proc.poll() is not None:
                fail(f"{name} exited {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            if self.port is None:
                self.port = listening_port(self.log_path)
                if self.port is not None:
                    self.url = f"http://127.0.0.1:{self.port}"
            if self.port is not None:
                try:
                    with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                        if r.status == 200:
                            return
                except (urllib.error.URLError, OSError):
                    pass
            time.sleep(0.2)
        fail(f"{name} not ready in 180 s")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Api:
    def __init__(self, server, token):
        self.server, self.token = server, token

    def call(self, method, path, body=None, content_type="application/json"):
        req = urllib.request.Request(self.server.url + path, method=method, data=body)
        req.add_header("authorization", f"Bearer {self.token}")
        if body is not None:
            req.add_header("content-type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, path):
        status, body = self.call("GET", path)
        if status != 200:
            fail(f"GET {path}: {status} {body[:300]!r}")
        return json.loads(body)


class Doctors(threading.Thread):
    """Approves every pending review, as the doctor would."""

    def __init__(self, api):
        super().__init__(daemon=True)
        self.api, self.stop_flag = api, threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                for r in self.api.json("/v1/reviews?status=pending&limit=100")["reviews"]:
                    self.api.call("POST", f"/v1/reviews/{r['id']}/decision",
                                  json.dumps({"decision": "approve",
                                              "reason": "backup test"}).encode())
            except Exception:  # noqa: BLE001 - a server stopping under us; the checks decide
                pass
            self.stop_flag.wait(0.3)


def upload(api, chart_id, n):
    body = CHARTS[n % len(CHARTS)].read_bytes()
    status, answer = api.call("PUT", f"/v1/charts/{chart_id}", body, "application/fhir+json")
    if status not in (200, 201, 202):
        fail(f"upload {chart_id}: {status} {answer[:300]!r}")
    return time.time()


def wait_runs_finished(api, what):
    t0 = time.time()
    while time.time() - t0 < DEADLINE_S:
        live = [r for s in ("pending", "running", "waiting", "parked")
                for r in api.json(f"/v1/runs?status={s}&limit=200")["runs"]]
        if not live:
            return
        time.sleep(0.5)
    fail(f"{what}: runs not finished after {DEADLINE_S} s: {[(r['id'], r['status']) for r in live]}")


def ledgers(api, chart_ids):
    """Each chart's ledger as what was billed: a charge in flight at T is billed again after the
    restore, under a new id and time, so those two are left out."""
    out = {}
    for c in chart_ids:
        status, body = api.call("GET", f"/v1/charts/{c}/ledger")
        if status != 200:
            out[c] = status
            continue
        doc = json.loads(body)
        entries = [{k: v for k, v in e.items() if k not in ("id", "created_at")}
                   for e in doc.get("entries", [])]
        out[c] = {**doc, "entries": sorted(entries, key=lambda e: json.dumps(e, sort_keys=True))}
    return out


def metric(api, name):
    _, text = api.call("GET", "/metrics")
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    fail(f"/metrics has no {name}")


def check_backup_extras(api, backup, work):
    """Checksums on, the backup recorded for the metric, and verify catches a changed file."""
    description = json.loads((backup / "chartflow-backup.json").read_text())
    if description.get("data_checksums") is not True:
        fail(f"a new embedded cluster has no data checksums: {description}")
    if metric(api, "chartflow_wal_archive_enabled") != 1:
        fail("chartflow_wal_archive_enabled is not 1 under serve --wal-archive")
    last = metric(api, "chartflow_backup_last_success_timestamp_seconds")
    if not time.time() - 600 < last <= time.time():
        fail(f"chartflow_backup_last_success_timestamp_seconds is {last} after a backup")
    corrupt = work / "backup-corrupt"
    shutil.copytree(backup, corrupt, symlinks=True)
    victim = max((p for p in (corrupt / "data/base").rglob("*") if p.is_file()),
                 key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    r = run("backup", "verify", str(corrupt), check=False)
    if r.returncode != 3 or "checksum" not in r.stderr:
        fail(f"backup verify passed a changed file (exit {r.returncode}):\n{r.stdout}{r.stderr}")
    r = run("restore", "--from", str(corrupt), "--data-dir", str(work / "from-corrupt"),
            check=False)
    if r.returncode == 0 or "does not verify" not in r.stderr:
        fail(f"restore accepted a corrupt backup (exit {r.returncode}):\n{r.stderr}")
    shutil.rmtree(corrupt)
    log("ok: checksums on, backup recorded for the metric, verify and restore refuse a changed "
        "file")


def check_prune(archive, backup):
    """Only the WAL older than the oldest kept backup needs goes; the backup's own stays."""
    def segments():
        return sorted(p.name for p in archive.iterdir() if len(p.name) == 24)

    label = (backup / "data/backup_label").read_text()
    start = label.split("(file ")[1].split(")")[0]
    older = [s for s in segments() if s[8:] < start[8:]]
    if not older:
        fail(f"no archived segment predates the backup's start {start}: {segments()}")
    dry = run("backup", "prune", "--wal-archive", str(archive), "--oldest-backup", str(backup),
              "--dry-run")
    if f"would remove {len(older)} " not in dry.stdout or older != [s for s in segments()
                                                                     if s[8:] < start[8:]]:
        fail(f"prune --dry-run: {dry.stdout!r}, expected {len(older)} and nothing removed")
    r = run("backup", "prune", "--wal-archive", str(archive), "--oldest-backup", str(backup))
    left = segments()
    if any(s[8:] < start[8:] for s in left) or start not in left:
        fail(f"prune left {left} (backup starts at {start}): {r.stdout}")
    log(f"ok: backup prune removed {len(older)} segment(s) older than the backup, kept {start}")


def check_restore_refusals(backup, work, source_dir, until):
    started = datetime.strptime(json.loads((backup / "chartflow-backup.json").read_text())
                                ["started_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    before_backup = datetime.fromtimestamp(started.timestamp() - 3600, timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S+00")
    cases = [
        (["--until", until.replace("+00", "")], "zone"),
        (["--until", "2026-02-30 10:00:00+00"], "valid time"),
        (["--until", until, "--wal-archive", str(work / "nowhere")], "not a directory"),
        (["--until", before_backup], "is before backup"),
    ]
    for extra, expected in cases:
        r = run("restore", "--from", str(backup), "--data-dir", str(work / "refused"), *extra,
                check=False)
        if r.returncode == 0 or expected not in r.stderr:
            fail(f"restore {extra}: expected an error naming '{expected}', got exit "
                 f"{r.returncode}:\n{r.stderr}")
    r = run("restore", "--from", str(backup), "--data-dir", str(source_dir), check=False)
    if r.returncode == 0 or "already holds a cluster" not in r.stderr:
        fail(f"restore over an existing cluster: exit {r.returncode}:\n{r.stderr}")
    # A target past the archive's end fails in PostgreSQL's recovery, after the copy: what the
    # restore made is removed, so nothing half-made is left for a later serve.
    later = datetime.fromtimestamp(time.time() + 3600, timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00")
    r = run("restore", "--from", str(backup), "--data-dir", str(work / "too-late"), "--until", later,
            check=False)
    if r.returncode == 0 or "recovery" not in r.stderr or (work / "too-late").exists():
        fail(f"restore past the archive's end: exit {r.returncode}, left "
             f"{(work / 'too-late').exists()}:\n{r.stderr[-1500:]}")
    log("ok: restore refuses a time without zone, an impossible date, a missing archive, a time "
        "before the backup, an existing cluster, and a target past the archive's end leaves "
        "nothing")


def main():
    if len(CHARTS) < 3:
        fail(f"too few charts in {REPO / 'tests/data/charts'}")
    work = Path(tempfile.mkdtemp(prefix="chartflow-backup-test."))
    work.chmod(0o755)  # as root the cluster runs as postgres, which must reach it
    source_dir, restored_dir = work / "source", work / "restored"
    archive, backup = work / "wal-archive", work / "backup"
    servers = []
    try:
        source = Server("source", source_dir, work, ["--wal-archive", str(archive)])
        servers.append(source)
        token = run("tokens", "create", "--role", "admin", "--name", "backup-test",
                    "--data-dir", str(source_dir)).stdout.strip().splitlines()[-1]
        api = Api(source, token)
        doctors = Doctors(api)
        doctors.start()

        answered = {}  # chart id -> when its 2xx arrived
        for i in range(BEFORE_BACKUP):
            answered[f"bk-early-{i}"] = upload(api, f"bk-early-{i}", i)
        # The backup runs while uploads go on.
        loader_done = threading.Event()

        def more_uploads():
            for i in range(BEFORE_T):
                answered[f"bk-during-{i}"] = upload(api, f"bk-during-{i}", i)
            loader_done.set()

        loader = threading.Thread(target=more_uploads)
        loader.start()
        r = run("backup", "--data-dir", str(source_dir), "--to", str(backup))
        log(r.stdout.strip())
        loader.join()
        if run("backup", "verify", str(backup), check=False).returncode != 0:
            fail("the fresh backup does not verify")
        check_backup_extras(api, backup, work)

        # T: nothing is in flight, so every upload is clearly before or after it.
        time.sleep(1.0)
        t = datetime.now(timezone.utc)
        until = t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "+00"
        time.sleep(1.0)
        before = sorted(answered)
        if any(answered[c] >= t.timestamp() for c in before):
            fail("an upload before T was answered after it")
        after = [f"bk-late-{i}" for i in range(AFTER_T)]
        last_write = 0.0
        for i, c in enumerate(after):
            last_write = upload(api, c, i)
        wait_runs_finished(api, "source")
        doctors.stop_flag.set()
        expected = ledgers(api, before)
        if not any(isinstance(v, dict) and v.get("entries") for v in expected.values()):
            log(f"note: no ledger entries billed: {list(expected.values())[:2]}")

        # RPO: the archive holds the last writes within archive_timeout (60 s) of them.
        archived_at = 0.0
        t0 = time.time()
        while time.time() - t0 < 150:
            _, metrics = api.call("GET", "/metrics")
            for line in metrics.decode().splitlines():
                if line.startswith("chartflow_wal_archive_last_archived_timestamp_seconds "):
                    archived_at = float(line.split()[1])
            if archived_at > last_write:
                break
            time.sleep(1)
        if archived_at <= last_write:
            fail("the WAL of the last uploads was not archived within 150 s")
        rpo = archived_at - last_write
        source.stop()

        check_restore_refusals(backup, work, source_dir, until)
        t0 = time.time()
        r = run("restore", "--from", str(backup), "--data-dir", str(restored_dir), "--until", until)
        rto = time.time() - t0
        log(r.stdout.strip())
        size_mb = json.loads((backup / "chartflow-backup.json").read_text())["bytes"] / 1e6

        restored = Server("restored", restored_dir, work,
                          ["--wal-archive", str(work / "wal-archive-after-restore")])
        servers.append(restored)
        rapi = Api(restored, token)  # the token was made before T, so it was restored too
        doctors = Doctors(rapi)
        doctors.start()
        missing = [c for c in before if rapi.call("GET", f"/v1/charts/{c}")[0] != 200]
        if missing:
            fail(f"uploads accepted before T are missing after the restore: {missing}")
        present = [c for c in after if rapi.call("GET", f"/v1/charts/{c}")[0] != 404]
        if present:
            fail(f"uploads sent after T are present after the restore: {present}")
        wait_runs_finished(rapi, "restored")
        doctors.stop_flag.set()
        got = ledgers(rapi, before)
        differ = [c for c in before if got[c] != expected[c]]
        if differ:
            c = differ[0]
            fail(f"ledger of {len(differ)} chart(s) differs from the source's, e.g. {c}: "
                 f"{json.dumps(got[c])[:400]} vs {json.dumps(expected[c])[:400]}")
        restored.stop()
        audit = run("audit", "verify", "--data-dir", str(restored_dir), check=False)
        if audit.returncode != 0 or "the chain ends at record" not in audit.stdout:
            fail(f"audit verify after the restore:\n{audit.stdout}{audit.stderr}")
        log(audit.stdout.strip().splitlines()[-1])
        check_prune(archive, backup)
        log(f"ok: {len(before)} uploads before T restored with their ledgers, {len(after)} after "
            f"T absent, every run finished")
        log(f"RTO: restore of a {size_mb:.0f} MB backup to T took {rto:.1f} s; RPO: the last "
            f"writes reached the WAL archive {rpo:.1f} s after they committed")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
