"""Fake outside parties: an insurer endpoint and a bill webhook, plus a watcher of the bill folder.

Each receiver records every request it gets (Idempotency-Key, SHA-256 of the body, time, what it
answered) and can be switched between answering normally and three outage modes:
  "500"    answers 500 Internal Server Error
  "reset"  reads the request, then resets the connection (RST, no response)
  "hang"   reads the request, then holds the connection without a word for `hang_seconds`
           (longer than chartflow's outside-call timeout) and resets it
"""

import hashlib
import http.server
import os
import socket
import struct
import threading
import time


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "chaos-receiver/1"
    # HTTP/1.1 so that libcurl's `Expect: 100-continue` is answered at once (an HTTP/1.0 server
    # would cost every POST over 1 KiB curl's one-second wait); each response closes.
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 (http.server's naming)
        rec = self.server.receiver
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        key = self.headers.get("idempotency-key") or ""
        mode = rec.mode
        rec.record(key, body, mode, self.path)
        if mode == "500":
            self._answer(500, b'{"error":"chaos: injected 500"}')
        elif mode == "reset":
            self._reset()
        elif mode == "hang":
            time.sleep(rec.hang_seconds)
            self._reset()
        else:
            self._answer(200, b'{"ok":true}')

    def _answer(self, status, payload):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    def _reset(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):  # resets make the handler's flush fail
        pass


class Receiver:
    def __init__(self, name, hang_seconds=15.0):
        self.name = name
        self.hang_seconds = hang_seconds
        self.mode = "ok"
        self.records = []  # dicts: t (epoch s), key, sha, mode, path, size
        self.bodies = {}  # (key, sha) -> body bytes, the first of each distinct body per key
        self.outages = []  # [mode, start, end]
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"receiver-{name}")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def record(self, key, body, mode, path):
        sha = hashlib.sha256(body).hexdigest()
        with self._lock:
            self.records.append({"t": time.time(), "key": key, "sha": sha, "mode": mode,
                                 "path": path, "size": len(body)})
            self.bodies.setdefault((key, sha), body)

    def set_mode(self, mode):
        with self._lock:
            now = time.time()
            if self.outages and self.outages[-1][2] is None:
                self.outages[-1][2] = now
            if mode != "ok":
                self.outages.append([mode, now, None])
            self.mode = mode

    def snapshot(self):
        with self._lock:
            return list(self.records), dict(self.bodies), [list(o) for o in self.outages]


class BillFolderWatcher:
    """Polls the bill folder and keeps every distinct content each bill file has had."""

    def __init__(self, directory, interval=0.1):
        self.dir = directory
        self.interval = interval
        self.seen = {}  # file name -> list of (t, sha) in the order observed
        self.contents = {}  # (file, sha) -> text
        self._stat = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bill-folder")

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.scan()  # the final state

    def _loop(self):
        while not self._stop.is_set():
            self.scan()
            self._stop.wait(self.interval)

    def scan(self):
        try:
            names = os.listdir(self.dir)
        except OSError:
            return
        for name in names:
            if not name.endswith("-invoice.txt"):
                continue  # temporary files of the atomic write
            path = os.path.join(self.dir, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            sig = (st.st_ino, st.st_mtime_ns, st.st_size)
            if self._stat.get(name) == sig:
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            self._stat[name] = sig
            sha = hashlib.sha256(data).hexdigest()
            history = self.seen.setdefault(name, [])
            history.append((time.time(), sha))
            self.contents.setdefault((name, sha), data.decode("utf-8", "replace"))
