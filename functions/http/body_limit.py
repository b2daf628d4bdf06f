"""The request body's size cap and read timeout, enforced while the body is read (pure ASGI).

``BodyLimitMiddleware`` refuses a request whose ``Content-Length`` is over the cap
before reading any of it, and counts the bytes of every other body as they arrive
(chunked uploads included), so no more than the cap plus one chunk is ever held.
Past the cap the route's ``receive`` raises ``BodyTooLarge`` (413). The whole body
must also arrive within ``read_timeout_s`` (``BODY_READ_TIMEOUT_S``) of the app
starting on the request: a client that sends a byte a second, or fewer bytes than
its ``Content-Length``, gets ``BodyTimeout`` (408, ``Connection: close``) instead of
holding the connection for ever. Once the body is complete, ``receive`` is the
server's own again (a streaming route waits on it for ``http.disconnect``).

Both are ``HTTPException``s that the app's handlers answer in their own shape
(TokenRelay's under ``/chat``, OpenAI's under ``/v1``), through ``BodyRefused.response``.

Why not Starlette's ``RequestBodyLimitMiddleware`` (FastAPI's ``max_body_size``):
with a declared length over the cap it replaces whatever the app answers with a
plain-text ``Content Too Large``, and TokenRelay's errors are always JSON.
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openai_wire import OpenAIError

__all__ = ["BodyLimitMiddleware", "BodyRefused", "BodyTimeout", "BodyTooLarge"]


class BodyRefused(HTTPException):
    """A body the app will not read to its end; ``response`` answers it."""

    code = "http_error"

    def extra(self) -> dict[str, object]:
        return {}

    def response(self, *, openai: bool) -> JSONResponse:
        headers = dict(self.headers or {})
        if openai:
            error = OpenAIError(self.status_code, self.openai_message(), code=self.code)
            return JSONResponse(error.body(), status_code=self.status_code, headers={**error.headers(), **headers})
        body = {"error": self.detail, "code": self.code, **self.extra()}
        return JSONResponse(body, status_code=self.status_code, headers=headers)

    def openai_message(self) -> str:
        return str(self.detail)


class BodyTooLarge(BodyRefused):
    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: larger than {limit} bytes")
        self.limit = limit

    def extra(self) -> dict[str, object]:
        return {"limit": self.limit}

    def openai_message(self) -> str:
        return f"The request body is larger than {self.limit} bytes."


class BodyTimeout(BodyRefused):
    code = "request_timeout"

    def __init__(self, timeout_s: float, received: int, declared: int | None) -> None:
        of = f" of {declared}" if declared is not None else ""
        detail = f"body: not received within {timeout_s:g} s ({received}{of} bytes arrived)"
        super().__init__(408, detail, headers={"Connection": "close"})  # the rest may never come: no reuse
        self.timeout_s = timeout_s

    def extra(self) -> dict[str, object]:
        return {"timeout_s": self.timeout_s}


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, openai_prefix: str = "/v1/", read_timeout_s: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.openai_prefix = openai_prefix
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            response = BodyTooLarge(self.max_bytes).response(openai=str(scope["path"]).startswith(self.openai_prefix))
            await response(scope, receive, send)
            return
        received = 0
        complete = False
        deadline = asyncio.get_running_loop().time() + self.read_timeout_s

        async def limited() -> Message:
            nonlocal received, complete
            if complete:  # the body is read: what comes next is http.disconnect, whenever it comes
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.read_timeout_s, received, declared) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                complete = not message.get("more_body", False)
            else:
                complete = True
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
