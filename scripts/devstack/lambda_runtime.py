"""The runtime loop of one local Lambda execution environment (a process). Standard library only.

    python [-S] lambda_runtime.py MODULE.HANDLER

runs as Lambda's Python runtime does: imports the handler once (the init phase), then
handles one invocation at a time, in order, keeping its module state between them.
It speaks JSON lines with whoever started it (``httpapi_envs.py``; the SAM CLI tests):

    stdin    {"event": {...}, "request_id": "...", "deadline_ms": <epoch ms>}
    results  {"ready": true} once, then per invocation {"result": ...} or
             {"error": {"errorType": "...", "errorMessage": "..."}}

The results travel on the process's original stdout; the function's own stdout and stderr
(its logs, its EMF metrics) both go to stderr, as Lambda sends both to the log stream.
``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` and ``AWS_REGION`` come
from the environment the process was started with.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any, TextIO


class LambdaContext:
    """The parts of Lambda's context object a Python function reads."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{name}"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _error(exc: BaseException) -> dict[str, Any]:
    return {"error": {"errorType": type(exc).__name__, "errorMessage": str(exc)}}


def _reply(results: TextIO, message: dict[str, Any]) -> None:
    try:
        line = json.dumps(message)
    except (TypeError, ValueError) as exc:  # Lambda: Runtime.MarshalError
        line = json.dumps({"error": {"errorType": "Runtime.MarshalError", "errorMessage": str(exc)}})
    results.write(line + "\n")
    results.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or "." not in argv[1]:
        print("usage: lambda_runtime.py MODULE.HANDLER", file=sys.stderr)
        return 2
    results = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the function's prints and logs: to the log stream, never into the results
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    module_name, attr = argv[1].rsplit(".", 1)
    try:
        handler = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # Lambda: Runtime.ImportModuleError / an init error
        traceback.print_exc()
        _reply(results, {"init_error": _error(exc)["error"]})
        return 1
    _reply(results, {"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(request["request_id"], request["deadline_ms"])
        try:
            message = {"result": handler(request["event"], context)}
        except Exception as exc:
            traceback.print_exc()
            message = _error(exc)
        _reply(results, message)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
