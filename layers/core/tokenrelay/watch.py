"""What a producer watches while it streams: the cancel flag and the resume lease.

Another instance cancels a stream, or a resuming reader refreshes its lease, by writing
the stream's record (PROTOCOL sections 4 and 5). A run learns of it either from the
process's shared ``CancelPoller`` (the HTTP app: one batched read for all its streams)
or, where a process has one stream (the WebSocket worker), from its own polling loop.
Both hand the record's ``WatchState`` to ``react``, which decides what it means.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .errors import TokenRelayError
from .resume import cancel_reason
from .stores.base import StreamStore, WatchState

if TYPE_CHECKING:
    from .engine import StreamRun

log = logging.getLogger("tokenrelay.engine")


def react(run: StreamRun, state: WatchState) -> bool:
    """Stop ``run`` if its record says so; True if it did."""
    if state.cancel_requested:
        run.stop(cancel_reason(state.cancel_reason))
        return True
    if run.resume is not None and run.resume.expired(run.detached_at, state.attached_until, time.time()):
        run.stop("disconnect")  # nobody resumed within the grace period
        return True
    return False


async def poll_alone(run: StreamRun, store: StreamStore, poll_s: float) -> None:
    """Read this one stream's record every ``poll_s`` until it says stop (cancelled by the run's end)."""
    while True:
        await asyncio.sleep(poll_s)
        try:
            if run.resume is not None:
                if react(run, await run.resume.attachments.watch(run.stream_id)):
                    return
            elif await store.cancel_requested(run.stream_id):
                run.stop("client")
                return
        except TokenRelayError as exc:
            log.warning("stream %s: cancel check failed: %s", run.stream_id, exc)
