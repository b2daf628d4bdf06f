"""Error answers over HTTP: one handler per kind of exception, one renderer per route family.

    /v1/messages   Anthropic's      ``transports.anthropic.anthropic_error`` (``x-should-retry``)
    under /v1/     OpenAI's shape   ``transports.openai.openai_error`` (``x-should-retry``)
    anywhere else  TokenRelay's     ``transports.sse.error_body``: ``{"error", "code", ...fields}``

What each route may raise, and so what each handler answers:

    TokenRelayError          its status, code, fields and headers (errors.py draws the tree)
    OpenAIError              ``/v1``'s own refusals, already in OpenAI's words
    AnthropicError           ``/v1/messages``' own refusals, already in Anthropic's words
    RequestValidationError   422 ``invalid_request`` naming the field (a path or query type)
    HTTPException            404 ``not_found``; 405 ``method_not_allowed`` with ``Allow``: every
                             method of the path, not only those of the first route that matched
    anything else            500 ``internal_error``: a bug, never a stack trace

The same ``error_response`` answers the refusals made before routing (``auth.AuthMiddleware``,
``body.BodyLimitMiddleware``), so a 401 or a 413 under ``/v1`` is in OpenAI's shape too.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import Scope

from tokenrelay.errors import MethodNotAllowed, NotFound, RequestInvalid, TokenRelayError
from tokenrelay.transports.anthropic import AnthropicError, anthropic_error
from tokenrelay.transports.openai import OpenAIError, openai_error
from tokenrelay.transports.sse import error_body

__all__ = [
    "ANTHROPIC_PATH",
    "OPENAI_PREFIX",
    "add_error_handlers",
    "anthropic_response",
    "error_response",
    "openai_response",
]

OPENAI_PREFIX = "/v1/"
ANTHROPIC_PATH = "/v1/messages"
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def openai_response(error: OpenAIError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers={**error.headers(), **(headers or {})})


def anthropic_response(error: AnthropicError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers={**error.headers(), **(headers or {})})


def error_response(exc: TokenRelayError, path: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """``exc`` answered as the route family of ``path`` answers errors, with the headers it calls
    for (``Retry-After``, ``WWW-Authenticate``, ``Connection: close``) and ``headers``."""
    extra = {**exc.headers, **(headers or {})}
    if path.rstrip("/") == ANTHROPIC_PATH:
        return anthropic_response(anthropic_error(exc), extra)
    if path.startswith(OPENAI_PREFIX):
        return openai_response(openai_error(exc), extra)
    return JSONResponse(error_body(exc), status_code=exc.status_code, headers=extra)


def add_error_handlers(app: FastAPI) -> None:
    """Answer ``app``'s errors as the module docstring says."""

    async def relay_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TokenRelayError)
        return error_response(exc, request.url.path)

    async def openai_refusal(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpenAIError)
        return openai_response(exc)

    async def anthropic_refusal(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, AnthropicError)
        return anthropic_response(exc)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"][1:]) or "request"
        invalid = RequestInvalid(field, str(err["msg"]))
        response = error_response(invalid, request.url.path)
        response.status_code = 422
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(app, request.scope))
        refusal = MethodNotAllowed(str(exc.detail)) if exc.status_code == 405 else NotFound(str(exc.detail))
        refusal.status_code = exc.status_code  # 404 and 405 are all Starlette's routing raises
        return error_response(refusal, request.url.path, headers)

    async def internal_error(request: Request, exc: Exception) -> Response:
        return error_response(TokenRelayError("internal error"), request.url.path)

    app.add_exception_handler(TokenRelayError, relay_error)
    app.add_exception_handler(OpenAIError, openai_refusal)
    app.add_exception_handler(AnthropicError, anthropic_refusal)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)


def _allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route answers on this path (each route asked, as routing asks it)."""
    return [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in app.router.routes)
    ]
