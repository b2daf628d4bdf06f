"""The output log and the resume lease on DynamoDB (PROTOCOL section 5).

``DynamoOutputLog``: table ``OutputLogTable`` (``template.yaml``), partition
key ``stream_id`` (S), sort key ``batch`` (N), TTL on ``expires_at`` (the stream
record's). A batch item holds ``first_seq``, ``last_seq`` and ``texts`` (a list of
strings, one per ``message`` event, so seq boundaries are exact); the final item
holds ``end`` (JSON of the terminal event and usage). A reader queries
``batch > n`` with a strongly consistent read.

``DynamoAttachments``: ``attached_until`` on the stream record (streams table), the
lease a resuming reader refreshes, read by the producer together with the cancel flag.

boto3 calls run in worker threads; errors become ``StoreUnavailable`` at this boundary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import StoreUnavailable
from ..output_log import LogBatch, LogItem, decode_end
from .base import WatchState
from .dynamodb import FAST_CONFIG, PARTITION_KEY, TTL_ATTRIBUTE, WATCH_NAMES, WATCH_PROJECTION, _new_client, watch_state

__all__ = ["SORT_KEY", "DynamoAttachments", "DynamoOutputLog"]

SORT_KEY = "batch"
T = TypeVar("T")


async def _call(table: str, operation: str, method: Callable[..., T], **kwargs: Any) -> T:
    try:
        return await asyncio.to_thread(method, **kwargs)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code") or "unknown error")
        raise StoreUnavailable(f"DynamoDB {operation} on {table!r} failed: {code}") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"DynamoDB {operation} on {table!r} failed: {type(exc).__name__}") from exc


def _n(value: int | float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _decode(item: dict[str, dict[str, Any]]) -> LogItem:
    batch = int(item[SORT_KEY]["N"])
    if "end" in item:
        return decode_end(batch, item["end"]["S"])
    texts = tuple(str(t["S"]) for t in item.get("texts", {}).get("L", []))
    return LogBatch(batch, int(item["first_seq"]["N"]), texts)


class DynamoOutputLog:
    """``OutputLogStore`` on one DynamoDB table, through the low-level boto3 client.

    Its client fails fast (``FAST_CONFIG``: one attempt, short timeouts): the writer and the
    reader retry with their own backoff, never a thread asleep in botocore's."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client if client is not None else _new_client(FAST_CONFIG)

    async def append(self, stream_id: str, batch: LogBatch, expires_at: int) -> None:
        item = {
            PARTITION_KEY: {"S": stream_id},
            SORT_KEY: _n(batch.batch),
            "first_seq": _n(batch.first_seq),
            "last_seq": _n(batch.last_seq),
            "texts": {"L": [{"S": t} for t in batch.texts]},
            TTL_ATTRIBUTE: _n(expires_at),
        }
        await _call(self.table_name, "PutItem", self._client.put_item, TableName=self.table_name, Item=item)

    async def end(self, stream_id: str, batch: int, payload: str, expires_at: int) -> None:
        item = {
            PARTITION_KEY: {"S": stream_id},
            SORT_KEY: _n(batch),
            "end": {"S": payload},
            TTL_ATTRIBUTE: _n(expires_at),
        }
        await _call(self.table_name, "PutItem", self._client.put_item, TableName=self.table_name, Item=item)

    async def read(self, stream_id: str, after_batch: int) -> list[LogItem]:
        items: list[LogItem] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#pk = :id AND #batch > :after",
            "ExpressionAttributeNames": {"#pk": PARTITION_KEY, "#batch": SORT_KEY},
            "ExpressionAttributeValues": {":id": {"S": stream_id}, ":after": _n(after_batch)},
            "ConsistentRead": True,
        }
        while True:
            response = await _call(self.table_name, "Query", self._client.query, **kwargs)
            items.extend(_decode(i) for i in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                return items
            kwargs["ExclusiveStartKey"] = last


class DynamoAttachments:
    """``AttachmentStore`` on the streams table: the ``attached_until`` lease and the cancel flag."""

    def __init__(self, streams_table: str, client: Any = None) -> None:
        self.table_name = streams_table
        self._client = client if client is not None else _new_client()

    async def watch(self, stream_id: str) -> WatchState:
        response = await _call(
            self.table_name,
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key={PARTITION_KEY: {"S": stream_id}},
            ConsistentRead=True,
            ProjectionExpression=WATCH_PROJECTION,
            ExpressionAttributeNames=WATCH_NAMES,
        )
        return watch_state(response.get("Item", {}))

    async def attach(self, stream_id: str, until: float) -> None:
        """Refresh the lease of an active stream; a finished or unknown stream is left alone."""
        await self._update(
            stream_id,
            "SET attached_until = :until, updated_at = :now",
            "#status = :active",
            {"#status": "status"},
            {":until": _n(until), ":now": _n(time.time()), ":active": {"S": "active"}},
        )

    async def request_move(self, stream_id: str, connection_id: str, after_seq: int) -> bool:
        return await self._update(
            stream_id,
            "SET connection_id = :conn, resume_after = :after, moves = if_not_exists(moves, :zero) + :one",
            "attribute_exists(stream_id) AND attribute_not_exists(text_marks)",
            None,
            {
                ":conn": {"S": connection_id},
                ":after": _n(after_seq),
                ":zero": _n(0),
                ":one": _n(1),
            },
        )

    async def seal(self, stream_id: str, marks: list[int], moves_seen: int) -> bool:
        return await self._update(
            stream_id,
            "SET text_marks = :marks",
            "(attribute_not_exists(moves) AND :seen = :zero) OR moves = :seen",
            None,
            {":marks": {"S": ",".join(map(str, marks))}, ":seen": _n(moves_seen), ":zero": _n(0)},
        )

    async def marks(self, stream_id: str) -> list[int] | None:
        response = await _call(
            self.table_name,
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key={PARTITION_KEY: {"S": stream_id}},
            ConsistentRead=True,
            ProjectionExpression="text_marks",
        )
        raw = response.get("Item", {}).get("text_marks", {}).get("S")
        if raw is None:
            return None
        return [int(m) for m in raw.split(",") if m]

    async def _update(
        self,
        stream_id: str,
        update: str,
        condition: str,
        names: dict[str, str] | None,
        values: dict[str, dict[str, Any]],
    ) -> bool:
        """A conditional UpdateItem; False when the condition failed."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {PARTITION_KEY: {"S": stream_id}},
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            await asyncio.to_thread(self._client.update_item, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code") or "unknown error")
            if code == "ConditionalCheckFailedException":
                return False
            raise StoreUnavailable(f"DynamoDB UpdateItem on {self.table_name!r} failed: {code}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB UpdateItem on {self.table_name!r} failed: {type(exc).__name__}") from exc
        return True
