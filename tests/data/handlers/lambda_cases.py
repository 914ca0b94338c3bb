"""Unmodified Lambda-style handlers for the adapter's edge cases: one that outlives its timeout
on the first attempt, one that returns what JSON cannot hold, and a module-level counter that
shows whether a process served an earlier invocation."""

import datetime
import logging
import os
import time

_invocations = 0


def lambda_handler(event, context):
    global _invocations
    _invocations += 1
    logging.info("pid %d invocation %d", os.getpid(), _invocations)
    if event.get("sleep_first") and context.attempt == 1:
        time.sleep(30)
    if event.get("unserialisable"):
        return {"when": datetime.datetime(2024, 1, 2, 3, 4, 5)}
    return {"pid": os.getpid(), "invocations": _invocations, "attempt": context.attempt}
