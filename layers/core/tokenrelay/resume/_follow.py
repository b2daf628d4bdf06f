"""Reading the output log (docs/protocol.md §5): ``follow`` replays a stream, then follows it.

The producing invocation appends every text delta to the log from its producer task
(never from the transport), in batches bounded by time and size (``_writer.py``), then,
once the stream has ended, one final item with the usage and the terminal event
(``stores.output_log``). A resuming reader on any instance reads the batches after the
last seq it has, in order, and stops at the final item.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable

from ..errors import TokenRelayError
from ..events import Event, StreamError, Terminal, TextDelta
from ..stores.output_log import LogEnd, OutputLogStore

log = logging.getLogger("tokenrelay.output_log")

__all__ = ["UNAVAILABLE_S", "Fallback", "follow"]

Fallback = Callable[[int], Awaitable[Terminal | None]]  # given the last seq read
UNAVAILABLE_S = 30.0  # a replay whose reads keep failing this long ends (retryable error)


async def follow(
    store: OutputLogStore,
    stream_id: str,
    after_seq: int,
    *,
    poll_s: float,
    fallback: Fallback | None = None,
    stall_s: float = 5.0,
    unavailable_s: float = UNAVAILABLE_S,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncGenerator[Event, None]:
    """Every text delta after ``after_seq``, then usage and the terminal event, from the log.

    Polls every ``poll_s`` until the final item. When nothing new has arrived for
    ``stall_s``, ``fallback`` (if given, called with the last seq read) may end the replay
    with a terminal event of its own (the producer died without writing its final item).
    A read that fails is retried with backoff; after ``unavailable_s`` of failures the
    replay ends with a retryable ``store_unavailable`` error (resume again later).
    """
    after_batch, next_seq, idle_since = 0, 1, clock()
    failing_since: float | None = None
    failures = 0
    while True:
        try:
            items = await store.read(stream_id, after_batch)
        except TokenRelayError as exc:
            now, failures = clock(), failures + 1
            failing_since = now if failing_since is None else failing_since
            if now - failing_since >= unavailable_s:
                log.error("stream %s: output log unreadable for %.0f s: %s", stream_id, now - failing_since, exc)
                yield StreamError("the stream's output log cannot be read now", "store_unavailable", True)
                return
            log.warning("stream %s: output log read failed, retrying: %s", stream_id, exc)
            await asyncio.sleep(min(poll_s * 2**failures, 2.0))
            continue
        failing_since, failures = None, 0
        for item in items:
            after_batch = item.batch
            if isinstance(item, LogEnd):
                if item.usage is not None:
                    yield item.usage
                yield item.terminal
                return
            if item.first_seq != next_seq:
                raise RuntimeError(f"output log of {stream_id}: batch {item.batch} starts at {item.first_seq}")
            for offset, text in enumerate(item.texts):
                seq = item.first_seq + offset
                if seq > after_seq:
                    yield TextDelta(text, seq)
            next_seq = item.last_seq + 1
        if items:
            idle_since = clock()
        elif fallback is not None and clock() - idle_since >= stall_s:
            idle_since = clock()
            try:
                terminal = await fallback(next_seq - 1)
            except TokenRelayError as exc:  # the record cannot be read now: poll on
                log.warning("stream %s: record read failed: %s", stream_id, exc)
                terminal = None
            if terminal is not None:
                yield terminal
                return
        await asyncio.sleep(poll_s)
