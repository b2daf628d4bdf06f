"""What the protection end-to-end tests share: their tables on moto's server, keys, and slot probes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import boto3

from scripts.devstack.tables import create_table, table_spec
from tokenrelay.protection import new_key
from tokenrelay.stores import ApiKey
from tokenrelay.stores.dynamodb import DynamoApiKeyStore

KEYS_TABLE = "tokenrelay-api-keys-e2e"
LIMITS_TABLE = "tokenrelay-rate-limits-e2e"


@dataclass
class ProtectionTables:
    endpoint: str
    client: Any
    keys: DynamoApiKeyStore

    @classmethod
    def create(cls, endpoint: str, streams_table: str) -> ProtectionTables:
        client = boto3.client("dynamodb", endpoint_url=endpoint)
        for logical_id, name in (
            ("ApiKeysTable", KEYS_TABLE),
            ("RateLimitsTable", LIMITS_TABLE),
            ("StreamsTable", streams_table),
        ):
            create_table(client, table_spec(logical_id), name)
        return cls(endpoint, client, DynamoApiKeyStore(KEYS_TABLE, client))

    async def key(
        self, *, rpm: int = 0, concurrency: int = 0, models: list[str] | None = None, revoked: bool = False
    ) -> tuple[str, ApiKey]:
        token, key = new_key("e2e", rpm=rpm, concurrency=concurrency, models=models)
        await self.keys.put(key)
        if revoked:
            await self.keys.revoke(key.key_id)
        return token, key

    def count(self, table: str) -> int:
        return int(self.client.scan(TableName=table, Select="COUNT")["Count"])

    def slot_holder(self, key_id: str, n: int = 0) -> str | None:
        item = self.client.get_item(TableName=LIMITS_TABLE, Key={"pk": {"S": f"slot#{key_id}#{n}"}}).get("Item")
        return str(item["stream_id"]["S"]) if item else None

    async def wait_slot_free(self, key_id: str, n: int = 0, wait_s: float = 10.0) -> None:
        """Until the slot item is gone (released); bounded."""
        deadline = time.monotonic() + wait_s
        while self.slot_holder(key_id, n) is not None:
            assert time.monotonic() < deadline, f"slot {n} of {key_id} never released"
            await asyncio.sleep(0.05)
