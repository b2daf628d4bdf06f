"""The output log: what a stream produced, kept in coalesced batches so a client can resume.

PROTOCOL section 5. The producing invocation appends every text delta to the log
from its producer task (never from the transport), in batches bounded by time
(``flush_s``) and size (``max_bytes``), never one write per token; then, once the
stream has ended, one final item with the usage and the terminal event. A resuming
reader on any instance reads the batches after the last seq it has, in order, and
stops at the final item.

    batch 1 .. n   first_seq, texts          seqs first_seq .. first_seq+len(texts)-1
    batch n+1      end: terminal (+ usage)   the last item of every finished stream

This module does no I/O of its own: ``OutputLogStore`` is the persistence protocol
(``stores/output_log_dynamodb.py`` is the DynamoDB one); ``OutputLogWriter``
(``output_log_writer.py``) batches and writes, ``follow`` reads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import TokenRelayError
from .events import Event, StreamCancelled, StreamDone, StreamError, Terminal, TextDelta, Usage

log = logging.getLogger("tokenrelay.output_log")

__all__ = [
    "LogBatch",
    "LogEnd",
    "LogItem",
    "OutputLogStore",
    "decode_end",
    "encode_end",
    "follow",
]

_TERMINALS: dict[str, type[Terminal]] = {"done": StreamDone, "cancelled": StreamCancelled, "error": StreamError}
_NAMES = {cls: name for name, cls in _TERMINALS.items()}


@dataclass(frozen=True, slots=True)
class LogBatch:
    batch: int
    first_seq: int
    texts: tuple[str, ...]

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.texts) - 1


@dataclass(frozen=True, slots=True)
class LogEnd:
    batch: int
    terminal: Terminal
    usage: Usage | None = None


LogItem = LogBatch | LogEnd


def encode_end(terminal: Terminal, usage: Usage | None) -> str:
    """The final item's payload: compact JSON of the terminal event (and usage)."""
    body: dict[str, Any] = {"type": _NAMES[type(terminal)], **dataclasses.asdict(terminal)}
    if usage is not None:
        body["usage"] = dataclasses.asdict(usage)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def decode_end(batch: int, payload: str) -> LogEnd:
    body = json.loads(payload)
    usage = body.pop("usage", None)
    terminal = _TERMINALS[body.pop("type")](**body)
    return LogEnd(batch, terminal, Usage(**usage) if usage is not None else None)


class OutputLogStore(Protocol):
    async def append(self, stream_id: str, batch: LogBatch, expires_at: int) -> None:
        """Write one batch item (idempotent: the key is ``stream_id`` + ``batch.batch``)."""
        ...

    async def end(self, stream_id: str, batch: int, payload: str, expires_at: int) -> None:
        """Write the final item (``payload`` from ``encode_end``)."""
        ...

    async def read(self, stream_id: str, after_batch: int) -> list[LogItem]:
        """Every item with a batch number above ``after_batch``, in order (strongly consistent)."""
        ...


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
) -> AsyncIterator[Event]:
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
