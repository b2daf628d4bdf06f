"""How a stream ended, as the state record keeps it, and the one terminal write."""

from __future__ import annotations

import asyncio
import logging
import random

from .errors import StoreUnavailable, TokenRelayError
from .events import StreamCancelled, StreamDone, StreamSummary, Terminal, Usage
from .stores.base import StreamOutcome, StreamRecord, StreamStore

log = logging.getLogger("tokenrelay.engine")

FINISH_ATTEMPTS = 5  # terminal state writes, each with botocore's own retries inside
FINISH_BACKOFF_S = 0.1  # full jitter: sleeps of up to 0.1, 0.2, 0.4, 0.8 s between them


def outcome_of(
    terminal: Terminal, *, completion_tokens: int, usage: Usage | None, ttft_ms: int | None, total_time_ms: int
) -> StreamOutcome:
    prompt_tokens = usage.prompt_tokens if usage else None
    common = {"completion_tokens": completion_tokens, "ttft_ms": ttft_ms, "total_time_ms": total_time_ms}
    if isinstance(terminal, StreamDone):
        return StreamOutcome("complete", prompt_tokens=prompt_tokens, finish_reason=terminal.finish_reason, **common)  # type: ignore[arg-type]
    if isinstance(terminal, StreamCancelled):
        return StreamOutcome("cancelled", prompt_tokens=prompt_tokens, cancel_reason=terminal.reason, **common)  # type: ignore[arg-type]
    return StreamOutcome("failed", prompt_tokens=prompt_tokens, error_code=terminal.code, **common)  # type: ignore[arg-type]


async def write_terminal(store: StreamStore, stream_id: str, outcome: StreamOutcome) -> None:
    """The one terminal state write, retried with full-jitter backoff while DynamoDB is
    unavailable (throttled past botocore's own attempts): at most ``FINISH_ATTEMPTS`` calls,
    about 1.5 s of waiting, inside the deadline margin. If every attempt fails the client
    still gets its terminal event; the record stays ``active`` until its TTL (logged)."""
    for attempt in range(FINISH_ATTEMPTS):
        try:
            await store.finish(stream_id, outcome)
            return
        except StoreUnavailable as exc:
            if attempt == FINISH_ATTEMPTS - 1:
                log.error("stream %s: terminal state write failed %d times: %s", stream_id, attempt + 1, exc)
                return
            await asyncio.sleep(random.uniform(0, FINISH_BACKOFF_S * 2**attempt))
        except TokenRelayError as exc:
            log.error("stream %s: terminal state write failed: %s", stream_id, exc)
            return


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
