"""``OutputLogStore`` on DynamoDB (docs/protocol.md §5).

Table ``OutputLogTable`` (``template.yaml``): partition key ``stream_id`` (S), sort key
``batch`` (N), TTL on ``expires_at`` (the stream record's). A batch item holds
``first_seq``, ``last_seq`` and ``texts`` (a list of strings, one per ``message`` event,
so seq boundaries are exact); the final item holds ``end`` (JSON of the terminal event
and usage). A reader queries ``batch > n`` with a strongly consistent read.
"""

from __future__ import annotations

from typing import Any

from ..output_log import LogBatch, LogItem, decode_end
from ._client import FAST_CONFIG, call, new_client
from ._items import PARTITION_KEY, TTL_ATTRIBUTE, attr

__all__ = ["SORT_KEY", "DynamoOutputLog"]

SORT_KEY = "batch"


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
        self._client = client if client is not None else new_client(FAST_CONFIG)

    async def append(self, stream_id: str, batch: LogBatch, expires_at: int) -> None:
        item = {
            PARTITION_KEY: {"S": stream_id},
            SORT_KEY: attr(batch.batch),
            "first_seq": attr(batch.first_seq),
            "last_seq": attr(batch.last_seq),
            "texts": {"L": [{"S": t} for t in batch.texts]},
            TTL_ATTRIBUTE: attr(expires_at),
        }
        await call(self.table_name, "PutItem", self._client.put_item, TableName=self.table_name, Item=item)

    async def end(self, stream_id: str, batch: int, payload: str, expires_at: int) -> None:
        item = {
            PARTITION_KEY: {"S": stream_id},
            SORT_KEY: attr(batch),
            "end": {"S": payload},
            TTL_ATTRIBUTE: attr(expires_at),
        }
        await call(self.table_name, "PutItem", self._client.put_item, TableName=self.table_name, Item=item)

    async def read(self, stream_id: str, after_batch: int) -> list[LogItem]:
        items: list[LogItem] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#pk = :id AND #batch > :after",
            "ExpressionAttributeNames": {"#pk": PARTITION_KEY, "#batch": SORT_KEY},
            "ExpressionAttributeValues": {":id": {"S": stream_id}, ":after": attr(after_batch)},
            "ConsistentRead": True,
        }
        while True:
            response = await call(self.table_name, "Query", self._client.query, **kwargs)
            items.extend(_decode(i) for i in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                return items
            kwargs["ExclusiveStartKey"] = last
