"""API keys in DynamoDB (``ApiKeysTable`` in ``template.yaml``; the token format is in ``tokenrelay.protection``).

Partition key ``key_id`` (S); one item per key, never deleted by the service (a revoked
key stays, marked, so its id is never reused and ``scripts/keys list`` shows it)::

    key_id  secret_hash (sha256 hex)  name  rpm  concurrency  models? (list of
    "provider:model" | "provider:*")  created_at  revoked_at?

The functions only read (``GetItem``, strongly consistent); ``scripts/keys`` creates,
lists (without the hash) and revokes with the operator's own credentials.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..api_keys import ApiKey
from ._client import ConditionFailed, call, new_client

__all__ = ["PARTITION_KEY", "DynamoApiKeyStore"]

PARTITION_KEY = "key_id"
_LISTED = "key_id, #name, rpm, concurrency, models, created_at, revoked_at, tpm, daily_usd"


def _encode(key: ApiKey) -> dict[str, Any]:
    item: dict[str, Any] = {
        PARTITION_KEY: {"S": key.key_id},
        "secret_hash": {"S": key.secret_hash},
        "name": {"S": key.name},
        "rpm": {"N": str(key.rpm)},
        "concurrency": {"N": str(key.concurrency)},
        "created_at": {"N": repr(float(key.created_at))},
    }
    if key.tpm:
        item["tpm"] = {"N": str(key.tpm)}
    if key.daily_usd:
        item["daily_usd"] = {"N": f"{float(key.daily_usd):.12f}".rstrip("0").rstrip(".")}  # plain digits
    if key.models:
        item["models"] = {"L": [{"S": m} for m in key.models]}
    if key.revoked_at is not None:
        item["revoked_at"] = {"N": repr(float(key.revoked_at))}
    return item


def _decode(item: Mapping[str, Mapping[str, Any]]) -> ApiKey:
    def n(name: str) -> float | None:
        return float(Decimal(item[name]["N"])) if name in item else None

    models = item.get("models", {}).get("L")
    return ApiKey(
        key_id=str(item[PARTITION_KEY]["S"]),
        secret_hash=str(item.get("secret_hash", {}).get("S", "")),
        name=str(item.get("name", {}).get("S", "")),
        rpm=int(n("rpm") or 0),
        concurrency=int(n("concurrency") or 0),
        models=tuple(str(m["S"]) for m in models) if models else None,
        created_at=n("created_at") or 0.0,
        revoked_at=n("revoked_at"),
        tpm=int(n("tpm") or 0),
        daily_usd=n("daily_usd") or 0.0,
    )


class DynamoApiKeyStore:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client if client is not None else new_client()

    async def get(self, key_id: str) -> ApiKey | None:
        response = await call(
            self.table_name,
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key={PARTITION_KEY: {"S": key_id}},
            ConsistentRead=True,  # a revocation is seen by the next uncached lookup
        )
        item = response.get("Item")
        return _decode(item) if item else None

    async def put(self, key: ApiKey) -> None:
        """Store a new key; ``ValueError`` if its id exists (ids are random: a bug, never a retry)."""
        try:
            await call(
                self.table_name,
                "PutItem",
                self._client.put_item,
                TableName=self.table_name,
                Item=_encode(key),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
            )
        except ConditionFailed:
            raise ValueError(f"key {key.key_id!r} already exists") from None

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first; ``secret_hash`` is not read (left empty)."""
        keys: list[ApiKey] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "ProjectionExpression": _LISTED,
            "ExpressionAttributeNames": {"#name": "name"},
        }
        while True:
            page = await call(self.table_name, "Scan", self._client.scan, **kwargs)
            keys += [_decode(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return sorted(keys, key=lambda k: (k.created_at, k.key_id))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def revoke(self, key_id: str, now: float | None = None) -> ApiKey | None:
        """Mark the key revoked (the first revocation time is kept); None for an unknown id."""
        try:
            response = await call(
                self.table_name,
                "UpdateItem",
                self._client.update_item,
                TableName=self.table_name,
                Key={PARTITION_KEY: {"S": key_id}},
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
                ExpressionAttributeValues={":now": {"N": repr(time.time() if now is None else now)}},
                ReturnValues="ALL_NEW",
            )
        except ConditionFailed:
            return None
        return _decode(response["Attributes"])
