"""The Vercel AI SDK's chat routes (docs/ai-sdk.md): what ``useChat`` calls.

    POST /api/chat                    useChat's body -> a UI message stream (transports.ai_sdk)
    GET  /api/chat/{chat_id}/stream   resumeStream(): the chat's active stream, replayed from its
                                      start then followed live; 204 when it has none

Each answer is a ``StreamRun`` like any other (``Runs.start``, transport ``ai-sdk``): same limits,
keys, record, metrics, output log and ``X-Stream-Id`` header, so ``POST
/chat/stream/{stream_id}/cancel`` stops it from anywhere (``useChat``'s ``stop()`` only aborts the
fetch, which a Function URL may never notice; the web package's ``tokenRelayChat`` sends the
cancel). The chat id -> stream id pointer (``stores.ChatStore``) is written beside the stream, so
a page that reloads finds the stream again; it is only a pointer: the record says whether the
stream is still active, and the output log holds what it said.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import Response

from tokenrelay import StreamNotFound, StreamRun, TokenRelayError
from tokenrelay.resume import ResumeStores, find_record
from tokenrelay.stores import ChatStream
from tokenrelay.transports.ai_sdk import HEADERS, UIMessageStreamEncoder, default_message_id

from ..auth import principal_of
from ..channel import STREAM_HEADERS, StreamChannel
from ..context import Http
from ..deadline import stream_deadline_s
from ..openapi_ui import chat_operation, resume_operation
from ..ui_request import check_chat_id, parse_ui_request
from .chat import PING, chat_body
from .resume import replay

__all__ = ["TRANSPORT", "router"]

log = logging.getLogger("tokenrelay.http.ai_sdk")

TRANSPORT = "ai-sdk"  # the Transport dimension of the stream metrics
POINTER_WAIT_S = 3.0  # how long the status line waits for the chat pointer's write (made beside the run's start)


async def _answer(run: StreamRun, message_id: str, pointer: asyncio.Task[None] | None) -> AsyncIterator[bytes]:
    encoder = UIMessageStreamEncoder(run.stream_id, message_id)
    try:
        async with run.session() as events:
            if pointer is not None:  # the status line waits for it: a client that has the headers can resume
                await asyncio.wait([pointer], timeout=POINTER_WAIT_S)
            yield encoder.start()
            async for batch in events.batches():
                data = b"".join([encoder.encode(event) for event in batch])
                if data:
                    yield data
    finally:
        if pointer is not None and not pointer.done():  # never left running past the response
            pointer.cancel()


def _channel(http: Http, body: AsyncIterator[bytes], stream_id: str) -> StreamChannel:
    return StreamChannel(
        body,
        media_type="text/event-stream",
        headers={**STREAM_HEADERS, "Connection": "keep-alive", "X-Stream-Id": stream_id, **HEADERS},
        ping=PING,
        ping_s=http.ping_s,
        write_timeout_s=http.write_timeout_s,
    )


async def _point(resume: ResumeStores, owner: str, chat_id: str, stream: ChatStream) -> None:
    assert resume.chats is not None
    try:
        await resume.chats.set_stream(owner, chat_id, stream)
    except TokenRelayError as exc:  # the stream goes on; only a resume by chat id will not find it
        log.warning("chat %s: could not record stream %s as its latest: %s", chat_id, stream.stream_id, exc)


def router(http: Http) -> APIRouter:
    settings, resume = http.settings, http.resume
    routes = APIRouter()

    @routes.post("/api/chat", response_class=StreamChannel, openapi_extra=chat_operation(settings))
    async def ai_chat(request: Request) -> StreamChannel:
        ui = parse_ui_request(await chat_body(request), settings)
        run = await http.runs.start(request, ui.chat, TRANSPORT, resumable=True)
        stream = ChatStream(run.stream_id, ui.continues or default_message_id(run.stream_id))
        pointer = None
        if resume is not None and resume.chats is not None:
            owner = principal_of(request).owner
            pointer = asyncio.create_task(_point(resume, owner, ui.chat_id, stream))
        return _channel(http, _answer(run, stream.message_id, pointer), run.stream_id)

    @routes.get("/api/chat/{chat_id}/stream", response_model=None, openapi_extra=resume_operation())
    async def ai_chat_resume(request: Request) -> Response:
        chat_id = check_chat_id(request.path_params["chat_id"], "chat_id")
        if resume is None or resume.chats is None:  # no output log: nothing can be resumed
            return Response(status_code=204)
        principal = principal_of(request)
        stream = await resume.chats.stream_of(principal.owner, chat_id)
        if stream is None:
            return Response(status_code=204)
        stream_id = stream.stream_id
        try:
            record = await find_record(http.store, stream_id)
        except StreamNotFound:  # expired, or never created (its start failed)
            return Response(status_code=204)
        http.guard.check_owner(principal, record.owner, stream_id)
        if record.status != "active":
            return Response(status_code=204)
        encoder = UIMessageStreamEncoder(stream_id, stream.message_id)
        deadline_s = stream_deadline_s(request.scope, settings.deadline_margin_s)

        async def body() -> AsyncIterator[bytes]:
            replayed = replay(http, resume, record, 0, deadline_s, encoder.encode)  # from the start, as the SDK expects
            try:
                yield encoder.start()
                async for data in replayed:
                    yield data
            finally:  # a client that leaves ends the reader's lease now (hold_lease)
                await replayed.aclose()

        return _channel(http, body(), stream_id)

    return routes
