"""Anthropic Messages API (docs/anthropic-compat.md), at ``POST /v1/messages``.

Each message is a ``StreamRun`` started like any other (``Runs.start``), with transport
``anthropic``: same request limits, state record, ``x-stream-id`` header, cancellation
(``POST /chat/stream/{stream_id}/cancel``) and disconnect handling as ``/chat/stream``.
The request is translated in ``anthropic_request``, events are encoded by
``transports.anthropic`` (pure); this module only moves them. Every error on this path
is Anthropic's error object (``errors.py``), a 401 or a 413 before routing included.

The status line is held as on ``/v1/chat/completions``: until the first event after the
start, so a failure before any output is a real status (a 429 is the SDKs'
``RateLimitError``, a 529 their ``OverloadedError``); after it, a failure is an
``event: error``. Without ``stream`` the answer waits for the end: every failure is a status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from tokenrelay import StreamCancelled, StreamDone, StreamError, StreamRun
from tokenrelay.events import Event
from tokenrelay.json_text import JSONRejected
from tokenrelay.transports.anthropic import (
    PING,
    AnthropicStreamEncoder,
    MessageBuilder,
    from_terminal,
)

from ..anthropic_request import MessagesRequest, invalid, parse_messages_request
from ..body import read_json
from ..channel import StreamChannel, answer_channel
from ..context import Http
from ..errors import anthropic_response
from ..openapi_anthropic import messages_operation

__all__ = ["TRANSPORT", "router"]

TRANSPORT = "anthropic"


class _Message:
    """One message's answer, streaming or not, for a run that is open."""

    def __init__(self, run: StreamRun, request: MessagesRequest) -> None:
        self.run, self.request = run, request
        self.id = f"msg_{run.stream_id}"
        # x-stream-id for the cancel route; request-id is the header the SDKs keep as ``_request_id``
        self.headers = {"x-stream-id": run.stream_id, "request-id": f"req_{run.stream_id}"}

    def error(self, terminal: StreamError | StreamCancelled) -> Response:
        return anthropic_response(from_terminal(terminal), self.headers)

    async def events(self) -> AsyncIterator[bytes | Response]:
        encoder = AnthropicStreamEncoder(self.id, self.request.model)
        async with self.run.session() as session:
            events = aiter(session)
            await anext(events)  # start
            first = await anext(events)  # hold the status line until the first output or the end
            if isinstance(first, StreamError | StreamCancelled):
                yield self.error(first)
                return
            yield encoder.message_start() + encoder.encode(first)
            if not isinstance(first, StreamDone):
                async for event in events:
                    data = encoder.encode(event)
                    if data:
                        yield data

    async def whole(self) -> AsyncIterator[bytes | Response]:
        message = MessageBuilder()
        terminal: Event | None = None
        async with self.run.session() as events:
            async for event in events:
                message.add(event)
                if isinstance(event, StreamDone | StreamError | StreamCancelled):
                    terminal = event
        if isinstance(terminal, StreamError | StreamCancelled):
            yield self.error(terminal)
            return
        assert isinstance(terminal, StreamDone)
        yield JSONResponse(message.message(self.id, self.request.model, terminal), headers=self.headers)


async def _json_body(request: Request) -> Any:
    try:
        return await read_json(request)  # 415 (as 400), 413 and 408 are answered in Anthropic's shape (errors.py)
    except JSONRejected as exc:
        field = "" if exc.field == "body" else exc.field
        raise invalid(field, f"The request body is not valid JSON: {exc.message}") from None


def router(http: Http) -> APIRouter:
    settings = http.settings
    routes = APIRouter(prefix="/v1")

    @routes.post("/messages", response_class=StreamChannel, openapi_extra=messages_operation(settings))
    async def messages(request: Request) -> StreamChannel:
        parsed = parse_messages_request(await _json_body(request), settings)
        run = await http.runs.start(request, parsed.chat, TRANSPORT)
        answer = _Message(run, parsed)
        return answer_channel(
            parsed.stream,
            answer.events() if parsed.stream else answer.whole(),
            headers=answer.headers,
            ping=PING,
            ping_s=http.ping_s,
            write_timeout_s=http.write_timeout_s,  # SSE_WRITE_TIMEOUT_S
        )

    return routes
