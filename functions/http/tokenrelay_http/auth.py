"""Who is calling, over HTTP: ``AuthMiddleware`` asks the guard before any route runs (docs/security.md).

Pure ASGI (streaming bodies pass untouched), before routing, so every route is protected
unless it is on ``OPEN_PATHS``: a route added later is closed by default. It puts the
caller's ``Principal`` in the request state (``principal_of``):

    AUTH_MODE=api_key   ``Authorization: Bearer trk_...``; on GET requests only, also
                        ``?access_token=`` (``EventSource`` cannot set headers; a query
                        string may land in access logs, so prefer the header)
                        -> owner = the key id, limits and model list from the key;
                        on ``/v1/messages`` also ``x-api-key: trk_...`` (what the
                        Anthropic SDKs send), when there is no Bearer token
    AUTH_MODE=off       owner = ``X-Client-Id`` or ``anonymous``; limits
                        ``AUTH_OFF_RPM`` / ``AUTH_OFF_CONCURRENCY`` per owner (0 = none)

A refusal is answered here, before any route runs: 401 with ``WWW-Authenticate:
Bearer`` in TokenRelay's error shape, in OpenAI's under ``/v1``, in Anthropic's on
``/v1/messages``. ``OPTIONS`` passes
(CORS preflights carry no credentials; no route answers them but CORS). What a caller
may do once known (models, limits, owners) is the guard's: ``tokenrelay.protection``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tokenrelay import TokenRelayError
from tokenrelay.protection import Guard, Principal

from .errors import ANTHROPIC_PATH, error_response

__all__ = ["OPEN_PATHS", "AuthMiddleware", "bearer_token", "principal_of"]

OPEN_PATHS = ("/", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/demo")
OPEN_PREFIXES = ("/demo/",)


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


async def _principal(guard: Guard, scope: Scope) -> Principal:
    request = Request(scope)
    if guard.authenticator is None:
        return guard.open_principal(request.headers.get("x-client-id"))
    token = bearer_token(request.headers.get("authorization"))
    if token is None and scope["path"].rstrip("/") == ANTHROPIC_PATH:
        token = request.headers.get("x-api-key", "").strip() or None
    if token is None and scope.get("method") == "GET":
        token = request.query_params.get("access_token")
    return await guard.authenticate(token)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or _is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            principal = await _principal(self.guard, scope)
        except TokenRelayError as exc:  # 401 (counted by the guard), or 503 when the key table is down
            await error_response(exc, scope["path"])(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
