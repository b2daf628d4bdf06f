"""X-Ray traces through Powertools Tracer: the tracer, and the trace header under the Web Adapter.

``providers.traced`` wraps a provider in subsegments with this module's ``tracer()``.

Under the Lambda Web Adapter the uvicorn process has no per-invocation
``_X_AMZN_TRACE_ID``; the adapter forwards the trace header instead, and
``TraceHeaderMiddleware`` copies it where the X-Ray SDK looks (one invocation
at a time per execution environment, so the process environment is safe).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["TraceHeaderMiddleware", "tracer"]

_tracer: Any = None


def tracer() -> Any:
    """The Powertools Tracer, created once (it patches nothing: providers are wrapped explicitly)."""
    global _tracer
    if _tracer is None:
        from aws_lambda_powertools import Tracer

        _tracer = Tracer(auto_patch=False)
    return _tracer


class TraceHeaderMiddleware:
    """ASGI middleware: expose the request's ``X-Amzn-Trace-Id`` to the X-Ray SDK."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for key, value in scope["headers"]:
                if key == b"x-amzn-trace-id":
                    os.environ["_X_AMZN_TRACE_ID"] = value.decode("latin-1")
                    break
        await self.app(scope, receive, send)
