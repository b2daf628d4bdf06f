"""Per-attempt upstream timeouts for ``providers.resilient``: no first chunk, or a stall."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..errors import UpstreamTimeout
from .base import Chunk

__all__ = ["Silence"]


class Silence:
    """Times out an attempt that sends nothing for ``limit_s`` while a chunk is awaited.

    ``asyncio.timeout`` around each chunk costs about 4 us a token (a timer per
    chunk), a third of the relay's own CPU per token; the whole retry wrapper with
    this costs about 0.2 us: one timer per silence period, re-armed lazily. When the
    timer finds the current wait older than ``limit_s`` it cancels the task, which
    at that moment can only be suspended inside ``next``'s ``anext``: the
    cancellation lands in the provider's generator, which closes its request.
    ``next`` turns that cancellation, and only that one (``uncancel``, as
    ``asyncio.timeout`` does), into ``UpstreamTimeout``; a stop from the engine
    at the same time stays a cancellation.
    """

    __slots__ = ("_fired", "_first", "_handle", "_label", "_loop", "_since", "_task", "limit_s")

    def __init__(self, limit_s: float, label: str) -> None:
        self.limit_s = limit_s
        self._label = label
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "a provider stream runs in a task"
        self._task = task
        self._since: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False
        self._first = True

    async def next(self, chunks: AsyncIterator[Chunk]) -> Chunk:
        self._since = since = self._loop.time()
        if self._handle is None:
            self._handle = self._loop.call_at(since + self.limit_s, self._check)
        cancelling = self._task.cancelling()
        try:
            return await anext(chunks)
        except BaseException:
            if self._fired:
                self._fired = False
                if self._task.uncancel() <= cancelling:
                    raise self._error() from None
            raise
        finally:
            self._since = None

    def streaming(self, stall_s: float) -> None:
        """The first chunk arrived: from now on time out a silence of ``stall_s``."""
        self.limit_s = stall_s
        self._first = False
        self.close()  # re-armed by the next wait, for the new limit

    def _error(self) -> UpstreamTimeout:
        if self._first:
            return UpstreamTimeout(f"{self._label} sent no first chunk within {self.limit_s:g} s")
        return UpstreamTimeout(f"{self._label} stalled: nothing for {self.limit_s:g} s")

    def _check(self) -> None:
        self._handle = None
        since = self._since
        if since is None or self._fired:
            return  # not waiting: the next wait re-arms
        due = since + self.limit_s
        if self._loop.time() < due:
            self._handle = self._loop.call_at(due, self._check)
            return
        self._fired = True
        self._task.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
