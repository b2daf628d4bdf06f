"""Reading a chat request off HTTP: a JSON body (POST) or the query string (GET, for EventSource).

Both give the plain value that ``tokenrelay.parse_chat_request`` validates; what is
checked here is only what that cannot see: the content type, JSON as strict as over
the WebSocket (``json_text``), and query parameters that are unknown, repeated or untyped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request

from errors_http import ApiError
from tokenrelay import RequestInvalid
from tokenrelay.json_text import JSONRejected, loads_strict

__all__ = ["QUERY_FIELDS", "json_body", "query_body"]

QUERY_FIELDS: Mapping[str, type] = {
    "message": str,
    "system": str,
    "provider": str,
    "model": str,
    "max_tokens": int,
    "temperature": float,
}


async def json_body(request: Request) -> Any:
    """The body, decoded as strict JSON: 415 unless ``application/json``, 400 naming what is wrong."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "unsupported_media_type", "content-type: expected application/json")
    raw = await request.body()  # 413 past the app's cap, 408 too slow: BodyLimitMiddleware (body_limit.py)
    try:
        return loads_strict(raw)
    except JSONRejected as exc:
        raise RequestInvalid(exc.field, exc.message) from None


def query_body(request: Request) -> dict[str, Any]:
    """``GET /chat/stream``'s query string as a request body: known fields, typed, each once."""
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
