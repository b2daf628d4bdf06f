"""Disconnect is not cancel: the grace period of a resumable stream (docs/protocol.md §5).

A stream is resumable when its run has an output log (``Resumable``). Then a reader
that goes away only *detaches* the run (``StreamRun.detach``): generation goes on,
and the run's cancel watcher, which reads the stream record every ``CANCEL_POLL_MS``
anyway, also reads ``attached_until``, a lease that every resuming reader, on any
instance, refreshes while its client is connected (``hold_lease``). The run ends as
``cancelled``/``disconnect`` once

    now >= max(detached_at, attached_until) + grace_s

and at once on an explicit cancel. A producer that never learns that its client left
(a Lambda streaming invocation may not) is simply never detached: it runs to its end
or its deadline, and a resume still replays everything from the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ..errors import TokenRelayError
from ..settings import Settings
from ..stores.chats import ChatStore
from ..stores.output_log import AttachmentStore, OutputLogStore
from ._writer import OutputLogWriter

__all__ = ["ResumeStores", "Resumable", "heartbeat_s", "hold_lease"]

log = logging.getLogger("tokenrelay.resume")


def heartbeat_s(grace_s: float) -> float:
    """How often a resuming reader refreshes its lease; the lease lasts two intervals."""
    return min(max(grace_s / 3, 0.2), 10.0)


@dataclass(frozen=True, slots=True)
class Resumable:
    """What makes a run resumable: its output log, the lease store and the grace period."""

    log: OutputLogWriter
    attachments: AttachmentStore
    grace_s: float

    def expired(self, detached_at: float | None, attached_until: float, now: float) -> bool:
        """True once nobody has been attached for ``grace_s``."""
        if detached_at is None:
            return False
        return now >= max(detached_at, attached_until) + self.grace_s


@dataclass(frozen=True)
class ResumeStores:
    """The output log and lease stores of this execution environment (made once, at cold start)."""

    settings: Settings
    log: OutputLogStore
    attachments: AttachmentStore
    chats: ChatStore | None = None  # each AI SDK chat's latest stream (resume by chat id); None: not kept

    def for_stream(self, stream_id: str) -> Resumable:
        """A new stream's output log writer, lease store and grace period."""
        s = self.settings
        writer = OutputLogWriter(
            self.log,
            stream_id,
            expires_at=int(time.time()) + s.stream_ttl_s,
            flush_s=s.log_flush_s,
            max_bytes=s.log_flush_bytes,
        )
        return Resumable(writer, self.attachments, s.resume_grace_s)


@asynccontextmanager
async def hold_lease(attachments: AttachmentStore, stream_id: str, grace_s: float) -> AsyncIterator[None]:
    """Refresh the stream's lease while the body runs. A body that ends by cancellation (its
    client left) ends the lease at once, so the grace period starts from that moment."""

    async def refresh() -> None:
        interval = heartbeat_s(grace_s)
        while True:
            try:
                await attachments.attach(stream_id, time.time() + 2 * interval)
            except TokenRelayError as exc:
                log.warning("stream %s: lease refresh failed: %s", stream_id, exc)
            await asyncio.sleep(interval)

    heartbeat = asyncio.create_task(refresh())
    try:
        yield
    except (asyncio.CancelledError, GeneratorExit):
        heartbeat.cancel()
        try:  # end the lease now: the grace period starts from this moment
            await attachments.attach(stream_id, time.time())
        except TokenRelayError as exc:
            log.warning("stream %s: lease release failed: %s", stream_id, exc)
        raise
    finally:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
