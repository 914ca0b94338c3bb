"""The chaos suite's own throwaway PostgreSQL cluster: start, SIGKILL, restart, freeze, query.

The cluster is made by deploy/start_test_postgres.sh in a directory and on a port of its own, so
the shared test cluster (default /tmp/chartflow-test-pg on 54329) is never touched. That script
switches durability off for speed; a SIGKILL of the postmaster loses nothing the kernel has (the
machine does not crash, so fsync=off is harmless) but synchronous_commit=off could lose commits
already acknowledged to a client, which would show up as false "lost uploads". So the suite turns
synchronous_commit back on for its clusters.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path


def pg_bindir():
    env = os.environ.get("CHARTFLOW_PG_BINDIR")
    if env:
        return Path(env)
    dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not dirs:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
    return dirs[-1]


class SqlError(RuntimeError):
    pass


class Cluster:
    def __init__(self, repo, directory, port, log):
        self.repo = Path(repo)
        self.dir = Path(directory)
        self.port = port
        self.log = log
        self.bindir = pg_bindir()
        self.dsn = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self):
        """Starts (or restarts after a kill) the cluster; returns its DSN."""
        env = dict(os.environ, CHARTFLOW_TEST_PG_PORT=str(self.port))
        last = None
        for _ in range(5):
            r = subprocess.run(
                ["bash", str(self.repo / "deploy/start_test_postgres.sh"), str(self.dir)],
                env=env, capture_output=True, text=True, timeout=180)
            if r.returncode == 0:
                self.dsn = r.stdout.strip().splitlines()[-1]
                return self.dsn
            last = r.stderr
            time.sleep(1)
        raise RuntimeError("start_test_postgres.sh failed:\n" + (last or ""))

    def configure_durable_commits(self):
        self.sql_exec("ALTER SYSTEM SET synchronous_commit = on")
        self.sql_exec("SELECT pg_reload_conf()")

    def destroy(self):
        subprocess.run(["bash", str(self.repo / "deploy/stop_test_postgres.sh"), str(self.dir)],
                       capture_output=True, text=True, timeout=180)
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- processes -------------------------------------------------------------------------

    def postmaster_pid(self):
        try:
            first = (self.dir / "data" / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first)
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def server_pids(self):
        """The postmaster and every process it started."""
        pm = self.postmaster_pid()
        if pm is None:
            return []
        return [pm] + _children(pm)

    def kill9(self):
        """SIGKILL of the postmaster; its backends notice and exit, stragglers are killed too.

        Returns once no process of the cluster is left, so a restart can take the data dir."""
        pm = self.postmaster_pid()
        if pm is None:
            return False
        children = _children(pm)
        os.kill(pm, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in children + [pm]):
            time.sleep(0.05)
        for p in children:
            if _alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # pg_ctl takes a zombie for a running server, and the zombies of the postmaster (whose
        # parent is init) wait for init to reap them: wait until they are gone from /proc.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}")
                                                  for p in children + [pm]):
            time.sleep(0.05)
        return True

    def freeze(self):
        """SIGSTOP of every process of the cluster; returns the pids for thaw()."""
        pids = self.server_pids()
        for p in pids:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        return pids

    @staticmethod
    def thaw(pids):
        for p in pids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass

    # --- SQL -------------------------------------------------------------------------------

    def _psql(self, sql, timeout):
        if not self.dsn:
            raise SqlError("cluster not started")
        cmd = [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
               "-d", self.dsn, "-c", sql]
        env = dict(os.environ, PGCONNECT_TIMEOUT="5")
        env.pop("PGOPTIONS", None)
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as e:
            raise SqlError(f"psql timed out after {timeout}s") from e
        if r.returncode != 0:
            raise SqlError(r.stderr.strip() or f"psql exited {r.returncode}")
        return r.stdout

    def sql_exec(self, sql, timeout=60):
        return self._psql(sql, timeout)

    def sql_json(self, query, timeout=120):
        """Rows of `query` as a list of dicts."""
        out = self._psql(f"SELECT coalesce(json_agg(q), '[]'::json) FROM ({query}) q", timeout)
        return json.loads(out.strip() or "[]")

    def sql_scalar(self, query, timeout=60):
        out = self._psql(query, timeout).strip()
        return out.splitlines()[0] if out else ""

    def table_exists(self, name):
        return self.sql_scalar(f"SELECT to_regclass('{name}') IS NOT NULL") == "t"

    def column_exists(self, table, column):
        return self.sql_scalar(
            "SELECT count(*) FROM information_schema.columns "
            f"WHERE table_name = '{table}' AND column_name = '{column}'") != "0"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def _children(ppid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == ppid:
                out.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return out
