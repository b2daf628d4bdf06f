"""The runtime loop of one local Lambda execution environment (a process). Standard library only.

    python [-S] lambda_runtime.py MODULE.HANDLER     (TOKENRELAY_RUNTIME_FD=<fd> in its environment)

runs as Lambda's Python runtime does: imports the handler once (the init phase), then
handles one invocation at a time, in order, keeping its module state between them. The local
stack's handler functions run in it (``local_functions.py``: the WebSocket functions, the
worker, the HTTP API's ApiFunction), and so does ``tests/aws/sam_nodocker.py`` (the built
functions in a fresh Python 3.12, as ``sam local`` would). The protocol is JSON lines:

    stdin                    {"event": {...}, "request_id": "...", "deadline_ms": <epoch ms>,
                              "function_name": "...", "arn": "...", "memory_mb": 512}
    TOKENRELAY_RUNTIME_FD    {"ready": <pid>} once, or {"init_error": {...}} and exit; then per
                             invocation {"result": ...} or {"error": {"errorType", "errorMessage",
                             "stackTrace"}} (``Runtime.MarshalError`` for a result JSON cannot hold)

The answers have a descriptor of their own: stdout and stderr stay the function's log (its
logs, its EMF metrics), as in Lambda, and a ``print`` can never corrupt an answer.
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


def _error(exc: BaseException, kind: str | None = None) -> dict[str, Any]:
    return {
        "errorType": kind or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def _answer(out: TextIO, message: dict[str, Any]) -> None:
    try:
        line = json.dumps(message)
    except (TypeError, ValueError) as exc:  # the handler returned what JSON cannot hold
        line = json.dumps({"error": _error(exc, "Runtime.MarshalError")})
    out.write(line + "\n")
    out.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or "." not in argv[1] or "TOKENRELAY_RUNTIME_FD" not in os.environ:
        print("usage: TOKENRELAY_RUNTIME_FD=<fd> lambda_runtime.py MODULE.HANDLER", file=sys.stderr)
        return 2
    out = os.fdopen(int(os.environ["TOKENRELAY_RUNTIME_FD"]), "w", encoding="utf-8")
    module_name, attr = argv[1].rsplit(".", 1)
    try:
        handler = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # Lambda: Runtime.ImportModuleError, or an error in the init code
        traceback.print_exc()
        _answer(out, {"init_error": _error(exc)})
        return 1
    _answer(out, {"ready": os.getpid()})
    for line in sys.stdin:
        invocation = json.loads(line)
        try:
            message = {"result": handler(invocation["event"], LambdaContext(invocation))}
        except Exception as exc:
            traceback.print_exc()  # the function's log, as Lambda prints an unhandled error
            message = {"error": _error(exc)}
        sys.stdout.flush()
        try:
            _answer(out, message)
        except BrokenPipeError:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
