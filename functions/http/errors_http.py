"""TokenRelay's error answers over HTTP (``{"error", "code", ...}``), outside ``/v1``.

``add_error_handlers`` turns every exception a route raises on purpose into one:

    TokenRelayError          its status; ``field`` (400/403), ``status`` (409), ``retry_after``
                             (429, with ``Retry-After``), ``retryable`` (503 store_unavailable),
                             ``WWW-Authenticate`` (401)
    ApiError                 an HTTP-only refusal (415 unsupported_media_type)
    RequestValidationError   422 naming the field
    HTTPException            404 not_found, 405 method_not_allowed (``Allow``: every method of
                             the path), 413 and 408 (body_limit.py); under ``/v1/`` in OpenAI's shape

``/v1`` routes answer their own errors in OpenAI's shape (``openai_compat``); the
401 of a missing key is answered before routing (``protect.AuthMiddleware``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from body_limit import BodyRefused
from openai_wire import OpenAIError
from tokenrelay import LimitExceeded, ModelNotAllowed, RequestInvalid, StoreUnavailable, TokenRelayError

__all__ = ["ApiError", "add_error_handlers", "error_body"]


class ApiError(Exception):
    """A refusal that only HTTP has (415 unsupported_media_type), so not in the core's error tree."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"error": message, "code": code, **extra}


def add_error_handlers(app: FastAPI) -> None:
    """Answer ``app``'s errors in TokenRelay's shape (see the module docstring)."""

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
        if isinstance(exc, StoreUnavailable):
            extra["retryable"] = True  # as the WebSocket's error says: nothing started, try again
        headers = getattr(exc, "headers", None)  # Retry-After, WWW-Authenticate
        body = error_body(exc.message, exc.code, **extra)
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.code), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"][1:]) or "request"
        return JSONResponse(error_body(f"{field}: {err['msg']}", "invalid_request", field=field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, BodyRefused):  # 413 too large, 408 too slow (body_limit.py)
            return exc.response(openai=False)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route that matched it
            headers["Allow"] = ", ".join(_allowed_methods(app, request.url.path))
        if request.url.path.startswith("/v1/"):  # a path the /v1 mount cannot match still answers in its shape
            error = OpenAIError(exc.status_code, str(exc.detail), code=code)
            return JSONResponse(error.body(), status_code=exc.status_code, headers={**headers, **error.headers()})
        return JSONResponse(error_body(str(exc.detail), code), status_code=exc.status_code, headers=headers)


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        regex, allowed = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and allowed and regex.match(path):
            methods |= allowed
    return sorted(methods)
