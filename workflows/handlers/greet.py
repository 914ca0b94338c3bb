"""Example Lambda-style handler: unmodified AWS Lambda code runs as a chartflow step.

Used by workflows/greet.yaml. `event` is the event body; the return value is the step output.
"""

import logging

logger = logging.getLogger(__name__)


def lambda_handler(event, context):
    name = event.get("name", "world")
    logger.info("greeting request %s", context.aws_request_id)
    return {
        "greeting": f"Hello, {name}!",
        "function": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
