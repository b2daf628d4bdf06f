"""The runtime inside one local execution environment of a handler function (a child process).

Started by ``local_functions.py`` as ``python runtime.py MODULE.FUNCTION``, with the function's
code directory as the working directory, its layer on ``PYTHONPATH`` and its environment
and credentials. Like Lambda's Python runtime it imports the handler once (the init phase
of a cold start), then serves one invocation at a time, for as long as the environment
lives, keeping module state between invocations as a warm environment does.

Invocations arrive on stdin, one JSON line each (``event`` and the context fields); each
answer is one JSON line on the file descriptor ``TOKENRELAY_RUNTIME_FD``: ``{"ready": ...}``
after init, then ``{"result": ...}`` or ``{"error": {"errorType", "errorMessage"}}``.
stdout and stderr stay the function's log, as in Lambda.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """The parts of Lambda's context object the functions use."""

    def __init__(self, invocation: dict[str, Any]) -> None:
        self.function_name: str = invocation["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = invocation["arn"]
        self.memory_limit_in_mb: int = invocation["memory_mb"]
        self.aws_request_id: str = invocation["request_id"]
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{os.getpid()}"
        self._deadline_ms: int = invocation["deadline_ms"]  # epoch ms, as Lambda-Runtime-Deadline-Ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def main() -> int:
    out = os.fdopen(int(os.environ["TOKENRELAY_RUNTIME_FD"]), "w", buffering=1)
    module_name, _, function = sys.argv[1].rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function)
    except Exception as exc:
        traceback.print_exc()
        out.write(json.dumps({"init_error": _error(exc)}) + "\n")
        return 1
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        invocation = json.loads(line)
        try:
            answer: dict[str, Any] = {"result": handler(invocation["event"], LambdaContext(invocation))}
        except Exception as exc:
            traceback.print_exc()  # the function's log, as Lambda prints an unhandled error
            answer = {"error": _error(exc)}
        try:
            out.write(json.dumps(answer, default=str) + "\n")
        except BrokenPipeError:
            return 0
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
