"""What a producer watches while it streams: the stream's record (docs/protocol.md §4 and §5).

Another instance cancels a stream, or a resuming reader refreshes its lease, or a
WebSocket resume asks to move it, by writing the stream's record. A run learns of it
from a ``Watcher``, which hands it the record's ``WatchState`` after each read; the run
alone decides what the state means (``StreamRun``). Two watchers:

    CancelPoller   (``_poller.py``) one batched read for every stream of a process: the HTTP app
    SoloWatch      one stream's own polling loop: a process with one stream (the WebSocket
                   worker), or a store that cannot read many records at once

``SoloWatch`` reads the whole watch state through the lease store when the run is
resumable; otherwise it reads the cancel flag alone (the cheapest read) and, once the
flag shows, the record once more for its reason (a cancel that ``$disconnect`` made ends
the stream as ``disconnect``, not ``client``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from ..errors import TokenRelayError
from ..stores.output_log import AttachmentStore
from ..stores.streams import StreamStore, WatchState

__all__ = ["OnState", "SoloWatch", "Watcher"]

log = logging.getLogger("tokenrelay.engine")

OnState = Callable[[WatchState], object]  # truthy: the run stopped, stop watching


class Watcher(Protocol):
    def watch(self, stream_id: str, on_state: OnState) -> None:
        """Call ``on_state`` with the stream's state after each read, until ``unwatch``."""
        ...

    def unwatch(self, stream_id: str) -> None: ...


class SoloWatch:
    """A ``Watcher`` of one stream at a time, polling every ``poll_s`` (see the module docstring)."""

    def __init__(self, store: StreamStore, poll_s: float, attachments: AttachmentStore | None = None) -> None:
        self._store, self._poll_s, self._attachments = store, poll_s, attachments
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def watch(self, stream_id: str, on_state: OnState) -> None:
        self._tasks[stream_id] = asyncio.create_task(self._poll(stream_id, on_state), name=f"watch-{stream_id}")

    def unwatch(self, stream_id: str) -> None:
        task = self._tasks.pop(stream_id, None)
        if task is not None:
            task.cancel()

    async def _poll(self, stream_id: str, on_state: OnState) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                state = await self._read(stream_id)
            except TokenRelayError as exc:
                log.warning("stream %s: cancel check failed: %s", stream_id, exc)
                continue
            if state is not None and on_state(state):
                return

    async def _read(self, stream_id: str) -> WatchState | None:
        if self._attachments is not None:
            return await self._attachments.watch(stream_id)
        if not await self._store.cancel_requested(stream_id):
            return None
        record = await self._store.get(stream_id)
        return WatchState(cancel_requested=True, cancel_reason=record.cancel_reason if record is not None else None)
