"""What a run holds for its reader, bounded (docs/faults.md, "Under stress").

A run's producer reads the provider as fast as it sends; its reader (the transport)
writes to a client that may be slow. Without a bound the difference piles up in
memory. ``LiveQueue`` keeps at most ``limit_bytes`` of text (plus ``EVENT_COST`` an
event) queued: past it, ``put_text`` says so and the producer waits on ``room``
before it reads the next chunk, so the upstream is paused (TCP pushes back on the
provider) until the reader has taken half of it. Nothing is dropped: the output log
was given the text first, and the reader gets every event in order.

When the reader is gone for good (``stop_reading``) the queue drops what it held and
never holds the producer again: a resumable run goes on generating into its output
log for the grace period, and a resume reads it from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..events import TERMINAL_TYPES, Event, TextDelta

__all__ = ["EVENT_COST", "LiveQueue"]

EVENT_COST = 32  # what an event costs beyond its text: the object, its framing on the wire
_TERMINALS = TERMINAL_TYPES


class LiveQueue:
    def __init__(self, limit_bytes: int) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._limit = limit_bytes
        self._low = limit_bytes // 2
        self._room = asyncio.Event()
        self._room.set()
        self.buffered = 0  # text (and per-event cost) queued and not yet taken by the reader
        self.peak = 0  # the most ever buffered (tests, benchmarks)
        self.pauses = 0  # how often the producer had to wait
        self.reading = True

    def put(self, event: Event) -> None:
        """Queue an event that is not text (start, usage, the terminal event): never waits."""
        self._queue.put_nowait(event)

    def put_text(self, delta: TextDelta) -> bool:
        """Queue ``delta``; True when the buffer is over its limit: ``await room()`` before more."""
        if not self.reading:
            return False
        self._queue.put_nowait(delta)
        buffered = self.buffered = self.buffered + len(delta.text) + EVENT_COST
        if buffered > self.peak:
            self.peak = buffered
        if buffered <= self._limit:
            return False
        self.pauses += 1
        self._room.clear()
        return True

    async def room(self) -> None:
        """Wait until the reader has taken the buffer down to half its limit (or left)."""
        await self._room.wait()

    def stop_reading(self) -> None:
        """The reader is gone: drop what it has not taken, and never hold the producer again."""
        self.reading = False
        while not self._queue.empty():
            self._queue.get_nowait()
        self.buffered = 0
        self._room.set()

    def _took(self, cost: int) -> None:
        self.buffered -= cost
        if self.buffered <= self._low and not self._room.is_set():
            self._room.set()

    async def get(self) -> Event:
        """The next event (the reader takes its text off the buffer)."""
        event = await self._queue.get()
        if type(event) is TextDelta:
            self._took(len(event.text) + EVENT_COST)
        return event

    async def get_batch(self) -> list[Event]:
        """The next event and every event already queued after it. An idle stream gets one event
        per batch (no added latency); a reader that fell behind catches up with one write."""
        queue = self._queue
        batch = [await queue.get()]
        while not queue.empty():
            batch.append(queue.get_nowait())
        self._took(sum([len(e.text) + EVENT_COST for e in batch if type(e) is TextDelta]))
        return batch

    async def events(self) -> AsyncIterator[Event]:
        """Every event in order, one at a time, ending with the terminal one (tests and tools;
        transports read through ``StreamRun.session``)."""
        while True:
            event = await self.get()
            yield event
            if isinstance(event, _TERMINALS):
                return
