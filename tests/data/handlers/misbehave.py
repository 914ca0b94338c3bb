"""A raw-protocol external handler (no adapter) for tests: misbehaves as input.mode says on the
attempts listed in input.bad_attempts (default: the first), then answers normally."""

import json
import os
import sys
import time

for line in sys.stdin:
    request = json.loads(line)
    ctx = request["context"]
    mode = request["input"].get("mode", "ok")
    bad = ctx["attempt"] in request["input"].get("bad_attempts", [1])
    sys.stderr.write(json.dumps({"level": "warning", "message": f"attempt {ctx['attempt']}",
                                 "mode": mode}) + "\n")
    sys.stderr.write("plain text line\n")
    sys.stderr.flush()
    if bad and mode == "hang":
        time.sleep(3600)
    if bad and mode == "crash":
        sys.exit(3)
    if bad and mode == "garbage":
        print("this is not json", flush=True)
        continue
    if bad and mode == "oversize":
        print(json.dumps({"id": request["id"], "output": {"blob": "x" * 100000}}), flush=True)
        continue
    if bad and mode == "memory":
        hog = bytearray(512 * 1024 * 1024)
    if bad and mode == "error":
        print(json.dumps({"id": request["id"], "error": {"type": "ValueError",
                                                         "message": "bad input"}}), flush=True)
        continue
    if mode == "whoami":
        import resource
        output = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
                  "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0]}
        print(json.dumps({"id": request["id"], "output": output}), flush=True)
        continue
    if mode == "sandbox":
        import resource
        import tempfile
        status = open("/proc/self/status").read()
        no_new_privs = int(status.split("NoNewPrivs:")[1].split()[0])
        big_write = "written"
        with tempfile.TemporaryFile() as f:
            try:
                f.write(b"x" * (65 * 1024 * 1024))
                f.flush()
            except OSError:
                big_write = "refused"
        output = {"no_new_privs": no_new_privs, "big_write": big_write,
                  "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
                  "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0]}
        print(json.dumps({"id": request["id"], "output": output}), flush=True)
        continue
    if mode == "hold":
        start = time.time()
        time.sleep(request["input"].get("ms", 100) / 1000)
        output = {"pid": os.getpid(), "start": start, "end": time.time()}
    else:
        output = {"pid": os.getpid(), "attempt": ctx["attempt"], "event": request["event"],
                  "key": ctx["idempotency_key"]}
    print(json.dumps({"id": request["id"], "output": output}), flush=True)
