"""Disconnect is not cancel: the grace period of a resumable stream (PROTOCOL section 5).

A stream is resumable when its run has an output log (``Resumable``). Then a reader
that goes away only *detaches* the run (``StreamRun.detach``): generation goes on,
and the run's cancel watcher, which reads the stream record every ``CANCEL_POLL_MS``
anyway, also reads ``attached_until``, a lease that every resuming reader, on any
instance, refreshes while its client is connected. The run ends as
``cancelled``/``disconnect`` once

    now >= max(detached_at, attached_until) + grace_s

and at once on an explicit cancel. A producer that never learns that its client left
(a Lambda streaming invocation may not) is simply never detached: it runs to its end
or its deadline, and a resume still replays everything from the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .events import CancelReason
from .output_log_writer import OutputLogWriter
from .stores.base import WatchState

__all__ = ["AttachmentStore", "Resumable", "WatchState", "heartbeat_s", "cancel_reason"]


class AttachmentStore(Protocol):
    async def watch(self, stream_id: str) -> WatchState: ...

    async def attach(self, stream_id: str, until: float) -> None:
        """Set ``attached_until`` (a resuming reader's lease; ``until=now`` detaches it)."""
        ...

    async def request_move(self, stream_id: str, connection_id: str, after_seq: int) -> bool:
        """WebSocket: ask the live worker to move the stream to ``connection_id``; False once the
        worker has sealed the stream (it is gone: replay from the log yourself)."""
        ...

    async def seal(self, stream_id: str, marks: list[int], moves_seen: int) -> bool:
        """WebSocket worker, at its end: record each text message's last seq; False if a move
        it has not seen arrived (handle it, then seal again)."""
        ...

    async def marks(self, stream_id: str) -> list[int] | None:
        """The sealed text message boundaries, or None while the worker owns the stream."""
        ...


def heartbeat_s(grace_s: float) -> float:
    """How often a resuming reader refreshes its lease; the lease lasts two intervals."""
    return min(max(grace_s / 3, 0.2), 10.0)


def cancel_reason(value: str | None) -> CancelReason:
    if value == "disconnect":
        return "disconnect"
    if value == "timeout":
        return "timeout"
    return "client"


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
