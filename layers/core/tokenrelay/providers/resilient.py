"""Upstream fault tolerance: retries and a fallback before the first text; timeouts.

``ProviderRegistry`` wraps every SDK-backed provider in a ``ResilientProvider``
(the offline ``echo`` cannot fail and stays bare), so the engine sees one
provider that either streams or fails once::

    attempt ──text──> relayed. From the first text on a failure ends the stream
       │              (a retry would repeat text): StreamError(code, retryable)
       │ a retryable ProviderError before any text: 429, 408/409/5xx/529, connection
       │ refused/reset, connect timeout, no first chunk or a stall (UpstreamTimeout),
       │ an error frame, a truncated or malformed stream
       v
    wait uniform(0, min(MAX_BACKOFF_S, UPSTREAM_BACKOFF_MS * 2**n)) (full jitter), at
    least the upstream's Retry-After; at most UPSTREAM_MAX_RETRIES retries per target,
    and none whose wait would end past UPSTREAM_RETRY_BUDGET_S from the stream's start
       │ spent (or a Retry-After that does not fit the budget)
       v
    FALLBACK_MODEL, if set and not the request's own model: its first attempt at
    once, then the same rules  ──spent──> the last error

Not retried, nor sent to the fallback: non-retryable errors (``Rejected``: a bad
request, credentials, quota), which would fail the same way again.

Timeouts, per attempt: ``UPSTREAM_FIRST_CHUNK_S`` from the attempt's start to its
first chunk (connect, response headers and first token together), then
``UPSTREAM_STALL_S`` between chunks. Either raises ``UpstreamTimeout``
(``upstream_timeout``, retryable) with the upstream request closed. Connecting
is bounded by the SDKs themselves (``UPSTREAM_CONNECT_TIMEOUT_S``).

Why here and not in the SDKs: their retries cover only their own HTTP call, each
with its own policy (openai and anthropic 2 retries, botocore 3 attempts), and
stop at the response headers. They cannot retry a stream that failed after its
200 but before any text (an early error frame, a stall, a truncated body), cannot
fall back to another provider, and would multiply with any retry above them
(3 x 3 = 9 requests to an overloaded upstream). So the registry builds the SDK
clients with ``max_retries=0`` (botocore: one attempt) and this module is the one
retry policy, the same for every provider, Bedrock included.

Every attempt is consumed in ``aclosing``: a failed attempt's request is closed
before the wait; a stopped stream (cancel, disconnect, deadline) closes the one
in flight. What happened goes to the log (``tokenrelay.upstream``) and to an
``UpstreamReport`` that the run turns into metrics (``with_upstream``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import aclosing
from contextvars import Context, ContextVar, copy_context
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import ProviderError
from ..events import StreamSummary
from ..requests import ChatRequest
from ._silence import Silence
from .base import Chunk, Provider, TextChunk

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "MAX_BACKOFF_S",
    "ResilientProvider",
    "RetryPolicy",
    "UpstreamReport",
    "current_upstream",
    "reporting",
    "track_upstream",
    "with_upstream",
]

log = logging.getLogger("tokenrelay.upstream")
MAX_BACKOFF_S = 5.0
_LABELS = {"openai": "OpenAI", "anthropic": "Anthropic", "bedrock": "Bedrock"}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 2
    budget_s: float = 10.0
    backoff_s: float = 0.25
    first_chunk_s: float = 60.0
    stall_s: float = 30.0

    @classmethod
    def from_settings(cls, s: Settings) -> RetryPolicy:
        return cls(
            max_retries=s.upstream_max_retries,
            budget_s=s.upstream_retry_budget_s,
            backoff_s=s.upstream_backoff_s,
            first_chunk_s=s.upstream_first_chunk_s,
            stall_s=s.upstream_stall_s,
        )

    def backoff(self, retry: int, rng: Callable[[], float]) -> float:
        """Full jitter: uniform over [0, min(cap, base * 2**retry))."""
        return rng() * min(MAX_BACKOFF_S, self.backoff_s * float(2**retry))


@dataclass
class UpstreamReport:
    """What one stream's upstream calls came to."""

    provider: str = ""  # the target that served (or was tried last)
    model: str = ""
    attempts: int = 0
    retries: int = 0  # attempts after the first on the same target
    fallback: bool = False  # the fallback model was tried
    errors: list[str] = field(default_factory=list)  # codes of the failed attempts, in order


_report: ContextVar[UpstreamReport | None] = ContextVar("tokenrelay_upstream_report", default=None)


def track_upstream() -> UpstreamReport:
    """Start a report in this context: a provider stream read in it (or in a task started
    from it) fills it in."""
    report = UpstreamReport()
    _report.set(report)
    return report


def reporting(report: UpstreamReport) -> Context:
    """A copy of this context in which a provider stream fills in ``report`` (``StreamRun``
    reads its provider in a task of this context: the run owns its report)."""
    context = copy_context()
    context.run(_report.set, report)
    return context


def current_upstream() -> UpstreamReport | None:
    return _report.get()


def with_upstream(summary: StreamSummary, report: UpstreamReport | None = None) -> StreamSummary:
    """``summary`` with the retries, fallback and serving model of ``report`` (default: this context's)."""
    report = report if report is not None else _report.get()
    if report is None or report.attempts == 0:
        return summary
    return replace(
        summary,
        upstream_retries=report.retries,
        upstream_fallback=report.fallback,
        served_provider=report.provider,
        served_model=report.model,
    )


class ResilientProvider:
    """A provider with retries, an optional fallback and timeouts (see the module docstring)."""

    def __init__(
        self,
        inner: Provider,
        policy: RetryPolicy,
        *,
        fallback: tuple[str, str] | None = None,
        lookup: Callable[[str], Provider] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = inner.name
        self.inner = inner
        self.policy = policy
        self.fallback = fallback
        self._lookup = lookup
        self._sleep = sleep
        self._rng = rng
        self._clock = clock

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        report = _report.get() or UpstreamReport()
        started = self._clock()
        last: ProviderError | None = None
        for provider, target in self._targets(request):
            if target is not request:
                assert last is not None
                report.fallback = True
                log.warning(
                    "upstream %s:%s failed (%s): falling back to %s:%s", *_names(request), last.code, *_names(target)
                )
            retry = 0
            while True:
                report.attempts += 1
                report.provider, report.model = target.provider, target.model
                silence = Silence(self.policy.first_chunk_s, _LABELS.get(provider.name, provider.name))
                first, text = True, False
                try:
                    async with aclosing(provider.stream(target)) as chunks:
                        while True:
                            try:
                                chunk = await silence.next(chunks)
                            except StopAsyncIteration:
                                break
                            if first:
                                first = False
                                silence.streaming(self.policy.stall_s)
                            if not text and type(chunk) is TextChunk and chunk.text:
                                text = True
                            yield chunk
                except ProviderError as exc:
                    if text or not exc.retryable:
                        raise
                    last = exc
                    report.errors.append(exc.code)
                    delay = self._delay(exc, retry, started)
                    if delay is None:
                        break
                    log.warning(
                        "upstream %s:%s attempt %d failed before any text (%s: %s); retrying in %.2f s",
                        *_names(target),
                        retry + 1,
                        exc.code,
                        exc.message,
                        delay,
                    )
                    await self._sleep(delay)
                    retry += 1
                    report.retries += 1
                    continue
                finally:
                    silence.close()
                if report.attempts > 1:
                    log.info("upstream served by %s:%s after %d attempts", *_names(target), report.attempts)
                return
        assert last is not None
        log.warning("upstream gave up after %d attempts: %s", report.attempts, last.code)
        raise last

    def _targets(self, request: ChatRequest) -> Iterator[tuple[Provider, ChatRequest]]:
        yield self.inner, request
        if self.fallback is None or self.fallback == (request.provider, request.model) or self._lookup is None:
            return
        if not request.fallback:  # the caller's API key may not use the fallback model
            log.warning("no fallback for %s:%s: the caller's key may not use %s:%s", *_names(request), *self.fallback)
            return
        provider, model = self.fallback
        try:
            fallback = self._lookup(provider)
        except ProviderError as exc:  # e.g. its key cannot be read: keep the primary's error
            log.error("fallback %s:%s unavailable: %s", provider, model, exc.message)
            return
        yield fallback, replace(request, provider=provider, model=model)

    def _delay(self, exc: ProviderError, retry: int, started: float) -> float | None:
        """The wait before retrying the same target; None when no retry fits."""
        if retry >= self.policy.max_retries:
            return None
        delay = self.policy.backoff(retry, self._rng)
        if exc.retry_after_s is not None:
            delay = max(delay, exc.retry_after_s)
        if self._clock() - started + delay > self.policy.budget_s:
            return None
        return delay

    async def aclose(self) -> None:
        """Nothing: the providers it wraps belong to the registry, which closes them."""
        return None


def _names(request: ChatRequest) -> tuple[str, str]:
    return request.provider, request.model
