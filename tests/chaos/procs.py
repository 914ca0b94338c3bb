"""chartflow processes under test: `serve` (API + workers) and `worker`, killed and restarted."""

import http.client
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path


def http_get(port, path, timeout=2.0):
    """(status, body) or (None, error text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return None, str(e)
    finally:
        conn.close()


class ChartflowProc:
    def __init__(self, name, kind, binary, args, env, log_dir, cwd, port=None):
        self.name = name
        self.kind = kind  # "serve" | "worker"
        self.binary = binary
        self.args = args
        self.env = env
        self.log_dir = Path(log_dir)
        self.cwd = cwd
        self.port = port
        self.generation = 0
        self.proc = None
        self.logs = []
        self.started_at = None
        self.expected_exit = False
        self.unexpected_exits = []  # (generation, returncode, log path)
        self._lock = threading.Lock()

    def start(self):
        with self._lock:
            self.generation += 1
            log = self.log_dir / f"{self.name}.{self.generation}.log"
            self.logs.append(log)
            f = open(log, "wb")
            self.expected_exit = False
            self.started_at = time.time()
            self.proc = subprocess.Popen([self.binary, self.kind] + self.args, stdout=f,
                                         stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                         start_new_session=True)
            f.close()
            return self.started_at

    def kill9(self):
        with self._lock:
            if self.proc is None:
                return None
            self.expected_exit = True
            t = time.time()
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
            return t

    def terminate(self, timeout=90):
        """SIGTERM (drain), then SIGKILL after `timeout`. Returns the exit code."""
        with self._lock:
            if self.proc is None:
                return None
            self.expected_exit = True
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=30)
                    return "killed after drain timeout"
            return self.proc.returncode

    def check_exit(self):
        """Notes an exit nobody asked for; returns True when the process died on its own."""
        with self._lock:
            if self.proc is None or self.expected_exit:
                return False
            rc = self.proc.poll()
            if rc is None:
                return False
            self.unexpected_exits.append((self.generation, rc, str(self.logs[-1])))
            self.expected_exit = True
            return True

    def ready(self, timeout=2.0):
        if self.kind != "serve":
            return self.log_has(r'"message":"worker_started"')
        status, _ = http_get(self.port, "/readyz", timeout)
        return status == 200

    def log_has(self, pattern):
        try:
            return re.search(pattern, self.logs[-1].read_text(errors="replace")) is not None
        except (OSError, IndexError):
            return False

    def wait_ready(self, timeout):
        """Seconds from now until ready, or None."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                return None
            if self.ready():
                return time.time() - t0
            time.sleep(0.05)
        return None
