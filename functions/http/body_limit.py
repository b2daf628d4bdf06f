"""The request body cap, enforced while the body is read (pure ASGI middleware).

``BodyLimitMiddleware`` refuses a request whose ``Content-Length`` is over the
cap before reading any of it, and counts the bytes of every other body as they
arrive (chunked uploads included), so no more than the cap plus one chunk is
ever held. Past the cap the route's ``receive`` raises ``BodyTooLarge``, a 413
``HTTPException``: the app's handlers answer it in their own shape (TokenRelay's
under ``/chat``, OpenAI's under ``/v1``), both through ``too_large``.

Why not Starlette's ``RequestBodyLimitMiddleware`` (FastAPI's ``max_body_size``):
with a declared length over the cap it replaces whatever the app answers with a
plain-text ``Content Too Large``, and TokenRelay's errors are always JSON.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openai_wire import OpenAIError

__all__ = ["BodyLimitMiddleware", "BodyTooLarge", "too_large"]


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: larger than {limit} bytes")
        self.limit = limit


def too_large(limit: int, *, openai: bool) -> JSONResponse:
    """The 413 answer, naming the limit: TokenRelay's error shape, or OpenAI's."""
    if openai:
        error = OpenAIError(413, f"The request body is larger than {limit} bytes.", code="payload_too_large")
        return JSONResponse(error.body(), status_code=413, headers=error.headers())
    body = {"error": f"body: larger than {limit} bytes", "code": "payload_too_large", "limit": limit}
    return JSONResponse(body, status_code=413)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, openai_prefix: str = "/v1/") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.openai_prefix = openai_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            response = too_large(self.max_bytes, openai=str(scope["path"]).startswith(self.openai_prefix))
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None
