"""TokenRelay HTTP function: SSE streaming over FastAPI (the app factory).

In Lambda this runs under uvicorn behind the Lambda Web Adapter (``run.sh``,
Function URL in RESPONSE_STREAM mode) and, buffered, behind API Gateway through
Mangum (``handler.py``). Locally ``scripts/dev`` serves it with uvicorn.

``create_app`` is the composition root: it wires the stores, providers, guard and
metrics into the routes and owns how a run starts and ends in this process. The
parts live beside it: ``request_body`` (reading a request), ``sse_response`` (writing
a run), ``errors_http`` (error answers), ``protect`` (keys and limits), ``resume_sse``,
``openai_compat`` (``/v1``), ``openapi_doc``, ``body_limit``, ``deadline``, ``dev_extras``, ``home`` (``GET /``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from body_limit import BodyLimitMiddleware
from deadline import remaining_s, stream_deadline_s
from dev_extras import add_dev_extras
from errors_http import add_error_handlers, error_body
from home import add_root
from openai_compat import add_openai_routes
from openai_wire import status_for
from openapi_doc import document_api
from protect import AuthMiddleware, Guard, principal_of
from request_body import json_body, query_body
from resume_sse import ResumeServices, add_resume_routes, lookup_waits
from sse_response import STREAM_HEADERS, SSEStreamResponse, TextStreamResponse, finish_after_reader_left, text_body
from tokenrelay import (
    ChatRequest,
    ProviderRegistry,
    Settings,
    StoreUnavailable,
    StreamError,
    StreamFinished,
    StreamNotFound,
    StreamRun,
    StreamStore,
    TokenRelayError,
    parse_chat_request,
)
from tokenrelay.cancel_poller import CancelPoller
from tokenrelay.limits import Lease
from tokenrelay.outcome import never_started
from tokenrelay.providers.resilient import track_upstream, with_upstream
from tokenrelay.telemetry.logging import bind as bind_log_context
from tokenrelay.telemetry.metrics import CancelPollMetrics, StreamMetrics

log = logging.getLogger("tokenrelay.http")

FINISH_MARGIN_S = 1.0  # a run's last writes end this long before the Lambda invocation does
CONFIRM_MARGIN_S = 1.0
CONFIRM_POLL_S = 0.1  # a cancel on another instance reads the record after 0.1, 0.2, 0.4... s until it ended


def _finish_by_s(request: Request) -> float | None:
    remaining = remaining_s(request.scope)
    return None if remaining is None else max(remaining - FINISH_MARGIN_S, 0.1)


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
    poll_failures = CancelPollMetrics(settings.metrics_namespace, settings.service_name).emit
    poller = (
        CancelPoller(store, settings.cancel_poll_s, poll_failures if settings.metrics_enabled else None)
        if hasattr(store, "watch_many")
        else None
    )
    resume = ResumeServices.from_settings(settings) if settings.resume_enabled else None
    if metrics is None and settings.metrics_enabled:
        metrics = StreamMetrics(settings.metrics_namespace, settings.service_name)

    def on_end(run: StreamRun) -> None:
        runs.pop(run.stream_id, None)
        guard.release_soon(leases.pop(run.stream_id, None))  # however the stream ended
        if metrics is not None:
            metrics.emit(with_upstream(run.summary()))  # called in the run's task: its context has the report

    max_body = settings.max_message_chars * 6 + 16_384  # worst-case JSON escaping, plus fields
    # A cancel's answer waits for the stream's end: its producer sees the flag within a poll or
    # two, closes the upstream and records the end within FINISH_WAIT_S.
    confirm_s = 2 * settings.cancel_poll_s + settings.finish_wait_s + CONFIRM_MARGIN_S

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for run in list(runs.values()):
            run.stop("disconnect")
        await asyncio.gather(*(r.wait() for r in list(runs.values())), return_exceptions=True)
        await guard.drain()
        await registry.aclose()

    app = FastAPI(title="TokenRelay", version=settings.version, lifespan=lifespan)
    # 413 while reading, never after; 408 for a body that does not arrive in time (body_limit.py)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body, read_timeout_s=settings.body_read_timeout_s)
    app.state.settings, app.state.store, app.state.runs = settings, store, runs
    app.state.guard = guard
    app.add_middleware(AuthMiddleware, guard=guard)  # inside CORS (added next), so a 401 carries CORS headers
    add_dev_extras(app, os.environ)  # the demo page and CORS, for scripts/dev only
    add_error_handlers(app)  # TokenRelay's error shape (errors_http.py)

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
            finish_by_s=_finish_by_s(request),  # the last writes of its end, before the invocation's end
        )
        lease = await guard.admit(principal, chat.provider, chat.model, stream_id)  # 403 / 429 before any work
        runs[run.stream_id] = run
        if lease is not None:
            leases[stream_id] = lease
        # Log fields of this request's task and of the tasks run.open() starts (they copy the context).
        bind_log_context(stream_id=run.stream_id, transport=transport, provider=chat.provider, model=chat.model)
        track_upstream()  # retries and fallback of this run's provider stream, for on_end's metrics
        opened_at = time.monotonic()
        try:
            await run.open()
        except BaseException as exc:
            runs.pop(run.stream_id, None)
            guard.release_soon(leases.pop(stream_id, None))
            if isinstance(exc, StoreUnavailable) and metrics is not None:  # a 503: no on_end, so report it here
                metrics.emit(with_upstream(never_started(run.record(), exc.code, time.monotonic() - opened_at)))
            raise
        return run

    def sse_response(run: StreamRun) -> SSEStreamResponse:
        return SSEStreamResponse(run, ping_s=settings.ping_s, write_timeout_s=settings.sse_write_timeout_s)

    @app.post("/chat/stream")
    async def chat_stream(request: Request) -> SSEStreamResponse:
        chat = parse_chat_request(await json_body(request), settings)
        return sse_response(await start_run(request, chat, resumable=True))

    @app.get("/chat/stream")
    async def chat_stream_get(request: Request) -> SSEStreamResponse:
        chat = parse_chat_request(query_body(request), settings)
        return sse_response(await start_run(request, chat, resumable=True))

    @app.post("/chat/stream/{stream_id}/cancel")
    async def cancel_stream(stream_id: str, request: Request) -> JSONResponse:
        """The answer says how the stream ended (docs/faults.md, "Cancel and completion"): 200
        ``cancelled``; 409 with the status it ended with (it finished first); 202 ``cancelling``
        if it has not ended within ``confirm_s`` (DynamoDB or its producer is not answering)."""
        # The record is created concurrently with the first token (engine.open), so a cancel sent
        # the moment `start` arrives can land on another instance before the record exists: an
        # unknown id is looked up again a few times (~3 s in all, as a resume) before it is a 404
        # (at once for an id that is not a uuid4: it was never ours).
        for wait_s in (*lookup_waits(stream_id), None):
            try:
                await cancel_once(stream_id, request)
                break
            except StreamNotFound:
                if wait_s is None:
                    raise
                await asyncio.sleep(wait_s)
        status = await ended_as(stream_id)
        if status == "cancelled":
            return JSONResponse({"status": "cancelled", "stream_id": stream_id})
        if status is None:
            return JSONResponse({"status": "cancelling", "stream_id": stream_id}, status_code=202)
        raise StreamFinished(stream_id, status)  # ended otherwise before the cancel could count

    async def ended_as(stream_id: str) -> str | None:
        """How the stream ended, once it has (None: not within ``confirm_s``)."""
        local = runs.get(stream_id)
        if local is not None:  # same process: stop now instead of at the next poll
            local.stop("client")
            try:
                await asyncio.wait_for(local.ended(), confirm_s)
            except TimeoutError:
                return None
            return local.outcome.status if local.outcome is not None else None
        deadline, delay = time.monotonic() + confirm_s, CONFIRM_POLL_S
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            try:
                record = await store.get(stream_id)
            except StoreUnavailable:
                record = None
            if record is not None and record.status != "active":
                return record.status
            if time.monotonic() >= deadline:
                return None

    async def cancel_once(stream_id: str, request: Request) -> None:
        if settings.auth_enabled:  # only the key that started a stream may cancel it (403 otherwise)
            record = await store.get(stream_id)
            if record is None:
                raise StreamNotFound(stream_id)
            guard.check_owner(principal_of(request), record.owner, stream_id)
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
            body = error_body(first.error, first.code, retryable=first.retryable)
            return JSONResponse(body, status_code=status_for(first.code))  # as /v1 answers it (openai_wire)
        return TextStreamResponse(
            text_body(run, first, events),
            write_timeout_s=settings.sse_write_timeout_s,
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
            "auth": settings.auth_mode,  # api_key: the stream routes need a key (a client can say so up front)
            "dependencies": {"dynamodb": dynamodb},
        }

    add_root(app, settings)  # GET /: the demo page locally, a small index elsewhere (home.py)

    add_openai_routes(app, settings, start_run=start_run, finish_run=finish_after_reader_left)
    document_api(app, settings)  # request bodies, errors and /v1 in /openapi.json (openapi_doc.py)
    if resume is not None:
        add_resume_routes(
            app, settings, store=store, output_log=resume.log, attachments=resume.attachments, guard=guard
        )
    return app
