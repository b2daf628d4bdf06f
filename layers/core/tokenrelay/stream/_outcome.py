"""How a stream ended, as the state record keeps it, and the one terminal write that records it."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from ..errors import StoreUnavailable, TokenRelayError
from ..events import StreamCancelled, StreamDone, StreamSummary, Terminal, Usage
from ..stores.streams import StreamOutcome, StreamRecord, StreamStore

__all__ = ["TerminalWrite", "cancelled_instead", "never_started", "outcome_of"]

log = logging.getLogger("tokenrelay.engine")

FINISH_BACKOFF_S = 0.1  # full jitter between attempts: up to 0.1, 0.2, 0.4 ... s, at most MAX_FINISH_BACKOFF_S
MAX_FINISH_BACKOFF_S = 2.0


def outcome_of(
    terminal: Terminal,
    *,
    completion_tokens: int,
    usage: Usage | None,
    ttft_ms: int | None,
    total_time_ms: int,
    last_seq: int | None = None,
    cost: tuple[float | None, bool] = (None, False),
) -> StreamOutcome:
    prompt_tokens = usage.prompt_tokens if usage else None
    common = {
        "completion_tokens": completion_tokens,
        "ttft_ms": ttft_ms,
        "total_time_ms": total_time_ms,
        "last_seq": last_seq,
        "cost_usd": cost[0],
        "cost_estimated": cost[1] if cost[0] is not None else None,
    }
    if isinstance(terminal, StreamDone):
        return StreamOutcome("complete", prompt_tokens=prompt_tokens, finish_reason=terminal.finish_reason, **common)  # type: ignore[arg-type]
    if isinstance(terminal, StreamCancelled):
        return StreamOutcome("cancelled", prompt_tokens=prompt_tokens, cancel_reason=terminal.reason, **common)  # type: ignore[arg-type]
    return StreamOutcome("failed", prompt_tokens=prompt_tokens, error_code=terminal.code, **common)  # type: ignore[arg-type]


def cancelled_instead(outcome: StreamOutcome, reason: str | None) -> StreamOutcome:
    """``outcome`` as a stream that a cancel accepted before its end turned into ``cancelled``."""
    return replace(outcome, status="cancelled", cancel_reason=reason or "client", finish_reason=None, error_code=None)


class TerminalWrite:
    """The one terminal state write of a run, and its retries (docs/faults.md, "Ending a stream").

    Until the client has its terminal event, the write is the conditional
    ``finish_unless_cancelled``: it is what decides a race with a cancel request. A cancel
    accepted first (its own conditional write saw the record ``active``) makes the stream
    ``cancelled``; a cancel after this write gets 409. ``decided`` waits a bounded time for
    that answer. If it does not come in time the run tells the client what it knows, and
    from then on (``forced``) the write records exactly that.

    Failed attempts (``StoreUnavailable``: throttled or timed out past botocore's own
    retries) are retried with full-jitter backoff until ``give_up_at``; an attempt in flight
    is always awaited. If every attempt fails the record stays ``active`` until its TTL (logged).
    """

    def __init__(
        self,
        store: StreamStore,
        stream_id: str,
        outcome: StreamOutcome,
        *,
        give_up_at: float,
        after: Awaitable[object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self.stream_id, self.outcome = store, stream_id, outcome
        self._give_up_at, self._clock = give_up_at, clock
        self.forced = outcome.status == "cancelled"  # a cancel the producer saw: nothing to decide
        self.attempts = 0
        self.written = False
        self._decided: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # DynamoDB answered
        self._task = asyncio.create_task(self._run(after))

    async def decided(self, wait_s: float) -> StreamOutcome:
        """The outcome to tell the client: the one recorded, if DynamoDB answers within
        ``wait_s``; else the run's own, and the write records that one (``forced``)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._decided), wait_s)
        except TimeoutError:
            self.forced = True
            log.warning("stream %s: terminal event sent before DynamoDB confirmed it (%g s)", self.stream_id, wait_s)
        return self.outcome

    async def landed(self) -> None:
        """Wait until the write is done or given up (never raises)."""
        await asyncio.shield(self._task)

    def _decide(self) -> None:
        if not self._decided.done():
            self._decided.set_result(None)

    async def _run(self, after: Awaitable[object] | None) -> None:
        try:
            if after is not None:
                await asyncio.gather(after, return_exceptions=True)  # the record's create
            await self._write()
        except Exception:
            log.exception("stream %s: terminal state write failed", self.stream_id)
        finally:
            self._decide()

    async def _write(self) -> None:
        failures = 0
        while True:
            self.attempts += 1
            try:
                if self.forced:
                    self.written = await self._store.finish(self.stream_id, self.outcome)
                    return
                state = await self._store.finish_unless_cancelled(self.stream_id, self.outcome)
            except StoreUnavailable as exc:
                failures += 1
                left = self._give_up_at - self._clock()
                if left <= 0:
                    log.error("stream %s: terminal state write failed %d times: %s", self.stream_id, failures, exc)
                    return
                log.warning("stream %s: terminal state write failed, retrying: %s", self.stream_id, exc)
                backoff = random.uniform(0, min(FINISH_BACKOFF_S * 2 ** (failures - 1), MAX_FINISH_BACKOFF_S))
                await asyncio.sleep(min(backoff, left))
                continue
            except TokenRelayError as exc:
                log.error("stream %s: terminal state write failed: %s", self.stream_id, exc)
                return
            if state is None:
                self.written = True
                return
            if state.status != "active" or not state.cancel_requested:
                log.warning("stream %s: record already %s, terminal state not written", self.stream_id, state.status)
                return
            if not self.forced:  # a cancel was accepted first: the stream ends cancelled
                self.outcome = cancelled_instead(self.outcome, state.cancel_reason)
            self.forced = True  # else the client was told otherwise already: record what it was told


def never_started(record: StreamRecord, code: str, elapsed_s: float) -> StreamSummary:
    """The metrics summary of a stream admitted but lost before it started (its record could
    not be written, or no worker could be invoked): a failed stream, so the failure-rate
    alarm sees a DynamoDB or Lambda outage on either transport."""
    return StreamSummary(
        stream_id=record.stream_id,
        transport=record.transport,
        provider=record.provider,
        model=record.model,
        status="failed",
        completion_tokens=0,
        total_time_ms=int(elapsed_s * 1000),
        error_code=code,
    )
