"""The reader's side of a run: what a transport iterates, and the one way it lets go.

A transport is a plain sink: it takes ``session``'s events (one at a time, or in
batches) and writes them to its client. It never decides how the stream ends:

    async with run.session() as events:      # opens the run if it is not yet open
        async for event in events:           # or: async for batch in events.batches()
            await write(encode(event))
    # here the run has ended and its last writes landed, or it is detached (resumable)

Leaving the block (or ``aclose``), however it is left: done, client gone, a write that
failed or timed out, the task cancelled, is ``StreamRun.reader_left``: a run that has
ended is waited for until its record and log's end have landed (bounded, shielded from
the caller's cancellation: in Lambda the work left after a response closes may be frozen
with the invocation); one that has not stops as ``disconnect``, or, when resumable,
detaches for its grace period and is not waited for.

Delivery: an event counts as delivered to the client once the reader comes back for the
next one (a write that failed never counts). A transport that posts on its own schedule
(the WebSocket sender) says how far its client got with ``delivered``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING

from ..events import TERMINAL_TYPES, Event, TextDelta

if TYPE_CHECKING:
    from ._run import StreamRun

__all__ = ["Session"]


class Session:
    def __init__(self, run: StreamRun, delivered: Callable[[], int] | None = None) -> None:
        self._run = run
        self._delivered_by = delivered
        self._delivered = 0
        self._iterators: list[AsyncIterator[object]] = []
        self.closed = False

    @property
    def delivered(self) -> int:
        """The seq of the last text the client has (as far as the transport knows)."""
        return self._delivered_by() if self._delivered_by is not None else self._delivered

    async def __aenter__(self) -> Session:
        await self._run.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[Event]:
        iterator = self._events()
        self._iterators.append(iterator)
        return iterator

    def batches(self) -> AsyncIterator[list[Event]]:
        """The same events, grouped: each step waits for one event, then takes every event
        already queued (a reader that fell behind catches up with one write, not one a token)."""
        iterator = self._batches()
        self._iterators.append(iterator)
        return iterator

    async def _events(self) -> AsyncIterator[Event]:
        get = self._run.buffer.get
        while True:
            event = await get()
            yield event
            if type(event) is TextDelta:  # the reader is back: the client has it
                self._delivered = event.seq
            elif isinstance(event, TERMINAL_TYPES):
                return

    async def _batches(self) -> AsyncIterator[list[Event]]:
        get_batch = self._run.buffer.get_batch
        while True:
            batch = await get_batch()
            yield batch
            for event in reversed(batch):
                if type(event) is TextDelta:
                    self._delivered = event.seq
                    break
            if isinstance(batch[-1], TERMINAL_TYPES):  # the terminal event is queued last
                return

    async def aclose(self) -> None:
        """Let go of the run (see the module docstring); idempotent, never raises."""
        if self.closed:
            return
        self.closed = True
        for iterator in self._iterators:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        await self._run.reader_left(self)
