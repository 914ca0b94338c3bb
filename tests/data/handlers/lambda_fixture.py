"""An unmodified Lambda-style handler for tests: logs at several levels, fails on demand, waits
for a signal on demand."""

import logging
import os

logger = logging.getLogger("fixture")
logger.setLevel(logging.DEBUG)


def lambda_handler(event, context):
    logger.debug("debug detail")
    logger.info("hello from %s", context.function_name)
    logger.warning("careful")
    print("printed text")
    if event.get("raise"):
        raise KeyError("missing_thing")
    if event.get("wait") and context.wake is None:
        context.wait_for_signal("approve")
    return {
        "pid": os.getpid(),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "idempotency_key": context.idempotency_key,
        "wake": context.wake,
        "name": event.get("name"),
    }
