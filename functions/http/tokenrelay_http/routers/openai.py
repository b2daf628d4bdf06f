"""OpenAI-compatible API (docs/protocol.md §6), at ``/v1``.

    POST /v1/chat/completions    streaming (``chat.completion.chunk`` SSE) or not (``chat.completion``)
    GET  /v1/models              what this deployment serves: provider/model ids, then aliases
                                 (with API keys: only what the caller's key may use), each
                                 with its ``capabilities`` (catalog.capabilities)
    GET  /v1/models/{model}      one of them, or 404 model_not_found (also for a model the key may not use)

Each completion is a ``StreamRun`` started like any other (``Runs.start``), with transport
``openai``: same request limits, state record, ``X-Stream-Id`` header, cancellation
(``POST /chat/stream/{stream_id}/cancel``) and disconnect handling as ``/chat/stream``. The
request is translated in ``openai_request``, events are encoded by ``transports.openai``
(pure); this module only moves them. Every error under ``/v1``, a 404 or 405 included, is
answered in OpenAI's shape (``errors.py``).

Status line: a streaming response holds it until the first event after ``start`` (as
``/chat/stream-simple`` does), so an upstream failure before any text is a real HTTP status
(a 429 becomes the SDKs' ``RateLimitError``); after that, a failure is an in-band error
frame. A non-streaming response waits for the end, so every failure is a status. Either way
the channel watches for a disconnect all along: a client that leaves while the status is
held stops the run (``disconnect``), as it does mid-stream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from tokenrelay import PART_TYPES, StreamCancelled, StreamDone, StreamError, StreamRun, Usage
from tokenrelay.events import Event
from tokenrelay.json_text import JSONRejected
from tokenrelay.transports.openai import (
    MessageBuilder,
    OpenAIError,
    OpenAIStreamEncoder,
    completion_object,
    from_terminal,
    model_list,
    model_object,
)

from ..auth import principal_of
from ..body import read_json
from ..channel import StreamChannel, answer_channel
from ..context import Http
from ..errors import openai_response
from ..openai_request import (
    CompletionRequest,
    described_models,
    list_models,
    model_not_found,
    parse_completion_request,
    resolve_model,
)
from .chat import PING

__all__ = ["router"]

TRANSPORT = "openai"


class _Completion:
    """One completion's answer, streaming or not, for a run that is open."""

    def __init__(self, run: StreamRun, completion: CompletionRequest) -> None:
        self.run, self.completion = run, completion
        self.id = f"chatcmpl-{run.stream_id}"
        self.created = int(time.time())
        self.headers = {"X-Stream-Id": run.stream_id}

    def error(self, terminal: StreamError | StreamCancelled) -> Response:
        return openai_response(from_terminal(terminal), self.headers)

    async def chunks(self) -> AsyncIterator[bytes | Response]:
        encoder = OpenAIStreamEncoder(
            self.id, self.created, self.completion.model, include_usage=self.completion.include_usage
        )
        async with self.run.session() as session:
            events = aiter(session)
            await anext(events)  # start
            first = await anext(events)  # hold the status line until the first text or the end
            if isinstance(first, StreamError | StreamCancelled):
                yield self.error(first)
                return
            yield encoder.role()
            data = encoder.encode(first)
            if data:
                yield data
            if not isinstance(first, StreamDone):
                async for event in events:
                    data = encoder.encode(event)
                    if data:
                        yield data

    async def whole(self) -> AsyncIterator[bytes | Response]:
        message = MessageBuilder()
        usage: Usage | None = None
        terminal: Event | None = None
        async with self.run.session() as events:
            async for event in events:
                if isinstance(event, PART_TYPES):
                    message.add(event)
                elif isinstance(event, Usage):
                    usage = event
                elif isinstance(event, StreamDone | StreamError | StreamCancelled):
                    terminal = event
        if isinstance(terminal, StreamError | StreamCancelled):
            yield self.error(terminal)
            return
        assert isinstance(terminal, StreamDone)
        body = completion_object(self.id, self.created, self.completion.model, message.message(), terminal, usage)
        yield JSONResponse(body, headers=self.headers)


async def _json_body(request: Request) -> Any:
    try:
        return await read_json(request)  # 415, 413 and 408 are answered in OpenAI's shape (errors.py)
    except JSONRejected as exc:
        param = None if exc.field == "body" else exc.field
        message = f"We could not parse the JSON body of your request: {exc.message}."
        raise OpenAIError(400, message, param=param, code="invalid_json") from None


def router(http: Http) -> APIRouter:
    settings, docs = http.settings, http.docs
    routes = APIRouter(prefix="/v1")

    @routes.post("/chat/completions", response_class=StreamChannel, openapi_extra=docs.completions())
    async def chat_completions(request: Request) -> StreamChannel:
        completion = parse_completion_request(await _json_body(request), settings)
        run = await http.runs.start(request, completion.chat, TRANSPORT)
        answer = _Completion(run, completion)
        return answer_channel(
            completion.stream,
            answer.chunks() if completion.stream else answer.whole(),
            headers=answer.headers,
            ping=PING,
            ping_s=http.ping_s,
            write_timeout_s=http.write_timeout_s,  # SSE_WRITE_TIMEOUT_S
        )

    @routes.get("/models", response_model=None, openapi_extra=docs.models())
    async def models(request: Request) -> JSONResponse:
        return JSONResponse(model_list(described_models(settings, principal_of(request).allows)))  # the key's only

    @routes.get("/models/{model:path}", response_model=None, openapi_extra=docs.model())
    async def model(request: Request) -> JSONResponse:
        name = request.path_params["model"]
        provider, resolved = resolve_model(name, settings)
        if not principal_of(request).allows(provider, resolved):  # as OpenAI: "...or you do not have access"
            raise model_not_found(name)
        owner = next((owner for model_id, owner in list_models(settings) if model_id == name), "tokenrelay")
        return JSONResponse(model_object(name, owner, settings.capabilities(provider, resolved).as_dict()))

    return routes
