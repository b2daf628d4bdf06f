"""The Lambda events of an API Gateway WebSocket API, built the way AWS builds them.

Pure functions, used by ``gateway.py``; the fixtures in ``tests/events/websocket_*.json``
are real-shaped samples of the same three event types:

    CONNECT     headers, multiValueHeaders, queryStringParameters?, requestContext
    MESSAGE     requestContext (with messageId), body, isBase64Encoded
    DISCONNECT  headers, requestContext (disconnectStatusCode, disconnectReason)

Route selection is ``$request.body.type``: a JSON object whose ``type`` is a string
naming a route goes to that route; anything else (not JSON, no ``type``, another
value) goes to ``$default``.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def new_id() -> str:
    """A 16-character id like API Gateway's connection and request ids."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode()


@dataclass(frozen=True)
class Api:
    api_id: str
    domain: str
    stage: str


@dataclass(frozen=True)
class Peer:
    connection_id: str
    connected_at_ms: int
    source_ip: str
    user_agent: str


def select_route(body: str | None, route_keys: Iterable[str]) -> str:
    if body is None:  # a binary frame
        return "$default"
    try:
        value = json.loads(body)
    except ValueError:
        return "$default"
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) and kind in set(route_keys) else "$default"


def _context(api: Api, peer: Peer, route_key: str, event_type: str) -> dict[str, Any]:
    now = time.time()
    request_id = new_id()
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": peer.connected_at_ms,
        "requestTimeEpoch": int(now * 1000),
        "identity": {"sourceIp": peer.source_ip, "userAgent": peer.user_agent},
        "requestId": request_id,
        "domainName": api.domain,
        "connectionId": peer.connection_id,
        "apiId": api.api_id,
    }


def _multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value  # the last value wins, as in AWS
        multi.setdefault(key, []).append(value)
    return single, multi


def connect_event(
    api: Api, peer: Peer, headers: Iterable[tuple[str, str]], query: Iterable[tuple[str, str]]
) -> dict[str, Any]:
    single, multi = _multi(headers)
    event: dict[str, Any] = {"headers": single, "multiValueHeaders": multi}
    q_single, q_multi = _multi(query)
    if q_single:
        event["queryStringParameters"] = q_single
        event["multiValueQueryStringParameters"] = q_multi
    event["requestContext"] = _context(api, peer, "$connect", "CONNECT")
    event["isBase64Encoded"] = False
    return event


def message_event(api: Api, peer: Peer, route_key: str, text: str | None, data: bytes | None) -> dict[str, Any]:
    context = _context(api, peer, route_key, "MESSAGE")
    context["messageId"] = new_id()
    if text is not None:
        return {"requestContext": context, "body": text, "isBase64Encoded": False}
    return {"requestContext": context, "body": base64.b64encode(data or b"").decode(), "isBase64Encoded": True}


def disconnect_event(api: Api, peer: Peer, status_code: int, reason: str, headers: Mapping[str, str]) -> dict[str, Any]:
    context = _context(api, peer, "$disconnect", "DISCONNECT")
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    return {
        "headers": dict(headers),
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }
