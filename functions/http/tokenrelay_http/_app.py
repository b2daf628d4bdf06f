"""TokenRelay's HTTP function: the app factory (SSE over FastAPI, and OpenAI's ``/v1``).

In Lambda this runs under uvicorn behind the Lambda Web Adapter (``run.sh``, Function URL
in RESPONSE_STREAM mode) and, buffered, behind API Gateway through Mangum (``handler.py``).
Locally ``scripts/dev`` serves it with uvicorn.

``create_app`` composes the app: the deployment's stores, guard and metrics
(``tokenrelay.wiring``, or the parts a test gives), this process's runs (``runs.py``), the
middleware (body cap, keys, CORS for scripts/dev), the error handlers (``errors.py``) and
the routers (``routers/``), each of which documents itself in ``/openapi.json``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from tokenrelay import ProviderRegistry, Settings, StreamServices, StreamStore
from tokenrelay.protection import Guard
from tokenrelay.stores import BatchWatchStore
from tokenrelay.stream import CancelPoller
from tokenrelay.telemetry.metrics import CancelPollMetrics, StreamMetrics
from tokenrelay.wiring import Deployment

from .auth import AuthMiddleware
from .body import BodyLimitMiddleware
from .context import Http
from .errors import add_error_handlers
from .openapi import Operations
from .routers import ai_sdk, anthropic, chat, dev, home, openai, resume
from .runs import Runs
from .snapstart import RestoreHookMiddleware

LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024  # a Function URL's (and Lambda's) request payload limit

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    store: StreamStore | None = None,
    providers: ProviderRegistry | None = None,
    metrics: StreamMetrics | None = None,
    guard: Guard | None = None,
) -> FastAPI:
    """The app for ``settings`` (default: the environment's); any part given replaces the deployment's."""
    settings = settings or Settings.from_env()
    deployment = Deployment.from_settings(settings, transport="http", store=store, guard=guard, metrics=metrics)
    store = deployment.store
    # One cancel watcher for all of this process's streams (a batched read per poll), when the store can.
    poller = None
    if isinstance(store, BatchWatchStore):
        on_failure = CancelPollMetrics(settings.metrics_namespace, settings.service_name).emit
        poller = CancelPoller(store, settings.cancel_poll_s, on_failure if settings.metrics_enabled else None)
    services = StreamServices(settings, store, poller=poller, metrics=deployment.metrics)
    runs = Runs(services, providers or ProviderRegistry(settings), deployment.guard, deployment.resume)
    http = Http(settings, store, deployment.guard, runs, deployment.resume, Operations(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await runs.shutdown()

    app = FastAPI(title="TokenRelay", version=settings.version, lifespan=lifespan)
    max_body = settings.max_message_chars * 6 + 16_384  # worst-case JSON escaping, plus fields
    if settings.max_image_bytes > 0:  # images travel as base64 in the body: up to the Function URL's payload limit
        max_body = max(max_body, LAMBDA_PAYLOAD_BYTES)
    # 413 while reading, never after; 408 for a body that does not arrive in time (body.py)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body, read_timeout_s=settings.body_read_timeout_s)
    app.add_middleware(AuthMiddleware, guard=deployment.guard)  # inside CORS (added next): a 401 carries CORS
    dev.add_dev_extras(app, os.environ)  # the demo page and CORS, for scripts/dev only
    if restore_path := os.environ.get("AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"):  # the Web Adapter's, under SnapStart
        app.add_middleware(RestoreHookMiddleware, path=restore_path)  # outermost: before keys and body limits
    add_error_handlers(app)
    include(app, home.router(settings))  # GET /: the demo page locally, a small index elsewhere
    include(app, chat.router(http))
    if deployment.resume is not None:
        include(app, resume.router(http, deployment.resume))
    include(app, openai.router(http))
    include(app, anthropic.router(http))
    include(app, ai_sdk.router(http))
    return app


def include(app: FastAPI, router: APIRouter) -> None:
    """``router``'s routes, as routes of ``app`` itself. ``app.include_router`` would nest the
    router in FastAPI's private ``_IncludedRouter``, which nothing that walks ``app.routes``
    (the local HTTP API's route check, the tests) can see into; these routers need nothing of
    an include (no prefix, dependencies or tags at the include): their routes are complete."""
    app.router.routes.extend(router.routes)
