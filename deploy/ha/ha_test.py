#!/usr/bin/env python3
"""Three-node Patroni + etcd cluster on one machine, chartflow on top, faults under chart load.

Started by deploy/ha/run-ha-test.sh (which installs the packages first); see deploy/ha/README.md.

What it does, in order:
  1. renders deploy/ha/etcd.yml.in and patroni.yml.in for node1..node3 (127.0.0.1, ports from
     --port-base, data under a temporary directory), starts three etcd members and three Patroni
     nodes as an unprivileged user (`postgres` when run as root), waits for a leader with a
     synchronous standby;
  2. creates the chartflow role (LOGIN, no superuser) and its database, owned by it;
  3. starts `chartflow serve` on the multi-host URL (or through HAProxy with --via haproxy),
     creates an admin token, and puts chart load on it: --rate uploads a second (each in its own
     thread, at most --concurrency at once, so a hung upload does not hold the next one back)
     PUT charts from tests/data/charts under new chart ids, each retried with the same content on
     503, 429 and connection errors until acknowledged; a reviewer approves pending doctor
     reviews so runs can finish;
  4. runs the faults in turn (switchover, kill -9 of the leader's postmaster, loss of the
     leader's whole node, SIGSTOP of the leader's whole node), each after the cluster is whole
     again, and measures for each how long until a primary was back and until chartflow
     accepted an upload again;
  5. stops the load, drains (every acknowledged upload's run must finish), and checks the
     invariants: every upload answered 2xx is stored once with exactly one run; every run
     ended `succeeded`; no upload was answered anything but 2xx, 503 or 429 (never 500); the
     audit chain verifies (`chartflow audit verify`).
Exit status: 0 when every invariant held, 1 on a violation, 2 on a setup failure.
Everything started here is stopped at the end and the temporary directory removed (--keep
keeps it, with every log).
"""

import argparse
import ctypes
import glob
import hashlib
import http.client
import json
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
HOST = "127.0.0.1"
NODES = ("node1", "node2", "node3")
FAULTS = ("switchover", "kill9", "nodeloss", "freeze")


class SetupError(Exception):
    pass


def now():
    return time.monotonic()


T0 = now()


def log(msg):
    print(f"ha-test [{now() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Processes


class Reaper:
    """Makes this process the subreaper of everything it starts, so a postmaster that Patroni
    detaches (it double-forks) is reparented here, not to PID 1, and is reaped here: a zombie
    postmaster would look alive to Patroni. Also the list of everything to stop at the end."""

    def __init__(self):
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            log("warning: prctl(PR_SET_CHILD_SUBREAPER) failed; orphans go to PID 1")
        self.tracked = set()  # pids owned by subprocess.Popen objects
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        me = os.getpid()
        while not self.stop.wait(0.5):
            for pid in children_of(me):
                if pid in self.tracked:
                    continue
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]
                    if state == "Z":
                        os.waitpid(pid, os.WNOHANG)
                except (OSError, ChildProcessError, IndexError):
                    pass


def proc_stat(pid):
    """(ppid, state) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[1]), rest[0]
    except (OSError, IndexError, ValueError):
        return None


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children_of(parent):
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[0] == parent:
            out.append(pid)
    return out


def descendants(root):
    tree = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            tree.setdefault(st[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in tree.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[1] != "Z"


def signal_pids(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------
# HTTP


def http_json(method, url, body=None, headers=None, timeout=2.0):
    """(status, parsed JSON or text); raises OSError on a connection problem or timeout."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
            hdrs = r.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    except (urllib.error.URLError, http.client.HTTPException) as e:
        raise OSError(str(e)) from e
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, parsed, hdrs


# --------------------------------------------------------------------------------------------
# The cluster


class Node:
    def __init__(self, index, name, base, workdir):
        self.index, self.name = index, name
        self.dir = os.path.join(workdir, name)
        self.pg_port = base + index
        self.rest_port = base + 10 + index
        self.etcd_client_port = base + 20 + index
        self.etcd_peer_port = base + 30 + index
        self.etcd = None  # Popen
        self.patroni = None  # Popen
        self.down = False  # killed or frozen by a fault: the probes leave it alone
        self.stopped_pids = []

    @property
    def rest(self):
        return f"http://{HOST}:{self.rest_port}"

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
                pid = int(f.readline().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) and "postgres" in cmdline(pid) else None

    def postgres_pids(self):
        pm = self.postmaster_pid()
        return [] if pm is None else [pm] + descendants(pm)

    def patroni_pids(self):
        if self.patroni is None or self.patroni.poll() is not None:
            return []
        return [self.patroni.pid] + descendants(self.patroni.pid)

    def etcd_pids(self):
        if self.etcd is None or self.etcd.poll() is not None:
            return []
        return [self.etcd.pid] + descendants(self.etcd.pid)

    def all_pids(self):
        # A detached postmaster is no descendant of Patroni's; its own children are listed once.
        return sorted(set(self.etcd_pids() + self.patroni_pids() + self.postgres_pids()))


class Cluster:
    def __init__(self, args, workdir, reaper):
        self.args, self.workdir, self.reaper = args, workdir, reaper
        self.nodes = [Node(i + 1, n, args.port_base, workdir) for i, n in enumerate(NODES)]
        self.bindir = args.pg_bindir or sorted(
            glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2])
        )[-1]
        self.run_as = None
        if os.geteuid() == 0:
            try:
                self.run_as = pwd.getpwnam(args.run_as)
            except KeyError:
                raise SetupError(f"running as root needs the unprivileged user '{args.run_as}'")
        self.passwords = {k: secrets.token_hex(16) for k in ("superuser", "replication", "rewind")}
        self.haproxy = None

    # -- files

    def own(self, path):
        if self.run_as:
            os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)

    def write_private(self, path, text):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        self.own(path)

    def render(self):
        etcd_cluster = ",".join(f"etcd{n.index}=http://{HOST}:{n.etcd_peer_port}" for n in self.nodes)
        etcd_hosts = ",".join(f"{HOST}:{n.etcd_client_port}" for n in self.nodes)
        with open(os.path.join(HERE, "patroni.yml.in")) as f:
            patroni_t = string.Template(f.read())
        with open(os.path.join(HERE, "etcd.yml.in")) as f:
            etcd_t = string.Template(f.read())
        for n in self.nodes:
            os.makedirs(os.path.join(n.dir, "log"), exist_ok=True)
            os.chmod(n.dir, 0o700)
            self.own(n.dir)
            self.own(os.path.join(n.dir, "log"))
            values = dict(
                NODE=n.name, NODE_DIR=n.dir, HOST=HOST, REST_PORT=n.rest_port, PG_PORT=n.pg_port,
                ETCD_HOSTS=etcd_hosts, ETCD_NAME=f"etcd{n.index}", ETCD_CLIENT_PORT=n.etcd_client_port,
                ETCD_PEER_PORT=n.etcd_peer_port, ETCD_INITIAL_CLUSTER=etcd_cluster,
                PRIMARY_START_TIMEOUT=self.args.primary_start_timeout,
                SYNC_STRICT="true" if self.args.sync_strict else "false", PG_BINDIR=self.bindir,
                SUPERUSER_PASSWORD=self.passwords["superuser"],
                REPLICATION_PASSWORD=self.passwords["replication"],
                REWIND_PASSWORD=self.passwords["rewind"], HBA_NETWORK=f"{HOST}/32",
                WATCHDOG_MODE="off", DCS=self.args.dcs,
                ETCD_ENABLE_V2="true" if self.args.dcs == "etcd" else "false",
            )
            self.write_private(os.path.join(n.dir, "patroni.yml"), patroni_t.substitute(values))
            self.write_private(os.path.join(n.dir, "etcd.yml"), etcd_t.substitute(values))

    # -- processes

    def spawn(self, argv, logfile, cwd):
        out = open(logfile, "ab")
        kwargs = {}
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        if self.run_as:
            kwargs = dict(user=self.run_as.pw_uid, group=self.run_as.pw_gid, extra_groups=[])
            env["HOME"] = cwd
            env["USER"] = env["LOGNAME"] = self.run_as.pw_name
        else:
            env["HOME"] = os.environ.get("HOME", cwd)
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             cwd=cwd, env=env, start_new_session=True, **kwargs)
        out.close()
        self.reaper.tracked.add(p.pid)
        return p

    def start_etcd(self, n):
        n.etcd = self.spawn(["etcd", "--config-file", os.path.join(n.dir, "etcd.yml")],
                            os.path.join(n.dir, "log", "etcd.log"), n.dir)

    def start_patroni(self, n):
        n.patroni = self.spawn(["patroni", os.path.join(n.dir, "patroni.yml")],
                               os.path.join(n.dir, "log", "patroni.out"), n.dir)

    def start_node(self, n):
        self.start_etcd(n)
        self.start_patroni(n)
        n.down = False

    def kill_node(self, n):
        """Power loss: SIGKILL to everything of the node at once."""
        n.down = True
        pids = n.all_pids()
        signal_pids(pids, signal.SIGKILL)
        for p in (n.etcd, n.patroni):
            if p is not None:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        deadline = now() + 10
        while any(alive(p) for p in pids) and now() < deadline:
            time.sleep(0.05)
        return pids

    def freeze_node(self, n):
        n.down = True
        # Patroni first, so it cannot react to its postgres or etcd stopping under it.
        pids = n.patroni_pids() + n.etcd_pids() + n.postgres_pids()
        signal_pids(pids, signal.SIGSTOP)
        n.stopped_pids = pids
        return pids

    def thaw_node(self, n):
        # The node may have forked nothing while stopped; send SIGCONT to whatever is there now.
        pids = sorted(set(n.stopped_pids + n.all_pids()))
        signal_pids(pids, signal.SIGCONT)
        n.stopped_pids = []
        n.down = False

    def start(self):
        self.render()
        for n in self.nodes:
            self.start_etcd(n)
        self.wait_etcd(timeout=60)
        for n in self.nodes:
            self.start_patroni(n)

    def wait_etcd(self, timeout):
        deadline = now() + timeout
        while now() < deadline:
            ok = 0
            for n in self.nodes:
                try:
                    status, body, _ = http_json("GET", f"http://{HOST}:{n.etcd_client_port}/health", timeout=1)
                    ok += status == 200 and isinstance(body, dict) and body.get("health") == "true"
                except OSError:
                    pass
            if ok == len(self.nodes):
                return
            time.sleep(0.2)
        raise SetupError("etcd members did not become healthy (see node*/log/etcd.log)")

    # -- state

    def cluster_state(self, exclude=()):
        """Patroni's GET /cluster from the first node that answers, or None."""
        for n in self.nodes:
            if n.down or n.name in exclude:
                continue
            try:
                status, body, _ = http_json("GET", n.rest + "/cluster", timeout=1.5)
                if status == 200 and isinstance(body, dict):
                    return body
            except OSError:
                pass
        return None

    def leader(self):
        state = self.cluster_state()
        if not state:
            return None
        for m in state.get("members", []):
            if m.get("role") == "leader" and m.get("state") == "running":
                return self.node(m["name"])
        return None

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def healthy(self):
        """A running leader, a streaming synchronous standby and a streaming replica, no lag."""
        state = self.cluster_state()
        if not state:
            return False, "no Patroni REST API answers"
        members = state.get("members", [])
        roles = sorted(m.get("role", "?") for m in members)
        states = {m.get("state") for m in members}
        lag_ok = all(m.get("role") == "leader" or m.get("lag") in (0, "0") for m in members)
        ok = (len(members) == 3 and roles == ["leader", "replica", "sync_standby"]
              and states <= {"running", "streaming"} and lag_ok)
        desc = ", ".join(f"{m.get('name')}:{m.get('role')}/{m.get('state')}/lag={m.get('lag', '-')}"
                         for m in members)
        return ok, desc

    def wait_healthy(self, timeout, what="cluster whole"):
        deadline = now() + timeout
        desc = ""
        while now() < deadline:
            ok, desc = self.healthy()
            if ok:
                return desc
            time.sleep(0.5)
        raise SetupError(f"{what}: not reached within {timeout}s (last: {desc})")

    # -- SQL on the leader, as the superuser over the leader's Unix socket

    def psql(self, sql, db="postgres", node=None):
        n = node or self.leader()
        if n is None:
            raise SetupError("no leader to run SQL on")
        argv = [os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", n.dir, "-p", str(n.pg_port), "-U", "postgres", "-d", db]
        r = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60,
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"})
        if r.returncode != 0:
            raise SetupError(f"psql on {n.name} failed: {r.stderr.strip()}")
        return r.stdout

    # -- HAProxy (optional)

    def start_haproxy(self, port, stats_port):
        with open(os.path.join(HERE, "haproxy.cfg")) as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            s = line.strip()
            if s.startswith("server node"):
                continue
            if s.startswith("bind 127.0.0.1:7000"):
                line = line.replace("127.0.0.1:7000", f"{HOST}:{stats_port}")
            elif s.startswith("bind *:5000"):
                line = line.replace("*:5000", f"{HOST}:{port}")
            out.append(line)
            if s.startswith("# HA-SERVERS"):
                for n in self.nodes:
                    out.append(f"    server {n.name} {HOST}:{n.pg_port} maxconn 500 check port {n.rest_port}")
        cfg = os.path.join(self.workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("\n".join(out) + "\n")
        r = subprocess.run(["haproxy", "-c", "-q", "-f", cfg], capture_output=True, text=True)
        if r.returncode != 0:
            raise SetupError(f"haproxy -c: {r.stdout}{r.stderr}")
        self.haproxy = self.spawn(["haproxy", "-db", "-f", cfg], os.path.join(self.workdir, "haproxy.log"),
                                  self.workdir)

    # -- the end

    def stop_all(self):
        for n in self.nodes:
            if n.stopped_pids:
                signal_pids(n.stopped_pids, signal.SIGCONT)
        procs = [p for n in self.nodes for p in (n.patroni, n.etcd) if p is not None]
        if self.haproxy is not None:
            procs.append(self.haproxy)
        pgs = [pid for n in self.nodes for pid in n.postgres_pids()]
        everything = sorted(set(pgs + [pid for p in procs if p.poll() is None
                                       for pid in [p.pid] + descendants(p.pid)]))
        # The data is thrown away: no orderly shutdown needed, and SIGKILL cannot hang.
        signal_pids(everything, signal.SIGKILL)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        deadline = now() + 10
        while any(alive(p) for p in everything) and now() < deadline:
            time.sleep(0.05)
        # Anything else started from here (this process is the subreaper of all of it, so a
        # detached postmaster restarted in between is a descendant too).
        signal_pids(descendants(os.getpid()), signal.SIGKILL)


# --------------------------------------------------------------------------------------------
# chartflow and the load


class Chartflow:
    def __init__(self, args, workdir, dsn, reaper):
        self.args, self.workdir, self.dsn, self.reaper = args, workdir, dsn, reaper
        self.url = f"http://{HOST}:{args.port_base + 50}"
        self.pgpass = os.path.join(workdir, "chartflow.pgpass")
        self.proc = None
        self.env = dict(os.environ)
        self.env.update(PGPASSFILE=self.pgpass, CHARTFLOW_BILL_DIR=os.path.join(workdir, "bills"),
                        ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=0"))
        for k in ("CHARTFLOW_INSURER_URL", "CHARTFLOW_BILL_WEBHOOK_URL", "CHARTFLOW_DATABASE_URL",
                  "CHARTFLOW_DATABASE_URL_FILE", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE",
                  "PGPASSWORD", "PGSERVICE", "PGOPTIONS", "PGTARGETSESSIONATTRS"):
            self.env.pop(k, None)

    def command(self, *argv, timeout=120):
        r = subprocess.run([self.args.binary, *argv, "--database-url", self.dsn], capture_output=True,
                           text=True, env=self.env, timeout=timeout, cwd=REPO)
        return r

    def start(self):
        os.makedirs(os.path.join(self.workdir, "bills"), exist_ok=True)
        logf = open(os.path.join(self.workdir, "chartflow.log"), "ab")
        argv = [self.args.binary, "serve", "--listen", f"{HOST}:{self.args.port_base + 50}",
                "--database-url", self.dsn, "--workflows", os.path.join(REPO, "workflows"),
                "--data-dir", os.path.join(self.workdir, "chartflow-data")]
        if os.geteuid() == 0:
            # External handlers (workflows/handlers/) would otherwise run as root.
            argv += ["--handler-user", "nobody"]
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, cwd=REPO, start_new_session=True)
        logf.close()
        self.reaper.tracked.add(self.proc.pid)
        deadline = now() + 120
        while now() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"chartflow serve exited with {self.proc.returncode} (see chartflow.log)")
            try:
                status, _, _ = http_json("GET", self.url + "/readyz", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SetupError("chartflow serve did not become ready within 120 s (see chartflow.log)")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


class Load:
    """Uploaders and a reviewer. Every attempt is recorded: (start, end, outcome)."""

    RETRYABLE = {429, 502, 503, 504}

    def __init__(self, args, cf, token, tag):
        self.args, self.cf, self.tag = args, cf, tag
        self.headers = {"authorization": f"Bearer {token}"}
        files = sorted(glob.glob(os.path.join(REPO, "tests", "data", "charts", "*.json")))
        self.charts = [open(f, "rb").read() for f in files if os.path.getsize(f) <= args.max_chart_bytes]
        if not self.charts:
            raise SetupError("no charts under tests/data/charts")
        self.lock = threading.Lock()
        self.seq = 0
        self.attempts = []  # (start, end, outcome, chart_id)
        self.acked = {}  # chart_id -> (status, duplicate, end time, sha256 of the body)
        self.abandoned = []
        self.failure_texts = {}  # "503 {body}" -> count
        self.violations = []
        self.decisions = {"ok": 0, "conflict": 0, "failed": 0}
        self.stop_new = threading.Event()  # finish the chart in hand, take no new one
        self.stop_all = threading.Event()  # give up at once
        self.next_slot = now()
        self.threads = []  # uploads in flight
        self.slots = threading.BoundedSemaphore(args.concurrency)

    def _slot(self):
        # A global rate: --rate uploads per second across all clients.
        with self.lock:
            t = max(self.next_slot, now())
            self.next_slot = t + 1.0 / self.args.rate
        delay = t - now()
        if delay > 0:
            time.sleep(delay)

    def _next_chart(self):
        with self.lock:
            self.seq += 1
            n = self.seq
        return f"ha-{self.tag}-{n:05d}", self.charts[n % len(self.charts)]

    def _put(self, chart_id, body):
        conn = http.client.HTTPConnection(HOST, self.args.port_base + 50, timeout=self.args.client_timeout)
        try:
            conn.request("PUT", f"/v1/charts/{chart_id}", body=body,
                         headers=dict(self.headers, **{"content-type": "application/fhir+json"}))
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def _dispatcher(self):
        # Uploads start at --rate whatever happens to the ones in flight (a ward of tablets,
        # not one client waiting on another), up to --concurrency at once.
        while not self.stop_new.is_set():
            self._slot()
            while not self.slots.acquire(timeout=0.5):
                if self.stop_new.is_set():
                    return
            if self.stop_new.is_set():
                self.slots.release()
                return
            chart_id, body = self._next_chart()
            t = threading.Thread(target=self._upload, args=(chart_id, body), daemon=True)
            with self.lock:
                self.threads = [x for x in self.threads if x.is_alive()] + [t]
            t.start()

    def _upload(self, chart_id, body):
        """Sends one chart until it is acknowledged, the same bytes every time."""
        try:
            first = now()
            failures = 0
            while True:
                if self.stop_all.is_set() or now() - first > self.args.give_up_after:
                    with self.lock:
                        self.abandoned.append(chart_id)
                    return
                start = now()
                try:
                    status, raw = self._put(chart_id, body)
                    outcome = status
                except socket.timeout:
                    outcome, raw = "timeout", b""
                except (OSError, http.client.HTTPException) as e:
                    outcome, raw = "connection", str(e).encode()
                end = now()
                with self.lock:
                    self.attempts.append((start, end, outcome, chart_id))
                    if not (isinstance(outcome, int) and 200 <= outcome < 300):
                        # What the failures said, without ids: {"error": "..."} bodies, mostly.
                        key = f"{outcome} {raw[:120].decode(errors='replace')}".strip()
                        self.failure_texts[key] = self.failure_texts.get(key, 0) + 1
                if isinstance(outcome, int) and 200 <= outcome < 300:
                    try:
                        dup = bool(json.loads(raw).get("duplicate"))
                    except (ValueError, AttributeError):
                        dup = None
                    with self.lock:
                        self.acked[chart_id] = (outcome, dup, end, hashlib.sha256(body).hexdigest())
                    return
                if isinstance(outcome, int) and outcome not in self.RETRYABLE:
                    with self.lock:
                        self.violations.append(
                            f"upload {chart_id} answered {outcome}: {raw[:200].decode(errors='replace')}")
                    return
                # Capped exponential backoff with jitter: a short first pause measures when
                # chartflow answers again; the cap keeps a ward of retrying tablets from
                # swamping it (chartflow's Retry-After says 5 s; real clients should wait that).
                failures += 1
                pause = min(self.args.retry_pause * 2 ** (failures - 1), self.args.retry_max)
                time.sleep(pause * random.uniform(0.8, 1.2))
        finally:
            self.slots.release()

    def _reviewer(self):
        url = self.cf.url
        while not self.stop_all.is_set():
            try:
                status, body, _ = http_json("GET", url + "/v1/reviews?status=pending&limit=200",
                                            headers=self.headers, timeout=10)
                items = []
                if status == 200:
                    items = body.get("reviews", body) if isinstance(body, dict) else body
                for item in items or []:
                    if self.stop_all.is_set():
                        break
                    try:
                        s, _, _ = http_json(
                            "POST", f"{url}/v1/reviews/{item['id']}/decision",
                            body={"decision": "approve", "comment": "ha test",
                                  "reason": "deploy/ha/run-ha-test.sh approves every review"},
                            headers=dict(self.headers, **{"content-type": "application/json"}), timeout=10)
                    except OSError:
                        s = None
                    with self.lock:
                        if s is not None and 200 <= s < 300:
                            self.decisions["ok"] += 1
                        elif s == 409:
                            self.decisions["conflict"] += 1  # decided by an earlier, in-doubt attempt
                        else:
                            self.decisions["failed"] += 1
                            if s is not None and s not in self.RETRYABLE and s not in (404,):
                                self.violations.append(f"review {item['id']} decision answered {s}")
                if items:
                    continue
            except OSError:
                pass
            self.stop_all.wait(0.5)

    def start(self):
        self.dispatcher = threading.Thread(target=self._dispatcher, daemon=True)
        self.reviewer = threading.Thread(target=self._reviewer, daemon=True)
        self.dispatcher.start()
        self.reviewer.start()

    def in_flight(self):
        with self.lock:
            return [t for t in self.threads if t.is_alive()]

    def stop_uploads(self, timeout):
        """No new uploads; those in flight are sent until acknowledged (or abandoned)."""
        self.stop_new.set()
        self.dispatcher.join(10)
        deadline = now() + timeout
        for t in self.in_flight():
            t.join(max(0.1, deadline - now()))
        if self.in_flight():
            self.stop_all.set()
            for t in self.in_flight():
                t.join(10)

    def stop(self):
        self.stop_new.set()
        self.stop_all.set()
        for t in self.in_flight() + [getattr(self, "dispatcher", None), getattr(self, "reviewer", None)]:
            if t is not None:
                t.join(15)

    def first_ack_after(self, t0):
        """The end time of the first 2xx attempt started at or after t0."""
        with self.lock:
            ends = [e for s, e, o, _ in self.attempts if s >= t0 and isinstance(o, int) and 200 <= o < 300]
        return min(ends) if ends else None

    def window(self, t0, t1):
        with self.lock:
            return [(s, e, o) for s, e, o, _ in self.attempts if t0 <= s < t1 or (s < t0 and e > t0)]


class PrimaryProbe:
    """Polls GET /primary on every node not taken down by a fault, every 0.25 s: the times at
    which some node answered 200 (a running leader) or none did."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.samples = []  # (time, name of the node answering 200 or None)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            t = now()
            primary = None
            for n in self.cluster.nodes:
                if n.down:
                    continue
                try:
                    status, _, _ = http_json("GET", n.rest + "/primary", timeout=0.7)
                    if status == 200:
                        primary = n.name
                        break
                except OSError:
                    pass
            self.samples.append((t, primary))
            self.stop.wait(max(0.0, 0.25 - (now() - t)))

    def primary_back(self, t0, old_leader, same_node_ok):
        """When a primary was available again after the fault at t0: the first sample showing
        another node as the primary, or (same_node_ok: a primary restarted in place) the old
        leader again after a sample without any primary. (None, None) while neither happened."""
        gap = False
        for t, p in list(self.samples):
            if t < t0:
                continue
            if p is None:
                gap = True
            elif p != old_leader or (same_node_ok and gap):
                return t, p
        return None, None


# --------------------------------------------------------------------------------------------
# The run


def free_port(port):
    with socket.socket() as s:
        # As the servers do: a port whose last connections linger in TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


def summarize(attempts):
    counts = {}
    for _, _, o in attempts:
        key = o if isinstance(o, str) else ("2xx" if 200 <= o < 300 else str(o))
        counts[key] = counts.get(key, 0) + 1
    return counts


def longest_gap(load, t0, t1):
    """The longest time without any acknowledged upload between t0 and t1, counted from the
    last acknowledgement before t0: the outage as the uploading clients saw it."""
    with load.lock:
        acks = sorted(e for s, e, o, _ in load.attempts if isinstance(o, int) and 200 <= o < 300)
    before = [e for e in acks if e < t0]
    points = ([before[-1]] if before else [t0]) + [e for e in acks if t0 <= e <= t1]
    return max((b - a for a, b in zip(points, points[1:])), default=None)


def run_fault(kind, cluster, cf, load, probe, args):
    deadline = now() + 30
    leader = cluster.leader()
    while leader is None and now() < deadline:
        time.sleep(0.5)
        leader = cluster.leader()
    if leader is None:
        raise SetupError("no leader before the fault")
    state = cluster.cluster_state() or {}
    sync = next((m["name"] for m in state.get("members", []) if m.get("role") == "sync_standby"), None)
    log(f"fault {kind}: leader {leader.name}, synchronous standby {sync}")
    restore = None
    if kind == "switchover":
        t0 = now()
        r = subprocess.run(["patronictl", "-c", os.path.join(leader.dir, "patroni.yml"), "switchover",
                            "--leader", leader.name, "--force"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise SetupError(f"patronictl switchover failed: {r.stdout}{r.stderr}")
    elif kind == "kill9":
        pm = leader.postmaster_pid()
        if pm is None:
            raise SetupError("the leader has no postmaster")
        os.kill(pm, signal.SIGKILL)
        t0 = now()
    elif kind == "nodeloss":
        cluster.kill_node(leader)
        t0 = now()
        restore = lambda: cluster.start_node(leader)  # noqa: E731
    elif kind == "freeze":
        cluster.freeze_node(leader)
        t0 = now()
        restore = lambda: cluster.thaw_node(leader)  # noqa: E731
    else:
        raise ValueError(kind)

    # Wait for chartflow to accept an upload again and (all but kill9, where Patroni may restart
    # the primary in place) for another node to be the primary. A lost node stays lost until
    # then; a frozen node is woken after --freeze-seconds whatever happened meanwhile.
    same_node_ok = kind == "kill9"
    deadline = t0 + args.fault_timeout
    ack = back_t = back_node = None
    while now() < deadline:
        if ack is None:
            ack = load.first_ack_after(t0)
        if back_t is None:
            back_t, back_node = probe.primary_back(t0, leader.name, same_node_ok)
        if kind == "freeze" and restore and now() >= t0 + args.freeze_seconds:
            log(f"fault {kind}: SIGCONT to {leader.name} after {now() - t0:.1f}s")
            restore()
            restore = None
        # kill9 with the primary restarted in place may show no gap at all on /primary.
        primary_seen = back_t is not None or (same_node_ok and ack is not None and now() > ack + 5)
        if ack is not None and primary_seen and (kind != "freeze" or restore is None):
            break
        time.sleep(0.1)
    if restore:
        if kind == "freeze":
            log(f"fault {kind}: SIGCONT to {leader.name} after {now() - t0:.1f}s")
        else:
            log(f"fault {kind}: restarting {leader.name} after {now() - t0:.1f}s")
        restore()
    try:
        desc = cluster.wait_healthy(args.heal_timeout, what=f"after {kind}")
        healed = True
    except SetupError as e:
        desc, healed = str(e), False
    t_whole = now()
    time.sleep(1.0)
    window = load.window(t0, t_whole)
    gap = longest_gap(load, t0, t_whole)
    result = {
        "fault": kind,
        "old_leader": leader.name,
        "new_leader": back_node,
        "primary_back_s": None if back_t is None else round(back_t - t0, 1),
        "chartflow_back_s": None if ack is None else round(ack - t0, 1),
        "longest_gap_s": None if gap is None else round(gap, 1),
        "whole_again_s": round(t_whole - t0, 1) if healed else None,
        "attempts": summarize(load.window(t0, ack if ack is not None else t_whole)),
        "longest_failed_attempt_s": round(max(
            (e - s for s, e, o in window if not (isinstance(o, int) and 200 <= o < 300)), default=0), 1),
    }
    if ack is None:
        result["violation"] = f"no upload succeeded within {args.fault_timeout}s of the fault"
    if not healed:
        result["violation"] = (result.get("violation", "") + "; " if "violation" in result else "") + desc
    log(f"fault {kind}: primary back after {result['primary_back_s']}s on {back_node}, first upload "
        f"accepted after {result['chartflow_back_s']}s, longest gap {result['longest_gap_s']}s, "
        f"attempts meanwhile {result['attempts']}")
    if healed:
        log(f"fault {kind}: cluster whole again after {result['whole_again_s']}s: {desc}")
    else:
        log(f"fault {kind}: {desc}")
    return result


INVARIANT_SQL = r"""
CREATE TEMP TABLE acked (chart_id text PRIMARY KEY);
COPY acked FROM STDIN;
{ids}
\.
-- 1. every acknowledged upload is stored once, with exactly one run
SELECT 'acknowledged upload ' || a.chart_id || ': ' || coalesce(r.n, 0) || ' upload revision(s), '
       || coalesce(w.n, 0) || ' run(s)'
FROM acked a
LEFT JOIN (SELECT chart_id, count(*) n FROM chart_revision WHERE source = 'upload' GROUP BY 1) r
       USING (chart_id)
LEFT JOIN (SELECT subject AS chart_id, count(*) n FROM workflow_run WHERE workflow = 'chart-update'
           GROUP BY 1) w USING (chart_id)
WHERE coalesce(r.n, 0) <> 1 OR coalesce(w.n, 0) <> 1;
-- 2. any stored upload (acknowledged or not) has exactly one run per revision
SELECT 'chart ' || r.chart_id || ': ' || r.n || ' upload revision(s) but ' || coalesce(w.n, 0) || ' run(s)'
FROM (SELECT chart_id, count(*) n FROM chart_revision WHERE source = 'upload' GROUP BY 1) r
LEFT JOIN (SELECT subject AS chart_id, count(*) n FROM workflow_run WHERE workflow = 'chart-update'
           GROUP BY 1) w USING (chart_id)
WHERE r.n <> coalesce(w.n, 0);
-- 3. every run ended succeeded
SELECT 'run ' || id || ' (' || workflow || ', ' || coalesce(subject, '') || ') is ' || status
       || coalesce(': ' || left(error, 200), '')
FROM workflow_run WHERE status <> 'succeeded' ORDER BY id LIMIT 50;
"""

FIGURES_SQL = r"""
SELECT json_build_object(
  'upload_revisions', (SELECT count(*) FROM chart_revision WHERE source = 'upload'),
  'runs', (SELECT count(*) FROM workflow_run),
  'runs_succeeded', (SELECT count(*) FROM workflow_run WHERE status = 'succeeded'),
  'steps_retried', (SELECT count(*) FROM step_run WHERE attempt > 1),
  'max_attempt', (SELECT max(attempt) FROM step_run),
  'reviews_decided', (SELECT count(*) FROM review WHERE status IN ('approved', 'rejected')),
  'chartflow_sessions', (SELECT count(*) FROM pg_stat_activity WHERE usename = 'chartflow'));
"""


def check_invariants(cluster, cf, load, args):
    violations = list(load.violations)
    # Wait for every run to finish (the reviewer keeps approving).
    deadline = now() + args.drain_timeout
    pending = None
    while now() < deadline:
        pending = int(cluster.psql("SELECT count(*) FROM workflow_run WHERE status NOT IN "
                                   "('succeeded', 'failed', 'cancelled');", db="chartflow").strip())
        if pending == 0:
            break
        time.sleep(1)
    if pending:
        violations.append(f"{pending} run(s) still not terminal {args.drain_timeout}s after the load stopped")
    ids = "\n".join(sorted(load.acked))
    out = cluster.psql(INVARIANT_SQL.format(ids=ids), db="chartflow")
    violations += [line for line in out.splitlines() if line.strip()]
    figures = json.loads(cluster.psql(FIGURES_SQL, db="chartflow").strip())
    r = cf.command("audit", "verify")
    audit = (r.stdout + r.stderr).strip().splitlines()
    figures["audit"] = audit[-1] if audit else ""
    if r.returncode != 0:
        violations.append(f"chartflow audit verify exited {r.returncode}: {' / '.join(audit[-3:])}")
    return violations, figures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(REPO, "build-test", "chartflow"))
    ap.add_argument("--workdir", help="where the nodes' data and the logs go (default: a new /tmp/cfha.*)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    ap.add_argument("--port-base", type=int, default=25400,
                    help="postgres base+1..3, Patroni REST base+11..13, etcd base+21..23 and "
                         "base+31..33, HAProxy base+40, chartflow base+50 (default 25400)")
    ap.add_argument("--via", choices=("multihost", "haproxy"), default="multihost",
                    help="how chartflow finds the primary: a multi-host URL with "
                         "target_session_attrs=read-write, or HAProxy with Patroni's REST checks")
    ap.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, in order (default {','.join(FAULTS)})")
    ap.add_argument("--concurrency", type=int, default=200,
                    help="uploads in flight at most (each retried until acknowledged; default 200)")
    ap.add_argument("--rate", type=float, default=8.0, help="uploads per second, all clients (default 8)")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the first fault")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds of load between faults once whole")
    ap.add_argument("--freeze-seconds", type=float, default=40.0, help="how long the frozen node stays stopped")
    ap.add_argument("--primary-start-timeout", type=int, default=0,
                    help="Patroni's primary_start_timeout (default 0: fail over at once after a crash)")
    ap.add_argument("--sync-strict", action="store_true", help="synchronous_mode_strict: true")
    ap.add_argument("--dcs", choices=("etcd", "etcd3"), default="etcd",
                    help="Patroni's etcd protocol: etcd (v2 API, compare-and-swap leader updates; the "
                         "default, see README) or etcd3")
    ap.add_argument("--fault-timeout", type=float, default=120.0,
                    help="a fault after which no upload succeeds for this long is a violation")
    ap.add_argument("--heal-timeout", type=float, default=180.0, help="limit for the cluster to be whole again")
    ap.add_argument("--drain-timeout", type=float, default=120.0, help="limit for every run to finish at the end")
    ap.add_argument("--client-timeout", type=float, default=60.0, help="HTTP timeout of one upload attempt")
    ap.add_argument("--retry-pause", type=float, default=0.2,
                    help="first pause before resending after a 503 or a connection error, doubling "
                         "up to --retry-max (Retry-After is 5 s; short pauses measure when chartflow "
                         "answers again)")
    ap.add_argument("--retry-max", type=float, default=1.0, help="longest pause between resends (default 1 s)")
    ap.add_argument("--give-up-after", type=float, default=180.0, help="an upload not acknowledged by then is abandoned")
    ap.add_argument("--max-chart-bytes", type=int, default=200_000,
                    help="skip larger charts (default 200 kB: the encounter charts; bodies over 256 KiB "
                         "share chartflow's few upload slots, which an ASan build under a retry storm "
                         "turns into a queue of 503s)")
    ap.add_argument("--run-as", default="postgres", help="the unprivileged user when run as root")
    ap.add_argument("--pg-bindir", help="PostgreSQL server binaries (default: newest /usr/lib/postgresql/*/bin)")
    ap.add_argument("--report", help="also write the figures as JSON here")
    args = ap.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    for f in faults:
        if f not in FAULTS:
            ap.error(f"unknown fault {f}; choose from {', '.join(FAULTS)}")
    if not os.access(args.binary, os.X_OK):
        print(f"ha-test: {args.binary} is not an executable; build it or pass --binary", file=sys.stderr)
        return 2
    for tool in ("etcd", "patroni", "patronictl") + (("haproxy",) if args.via == "haproxy" else ()):
        if shutil.which(tool) is None:
            print(f"ha-test: {tool} not found; run deploy/install_deps.sh --ha", file=sys.stderr)
            return 2
    ports = [args.port_base + o for o in (1, 2, 3, 11, 12, 13, 21, 22, 23, 31, 32, 33, 40, 41, 50)]
    busy = [p for p in ports if not free_port(p)]
    if busy:
        print(f"ha-test: ports in use: {busy}; stop what holds them or choose another --port-base",
              file=sys.stderr)
        return 2

    workdir = args.workdir or tempfile.mkdtemp(prefix="cfha.", dir="/tmp")
    os.makedirs(workdir, exist_ok=True)
    workdir = os.path.realpath(workdir)
    os.chmod(workdir, 0o755)
    reaper = Reaper()
    cluster = Cluster(args, workdir, reaper)
    cf = None
    load = None
    probe = None
    status = 2
    report = {"faults": [], "settings": {
        "via": args.via, "dcs": args.dcs, "primary_start_timeout": args.primary_start_timeout,
        "synchronous_mode_strict": args.sync_strict, "ttl": 30, "loop_wait": 10, "retry_timeout": 10,
        "freeze_seconds": args.freeze_seconds, "concurrency": args.concurrency, "rate": args.rate}}

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    started = now()
    try:
        log(f"work directory {workdir}; PostgreSQL from {cluster.bindir}"
            + (f"; cluster runs as {cluster.run_as.pw_name}" if cluster.run_as else ""))
        cluster.start()
        desc = cluster.wait_healthy(180, what="bootstrap")
        log(f"cluster up after {now() - started:.1f}s: {desc}")
        app_password = secrets.token_hex(16)
        cluster.psql(
            "CREATE ROLE chartflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
            f"PASSWORD '{app_password}';\nCREATE DATABASE chartflow OWNER chartflow;\n")
        if args.via == "haproxy":
            cluster.start_haproxy(args.port_base + 40, args.port_base + 41)
            dsn = f"postgresql://chartflow@{HOST}:{args.port_base + 40}/chartflow?connect_timeout=5"
        else:
            hosts = ",".join(f"{HOST}:{n.pg_port}" for n in cluster.nodes)
            dsn = f"postgresql://chartflow@{hosts}/chartflow?target_session_attrs=read-write&connect_timeout=5"
        cf = Chartflow(args, workdir, dsn, reaper)
        with open(cf.pgpass, "w") as f:
            f.write(f"*:*:chartflow:chartflow:{app_password}\n")
        os.chmod(cf.pgpass, 0o600)
        log(f"chartflow serve on {cf.url}, database {dsn}")
        cf.start()
        r = cf.command("tokens", "create", "--role", "admin", "--name", "ha-test")
        if r.returncode != 0:
            raise SetupError(f"chartflow tokens create failed: {r.stderr.strip()}")
        token = r.stdout.strip().splitlines()[-1]
        probe = PrimaryProbe(cluster)
        load = Load(args, cf, token, tag=secrets.token_hex(3))
        load.start()
        log(f"load: {args.rate} uploads/s (at most {args.concurrency} in flight), {len(load.charts)} charts; "
            f"warming up {args.warmup}s")
        time.sleep(args.warmup)
        if not load.acked:
            raise SetupError("no upload succeeded during the warm-up (see chartflow.log)")
        for kind in faults:
            report["faults"].append(run_fault(kind, cluster, cf, load, probe, args))
            if report["faults"][-1].get("whole_again_s") is None:
                log("the cluster did not become whole again: no further faults")
                break
            time.sleep(args.settle)
        log("stopping the load; draining")
        load.stop_uploads(timeout=args.give_up_after)
        violations, figures = check_invariants(cluster, cf, load, args)
        load.stop()
        for f in report["faults"]:
            if "violation" in f:
                violations.append(f"{f['fault']}: {f['violation']}")
        all_attempts = [(s, e, o) for s, e, o, _ in load.attempts]
        dups = sum(1 for v in load.acked.values() if v[1])
        figures.update(uploads_acknowledged=len(load.acked), acknowledged_as_duplicate=dups,
                       uploads_abandoned=len(load.abandoned), attempts=summarize(all_attempts),
                       review_decisions=load.decisions, duration_s=round(now() - started, 1),
                       failures=dict(sorted(load.failure_texts.items(), key=lambda kv: -kv[1])[:8]))
        if load.abandoned:
            log(f"note: {len(load.abandoned)} upload(s) never acknowledged: {load.abandoned[:5]}")
        report["figures"] = figures
        report["violations"] = violations
        status = 1 if violations else 0
    except SetupError as e:
        log(f"setup failed: {e}")
        report["error"] = str(e)
        status = 2
    except KeyboardInterrupt as e:
        log(f"interrupted ({e})")
        status = 2
    finally:
        if load is not None:
            load.stop()
        if probe is not None:
            probe.stop.set()
        if cf is not None:
            cf.stop()
        cluster.stop_all()
        reaper.stop.set()
    print_report(report, status)
    text = json.dumps(report, indent=2)
    if args.report:
        os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
        with open(args.report, "w") as f:
            f.write(text + "\n")
    if args.keep or status == 2:
        with open(os.path.join(workdir, "report.json"), "w") as f:
            f.write(text + "\n")
        if load is not None:
            # Every upload attempt, in seconds since the start: to line up with the logs.
            with open(os.path.join(workdir, "attempts.tsv"), "w") as f:
                f.write("start\tend\toutcome\tchart_id\n")
                for a_start, a_end, outcome, chart_id in sorted(load.attempts):
                    f.write(f"{a_start - T0:.3f}\t{a_end - T0:.3f}\t{outcome}\t{chart_id}\n")
        log(f"kept {workdir} (logs: node*/log/, chartflow.log)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


def print_report(report, status):
    out = sys.stdout
    s = report["settings"]
    print(f"\nHA test ({s['via']}, Patroni {s['dcs']}, primary_start_timeout={s['primary_start_timeout']}, "
          f"synchronous_mode_strict={s['synchronous_mode_strict']}, ttl/loop_wait/retry_timeout="
          f"{s['ttl']}/{s['loop_wait']}/{s['retry_timeout']}, {s['rate']} uploads/s)", file=out)
    if report["faults"]:
        print(f"{'fault':<11} {'old':<6} {'new':<6} {'primary back':>12} {'upload back':>11} "
              f"{'longest gap':>11} {'whole again':>11} {'longest fail':>12}  attempts until the first upload back",
              file=out)
        for f in report["faults"]:
            fmt = lambda v: "-" if v is None else f"{v:.1f} s"  # noqa: E731
            print(f"{f['fault']:<11} {f['old_leader']:<6} {str(f['new_leader'] or '-'):<6} "
                  f"{fmt(f['primary_back_s']):>12} {fmt(f['chartflow_back_s']):>11} "
                  f"{fmt(f['longest_gap_s']):>11} {fmt(f['whole_again_s']):>11} "
                  f"{fmt(f['longest_failed_attempt_s']):>12}  "
                  f"{json.dumps(f['attempts'], sort_keys=True)}", file=out)
    if "figures" in report:
        print("figures: " + json.dumps(report["figures"], sort_keys=True), file=out)
    for v in report.get("violations", []):
        print(f"VIOLATION: {v}", file=out)
    if "error" in report:
        print(f"ERROR: {report['error']}", file=out)
    print({0: "PASS: every invariant held", 1: "FAIL: invariants violated",
           2: "ERROR: the test could not run"}[status], file=out, flush=True)


if __name__ == "__main__":
    sys.exit(main())
