"""What the protection end-to-end tests share: their stack's settings, their tables, keys, slot probes
and the refusal metrics the functions print."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from scripts.devstack.tables import create_table, table_spec
from tokenrelay.protection import new_key
from tokenrelay.stores import ApiKey
from tokenrelay.stores.dynamodb import DynamoApiKeyStore

KEYS_TABLE = "tokenrelay-api-keys-e2e"
LIMITS_TABLE = "tokenrelay-rate-limits-e2e"
FIXED_NOW = 1_800_000_030.0  # mid-minute, frozen: the per-minute window never rolls over during a test
LAYER = Path(__file__).resolve().parents[1] / "fakes" / "layer"


def protected_env(streams_table: str) -> dict[str, str]:
    """The stack's settings: keys required, each function's limiter on the frozen clock (the test
    layer, ``tests/fakes/layer``), keys never cached (a revocation shows at once), metrics on (the
    ``Refusals`` documents are read from the functions' output)."""
    return {
        "AUTH_MODE": "api_key",
        "API_KEYS_TABLE": KEYS_TABLE,
        "RATE_LIMITS_TABLE": LIMITS_TABLE,
        "API_KEY_CACHE_S": "0",
        "STREAMS_TABLE": streams_table,
        "DEFAULT_PROVIDER": "echo",
        "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini,gpt-4.1-mini",
        "ECHO_DELAY_MS": "2",
        "CANCEL_POLL_MS": "50",
        "UPSTREAM_MAX_RETRIES": "0",
        "METRICS_ENABLED": "true",
        "TOKENRELAY_TEST_LAYER": str(LAYER),
        "TOKENRELAY_TEST_FROZEN_CLOCK": str(FIXED_NOW),
    }


def refusal_docs(lines: list[str]) -> list[dict[str, Any]]:
    """The ``Refusals`` EMF documents among a stack's output lines, in order."""
    docs = [json.loads(line) for line in lines if line.startswith("{") and '"Refusals"' in line]
    return [d for d in docs if "_aws" in d]


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
        self,
        *,
        rpm: int = 0,
        concurrency: int = 0,
        models: list[str] | None = None,
        revoked: bool = False,
        tpm: int = 0,
        daily_usd: float = 0.0,
    ) -> tuple[str, ApiKey]:
        token, key = new_key("e2e", rpm=rpm, concurrency=concurrency, models=models, tpm=tpm, daily_usd=daily_usd)
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
