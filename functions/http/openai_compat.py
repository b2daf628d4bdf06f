"""OpenAI-compatible API (PROTOCOL section 6), mounted at ``/v1`` by ``create_app``.

    POST /v1/chat/completions    streaming (``chat.completion.chunk`` SSE) or not (``chat.completion``)
    GET  /v1/models              what this deployment serves: provider/model ids, then aliases
                                 (with API keys: only what the caller's key may use)
    GET  /v1/models/{model}      one of them, or 404 model_not_found (also for a model the key may not use)

Each completion is a ``StreamRun`` started by ``api.py``'s own ``start_run``, with
transport ``openai``: same request limits, state record, ``X-Stream-Id`` header,
cancellation (``POST /chat/stream/{id}/cancel``) and disconnect handling as
``/chat/stream``. The request is translated in ``openai_request``, events are
encoded in ``openai_wire`` (pure); this module only moves them.

The routes are a separate Starlette app so that every error under ``/v1``, a 404
or 405 included, comes in OpenAI's shape rather than TokenRelay's.

Status line: a streaming response holds it until the first event after ``start``
(as ``/chat/stream-simple`` does), so an upstream failure before any text is a
real HTTP status (a 429 becomes the SDKs' ``RateLimitError``); after that, a
failure is an in-band error frame (see ``openai_wire``). A non-streaming response
waits for the end, so every failure is a status. While the status is held, a
client that disconnects stops the run (``disconnect``), as it does mid-stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, cast

from fastapi import FastAPI
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from body_limit import BodyRefused
from openai_request import CompletionRequest, list_models, model_not_found, parse_completion_request, resolve_model
from openai_wire import OpenAIError, OpenAIStreamEncoder, completion_object, from_terminal, model_list, model_object
from protect import principal_of
from tokenrelay import (
    ChatRequest,
    Event,
    Settings,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamRun,
    TextDelta,
    TokenRelayError,
    Usage,
)
from tokenrelay.json_text import JSONRejected, loads_strict

__all__ = ["add_openai_routes"]

StartRun = Callable[[Request, ChatRequest, str], Awaitable[StreamRun]]
FinishRun = Callable[[StreamRun], Awaitable[None]]
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
TRANSPORT = "openai"


def add_openai_routes(app: FastAPI, settings: Settings, *, start_run: StartRun, finish_run: FinishRun) -> None:
    """Mount ``/v1`` on ``app``; ``start_run``/``finish_run`` are the app's own helpers."""

    async def chat_completions(request: Request) -> Response:
        completion = parse_completion_request(await _json_body(request), settings)
        run = await start_run(request, completion.chat, TRANSPORT)
        answer = _Answer(run, completion, finish_run)
        watcher = asyncio.create_task(_stop_on_disconnect(request, run))
        try:
            if completion.stream:
                return await answer.stream(settings.ping_s, settings.sse_write_timeout_s)
            return await answer.complete()
        except BaseException:
            await finish_run(run)
            raise
        finally:
            watcher.cancel()

    async def models(request: Request) -> Response:
        return JSONResponse(model_list(list_models(settings, principal_of(request).allows)))  # the key's only

    async def model(request: Request) -> Response:
        name = request.path_params["model"]
        provider, resolved = resolve_model(name, settings)
        if not principal_of(request).allows(provider, resolved):  # as OpenAI: "...or you do not have access"
            raise model_not_found(name)
        owner = next((owner for model_id, owner in list_models(settings) if model_id == name), "tokenrelay")
        return JSONResponse(model_object(name, owner))

    routes = [
        Route("/chat/completions", chat_completions, methods=["POST"]),
        Route("/models", models, methods=["GET"]),
        Route("/models/{model:path}", model, methods=["GET"]),
    ]
    handlers: dict[Any, Callable[[Request, Any], Awaitable[Response]]] = {
        OpenAIError: _openai_error,
        TokenRelayError: _relay_error,
        HTTPException: _http_error,
        Exception: _internal_error,
    }
    app.mount("/v1", Starlette(routes=routes, exception_handlers=handlers))


class _Answer:
    """One completion's response, streaming or not, for a run that is open."""

    def __init__(self, run: StreamRun, completion: CompletionRequest, finish_run: FinishRun) -> None:
        self.run, self.completion, self.finish_run = run, completion, finish_run
        self.id = f"chatcmpl-{run.stream_id}"
        self.created = int(time.time())
        self.headers = {"X-Stream-Id": run.stream_id}

    def _error(self, terminal: StreamError | StreamCancelled) -> JSONResponse:
        return _respond(from_terminal(terminal), self.headers)

    async def stream(self, ping_s: float, write_timeout_s: float) -> Response:
        events = _events(self.run)
        await anext(events)  # start
        first = await anext(events)  # hold the status line until the first text or the end
        if isinstance(first, StreamError | StreamCancelled):
            await events.aclose()
            return self._error(first)
        encoder = OpenAIStreamEncoder(
            self.id, self.created, self.completion.model, include_usage=self.completion.include_usage
        )
        return EventSourceResponse(
            self._body(encoder, first, events),
            headers={**STREAM_HEADERS, **self.headers},
            ping=ping_s,
            send_timeout=write_timeout_s,  # a client that takes no bytes is let go (SSE_WRITE_TIMEOUT_S)
            ping_message_factory=lambda: ServerSentEvent(comment="ping"),
        )

    async def _body(
        self, encoder: OpenAIStreamEncoder, first: Event, rest: AsyncGenerator[Event, None]
    ) -> AsyncIterator[bytes]:
        try:
            async with aclosing(rest) as events:
                yield encoder.role()
                data = encoder.encode(first)
                if data:
                    yield data
                async for event in events:
                    data = encoder.encode(event)
                    if data:
                        yield data
        finally:
            await self.finish_run(self.run)

    async def complete(self) -> Response:
        parts: list[str] = []
        usage: Usage | None = None
        terminal: Event | None = None
        async with aclosing(_events(self.run)) as events:
            async for event in events:
                if type(event) is TextDelta:
                    parts.append(event.text)
                elif isinstance(event, Usage):
                    usage = event
                elif isinstance(event, StreamDone | StreamError | StreamCancelled):
                    terminal = event
        if isinstance(terminal, StreamError | StreamCancelled):
            return self._error(terminal)
        assert isinstance(terminal, StreamDone)
        body = completion_object(self.id, self.created, self.completion.model, "".join(parts), terminal, usage)
        return JSONResponse(body, headers=self.headers)


def _events(run: StreamRun) -> AsyncGenerator[Event, None]:
    return cast(AsyncGenerator[Event, None], run.events())  # an async generator, typed as an iterator


async def _stop_on_disconnect(request: Request, run: StreamRun) -> None:
    """Until cancelled: a client that goes away while the response is held stops the run."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    run.stop("disconnect")


async def _json_body(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise OpenAIError(415, "content-type: expected application/json", code="unsupported_media_type")
    raw = await request.body()  # 413 past the cap, 408 too slow: the app's BodyLimitMiddleware
    try:
        return loads_strict(raw)
    except JSONRejected as exc:
        param = None if exc.field == "body" else exc.field
        message = f"We could not parse the JSON body of your request: {exc.message}."
        raise OpenAIError(400, message, param=param, code="invalid_json") from None


def _respond(error: OpenAIError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers={**error.headers(), **(headers or {})})


async def _openai_error(_: Request, exc: OpenAIError) -> Response:
    return _respond(exc)


async def _relay_error(_: Request, exc: TokenRelayError) -> Response:
    return _respond(OpenAIError.from_relay(exc), getattr(exc, "headers", None))  # Retry-After, WWW-Authenticate


async def _http_error(_: Request, exc: HTTPException) -> Response:
    if isinstance(exc, BodyRefused):  # the app's body cap and read timeout (body_limit.py)
        return exc.response(openai=True)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _respond(OpenAIError(exc.status_code, str(exc.detail), code=code), dict(exc.headers or {}))


async def _internal_error(_: Request, exc: Exception) -> Response:
    return _respond(OpenAIError(500, "internal error", type="server_error", code="internal_error"))
