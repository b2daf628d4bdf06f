"""X-Ray subsegments around provider calls (``telemetry.tracing`` holds the Powertools Tracer).

``traced(provider)`` wraps a provider so that every stream runs inside an
``## <provider>.stream`` subsegment annotated with provider and model, closed
however the stream ends (also when the run closes it early on cancel).
With tracing off (outside Lambda, or ``POWERTOOLS_TRACE_DISABLED=true``) the
provider is returned unchanged: no wrapper on the per-token path.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from ..requests import ChatRequest
from ..telemetry.tracing import tracer
from .base import Chunk, Provider

__all__ = ["TracedProvider", "traced"]


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
