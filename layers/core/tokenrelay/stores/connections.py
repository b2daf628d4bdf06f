"""WebSocket connections and the streams each one runs.

Table layout (``ConnectionsTable``, ``template.yaml``): partition
key ``connection_id`` (S), TTL on ``expires_at`` (at least API Gateway's 2 h
connection limit). One item per connection::

    connection_id  owner  client_id?  status (connected | gone)
    domain  stage  connected_at  disconnected_at?  expires_at
    streams        map stream_id -> "pending" | "running"
    key_id?  rpm  concurrency  models?   the API key $connect checked, and its limits
                                         (docs/security.md): what chat enforces

A stream id is put in ``streams`` as ``pending`` by the chat handler (bounded
per connection), moved to ``running`` by the worker that claims it (once:
Lambda may deliver an async invoke twice) and removed when the stream ends.
``cancel`` without a stream id and ``$disconnect`` read this map, so a
connection's active streams are found with one strongly consistent read and no
index. Every change is a conditional update.

boto3 runs in worker threads (``asyncio.to_thread``); botocore errors become
``StoreUnavailable`` naming the operation and the error code only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeAlias, TypeVar

from ..errors import StoreUnavailable, TokenRelayError

__all__ = [
    "ClaimResult",
    "ConnectionNotFound",
    "ConnectionRecord",
    "ConnectionStore",
    "DynamoConnectionStore",
    "TooManyStreams",
]

ConnectionStatus: TypeAlias = Literal["connected", "gone"]
ClaimResult: TypeAlias = Literal["claimed", "gone", "unknown"]
T = TypeVar("T")
Item = dict[str, dict[str, Any]]


class ConnectionNotFound(TokenRelayError):
    status_code = 410
    code = "connection_gone"

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id!r} is not connected")
        self.connection_id = connection_id


class TooManyStreams(TokenRelayError):
    status_code = 429
    code = "too_many_streams"

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} streams may run at once on one connection")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    connection_id: str
    owner: str  # the client id given at $connect, else the connection id
    client_id: str | None = None
    status: ConnectionStatus = "connected"
    domain: str = ""
    stage: str = ""
    connected_at: float = 0.0
    disconnected_at: float | None = None
    expires_at: int = 0
    streams: Mapping[str, str] = field(default_factory=dict)
    key_id: str | None = None  # with AUTH_MODE=api_key: the key, which is also the owner
    rpm: int = 0  # limits of the owner, as $connect found them (0 = none)
    concurrency: int = 0
    models: tuple[str, ...] | None = None  # the key's model allow-list; None = all

    @property
    def active_streams(self) -> list[str]:
        return sorted(self.streams)


class ConnectionStore(Protocol):
    async def put(self, record: ConnectionRecord) -> None: ...

    async def get(self, connection_id: str) -> ConnectionRecord | None: ...

    async def add_stream(self, connection_id: str, stream_id: str, limit: int) -> ConnectionRecord:
        """Reserve ``stream_id`` (``pending``); ``ConnectionNotFound`` or ``TooManyStreams`` if refused."""
        ...

    async def claim_stream(self, connection_id: str, stream_id: str) -> ClaimResult:
        """``pending -> running``: "gone" if the client left first, "unknown" if not pending (a repeat)."""
        ...

    async def remove_stream(self, connection_id: str, stream_id: str) -> None: ...

    async def disconnect(self, connection_id: str) -> ConnectionRecord | None:
        """Mark the connection gone; the record as it is now (with its active streams), None if unknown."""
        ...


def _s(value: str) -> dict[str, Any]:
    return {"S": value}


def _n(value: float) -> dict[str, Any]:
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
        models=tuple(str(m["S"]) for m in models) if models else None,
    )


class _ConditionFailed(Exception):
    def __init__(self, item: Item | None) -> None:
        super().__init__("conditional check failed")
        self.item = item


class DynamoConnectionStore:
    """``ConnectionStore`` on one DynamoDB table, through the low-level boto3 client."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        if client is None:  # created once, here: creating a client is not thread-safe, using one is
            import boto3
            from botocore.config import Config

            config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})
            client = boto3.client("dynamodb", config=config)
        self._client = client

    async def put(self, record: ConnectionRecord) -> None:
        await self._call("PutItem", self._client.put_item, TableName=self.table_name, Item=_encode(record))

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        response = await self._call(
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
        except _ConditionFailed as failed:
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
        except _ConditionFailed as failed:
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
        except _ConditionFailed:
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
        except _ConditionFailed:
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
        return await self._call("UpdateItem", self._client.update_item, **kwargs)

    async def _call(self, operation: str, method: Callable[..., T], **kwargs: Any) -> T:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(method, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code") or "unknown error"
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed(exc.response.get("Item")) from None
            raise StoreUnavailable(f"DynamoDB {operation} on {self.table_name!r} failed: {code}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB {operation} on {self.table_name!r} failed: {type(exc).__name__}") from exc
