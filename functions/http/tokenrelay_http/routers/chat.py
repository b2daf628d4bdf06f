"""The native chat routes (docs/protocol.md §1, §2, §4): stream, stream raw text, cancel, health.

POST /chat/stream                   SSE: start, message*, usage?, one terminal event
GET  /chat/stream                   the same, fields in the query (EventSource)
POST /chat/stream-simple            the answer's text, no framing; the status line waits for
                                    the first text, so a failure before it is a real status
POST /chat/stream/{id}/cancel       from any instance; the answer says how the stream ended
GET  /health                        version, providers, DynamoDB status (open)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from tokenrelay import (
    RequestInvalid,
    StreamError,
    StreamFinished,
    StreamNotFound,
    StreamRun,
    TextDelta,
    TokenRelayError,
)
from tokenrelay.events import TERMINAL_TYPES
from tokenrelay.json_text import JSONRejected
from tokenrelay.requests import parse_chat_request
from tokenrelay.resume import lookup_waits
from tokenrelay.transports.openai import status_for
from tokenrelay.transports.sse import encode_comment, encode_sse, terminal_error

from ..auth import principal_of
from ..body import query_body, read_json
from ..channel import STREAM_HEADERS, StreamChannel
from ..context import Http

__all__ = ["PING", "router", "sse_channel"]

PING = encode_comment("ping")


async def sse_body(run: StreamRun) -> AsyncIterator[bytes]:
    """A run as SSE: one write per batch of queued events (a reader that fell behind catches up)."""
    async with run.session() as events:
        async for batch in events.batches():
            yield encode_sse(batch[0]) if len(batch) == 1 else b"".join([encode_sse(e) for e in batch])


def sse_channel(http: Http, body: AsyncIterator[bytes], stream_id: str) -> StreamChannel:
    headers = {**STREAM_HEADERS, "Connection": "keep-alive", "X-Stream-Id": stream_id}
    return StreamChannel(
        body,
        media_type="text/event-stream",
        headers=headers,
        ping=PING,
        ping_s=http.ping_s,
        write_timeout_s=http.write_timeout_s,
    )


async def text_body(run: StreamRun) -> AsyncIterator[bytes | Response]:
    """``/chat/stream-simple``: the text of every event, raw; a failure before the first text is
    answered with the status ``/v1`` gives it (``transports.openai.status_for``)."""
    async with run.session() as session:
        events = aiter(session)
        await anext(events)  # start
        first = await anext(events)  # the status line waits for the first text or the end
        if isinstance(first, StreamError):
            yield JSONResponse(terminal_error(first), status_code=status_for(first.code))
            return
        if isinstance(first, TextDelta):
            yield first.text.encode()
        if not isinstance(first, TERMINAL_TYPES):
            async for event in events:
                if type(event) is TextDelta:
                    yield event.text.encode()


async def chat_body(request: Request) -> Any:
    try:
        return await read_json(request)
    except JSONRejected as exc:
        raise RequestInvalid(exc.field, exc.message) from None


def router(http: Http) -> APIRouter:
    settings, runs, docs = http.settings, http.runs, http.docs
    routes = APIRouter()

    async def stream(request: Request, body: Any) -> StreamChannel:
        run = await runs.start(request, parse_chat_request(body, settings), resumable=True)
        return sse_channel(http, sse_body(run), run.stream_id)

    @routes.post("/chat/stream", response_class=StreamChannel, openapi_extra=docs.chat_post())
    async def chat_stream(request: Request) -> StreamChannel:
        return await stream(request, await chat_body(request))

    @routes.get("/chat/stream", response_class=StreamChannel, openapi_extra=docs.chat_get())
    async def chat_stream_get(request: Request) -> StreamChannel:
        return await stream(request, query_body(request))

    @routes.post("/chat/stream-simple", response_class=StreamChannel, openapi_extra=docs.simple())
    async def chat_stream_simple(request: Request) -> StreamChannel:
        run = await runs.start(request, parse_chat_request(await chat_body(request), settings))
        headers = {**STREAM_HEADERS, "X-Stream-Id": run.stream_id}
        return StreamChannel(
            text_body(run), media_type="text/plain", headers=headers, write_timeout_s=http.write_timeout_s
        )

    @routes.post("/chat/stream/{stream_id}/cancel", response_model=None, openapi_extra=docs.cancel())
    async def cancel_stream(request: Request) -> JSONResponse:
        """The answer says how the stream ended (docs/faults.md, "Cancel and completion"): 200
        ``cancelled``; 409 with the status it ended with (it finished first); 202 ``cancelling``
        if it has not ended within ``confirm_s`` (DynamoDB or its producer is not answering)."""
        stream_id = request.path_params["stream_id"]
        # The record is created concurrently with the first token (StreamRun.open), so a cancel sent
        # the moment `start` arrives can land on another instance before the record exists: an
        # unknown id is looked up again a few times (~3 s in all, as a resume) before it is a 404.
        for wait_s in (*lookup_waits(stream_id), None):
            try:
                await cancel_once(stream_id, request)
                break
            except StreamNotFound:
                if wait_s is None:
                    raise
                await asyncio.sleep(wait_s)
        status = await runs.ended_as(stream_id)
        if status == "cancelled":
            return JSONResponse({"status": "cancelled", "stream_id": stream_id})
        if status is None:
            return JSONResponse({"status": "cancelling", "stream_id": stream_id}, status_code=202)
        raise StreamFinished(stream_id, status)  # ended otherwise before the cancel could count

    async def cancel_once(stream_id: str, request: Request) -> None:
        if settings.auth_enabled:  # only the key that started a stream may cancel it (403 otherwise)
            record = await http.store.get(stream_id)
            if record is None:
                raise StreamNotFound(stream_id)
            http.guard.check_owner(principal_of(request), record.owner, stream_id)
        await http.store.request_cancel(stream_id, "client")

    @routes.get("/health", response_model=None, openapi_extra=docs.health())
    async def health() -> dict[str, Any]:
        try:
            await asyncio.wait_for(http.store.get("__health__"), timeout=3.0)
            dynamodb = "ok"
        except (TimeoutError, TokenRelayError) as exc:
            dynamodb = f"unavailable: {type(exc).__name__}"
        return {
            "status": "ok" if dynamodb == "ok" else "degraded",
            "version": settings.version,
            "providers": sorted(settings.configured_providers & set(settings.allowed_models)),
            "default_provider": settings.default_provider,
            "auth": settings.auth_mode,  # api_key: the stream routes need a key (a client can say so up front)
            "dependencies": {"dynamodb": dynamodb},
        }

    return routes
