"""WebSocket resume (docs/protocol.md §5): ``{"type":"resume","stream_id":...,"after_seq":n}``.

The handover itself (a move while the worker runs, a replay from the log once it has
sealed the stream) is ``tokenrelay.resume``'s; this is the message's side: who may resume,
and which way it goes. Only the stream's owner (the connection's owner) may resume it.
"""

from __future__ import annotations

from typing import Any

from tokenrelay import RequestInvalid, Settings, StreamNotFound
from tokenrelay.errors import ResumeUnavailable
from tokenrelay.resume import ResumeStores, replay_from_log
from tokenrelay.transports import ConnectionPoster

from . import environment
from .connect import principal_of

__all__ = ["RESUME_FIELDS", "deps", "resume"]

RESUME_FIELDS = frozenset({"type", "stream_id", "after_seq", "request_id"})


def deps(settings: Settings) -> ResumeStores | None:
    """The output log and lease stores of this execution environment; None when resume is off."""
    return environment.services().resume if settings.resume_enabled else None


def _after_seq(body: dict[str, Any]) -> int:
    value = body.get("after_seq", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RequestInvalid("after_seq", "expected a non-negative integer")
    return value


async def resume(
    body: dict[str, Any],
    request_id: str | None,
    connection_id: str,
    svc: environment.Services,
    poster: ConnectionPoster,
) -> None:
    unknown = sorted(set(body) - RESUME_FIELDS)
    if unknown:
        raise RequestInvalid(unknown[0], "unknown field")
    stream_id = body.get("stream_id")
    if not isinstance(stream_id, str) or not 0 < len(stream_id) <= 128:
        raise RequestInvalid("stream_id", "field required: the id of the stream to resume")
    after = _after_seq(body)
    stores = svc.resume
    if stores is None:
        raise ResumeUnavailable("resume is not enabled on this deployment")
    record = await svc.streams.get(stream_id)
    if record is None:
        raise StreamNotFound(stream_id)
    connection = await svc.connections.get(connection_id)
    svc.guard.check_owner(principal_of(connection, connection_id), record.owner, stream_id)
    # The stream becomes one of this connection's: {"type":"cancel"} here reaches it, and it
    # counts against WS_MAX_STREAMS (the worker removes it when the stream ends).
    await svc.connections.add_stream(connection_id, stream_id, svc.config.max_streams)
    if await stores.attachments.request_move(stream_id, connection_id, after):
        return  # the worker replays and moves the live stream here
    await svc.connections.remove_stream(connection_id, stream_id)  # already ended: nothing live to move
    await replay_from_log(
        stores.log,
        stores.attachments,
        stream_id,
        after,
        poster=poster,
        connection_id=connection_id,
        request_id=request_id,
        poll_s=svc.settings.resume_poll_s,
    )
