"""Writing the output log (docs/protocol.md §5): one task per stream batches its text deltas.

The item format is in ``stores.output_log``, the reader in ``_follow.py``. The rules the writer keeps:

- **One writer, one write in flight.** Every item is written by the writer's own task,
  one at a time, in batch order. Nothing ever cancels that task: ``close`` asks it to
  finish and waits for it, so a write in flight (a ``PutItem`` in a worker thread, which
  goes on whatever its caller does) is always awaited, never raced by another write.
- **A batch number is written once.** A batch is cut (numbered, its texts fixed) before
  its first attempt; a failed write is retried as the very same item, so a retry that
  lands twice is harmless and later texts never join a failed batch. Each batch's texts
  fit ``MAX_BATCH_BYTES`` (DynamoDB's item limit is 400 KB), so no batch fails for size.
- **Bounded.** A batch is written ``flush_s`` after its first delta, at once when
  ``max_bytes`` of text wait, or at ``flush_soon``. Failed writes are retried with
  backoff; ``close`` writes what is left, then the final item, and gives up (logged)
  only once its ``give_up_at`` has passed, between two attempts: then nothing more is
  written at all, so a reader sees a log that stops, never one with a hole.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from ..errors import TokenRelayError
from ..events import Terminal, TextDelta, Usage
from ..stores.output_log import LogBatch, OutputLogStore, encode_end

__all__ = ["MAX_BATCH_BYTES", "MAX_TEXT_CHARS", "OutputLogWriter", "split_text", "text_bytes"]

log = logging.getLogger("tokenrelay.output_log")

# DynamoDB's item limit is 400 KB (409,600 bytes): names and values, a list element costing
# one byte more than its string. A batch's texts stay under this, leaving room for the key,
# the seqs, the TTL and the attribute names (a few hundred bytes at most).
MAX_BATCH_BYTES = 380_000
# The engine splits longer provider chunks (4 bytes a character at most: one text always fits a batch).
MAX_TEXT_CHARS = 65_536
RETRY_BACKOFF_S = 0.05  # full jitter, doubling per failure of the same item, at most MAX_BACKOFF_S
MAX_BACKOFF_S = 2.0


def text_bytes(text: str) -> int:
    """What ``text`` costs in a batch item: its UTF-8 size and the list element's byte."""
    return (len(text) if text.isascii() else len(text.encode())) + 1


def split_text(text: str) -> list[str]:
    """A provider chunk longer than ``MAX_TEXT_CHARS``, cut into texts that each fit a batch
    (the engine makes each one a delta of its own: the same text, only cut)."""
    return [text[i : i + MAX_TEXT_CHARS] for i in range(0, len(text), MAX_TEXT_CHARS)]


class OutputLogWriter:
    """Batches the deltas of one stream into log items (see the module docstring).

    ``add`` is called by the producer for every delta and never waits.
    """

    def __init__(
        self,
        store: OutputLogStore,
        stream_id: str,
        *,
        expires_at: int,
        flush_s: float = 0.25,
        max_bytes: int = 4096,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self.stream_id, self.expires_at = store, stream_id, expires_at
        self._flush_s, self._max_bytes, self._max_batch = flush_s, max_bytes, max_batch_bytes
        self._clock = clock
        self._pending: list[str] = []  # texts not yet in a batch, seqs _next_seq, _next_seq + 1, ...
        self._pending_chars = 0
        self._next_seq = 1
        self._first_at = 0.0  # when the oldest pending text arrived
        self._batch = 0  # the last batch number given out
        self._urgent = False  # write now, not at the end of the window
        self._end: tuple[Terminal, Usage | None] | None = None
        self._give_up_at = float("inf")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.writes = 0  # items written, for tests and benchmarks
        self.failures = 0  # failed attempts
        self.ended = False  # the final item is written
        self.lost = 0  # texts never written (given up)

    # -- the producer's side ------------------------------------------------------------

    def add(self, delta: TextDelta) -> None:
        if self._end is not None:
            raise RuntimeError("output log: add after close")
        if not self._pending:
            self._next_seq = delta.seq
            self._first_at = self._clock()
            self._wake.set()
        self._pending.append(delta.text)
        self._pending_chars += len(delta.text)
        if self._pending_chars >= self._max_bytes and not self._urgent:
            self._urgent = True
            self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"output-log-{self.stream_id}")

    def flush_soon(self) -> None:
        """Write what is pending now, not at the end of the window (the reader left: a resume may come)."""
        if self._pending:
            self._urgent = True
            self._wake.set()

    async def close(self, terminal: Terminal, usage: Usage | None, give_up_at: float | None = None) -> None:
        """Write what is left, then the final item; return once written or given up (logged).

        ``give_up_at`` (this writer's clock): stop retrying failed writes after it. A write in
        flight is awaited whatever the time: it is never abandoned. Never raises.
        """
        if self._end is None:
            self._end = (terminal, usage)
            if give_up_at is not None:
                self._give_up_at = give_up_at
            self._wake.set()
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name=f"output-log-{self.stream_id}")
        assert self._task is not None
        await asyncio.shield(self._task)  # if our caller is cancelled, the writer still finishes

    # -- the writer's task ----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                if self._end is None and not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if self._end is None and not self._urgent:
                    remaining = self._first_at + self._flush_s - self._clock()
                    if remaining > 0:
                        self._wake.clear()
                        try:
                            await asyncio.wait_for(self._wake.wait(), remaining)
                        except TimeoutError:
                            pass
                        continue
                if self._pending:
                    if not await self._put(self._cut()):
                        return
                    continue
                assert self._end is not None
                terminal, usage = self._end
                self._batch += 1
                payload = encode_end(terminal, usage)
                self.ended = await self._put(self._batch, payload)
                return
        except Exception:  # a bug, not a store failure: logged, the stream goes on without its log
            log.exception("stream %s: output log writer failed", self.stream_id)

    def _cut(self) -> LogBatch:
        """The next batch: as many pending texts as fit ``max_batch_bytes`` (one at least)."""
        size = count = 0
        for text in self._pending:
            cost = text_bytes(text)
            if count and size + cost > self._max_batch:
                break
            size += cost
            count += 1
        texts = tuple(self._pending[:count])
        del self._pending[:count]
        self._pending_chars -= sum(map(len, texts))
        self._batch += 1
        batch = LogBatch(self._batch, self._next_seq, texts)
        self._next_seq += count
        self._first_at = self._clock()
        if self._pending_chars < self._max_bytes:
            self._urgent = False
        return batch

    async def _put(self, item: LogBatch | int, payload: str = "") -> bool:
        """Write one item until it is written (True) or ``give_up_at`` has passed (False)."""
        failures = 0
        while True:
            try:
                if isinstance(item, LogBatch):
                    await self._store.append(self.stream_id, item, self.expires_at)
                else:
                    await self._store.end(self.stream_id, item, payload, self.expires_at)
            except TokenRelayError as exc:
                failures += 1
                self.failures += 1
                left = self._give_up_at - self._clock()
                if left <= 0:
                    self._give_up(item, exc)
                    return False
                log.warning("stream %s: output log write failed (attempt %d): %s", self.stream_id, failures, exc)
                backoff = random.uniform(0, min(RETRY_BACKOFF_S * 2**failures, MAX_BACKOFF_S))
                await asyncio.sleep(min(backoff, left))
                continue
            self.writes += 1
            return True

    def _give_up(self, item: LogBatch | int, exc: TokenRelayError) -> None:
        self.lost = (len(item.texts) if isinstance(item, LogBatch) else 0) + len(self._pending)
        what = f"batch {item.batch}" if isinstance(item, LogBatch) else "its final item"
        log.error("stream %s: output log gave up on %s (%d texts unwritten): %s", self.stream_id, what, self.lost, exc)
