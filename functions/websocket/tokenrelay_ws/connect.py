"""``$connect``: check the API key, record the connection and its owner.

With ``AUTH_MODE=api_key`` the key comes with the handshake, the one moment a
WebSocket API can refuse a client. Browsers cannot set headers on a WebSocket, so
two ways are accepted (docs/security.md):

    Sec-WebSocket-Protocol: tokenrelay, bearer.trk_<key_id>_<secret>
        ``new WebSocket(url, ["tokenrelay", "bearer." + token])``; the answer names
        ``tokenrelay`` (API Gateway passes the handler's ``Sec-WebSocket-Protocol``
        header to the client, which fails the handshake without it)
    wss://.../stage?access_token=trk_...
        simpler, but a query string may land in access logs

A missing, malformed, unknown, wrong or revoked key refuses the handshake with 401
(the client sees the status, nothing else): no connection record, so no ``chat``.
The connection's owner is then the key id, and the key's limits and model list are
kept on the connection record for ``chat`` to enforce.

With ``AUTH_MODE=off``: ``?client_id=ID`` (letters, digits, ``.``, ``_``, ``-``; at
most 128) makes ``ID`` the owner of the connection's streams, so the same client can
act on them from another connection later; without it the owner is
``ws:<connectionId>``. A bad client id refuses the connection (400). The record
expires (DynamoDB TTL) after ``CONNECTION_TTL_S``, longer than API Gateway's 2 h limit.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tokenrelay import StoreUnavailable, Unauthorized
from tokenrelay.protection import Principal
from tokenrelay.stores import ConnectionRecord, Limits

from . import environment

log = logging.getLogger("tokenrelay.websocket")
CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
SUBPROTOCOL = "tokenrelay"
BEARER = "bearer."


def owner_for(connection_id: str, client_id: str | None) -> str:
    return client_id if client_id else f"ws:{connection_id}"


def principal_of(connection: ConnectionRecord | None, connection_id: str) -> Principal:
    """The caller on a connection, as ``$connect`` recorded them (its owner, key, limits, models)."""
    if connection is None:  # the record expired: the connection's own id is its owner
        return Principal(owner_for(connection_id, None))
    limits = Limits(connection.rpm, connection.concurrency, connection.tpm, connection.daily_usd)
    return Principal(connection.owner, limits, connection.models, connection.key_id)


def offered_protocols(headers: Mapping[str, str] | None) -> list[str]:
    """The subprotocols of the handshake's ``Sec-WebSocket-Protocol`` (comma-separated)."""
    value = next((v for k, v in (headers or {}).items() if k.lower() == "sec-websocket-protocol"), "")
    return [p.strip() for p in value.split(",") if p.strip()]


async def on_connect(event: dict[str, Any], svc: environment.Services) -> dict[str, Any]:
    ctx = event["requestContext"]
    connection_id = ctx["connectionId"]
    query = event.get("queryStringParameters") or {}
    client_id = query.get("client_id")
    if client_id is not None and not CLIENT_ID.fullmatch(client_id):
        return {"statusCode": 400, "body": "client_id: 1-128 letters, digits, '.', '_' or '-'"}
    protocols = offered_protocols(event.get("headers"))
    token = next((p[len(BEARER) :] for p in protocols if p.startswith(BEARER)), None) or query.get("access_token")
    if any(p.startswith(BEARER) for p in protocols) and SUBPROTOCOL not in protocols:
        return {"statusCode": 400, "body": f"Sec-WebSocket-Protocol: offer {SUBPROTOCOL!r} with the bearer key"}
    now = time.time()
    record = ConnectionRecord(
        connection_id=connection_id,
        owner=owner_for(connection_id, client_id),
        client_id=client_id,
        domain=str(ctx.get("domainName", "")),
        stage=str(ctx.get("stage", "")),
        connected_at=now,
        expires_at=int(now) + svc.config.connection_ttl_s,
        rpm=svc.settings.auth_off_rpm,
        concurrency=svc.settings.auth_off_concurrency,
    )
    try:
        if svc.authenticator is not None:
            caller = await svc.guard.authenticate(token)  # a refusal is counted there
            record = replace(
                record,
                owner=caller.owner,
                key_id=caller.key_id,
                rpm=caller.limits.rpm,
                concurrency=caller.limits.concurrency,
                tpm=caller.limits.tpm,
                daily_usd=caller.limits.daily_usd,
                models=caller.models,
            )
        await svc.connections.put(record)
    except Unauthorized:
        return {"statusCode": 401}
    except StoreUnavailable as exc:
        log.error("$connect %s: %s", connection_id, exc)
        return {"statusCode": 503}
    if SUBPROTOCOL in protocols:  # answer the one the client offered, or a browser fails the handshake
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": SUBPROTOCOL}}
    return environment.OK


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return environment.run(on_connect(event, environment.services()))
