"""TokenRelay HTTP function: SSE streaming over FastAPI (the app factory).

In Lambda this runs under uvicorn behind the Lambda Web Adapter (``run.sh``,
Function URL in RESPONSE_STREAM mode) and, buffered, behind API Gateway through
Mangum (``handler.py``). Locally ``scripts/dev`` serves it with uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from body_limit import BodyLimitMiddleware, BodyTooLarge, too_large
from deadline import stream_deadline_s
from openai_compat import add_openai_routes
from openai_wire import OpenAIError
from openapi_doc import document_api
from protect import AuthMiddleware, Guard, principal_of
from resume_sse import Forbidden, ResumeServices, add_resume_routes
from tokenrelay import (
    ChatRequest,
    Event,
    LimitExceeded,
    ModelNotAllowed,
    ProviderRegistry,
    RequestInvalid,
    Settings,
    StreamError,
    StreamNotFound,
    StreamRun,
    StreamStore,
    TextDelta,
    TokenRelayError,
    encode_comment,
    encode_sse,
    parse_chat_request,
)
from tokenrelay.cancel_poller import CancelPoller
from tokenrelay.json_text import JSONRejected, loads_strict
from tokenrelay.limits import Lease
from tokenrelay.providers.resilient import track_upstream, with_upstream
from tokenrelay.telemetry.logging import bind as bind_log_context
from tokenrelay.telemetry.metrics import StreamMetrics

log = logging.getLogger("tokenrelay.http")

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
QUERY_FIELDS: Mapping[str, type] = {
    "message": str,
    "system": str,
    "provider": str,
    "model": str,
    "max_tokens": int,
    "temperature": float,
}
CLEANUP_TIMEOUT_S = 10.0
CANCEL_LOOKUP_WAITS_S = (0.05, 0.15, 0.3)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error_body(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"error": message, "code": code, **extra}


def create_app(
    settings: Settings | None = None,
    store: StreamStore | None = None,
    providers: ProviderRegistry | None = None,
    metrics: StreamMetrics | None = None,
    guard: Guard | None = None,
) -> FastAPI:
    settings = settings or Settings.from_env()
    guard = guard or Guard.from_settings(settings)  # API keys and rate limits (protect.py)
    leases: dict[str, Lease] = {}  # concurrency slots of this process's streams, released on end
    if store is None:
        from tokenrelay.stores.dynamodb import DynamoStreamStore

        store = DynamoStreamStore(settings.streams_table)
    registry = providers or ProviderRegistry(settings)
    runs: dict[str, StreamRun] = {}  # streams produced by this process: a cache, not the truth
    # One cancel watcher for all of this process's streams (a batched read per poll), when the store can.
    poller = CancelPoller(store, settings.cancel_poll_s) if hasattr(store, "watch_many") else None
    resume = ResumeServices.from_settings(settings) if settings.resume_enabled else None
    if metrics is None and settings.metrics_enabled:
        metrics = StreamMetrics(settings.metrics_namespace, settings.service_name)

    def on_end(run: StreamRun) -> None:
        runs.pop(run.stream_id, None)
        guard.release_soon(leases.pop(run.stream_id, None))  # however the stream ended
        if metrics is not None:
            metrics.emit(with_upstream(run.summary()))  # called in the run's task: its context has the report

    max_body = settings.max_message_chars * 6 + 16_384  # worst-case JSON escaping, plus fields

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for run in list(runs.values()):
            run.stop("disconnect")
        await asyncio.gather(*(r.wait() for r in list(runs.values())), return_exceptions=True)
        await guard.drain()
        await registry.aclose()

    app = FastAPI(title="TokenRelay", version=settings.version, lifespan=lifespan)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body)  # 413 while reading, never after (body_limit.py)
    app.state.settings, app.state.store, app.state.runs = settings, store, runs
    app.state.guard = guard
    app.add_middleware(AuthMiddleware, guard=guard)  # inside CORS (added next), so a 401 carries CORS headers
    _add_dev_extras(app, os.environ)

    @app.exception_handler(TokenRelayError)
    async def _relay_error(_: Request, exc: TokenRelayError) -> JSONResponse:
        extra: dict[str, Any] = {}
        if isinstance(exc, RequestInvalid | ModelNotAllowed):
            extra["field"] = exc.field
        status = getattr(exc, "status", None)
        if isinstance(status, str):
            extra["status"] = status
        if isinstance(exc, LimitExceeded):
            extra["retry_after"] = exc.retry_after
        headers = getattr(exc, "headers", None)  # Retry-After, WWW-Authenticate
        body = _error_body(exc.message, exc.code, **extra)
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_error_body(exc.message, exc.code), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"][1:]) or "request"
        return JSONResponse(_error_body(f"{field}: {err['msg']}", "invalid_request", field=field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, BodyTooLarge):
            return too_large(exc.limit, openai=False)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route that matched it
            headers["Allow"] = ", ".join(_allowed_methods(app, request.url.path))
        if request.url.path.startswith("/v1/"):  # a path the /v1 mount cannot match still answers in its shape
            error = OpenAIError(exc.status_code, str(exc.detail), code=code)
            return JSONResponse(error.body(), status_code=exc.status_code, headers={**headers, **error.headers()})
        return JSONResponse(_error_body(str(exc.detail), code), status_code=exc.status_code, headers=headers)

    async def json_body(request: Request) -> Any:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(415, "unsupported_media_type", "content-type: expected application/json")
        raw = await request.body()  # BodyTooLarge (413) past max_body bytes: BodyLimitMiddleware counts them
        try:
            return loads_strict(raw)
        except JSONRejected as exc:
            raise RequestInvalid(exc.field, exc.message) from None

    async def start_run(
        request: Request, chat: ChatRequest, transport: str = "sse", resumable: bool = False
    ) -> StreamRun:
        stream_id = str(uuid.uuid4())
        principal = principal_of(request)
        if not principal.may_fall_back(settings.fallback_model):
            chat = replace(chat, fallback=False)
        run = StreamRun(
            chat,
            stream_id=stream_id,
            owner=principal.owner,
            transport=transport,
            provider=registry.get(chat.provider),
            store=store,
            settings=settings,
            on_end=on_end,
            resume=resume.for_stream(stream_id) if resume is not None and resumable else None,
            poller=poller,
            deadline_s=stream_deadline_s(request.scope, settings.deadline_margin_s),  # Lambda's, less a margin
        )
        lease = await guard.admit(principal, chat.provider, chat.model, stream_id)  # 403 / 429 before any work
        runs[run.stream_id] = run
        if lease is not None:
            leases[stream_id] = lease
        # Log fields of this request's task and of the tasks run.open() starts (they copy the context).
        bind_log_context(stream_id=run.stream_id, transport=transport, provider=chat.provider, model=chat.model)
        track_upstream()  # retries and fallback of this run's provider stream, for on_end's metrics
        try:
            await run.open()
        except BaseException:
            runs.pop(run.stream_id, None)
            guard.release_soon(leases.pop(stream_id, None))
            raise
        return run

    def sse_response(run: StreamRun) -> SSEStreamResponse:
        return SSEStreamResponse(run, ping_s=settings.ping_s)

    @app.post("/chat/stream")
    async def chat_stream(request: Request) -> SSEStreamResponse:
        chat = parse_chat_request(await json_body(request), settings)
        return sse_response(await start_run(request, chat, resumable=True))

    @app.get("/chat/stream")
    async def chat_stream_get(request: Request) -> SSEStreamResponse:
        chat = parse_chat_request(_query_body(request), settings)
        return sse_response(await start_run(request, chat, resumable=True))

    @app.post("/chat/stream/{stream_id}/cancel")
    async def cancel_stream(stream_id: str, request: Request) -> dict[str, str]:
        # The record is created concurrently with the first token (engine.open), so a cancel sent
        # the moment `start` arrives can land on another instance before the record exists: an
        # unknown id is looked up again a few times (~0.5 s in all) before it is a 404.
        for wait_s in (*CANCEL_LOOKUP_WAITS_S, None):
            try:
                await cancel_once(stream_id, request)
                break
            except StreamNotFound:
                if wait_s is None:
                    raise
                await asyncio.sleep(wait_s)
        local = runs.get(stream_id)
        if local is not None:  # same process: stop now instead of at the next poll
            local.stop("client")
        return {"status": "cancelled", "stream_id": stream_id}

    async def cancel_once(stream_id: str, request: Request) -> None:
        if settings.auth_enabled:  # only the key that started a stream may cancel it (403 otherwise)
            record = await store.get(stream_id)
            if record is None:
                raise StreamNotFound(stream_id)
            if record.owner != principal_of(request).owner:
                raise Forbidden(f"stream {stream_id!r} belongs to another API key")
        await store.request_cancel(stream_id, "client")

    @app.post("/chat/stream-simple", response_model=None)
    async def chat_stream_simple(request: Request) -> StreamingResponse | JSONResponse:
        chat = parse_chat_request(await json_body(request), settings)
        run = await start_run(request, chat)
        events = run.events()
        await anext(events)  # start
        first = await anext(events)  # hold the status line until the first text or the end
        if isinstance(first, StreamError):  # failed before any text: a real HTTP status
            await events.aclose()
            status = {"rate_limited": 429, "upstream_rejected": 502}.get(first.code, 503)
            body = _error_body(first.error, first.code, retryable=first.retryable)
            return JSONResponse(body, status_code=status)
        return StreamingResponse(
            _text_body(run, first, events),
            media_type="text/plain; charset=utf-8",
            headers={**STREAM_HEADERS, "X-Stream-Id": run.stream_id},
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        try:
            await asyncio.wait_for(store.get("__health__"), timeout=3.0)
            dynamodb = "ok"
        except (TimeoutError, TokenRelayError) as exc:
            dynamodb = f"unavailable: {type(exc).__name__}"
        return {
            "status": "ok" if dynamodb == "ok" else "degraded",
            "version": settings.version,
            "providers": sorted(settings.configured_providers & set(settings.allowed_models)),
            "default_provider": settings.default_provider,
            "dependencies": {"dynamodb": dynamodb},
        }

    add_openai_routes(app, settings, start_run=start_run, finish_run=_finish_after_reader_left)
    document_api(app, settings)  # request bodies, errors and /v1 in /openapi.json (openapi_doc.py)
    if resume is not None:
        add_resume_routes(app, settings, store=store, output_log=resume.log, attachments=resume.attachments)
    return app


def _add_dev_extras(app: FastAPI, env: Mapping[str, str]) -> None:
    """Local development only (scripts/dev sets these; Lambda does not).

    ``DEMO_DIR`` serves the built demo page (web/dist) at /demo/. ``CORS_ALLOW_ORIGINS``
    (comma-separated) adds CORS with the Function URL's policy; never set it in Lambda,
    where the Function URL adds CORS itself and doubled headers make browsers refuse.
    """
    demo_dir = env.get("DEMO_DIR")
    if demo_dir:
        from starlette.staticfiles import StaticFiles

        app.mount("/demo", StaticFiles(directory=demo_dir, html=True), name="demo")
    origins = [o.strip() for o in env.get("CORS_ALLOW_ORIGINS", "").split(",") if o.strip()]
    if origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "last-event-id", "authorization", "x-client-id"],
            expose_headers=["x-stream-id", "retry-after"],
            max_age=600,
        )


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        regex, allowed = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and allowed and regex.match(path):
            methods |= allowed
    return sorted(methods)


def _query_body(request: Request) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key == "access_token":  # the API key, for EventSource (protect.py), not a request field
            continue
        kind = QUERY_FIELDS.get(key)
        if kind is None:
            hint = "; send 'messages' with POST" if key == "messages" else ""
            raise RequestInvalid(key, f"unknown query parameter{hint}")
        if key in body:
            raise RequestInvalid(key, "given more than once")
        try:
            body[key] = kind(value)
        except ValueError:
            raise RequestInvalid(key, f"expected {'an integer' if kind is int else 'a number'}") from None
    return body


async def _finish_after_reader_left(run: StreamRun) -> None:
    """The reader went away: stop the stream and wait for its terminal record."""
    if run.done or run.detach():  # detach: a resumable run keeps generating for its grace period
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT_S):
        await run.wait()


class SSEStreamResponse(Response):
    """The SSE body of one run, straight onto the ASGI connection.

    Replaces sse-starlette's ``EventSourceResponse`` on the hot path (measured by
    ``scripts/bench``): one ``send`` per *batch* of queued events rather than one
    per event, no cancel scope per send, no per-event string/bytes conversion.
    What it keeps: a ``: ping`` comment after ``ping_s`` without a write, and a
    listener for ``http.disconnect`` (never a per-token ``is_disconnected()``)
    that stops the run as ``disconnect``. However the body ends (done, client
    gone, send failed, task cancelled), ``_finish_after_reader_left`` runs: the
    run's single terminal path closes the upstream and writes the record.
    """

    media_type = "text/event-stream"
    charset = "utf-8"

    def __init__(self, run: StreamRun, ping_s: float) -> None:
        self.run = run
        self.ping_s = ping_s
        self.status_code = 200
        self.background = None
        self.init_headers({**STREAM_HEADERS, "Connection": "keep-alive", "X-Stream-Id": run.stream_id})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        run = self.run
        loop = asyncio.get_running_loop()
        lock = asyncio.Lock()
        last_write = loop.time()

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            run.detach()

        async def ping() -> None:
            nonlocal last_write
            while True:
                await asyncio.sleep(max(last_write + self.ping_s - loop.time(), 0.01))
                if loop.time() - last_write >= self.ping_s:
                    async with lock:
                        await send({"type": "http.response.body", "body": _PING, "more_body": True})
                        last_write = loop.time()

        helpers = [asyncio.create_task(listen())]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            helpers.append(asyncio.create_task(ping()))
            async with aclosing(run.batches()) as batches:
                async for batch in batches:
                    if len(batch) == 1:
                        body = encode_sse(batch[0])
                    else:
                        body = b"".join([encode_sse(event) for event in batch])
                    async with lock:
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                        last_write = loop.time()
                    for event in reversed(batch):
                        if type(event) is TextDelta:
                            run.delivered = event.seq
                            break
                    if run.client_gone:
                        break
            if not run.client_gone:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client went away mid-send (ASGI 2.4 servers raise it)
            run.detach()
        finally:
            for task in helpers:
                task.cancel()
            await _finish_after_reader_left(run)


_PING = encode_comment("ping")


async def _text_body(run: StreamRun, first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    try:
        if isinstance(first, TextDelta):
            yield first.text.encode()
            run.delivered = first.seq
        async for event in rest:
            if isinstance(event, TextDelta):
                yield event.text.encode()
                run.delivered = event.seq
    finally:
        await _finish_after_reader_left(run)
