"""Reading a request: the body's size cap and read timeout (pure ASGI), strict JSON, the query.

``BodyLimitMiddleware`` refuses a request whose ``Content-Length`` is over the cap
before reading any of it, and counts the bytes of every other body as they arrive
(chunked uploads included), so no more than the cap plus one chunk is ever held.
Past the cap the route's ``receive`` raises ``PayloadTooLarge`` (413). The whole body
must also arrive within ``read_timeout_s`` (``BODY_READ_TIMEOUT_S``) of the app
starting on the request: a client that sends a byte a second, or fewer bytes than
its ``Content-Length``, gets ``RequestTimeout`` (408, ``Connection: close``) instead of
holding the connection for ever. Once the body is complete, ``receive`` is the
server's own again (a streaming route waits on it for ``http.disconnect``).

Both are ``TokenRelayError``s that the app's handlers answer in the route family's
shape (``errors.error_response``).

``read_json``: 415 unless ``application/json``, then JSON as strict as over the
WebSocket (``json_text``); what is wrong with it is each route family's to say.
``query_body``: ``GET /chat/stream``'s query string as a request body (for EventSource).

Why not Starlette's ``RequestBodyLimitMiddleware`` (FastAPI's ``max_body_size``):
with a declared length over the cap it replaces whatever the app answers with a
plain-text ``Content Too Large``, and TokenRelay's errors are always JSON.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenrelay.errors import PayloadTooLarge, RequestInvalid, RequestTimeout, UnsupportedMediaType
from tokenrelay.json_text import loads_strict

from .errors import error_response

__all__ = ["QUERY_FIELDS", "BodyLimitMiddleware", "query_body", "read_json"]


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout_s: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(PayloadTooLarge(self.max_bytes), str(scope["path"]))(scope, receive, send)
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
                raise RequestTimeout(self.read_timeout_s, received, declared) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self.max_bytes)
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


QUERY_FIELDS: Mapping[str, type] = {
    "message": str,
    "system": str,
    "provider": str,
    "model": str,
    "max_tokens": int,
    "temperature": float,
    "top_p": float,
    "seed": int,
    "stop": str,  # one stop sequence (a list needs POST)
    "presence_penalty": float,
    "frequency_penalty": float,
    "user": str,
    "prompt_cache_key": str,
}


async def read_json(request: Request) -> Any:
    """The body, decoded as strict JSON: ``UnsupportedMediaType`` unless ``application/json``;
    ``JSONRejected`` saying what is wrong (413 past the cap, 408 too slow: ``BodyLimitMiddleware``)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise UnsupportedMediaType()
    return loads_strict(await request.body())


def query_body(request: Request) -> dict[str, Any]:
    """``GET /chat/stream``'s query string as a request body: known fields, typed, each once."""
    body: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key == "access_token":  # the API key, for EventSource (auth.py), not a request field
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
