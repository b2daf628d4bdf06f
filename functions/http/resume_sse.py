"""SSE resume: ``GET /chat/stream/{stream_id}`` (PROTOCOL section 5).

With ``Last-Event-ID: n`` (what ``EventSource`` sends by itself on reconnect) or
``?last_event_id=n``, replays every ``message`` after ``n`` from the output log, then
follows the log until the terminal event, on any instance: the producer may run
elsewhere. While its client is connected the reader refreshes the stream's lease
(``attached_until``), so the producer keeps generating past its grace period; when the
client leaves, the lease is ended at once. No ``start`` event: the client has it.

In Lambda the response ends at the invocation's deadline less ``DEADLINE_MARGIN_S``
(``deadline.py``) if the stream has not ended by then: without a terminal event, so the
client resumes again from its last id (``EventSource`` does by itself). That is what a
buffered resume through the HTTP API (29 s) returns for a live stream: what the log
holds up to then, in one piece; a finished stream is replayed whole, with its end.

    404 stream_not_found   unknown id (after looking again for ~3 s: ``find_record``)
    403 forbidden          the caller (the API key; with AUTH_MODE=off, X-Client-Id, else
                           "anonymous") is not the owner
    400 invalid_request    a Last-Event-ID (or last_event_id) that is not plain ASCII digits
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from deadline import stream_deadline_s
from protect import Guard, principal_of
from tokenrelay import (
    RequestInvalid,
    Settings,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamNotFound,
    StreamStore,
    Terminal,
    TokenRelayError,
    encode_comment,
    encode_sse,
)
from tokenrelay.output_log import OutputLogStore, follow
from tokenrelay.output_log_writer import OutputLogWriter
from tokenrelay.resume import AttachmentStore, Resumable, heartbeat_s
from tokenrelay.stores.base import StreamRecord

log = logging.getLogger("tokenrelay.http.resume")

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
_PING = encode_comment("ping")
_EVENT_ID = re.compile(r"[0-9]{1,18}")
LOST_AFTER_S = 60.0  # past its timeout and still active: its producer died
LOG_SLACK_S = 5.0  # past the producer's last write attempts (FINISH_TIMEOUT_S after its end)
LOOKUP_WAITS_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.5)  # ~3 s in all before an unknown id is a 404
_STREAM_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")  # uuid4, as made


def lookup_waits(stream_id: str) -> tuple[float, ...]:
    """How long to look again for a missing record: ~3 s for an id as TokenRelay makes them."""
    return LOOKUP_WAITS_S if _STREAM_ID.fullmatch(stream_id) else ()


@dataclass(frozen=True)
class ResumeServices:
    """The output log and lease stores of this execution environment (made once, at cold start)."""

    settings: Settings
    log: OutputLogStore
    attachments: AttachmentStore

    @classmethod
    def from_settings(cls, settings: Settings) -> ResumeServices:
        from tokenrelay.stores.output_log_dynamodb import DynamoAttachments, DynamoOutputLog

        return cls(settings, DynamoOutputLog(settings.output_log_table), DynamoAttachments(settings.streams_table))

    def for_stream(self, stream_id: str) -> Resumable:
        writer = OutputLogWriter(
            self.log,
            stream_id,
            expires_at=int(time.time()) + self.settings.stream_ttl_s,
            flush_s=self.settings.log_flush_s,
            max_bytes=self.settings.log_flush_bytes,
        )
        return Resumable(writer, self.attachments, self.settings.resume_grace_s)


def last_event_id(request: Request) -> int:
    """``Last-Event-ID`` (else ``?last_event_id``, else 0): the seq of the last message the client
    has, exactly as the server sent it in ``id:``: plain ASCII digits, nothing else (``int()``
    alone would read ``1_0`` as 10 and take ``+5``, `` 5`` or Unicode digits)."""
    raw = request.headers.get("last-event-id")
    field = "Last-Event-ID"
    if not raw:
        raw, field = request.query_params.get("last_event_id", "0"), "last_event_id"
    if not _EVENT_ID.fullmatch(raw):
        raise RequestInvalid(field, "expected the id of a message: ASCII digits only, at most 18")
    return int(raw)


async def find_record(store: StreamStore, stream_id: str) -> StreamRecord:
    """The stream's record, looked up again for a while before it is a 404: the record is
    written concurrently with the first token (engine.open), so a client that drops at once
    and reconnects, or cancels, may come before a slow DynamoDB has it. An id that is not a
    uuid4 (as stream ids are made) is not waited for."""
    for wait_s in (*lookup_waits(stream_id), None):
        record = await store.get(stream_id)
        if record is not None:
            return record
        if wait_s is None:
            raise StreamNotFound(stream_id)
        await asyncio.sleep(wait_s)
    raise AssertionError("unreachable")


def terminal_from_record(record: StreamRecord) -> Terminal | None:
    """The terminal event a finished record implies (the producer died before logging its own)."""
    if record.status == "complete":
        return StreamDone(
            record.stream_id,
            record.finish_reason or "stop",
            record.ttft_ms,
            record.total_time_ms or 0,
            record.completion_tokens or 0,
        )
    if record.status == "cancelled":
        reason = record.cancel_reason if record.cancel_reason in ("client", "disconnect", "timeout") else "client"
        return StreamCancelled(record.stream_id, reason)  # type: ignore[arg-type]
    if record.status == "failed":
        return StreamError("the stream failed", record.error_code or "internal_error", False)
    return None


def add_resume_routes(
    app: FastAPI,
    settings: Settings,
    *,
    store: StreamStore,
    output_log: OutputLogStore,
    attachments: AttachmentStore,
    guard: Guard,
) -> None:
    @app.get("/chat/stream/{stream_id}")
    async def resume_stream(stream_id: str, request: Request) -> ResumeResponse:
        after = last_event_id(request)
        record = await find_record(store, stream_id)
        guard.check_owner(principal_of(request), record.owner, stream_id)  # the API key, or X-Client-Id
        deadline_s = stream_deadline_s(request.scope, settings.deadline_margin_s)  # None outside Lambda
        return ResumeResponse(record, after, settings, store, output_log, attachments, deadline_s)


class ResumeResponse(Response):
    """Replay then follow one stream from its output log, with pings and the reader's lease."""

    media_type = "text/event-stream"
    charset = "utf-8"

    def __init__(
        self,
        record: StreamRecord,
        after_seq: int,
        settings: Settings,
        store: StreamStore,
        output_log: OutputLogStore,
        attachments: AttachmentStore,
        deadline_s: float | None = None,
    ) -> None:
        self.record, self.after_seq, self.settings = record, after_seq, settings
        self.deadline_s = deadline_s
        self.store, self.output_log, self.attachments = store, output_log, attachments
        self.status_code = 200
        self.background = None
        self.init_headers({**STREAM_HEADERS, "X-Stream-Id": record.stream_id})

    async def _fallback(self, last_seq: int) -> Terminal | None:
        """The log has no final item yet: the record's terminal event once the producer has
        surely stopped writing the log (its last writes give up ``FINISH_TIMEOUT_S`` after the
        record's end); None to keep polling. A log that ends short of the record's ``last_seq``
        is an error, never a ``done`` after a truncated text."""
        record = await self.store.get(self.record.stream_id)
        if record is None:
            return StreamError("the stream is gone", "stream_not_found", False)
        terminal = terminal_from_record(record)
        now = time.time()
        if terminal is None:
            if now > record.created_at + self.settings.stream_timeout_s + LOST_AFTER_S:
                return StreamError("the stream was lost", "stream_lost", True)  # its producer died
            return None
        if now < record.updated_at + self.settings.finish_timeout_s + LOG_SLACK_S:
            return None  # ended, and its log's last items may still be landing (a slow DynamoDB)
        if record.last_seq is not None and last_seq < record.last_seq:
            log.error("stream %s: output log ends at %d of %d", record.stream_id, last_seq, record.last_seq)
            return StreamError("the stream's output log is incomplete", "stream_lost", False)
        return terminal

    async def _lease(self) -> None:
        interval = heartbeat_s(self.settings.resume_grace_s)
        while True:
            try:
                await self.attachments.attach(self.record.stream_id, time.time() + 2 * interval)
            except TokenRelayError as exc:
                log.warning("stream %s: lease refresh failed: %s", self.record.stream_id, exc)
            await asyncio.sleep(interval)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream_id = self.record.stream_id
        loop = asyncio.get_running_loop()
        lock = asyncio.Lock()
        last_write = loop.time()
        gone = asyncio.Event()

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        async def ping() -> None:
            nonlocal last_write
            ping_s = self.settings.ping_s
            while True:
                await asyncio.sleep(max(last_write + ping_s - loop.time(), 0.01))
                if loop.time() - last_write >= ping_s:
                    async with lock:
                        await send({"type": "http.response.body", "body": _PING, "more_body": True})
                        last_write = loop.time()

        async def body() -> None:
            nonlocal last_write
            events = follow(
                self.output_log,
                stream_id,
                self.after_seq,
                poll_s=self.settings.resume_poll_s,
                fallback=self._fallback,
            )
            limit = asyncio.timeout(self.deadline_s)
            try:
                async with limit:
                    async for event in events:
                        async with lock:
                            await send({"type": "http.response.body", "body": encode_sse(event), "more_body": True})
                            last_write = loop.time()
            except TimeoutError:
                if not limit.expired():
                    raise
                log.info("stream %s: resume ends at the invocation's deadline; the client resumes", stream_id)
            finally:
                await events.aclose()
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        active = self.record.status == "active"
        helpers = [asyncio.create_task(listen())]
        if active:
            helpers.append(asyncio.create_task(self._lease()))
        main: asyncio.Task[None] | None = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            main = asyncio.create_task(body())
            helpers.append(asyncio.create_task(ping()))
            waiter = asyncio.create_task(gone.wait())
            await asyncio.wait([main, waiter], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if main.done():
                main.result()
        except OSError:
            pass  # the client went away mid-send
        finally:
            if main is not None:
                helpers.append(main)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if active and gone.is_set():
                try:  # end the lease now: the grace period starts from this moment
                    await self.attachments.attach(stream_id, time.time())
                except TokenRelayError as exc:
                    log.warning("stream %s: lease release failed: %s", stream_id, exc)
