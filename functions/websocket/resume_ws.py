"""WebSocket resume (PROTOCOL section 5): ``{"type":"resume","stream_id":...,"after_seq":n}``.

Who replays depends on who owns the stream, decided by one conditional write on the
stream record:

    worker still running   request_move succeeds: the record names the new connection;
                           the worker's watcher sees it within CANCEL_POLL_MS, re-posts
                           (byte for byte) every message after n from its history, and
                           goes on posting the live stream there
    worker has ended       it sealed the record with its text message boundaries
                           (``text_marks``): request_move fails, and this handler
                           rebuilds the very same messages after n from the output log,
                           then posts usage and the terminal message

Either way the client sees each part once, in order, with the original ``seq`` values,
and exactly one terminal message. Only the stream's owner (the connection's client id)
may resume it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from connect import owner_for
from tokenrelay import (
    Event,
    RequestInvalid,
    Settings,
    StreamNotFound,
    StreamRun,
    TextDelta,
    TokenRelayError,
)
from tokenrelay.output_log import OutputLogStore, follow
from tokenrelay.output_log_writer import OutputLogWriter
from tokenrelay.resume import AttachmentStore, Resumable, WatchState
from tokenrelay.stores.base import StreamStore
from tokenrelay.stores.connections import ConnectionStore
from tokenrelay.transports.websocket import ConnectionGone, ConnectionPoster, encode_message
from tokenrelay.transports.ws_resume import ResumableSender

log = logging.getLogger("tokenrelay.websocket")
RESUME_FIELDS = frozenset({"type", "stream_id", "after_seq", "request_id"})
SEAL_ATTEMPTS = 5


class NotOwner(TokenRelayError):
    status_code = 403
    code = "forbidden"

    def __init__(self, stream_id: str) -> None:
        super().__init__(f"stream {stream_id!r} belongs to another client")
        self.stream_id = stream_id


class ResumeUnavailable(TokenRelayError):
    code = "resume_unavailable"


@dataclass(frozen=True)
class ResumeDeps:
    log: OutputLogStore
    attachments: Any  # DynamoAttachments: AttachmentStore + request_move / seal / marks


_deps: dict[tuple[str, str], ResumeDeps] = {}


def deps(settings: Settings) -> ResumeDeps | None:
    """The output log and lease stores of this execution environment; None when resume is off."""
    if not settings.resume_enabled:
        return None
    key = (settings.output_log_table, settings.streams_table)
    found = _deps.get(key)
    if found is None:
        from tokenrelay.stores.output_log_dynamodb import DynamoAttachments, DynamoOutputLog

        found = _deps.setdefault(
            key, ResumeDeps(DynamoOutputLog(settings.output_log_table), DynamoAttachments(settings.streams_table))
        )
    return found


class MoveWatcher:
    """The run's lease store, seen through the worker: a new move in the record moves the sender."""

    def __init__(self, inner: Any, sender: ResumableSender, run: StreamRun) -> None:
        self.inner, self.sender, self.run = inner, sender, run

    async def watch(self, stream_id: str) -> WatchState:
        state: WatchState = await self.inner.watch(stream_id)
        if state.moves > self.sender.moves and state.connection_id:
            self.sender.move(state.connection_id, state.resume_after)
            self.sender.moves = state.moves
            self.run.detached_at = None  # attached again: a new drop starts a new grace period
        return state

    async def attach(self, stream_id: str, until: float) -> None:
        await self.inner.attach(stream_id, until)


def resumable(settings: Settings, d: ResumeDeps, stream_id: str, attachments: AttachmentStore) -> Resumable:
    writer = OutputLogWriter(
        d.log,
        stream_id,
        expires_at=int(time.time()) + settings.stream_ttl_s,
        flush_s=settings.log_flush_s,
        max_bytes=settings.log_flush_bytes,
    )
    return Resumable(writer, attachments, settings.resume_grace_s)


async def seal(d: ResumeDeps, sender: ResumableSender, stream_id: str, flush_until: float) -> None:
    """Hand the stream over to the log: record the message boundaries, unless a move came first."""
    for _ in range(SEAL_ATTEMPTS):
        if await d.attachments.seal(stream_id, sender.final_marks(), sender.moves):
            return
        state: WatchState = await d.attachments.watch(stream_id)
        if state.connection_id:
            sender.move(state.connection_id, state.resume_after)
        sender.moves = state.moves
        await sender.aclose(max(flush_until - time.monotonic(), 0.1))
    log.error("stream %s: could not seal after %d moves", stream_id, SEAL_ATTEMPTS)


def _after_seq(body: dict[str, Any]) -> int:
    value = body.get("after_seq", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RequestInvalid("after_seq", "expected a non-negative integer")
    return value


async def resume(
    body: dict[str, Any],
    request_id: str | None,
    connection_id: str,
    settings: Settings,
    streams: StreamStore,
    connections: ConnectionStore,
    poster: ConnectionPoster,
    max_streams: int,
) -> None:
    unknown = sorted(set(body) - RESUME_FIELDS)
    if unknown:
        raise RequestInvalid(unknown[0], "unknown field")
    stream_id = body.get("stream_id")
    if not isinstance(stream_id, str) or not 0 < len(stream_id) <= 128:
        raise RequestInvalid("stream_id", "field required: the id of the stream to resume")
    after = _after_seq(body)
    d = deps(settings)
    if d is None:
        raise ResumeUnavailable("resume is not enabled on this deployment")
    record = await streams.get(stream_id)
    if record is None:
        raise StreamNotFound(stream_id)
    connection = await connections.get(connection_id)
    owner = connection.owner if connection is not None else owner_for(connection_id, None)
    if record.owner != owner:
        raise NotOwner(stream_id)
    # The stream becomes one of this connection's: {"type":"cancel"} here reaches it, and it
    # counts against WS_MAX_STREAMS (the worker removes it when the stream ends).
    await connections.add_stream(connection_id, stream_id, max_streams)
    if await d.attachments.request_move(stream_id, connection_id, after):
        return  # the worker replays and moves the live stream here
    await connections.remove_stream(connection_id, stream_id)  # already ended: nothing live to move
    await replay_from_log(d, stream_id, after, request_id, connection_id, poster, settings)


async def replay_from_log(
    d: ResumeDeps,
    stream_id: str,
    after: int,
    request_id: str | None,
    connection_id: str,
    poster: ConnectionPoster,
    settings: Settings,
) -> None:
    marks: list[int] = await d.attachments.marks(stream_id) or []
    texts: dict[int, str] = {}
    tail: list[Event] = []
    async with asyncio.timeout(10):  # the log's end is written before the seal: it is there
        async for event in follow(d.log, stream_id, 0, poll_s=settings.resume_poll_s):
            if type(event) is TextDelta:
                texts[event.seq] = event.text
            else:
                tail.append(event)
    last = max(texts, default=0)
    if not marks or marks[-1] < last:
        marks = [*marks, last] if last else marks
    messages: list[bytes] = []
    for k in range(after + 1, len(marks) + 1):
        low = marks[k - 2] if k >= 2 else 0
        text = "".join(texts.get(s, "") for s in range(low + 1, marks[k - 1] + 1))
        messages.append(encode_message(TextDelta(text, k), stream_id, request_id, tokens=marks[k - 1] - low))
    messages += [encode_message(event, stream_id, request_id) for event in tail]
    for data in messages:
        try:
            await poster.post(connection_id, data)
        except ConnectionGone:
            return
