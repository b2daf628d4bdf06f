"""``RateLimitStore`` on DynamoDB (``RateLimitsTable``; the scheme is in ``tokenrelay.protection``).

Partition key ``pk`` (S), TTL on ``expires_at``. Two kinds of items share the table,
told apart by their key prefix::

    rpm#<subject>#<minute>   count (N)                      expires_at: a minute after the window
    slot#<subject>#<n>       stream_id (S), acquired_at (N)  expires_at: the lease end
    tpm#<subject>#<minute>   used (N): tokens                expires_at: a minute after the window
    usd#<subject>#<day>      used (N): dollars               expires_at: a day after the window

Each operation is one conditional write; there is never a read before it.
"""

from __future__ import annotations

import time
from typing import Any

from ._client import ConditionFailed, call, new_client

__all__ = ["PARTITION_KEY", "TTL_ATTRIBUTE", "DynamoRateLimitStore"]

PARTITION_KEY = "pk"
TTL_ATTRIBUTE = "expires_at"


def _number(value: float) -> str:
    """A DynamoDB number in plain digits (a cost of 1.5e-05 dollars is 0.000015)."""
    return str(value) if isinstance(value, int) else f"{value:.12f}".rstrip("0").rstrip(".") or "0"


class DynamoRateLimitStore:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client if client is not None else new_client()

    async def _conditional(self, operation: str, method: Any, **params: Any) -> bool:
        """Whether ``operation``'s condition held (and the write was made)."""
        try:
            await call(self.table_name, operation, method, TableName=self.table_name, **params)
        except ConditionFailed:
            return False
        return True

    async def count_request(self, key: str, limit: int, expires_at: int) -> bool:
        return await self._conditional(
            "UpdateItem",
            self._client.update_item,
            Key={PARTITION_KEY: {"S": key}},
            UpdateExpression="ADD #count :one SET #exp = :exp",
            ConditionExpression="attribute_not_exists(#pk) OR #count < :limit",
            ExpressionAttributeNames={"#pk": PARTITION_KEY, "#count": "count", "#exp": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":one": {"N": "1"},
                ":limit": {"N": str(limit)},
                ":exp": {"N": str(expires_at)},
            },
        )

    async def acquire_slot(self, key: str, stream_id: str, now: float, expires_at: int) -> bool:
        return await self._conditional(
            "PutItem",
            self._client.put_item,
            Item={
                PARTITION_KEY: {"S": key},
                "stream_id": {"S": stream_id},
                "acquired_at": {"N": repr(time.time())},
                TTL_ATTRIBUTE: {"N": str(expires_at)},
            },
            ConditionExpression="attribute_not_exists(#pk) OR #exp < :now",
            ExpressionAttributeNames={"#pk": PARTITION_KEY, "#exp": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":now": {"N": repr(float(now))}},
        )

    async def under_budget(self, key: str, limit: float, expires_at: int) -> bool:
        return await self._conditional(
            "UpdateItem",
            self._client.update_item,
            Key={PARTITION_KEY: {"S": key}},
            UpdateExpression="SET #exp = :exp",
            ConditionExpression="attribute_not_exists(#pk) OR attribute_not_exists(#used) OR #used < :limit",
            ExpressionAttributeNames={"#pk": PARTITION_KEY, "#used": "used", "#exp": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":limit": {"N": _number(limit)}, ":exp": {"N": str(expires_at)}},
        )

    async def spend(self, key: str, amount: float, expires_at: int) -> None:
        await call(
            self.table_name,
            "UpdateItem",
            self._client.update_item,
            TableName=self.table_name,
            Key={PARTITION_KEY: {"S": key}},
            UpdateExpression="ADD #used :amount SET #exp = :exp",
            ExpressionAttributeNames={"#used": "used", "#exp": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":amount": {"N": _number(amount)}, ":exp": {"N": str(expires_at)}},
        )

    async def release_slot(self, key: str, stream_id: str) -> bool:
        return await self._conditional(
            "DeleteItem",
            self._client.delete_item,
            Key={PARTITION_KEY: {"S": key}},
            ConditionExpression="stream_id = :sid",
            ExpressionAttributeValues={":sid": {"S": stream_id}},
        )
