"""SSE resume: ``GET /chat/stream/{stream_id}`` (docs/protocol.md §5).

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

    404 stream_not_found   unknown id (after looking again for ~3 s: ``resume.find_record``)
    403 forbidden          the caller (the API key; with AUTH_MODE=off, X-Client-Id, else
                           "anonymous") is not the owner
    400 invalid_request    a Last-Event-ID (or last_event_id) that is not plain ASCII digits
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, nullcontext

from fastapi import APIRouter, Request

from tokenrelay import RequestInvalid
from tokenrelay.events import Event
from tokenrelay.resume import RecordFallback, ResumeStores, find_record, follow, hold_lease
from tokenrelay.stores import StreamRecord
from tokenrelay.transports.sse import encode_sse

from ..auth import principal_of
from ..channel import StreamChannel
from ..context import Http
from ..deadline import stream_deadline_s
from .chat import sse_channel

__all__ = ["last_event_id", "replay", "router"]

log = logging.getLogger("tokenrelay.http.resume")

_EVENT_ID = re.compile(r"[0-9]{1,18}")


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


async def replay(
    http: Http,
    resume: ResumeStores,
    record: StreamRecord,
    after: int,
    deadline_s: float | None,
    encode: Callable[[Event], bytes] = encode_sse,
) -> AsyncGenerator[bytes, None]:
    """The log after ``after`` and then the live stream, while the reader holds the lease (an active
    stream); at the invocation's deadline the body ends without a terminal event: the client resumes.
    ``encode`` is the wire format (SSE's here; the AI SDK's for ``/api/chat``)."""
    settings, stream_id = http.settings, record.stream_id
    fallback = RecordFallback(http.store, stream_id, settings)  # the producer died without its log's end
    events = follow(resume.log, stream_id, after, poll_s=settings.resume_poll_s, fallback=fallback)
    limit = asyncio.timeout(deadline_s)
    try:
        async with _lease(resume, record), limit:
            async for event in events:
                data = encode(event)
                if data:
                    yield data
    except TimeoutError:
        if not limit.expired():
            raise
        log.info("stream %s: resume ends at the invocation's deadline; the client resumes", stream_id)
    finally:
        await events.aclose()


def _lease(resume: ResumeStores, record: StreamRecord) -> AbstractAsyncContextManager[None]:
    """The reader's lease on a stream still active (its producer keeps generating while we read)."""
    if record.status != "active":
        return nullcontext()
    return hold_lease(resume.attachments, record.stream_id, resume.settings.resume_grace_s)


def router(http: Http, resume: ResumeStores) -> APIRouter:
    routes = APIRouter()

    @routes.get("/chat/stream/{stream_id}", response_class=StreamChannel, openapi_extra=http.docs.resume())
    async def resume_stream(request: Request) -> StreamChannel:
        stream_id = request.path_params["stream_id"]
        after = last_event_id(request)
        record = await find_record(http.store, stream_id)
        http.guard.check_owner(principal_of(request), record.owner, stream_id)  # the API key, or X-Client-Id
        deadline_s = stream_deadline_s(request.scope, http.settings.deadline_margin_s)  # None outside Lambda
        return sse_channel(http, replay(http, resume, record, after, deadline_s), stream_id)

    return routes
