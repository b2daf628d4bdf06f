"""``$connect``: record the connection, owned by the client id given in the query string.

``wss://.../stage?client_id=ID`` (letters, digits, ``.``, ``_``, ``-``; at most 128)
makes ``ID`` the owner of the connection's streams, so the same client can act on
them from another connection later; without it the owner is ``ws:<connectionId>``.
A bad client id refuses the connection (400). The record expires (DynamoDB TTL)
after ``CONNECTION_TTL_S``, longer than API Gateway's 2 h connection limit.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import common
from tokenrelay import StoreUnavailable
from tokenrelay.stores.connections import ConnectionRecord

log = logging.getLogger("tokenrelay.websocket")
CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def owner_for(connection_id: str, client_id: str | None) -> str:
    return client_id if client_id else f"ws:{connection_id}"


async def on_connect(event: dict[str, Any], svc: common.Services) -> dict[str, Any]:
    ctx = event["requestContext"]
    connection_id = ctx["connectionId"]
    client_id = (event.get("queryStringParameters") or {}).get("client_id")
    if client_id is not None and not CLIENT_ID.fullmatch(client_id):
        return {"statusCode": 400, "body": "client_id: 1-128 letters, digits, '.', '_' or '-'"}
    now = time.time()
    record = ConnectionRecord(
        connection_id=connection_id,
        owner=owner_for(connection_id, client_id),
        client_id=client_id,
        domain=str(ctx.get("domainName", "")),
        stage=str(ctx.get("stage", "")),
        connected_at=now,
        expires_at=int(now) + svc.config.connection_ttl_s,
    )
    try:
        await svc.connections.put(record)
    except StoreUnavailable as exc:
        log.error("$connect %s: %s", connection_id, exc)
        return {"statusCode": 503}
    return common.OK


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return common.run(on_connect(event, common.services()))
