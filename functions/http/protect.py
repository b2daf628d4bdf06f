"""API-key authentication and per-key limits for the HTTP app (docs/security.md).

``AuthMiddleware`` (pure ASGI, so streaming bodies pass untouched) runs before
routing, so every route is protected unless it is on ``OPEN_PATHS``: a route added
later is closed by default. It puts the caller's ``Principal`` in the request state:

    AUTH_MODE=api_key   ``Authorization: Bearer trk_...``; on GET requests only, also
                        ``?access_token=`` (``EventSource`` cannot set headers; a query
                        string may land in access logs, so prefer the header)
                        -> owner = the key id, limits and model list from the key
    AUTH_MODE=off       owner = ``X-Client-Id`` or ``anonymous``; limits
                        ``AUTH_OFF_RPM`` / ``AUTH_OFF_CONCURRENCY`` per owner (0 = none)

A refusal is answered here, before any route runs: 401 with ``WWW-Authenticate:
Bearer`` in TokenRelay's error shape, or in OpenAI's under ``/v1``. ``OPTIONS`` passes
(CORS preflights carry no credentials; no route answers them but CORS).

``Guard.admit`` is what ``start_run`` calls once the request is valid: the key's model
list (403 ``model_not_allowed``), then the rate limits (429 ``rate_limited`` with
``Retry-After``). ``Guard.check_owner`` refuses a cancel or resume of another owner's
stream (403 ``forbidden``). ``Guard.release_soon`` gives a stream's slot back from the
engine's synchronous ``on_end`` hook, on a task whose failure is only logged.

Every refusal (401, 403, 429) goes through the guard, which counts it: the
``Refusals`` metric with its ``Reason`` (``telemetry.metrics.RefusalMetrics``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from openai_wire import OpenAIError
from tokenrelay import (
    LimitExceeded,
    ModelNotAllowed,
    Settings,
    StoreUnavailable,
    TokenRelayError,
    Unauthorized,
    auth,
    limits,
)
from tokenrelay.auth import Authenticator, Principal
from tokenrelay.limits import Lease, Limits, RateLimiter
from tokenrelay.telemetry.metrics import RefusalMetrics

__all__ = ["OPEN_PATHS", "AuthMiddleware", "Forbidden", "Guard", "principal_of"]

log = logging.getLogger("tokenrelay.http.auth")
OPEN_PATHS = ("/", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/demo")
OPEN_PREFIXES = ("/demo/",)
ANONYMOUS = "anonymous"


class Forbidden(TokenRelayError):
    """A cancel or resume of a stream that another API key (or client id) started."""

    status_code = 403
    code = "forbidden"


class Guard:
    """The app's authenticator, rate limiter and refusal counter (each may be absent), made once at start."""

    def __init__(
        self,
        settings: Settings,
        authenticator: Authenticator | None = None,
        limiter: RateLimiter | None = None,
        refusals: RefusalMetrics | None = None,
    ) -> None:
        if settings.auth_enabled and authenticator is None:
            raise ValueError("AUTH_MODE=api_key needs an authenticator")
        self.settings = settings
        self.authenticator = authenticator
        self.limiter = limiter
        self.refusals = refusals
        self.open_limits = Limits(settings.auth_off_rpm, settings.auth_off_concurrency)
        self._releases: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        if not settings.auth_enabled:
            log.warning("AUTH_MODE=off: every route is open to anyone who can reach it")
        refusals = (
            RefusalMetrics(settings.metrics_namespace, settings.service_name) if settings.metrics_enabled else None
        )
        return cls(settings, auth.from_settings(settings), limits.from_settings(settings), refusals)

    def refused(self, exc: Unauthorized | Forbidden | ModelNotAllowed | LimitExceeded) -> None:
        """Count a refusal (the ``Refusals`` metric, ``Reason`` = its code); never raises."""
        if self.refusals is not None:
            self.refusals.emit(exc.code, "http")

    async def principal(self, scope: Scope) -> Principal:
        request = Request(scope)
        if self.authenticator is None:
            return Principal(owner=request.headers.get("x-client-id") or ANONYMOUS, limits=self.open_limits)
        token = bearer_token(request.headers.get("authorization"))
        if token is None and scope.get("method") == "GET":
            token = request.query_params.get("access_token")
        return Principal.of_key(await self.authenticator.authenticate(token))

    async def admit(self, principal: Principal, provider: str, model: str, stream_id: str) -> Lease | None:
        try:
            principal.check_model(provider, model)
            if self.limiter is None or not principal.limits.any:
                return None
            return await self.limiter.admit(principal.owner, principal.limits, stream_id)
        except (ModelNotAllowed, LimitExceeded) as exc:
            self.refused(exc)
            raise

    def check_owner(self, principal: Principal, owner: str, stream_id: str) -> None:
        """403 ``forbidden`` unless ``principal`` owns the stream (cancel, resume)."""
        if owner != principal.owner:
            whose = "API key" if self.settings.auth_enabled else "client"
            exc = Forbidden(f"stream {stream_id!r} belongs to another {whose}")
            self.refused(exc)
            raise exc

    def release_soon(self, lease: Lease | None) -> None:
        """Release ``lease`` without waiting (callable from a synchronous hook on the loop)."""
        if lease is None or self.limiter is None:
            return
        task = asyncio.get_running_loop().create_task(self.limiter.release(lease))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def drain(self) -> None:
        """Wait for the releases under way (shutdown, tests)."""
        while self._releases:
            await asyncio.gather(*list(self._releases), return_exceptions=True)


def bearer_token(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; a header of another scheme counts as absent."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def principal_of(request: Request) -> Principal:
    """The caller, as ``AuthMiddleware`` found them."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):  # a route outside the middleware: never open by mistake
        raise RuntimeError("no principal on this request: is AuthMiddleware installed?")
    return principal


def error_response(exc: TokenRelayError, openai: bool) -> JSONResponse:
    """``exc`` as the route family answers errors, with the headers it calls for."""
    headers: dict[str, str] = dict(getattr(exc, "headers", {}))
    if openai:
        error = OpenAIError.from_relay(exc)
        return JSONResponse(error.body(), status_code=error.status, headers={**error.headers(), **headers})
    body: dict[str, Any] = {"error": exc.message, "code": exc.code}
    if getattr(exc, "retry_after", None) is not None:
        body["retry_after"] = exc.retry_after  # type: ignore[attr-defined]
    if isinstance(exc, StoreUnavailable):  # the key table: nothing was refused for good, try again
        body["retryable"] = True
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or _is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.guard.principal(scope)
        except TokenRelayError as exc:
            if isinstance(exc, Unauthorized):
                self.guard.refused(exc)
            response = error_response(exc, openai=scope["path"].startswith("/v1/"))
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
