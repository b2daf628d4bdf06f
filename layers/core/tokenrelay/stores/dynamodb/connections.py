"""``ConnectionStore`` on DynamoDB: WebSocket connections and the streams each one runs.

Table layout (``ConnectionsTable``, ``template.yaml``): partition
key ``connection_id`` (S), TTL on ``expires_at`` (at least API Gateway's 2 h
connection limit). One item per connection::

    connection_id  owner  client_id?  status (connected | gone)
    domain  stage  connected_at  disconnected_at?  expires_at
    streams        map stream_id -> "pending" | "running"
    key_id?  rpm  concurrency  tpm?  daily_usd?  models?   the API key $connect checked, and its limits
                                         (docs/security.md): what chat enforces

How ``streams`` is used: ``stores.connections``. Every change is a conditional update;
calls go through ``_client.call``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ...errors import ConnectionNotFound, TooManyStreams
from ..connections import ClaimResult, ConnectionRecord
from ._client import ConditionFailed, Item, call, new_client

__all__ = ["DynamoConnectionStore"]


def _s(value: str) -> dict[str, Any]:
    return {"S": value}


def _n(value: float) -> dict[str, Any]:
    if isinstance(value, float) and "e" in repr(value):  # plain digits: a budget of 1e-06 dollars is 0.000001
        return {"N": f"{value:.12f}".rstrip("0").rstrip(".")}
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _encode(record: ConnectionRecord) -> Item:
    item: Item = {
        "connection_id": _s(record.connection_id),
        "owner": _s(record.owner),
        "status": _s(record.status),
        "domain": _s(record.domain),
        "stage": _s(record.stage),
        "connected_at": _n(record.connected_at),
        "expires_at": _n(record.expires_at),
        "streams": {"M": {sid: _s(state) for sid, state in record.streams.items()}},
    }
    if record.client_id is not None:
        item["client_id"] = _s(record.client_id)
    if record.disconnected_at is not None:
        item["disconnected_at"] = _n(record.disconnected_at)
    if record.key_id is not None:
        item["key_id"] = _s(record.key_id)
    if record.rpm:
        item["rpm"] = _n(record.rpm)
    if record.concurrency:
        item["concurrency"] = _n(record.concurrency)
    if record.tpm:
        item["tpm"] = _n(record.tpm)
    if record.daily_usd:
        item["daily_usd"] = _n(record.daily_usd)
    if record.models:
        item["models"] = {"L": [_s(m) for m in record.models]}
    return item


def _decode(item: Mapping[str, Mapping[str, Any]]) -> ConnectionRecord:
    def s(name: str) -> str | None:
        return str(item[name]["S"]) if name in item else None

    def n(name: str) -> float | None:
        return float(Decimal(item[name]["N"])) if name in item else None

    streams = item.get("streams", {}).get("M", {})
    models = item.get("models", {}).get("L")
    return ConnectionRecord(
        connection_id=str(item["connection_id"]["S"]),
        owner=s("owner") or str(item["connection_id"]["S"]),
        client_id=s("client_id"),
        status="gone" if s("status") == "gone" else "connected",
        domain=s("domain") or "",
        stage=s("stage") or "",
        connected_at=n("connected_at") or 0.0,
        disconnected_at=n("disconnected_at"),
        expires_at=int(n("expires_at") or 0),
        streams={sid: str(v["S"]) for sid, v in streams.items()},
        key_id=s("key_id"),
        rpm=int(n("rpm") or 0),
        concurrency=int(n("concurrency") or 0),
        tpm=int(n("tpm") or 0),
        daily_usd=n("daily_usd") or 0.0,
        models=tuple(str(m["S"]) for m in models) if models else None,
    )


class DynamoConnectionStore:
    """``ConnectionStore`` on one DynamoDB table, through the low-level boto3 client."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client if client is not None else new_client()  # once: creating one is not thread-safe

    async def put(self, record: ConnectionRecord) -> None:
        await call(self.table_name, "PutItem", self._client.put_item, TableName=self.table_name, Item=_encode(record))

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        response = await call(
            self.table_name,
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key={"connection_id": _s(connection_id)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _decode(item) if item else None

    async def add_stream(self, connection_id: str, stream_id: str, limit: int) -> ConnectionRecord:
        try:
            response = await self._update(
                connection_id,
                "SET #streams.#sid = :pending",
                "#status = :connected AND size(#streams) < :limit",
                {"#streams": "streams", "#sid": stream_id, "#status": "status"},
                {":pending": _s("pending"), ":connected": _s("connected"), ":limit": _n(limit)},
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed as failed:
            if not failed.item or _decode(failed.item).status != "connected":
                raise ConnectionNotFound(connection_id) from None
            raise TooManyStreams(limit) from None
        return _decode(response["Attributes"])

    async def claim_stream(self, connection_id: str, stream_id: str) -> ClaimResult:
        try:
            await self._update(
                connection_id,
                "SET #streams.#sid = :running",
                "#streams.#sid = :pending AND #status = :connected",
                {"#streams": "streams", "#sid": stream_id, "#status": "status"},
                {":pending": _s("pending"), ":running": _s("running"), ":connected": _s("connected")},
            )
        except ConditionFailed as failed:
            record = _decode(failed.item) if failed.item else None
            if record is not None and record.status == "gone" and record.streams.get(stream_id) == "pending":
                return "gone"
            return "unknown"
        return "claimed"

    async def remove_stream(self, connection_id: str, stream_id: str) -> None:
        try:
            await self._update(
                connection_id,
                "REMOVE #streams.#sid",
                "attribute_exists(#pk)",
                {"#streams": "streams", "#sid": stream_id, "#pk": "connection_id"},
                None,
            )
        except ConditionFailed:
            return  # the connection record expired: nothing to remove

    async def disconnect(self, connection_id: str) -> ConnectionRecord | None:
        try:
            response = await self._update(
                connection_id,
                "SET #status = :gone, #at = :now",
                "attribute_exists(#pk)",
                {"#status": "status", "#at": "disconnected_at", "#pk": "connection_id"},
                {":gone": _s("gone"), ":now": _n(time.time())},
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return None
        return _decode(response["Attributes"])

    async def _update(
        self,
        connection_id: str,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any] | None,
        **extra: Any,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"connection_id": _s(connection_id)},
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            **extra,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        return await call(self.table_name, "UpdateItem", self._client.update_item, **kwargs)
