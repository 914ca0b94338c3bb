"""chartflow's adapter for AWS-Lambda-style Python handlers.

Runs an unmodified `def lambda_handler(event, context)` under chartflow's external handler
contract (handlers/README.md, "External handlers"): one JSON request per line on stdin, one JSON
response per line on the original stdout, logs as JSON lines on stderr. chartflow embeds this
file and starts it as `python3 -c <this file> module.function` in the workflows folder, so the
module path is relative to the workflow files. One process serves many invocations in turn.

- event: the event body; the return value becomes the step output (it must be JSON-serialisable).
- context: aws_request_id, function_name, function_version, memory_limit_in_mb,
  get_remaining_time_in_millis(), plus chartflow's idempotency_key, run_id, workflow, step,
  attempt, input (the step's input), steps (outputs of the steps it needs), wake (why a waiting
  step runs again) and wait_for_signal(name, timeout_ms=None).
- `logging` records (root logger at INFO) and print() become the step's logs.
- An exception fails the attempt with its type and message; the step's retry policy applies.
"""

import importlib
import json
import logging
import os
import sys
import time
import traceback

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}


class WaitForSignal(Exception):
    """Raised by context.wait_for_signal: the step waits; it runs again when the signal comes."""

    def __init__(self, signal, timeout_ms=None):
        super().__init__(signal)
        self.signal = signal
        self.timeout_ms = timeout_ms


class LambdaContext:
    function_version = "$LATEST"

    def __init__(self, request_id, ctx, step_input, steps):
        self.aws_request_id = request_id
        self.function_name = ctx.get("function_name", "")
        self.memory_limit_in_mb = int(ctx.get("memory_limit_in_mb", 0))
        self.invoked_function_arn = "chartflow:" + self.function_name
        self.log_group_name = ctx.get("workflow", "")
        self.log_stream_name = ctx.get("step", "")
        self.idempotency_key = ctx.get("idempotency_key", "")
        self.run_id = ctx.get("run_id")
        self.workflow = ctx.get("workflow")
        self.step = ctx.get("step")
        self.attempt = ctx.get("attempt")
        self.wake = ctx.get("wake")
        self.input = step_input
        self.steps = steps
        self._deadline_ms = ctx.get("deadline_ms", 0)

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))

    def wait_for_signal(self, signal, timeout_ms=None):
        raise WaitForSignal(signal, timeout_ms)


class StepLogHandler(logging.Handler):
    """Writes each record as one JSON line on stderr; chartflow stores it as a step log."""

    def emit(self, record):
        try:
            line = {
                "level": _LEVELS.get(record.levelno, "info"),
                "message": record.getMessage(),
                "logger": record.name,
            }
            if record.exc_info:
                line["exception"] = "".join(traceback.format_exception(*record.exc_info))
            sys.stderr.write(json.dumps(line, default=str) + "\n")
            sys.stderr.flush()
        except Exception:  # a log call must never fail the handler
            self.handleError(record)


def _load(entry):
    module_name, function_name = entry.rsplit(".", 1)
    sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(module_name), function_name)


def _error(exc):
    return {"type": type(exc).__name__, "message": str(exc)}


def main():
    # Responses go to a private copy of stdout; fd 1 becomes stderr so print() is a log line.
    responses = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    root = logging.getLogger()
    root.handlers = [StepLogHandler()]
    # The same variable sets chartflow's own level (--log-level), either case.
    root.setLevel(os.environ.get("CHARTFLOW_LOG_LEVEL", "INFO").upper())

    handler, load_error = None, None
    try:
        handler = _load(sys.argv[1])
    except Exception as exc:  # reported on every request: a clear error beats a crash loop
        logging.exception("cannot load handler %s", sys.argv[1])
        load_error = _error(exc)

    for line in sys.stdin:
        request = json.loads(line)
        request_id = request["id"]
        response = {"id": request_id}
        if load_error is not None:
            response["error"] = load_error
        else:
            context = LambdaContext(
                request_id,
                request.get("context", {}),
                request.get("input", {}),
                request.get("steps", {}),
            )
            try:
                response["output"] = handler(request.get("event"), context)
            except WaitForSignal as wait:
                response["wait_for_signal"] = {"signal": wait.signal}
                if wait.timeout_ms is not None:
                    response["wait_for_signal"]["timeout_ms"] = int(wait.timeout_ms)
            except Exception as exc:
                logging.error("handler raised %s", type(exc).__name__, exc_info=True)
                response["error"] = _error(exc)
        try:
            text = json.dumps(response)
        except (TypeError, ValueError) as exc:
            text = json.dumps(
                {"id": request_id, "error": {"type": "TypeError",
                                             "message": "return value is not JSON: " + str(exc)}}
            )
        responses.write(text + "\n")
        responses.flush()


if __name__ == "__main__":
    main()
