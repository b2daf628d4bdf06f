"""X-Ray traces around provider calls, through Powertools Tracer.

``traced(provider)`` wraps a provider so that every stream runs inside an
``## <provider>.stream`` subsegment annotated with provider and model, closed
however the stream ends (also when the engine closes it early on cancel).
With tracing off (outside Lambda, or ``POWERTOOLS_TRACE_DISABLED=true``) the
provider is returned unchanged: no wrapper on the per-token path.

Under the Lambda Web Adapter the uvicorn process has no per-invocation
``_X_AMZN_TRACE_ID``; the adapter forwards the trace header instead, and
``TraceHeaderMiddleware`` copies it where the X-Ray SDK looks (one invocation
at a time per execution environment, so the process environment is safe).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from ..providers.base import Chunk, Provider
from ..requests import ChatRequest

_tracer: Any = None


def tracer() -> Any:
    """The Powertools Tracer, created once (it patches nothing: providers are wrapped explicitly)."""
    global _tracer
    if _tracer is None:
        from aws_lambda_powertools import Tracer

        _tracer = Tracer(auto_patch=False)
    return _tracer


class TracedProvider:
    def __init__(self, inner: Provider, recorder: Any) -> None:
        self._inner = inner
        self._recorder = recorder
        self.name = inner.name

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        async with self._recorder.in_subsegment_async(name=f"## {self.name}.stream") as subsegment:
            subsegment.put_annotation("provider", self.name)
            subsegment.put_annotation("model", request.model)
            async with aclosing(self._inner.stream(request)) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def traced(provider: Provider, recorder: Any = None) -> Provider:
    if recorder is None:
        t = tracer()
        if t.disabled:
            return provider
        recorder = t.provider
    return TracedProvider(provider, recorder)


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
