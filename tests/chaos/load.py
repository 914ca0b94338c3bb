"""The chart load: a seeded plan of uploads, the uploading clients and the doctors deciding reviews.

A client that gets a connection error, a timeout or a 5xx retries the same content (the README
says a content-identical retry is safe); it records every upload that got a 2xx. Every status it
saw is counted, so "the database went away and the client got 500" shows in the figures.
"""

import hashlib
import http.client
import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def load_charts(charts_dir, max_bytes):
    files = sorted(p for p in Path(charts_dir).glob("*.json") if p.stat().st_size <= max_bytes)
    if not files:
        raise RuntimeError(f"no chart files (*.json, at most {max_bytes} bytes) in {charts_dir}")
    charts = []
    for p in files:
        body = p.read_bytes()
        doc = json.loads(body)
        charts.append({"file": p.name, "body": body, "released": _released(doc)})
    return charts


def _released(bundle):
    """handlers/discharge/release.cpp: an Encounter `finished` with a discharge disposition."""
    for e in bundle.get("entry") or []:
        r = e.get("resource") or {}
        if r.get("resourceType") != "Encounter" or r.get("status") != "finished":
            continue
        d = (r.get("hospitalization") or {}).get("dischargeDisposition")
        if d:
            return True
    return False


def make_plan(charts, n, seed, duplicate_share=0.1):
    """n distinct charts (ids vary; bodies drawn from the sample files) plus re-uploads of
    identical content, which must be answered `duplicate` and start nothing."""
    rng = random.Random(seed)
    ops = []
    for i in range(n):
        c = rng.choice(charts)
        stem = c["file"].split("-")[0]  # enc | full
        chart_id = f"chaos-{i:05d}-{stem}"
        ops.append({"chart_id": chart_id, "file": c["file"], "body": c["body"],
                    "sha": hashlib.sha256(c["body"]).hexdigest(), "released": c["released"],
                    "duplicate_of": None})
    for _ in range(int(n * duplicate_share)):
        j = rng.randrange(n)
        pos = rng.randrange(j + 1, len(ops) + 1)
        src = ops[j]
        ops.insert(pos, dict(src, duplicate_of=src["chart_id"]))
    for k, op in enumerate(ops):
        op["index"] = k
    return ops


class Api:
    """Requests to whichever serve process answers; retries what the issue says is safe."""

    def __init__(self, ports, token, stats, lock):
        self.ports = ports
        self.token = token
        self.stats = stats  # Counter of statuses / errors
        self.lock = lock
        self.successes = []  # (t, port) of every 2xx, for recovery times

    def once(self, method, path, body, headers, port, timeout):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            h = {"authorization": f"Bearer {self.token}"}
            h.update(headers)
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, data
        except (OSError, http.client.HTTPException) as e:
            return None, type(e).__name__
        finally:
            conn.close()

    def call(self, method, path, body, headers, first_port_index, deadline, timeout=60,
             retry_on=(None, 500, 502, 503, 504)):
        """Returns (status, body, attempts, statuses); retries until `deadline` (epoch s)."""
        attempts = 0
        seen = []
        backoff = 0.2
        i = first_port_index
        while True:
            port = self.ports[i % len(self.ports)]
            status, data = self.once(method, path, body, headers, port, timeout)
            attempts += 1
            label = status if status is not None else f"error:{data}"
            seen.append(label)
            with self.lock:
                self.stats[label] += 1
                if status is not None and 200 <= status < 300:
                    self.successes.append((time.time(), port))
            if status not in retry_on or time.time() > deadline:
                return status, data, attempts, seen
            i += 1  # the other serve process
            time.sleep(min(backoff, 2.0) * (0.5 + random.random()))
            backoff *= 1.6


class Uploader:
    def __init__(self, api, ops, threads, rate, give_up_seconds):
        self.api = api
        self.ops = ops
        self.threads = threads
        self.rate = rate  # uploads per second, or None for as fast as possible
        self.give_up_seconds = give_up_seconds
        self.results = {}  # op index -> dict
        self._next = 0
        self._lock = threading.Lock()
        self._workers = []
        self.t_start = None
        self.t_end = None

    def start(self):
        self.t_start = time.time()
        for k in range(self.threads):
            t = threading.Thread(target=self._work, args=(k,), daemon=True, name=f"upload-{k}")
            t.start()
            self._workers.append(t)
        return self

    def join(self):
        for t in self._workers:
            t.join()
        self.t_end = time.time()

    def done(self):
        return all(not t.is_alive() for t in self._workers)

    def _take(self):
        with self._lock:
            if self._next >= len(self.ops):
                return None
            op = self.ops[self._next]
            self._next += 1
            return op

    def _work(self, k):
        while True:
            op = self._take()
            if op is None:
                return
            if self.rate:
                due = self.t_start + op["index"] / self.rate
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
            t0 = time.time()
            status, data, attempts, seen = self.api.call(
                "PUT", f"/v1/charts/{op['chart_id']}", op["body"],
                {"content-type": "application/fhir+json"}, op["index"],
                deadline=t0 + self.give_up_seconds)
            res = {"chart_id": op["chart_id"], "sha": op["sha"], "status": status,
                   "attempts": attempts, "seen": seen, "t0": t0, "t1": time.time(),
                   "duplicate_of": op["duplicate_of"]}
            if status is not None and 200 <= status < 300:
                try:
                    j = json.loads(data)
                    res["duplicate"] = bool(j.get("duplicate"))
                    res["revision"] = j.get("revision")
                    res["runs"] = j.get("runs")
                except ValueError:
                    res["duplicate"] = None
            else:
                res["error"] = (data[:300].decode("utf-8", "replace")
                                if isinstance(data, bytes) else str(data))
            with self._lock:
                self.results[op["index"]] = res


def decision_for(chart_id):
    """Deterministic per chart, so the fault run decides exactly as the control did."""
    digest = int(hashlib.sha256(chart_id.encode()).hexdigest(), 16)
    return "reject" if digest % 5 == 0 else "approve"


class ReviewDecider:
    """The doctors: every pending review is decided through the API (an admin on their behalf)."""

    def __init__(self, api, cluster, interval=0.5, threads=4):
        self.api = api
        self.threads = threads
        self._lock = threading.Lock()
        self.cluster = cluster
        self.interval = interval
        self.decided = {}  # review id -> (status, chart_id, time)
        self.counts = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="reviews")

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=120)

    def _decide(self, row, i):
        rid = row["id"]
        body = json.dumps({"decision": decision_for(row["chart_id"]), "comment": "chaos suite",
                           "reason": "chaos suite decides on the doctor's behalf"})
        status, _, _, _ = self.api.call(
            "POST", f"/v1/reviews/{rid}/decision", body.encode(),
            {"content-type": "application/json"}, i, deadline=time.time() + 30, timeout=30)
        with self._lock:
            self.counts[status] += 1
            if rid in self.decided:
                self.counts["decided_again"] += 1
            self.decided[rid] = (status, row["chart_id"], time.time())

    def _loop(self):
        i = 0
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            while not self._stop.is_set():
                try:
                    pending = self.cluster.sql_json(
                        "SELECT id, chart_id FROM review WHERE status IN ('pending', 'escalated') "
                        "ORDER BY id LIMIT 500", timeout=10)
                except Exception:  # noqa: BLE001 - the database may be down or frozen
                    self.counts["sql_unavailable"] += 1
                    self._stop.wait(self.interval)
                    continue
                todo = []
                for row in pending:
                    prev = self.decided.get(row["id"])
                    # Decided; still pending 10 s later means: decide again.
                    if prev and prev[0] in (200, 409) and time.time() - prev[2] < 10:
                        continue
                    todo.append(row)
                futures = []
                for row in todo:
                    futures.append(pool.submit(self._decide, row, i))
                    i += 1
                for f in futures:
                    f.result()
                self._stop.wait(self.interval)
