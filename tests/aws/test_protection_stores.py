"""API keys and rate limits in DynamoDB (moto), tables built from ``template.yaml``, and ``scripts/keys``."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from scripts import keys as keys_script
from tests.aws.conftest import FAKE_SECRET, REGION
from tests.aws.schema import create_table, table_spec
from tokenrelay import LimitExceeded, StoreUnavailable
from tokenrelay.protection import Authenticator, RateLimiter, new_key
from tokenrelay.stores import Limits
from tokenrelay.stores.dynamodb import DynamoApiKeyStore, DynamoRateLimitStore

ROOT = Path(__file__).resolve().parents[2]
KEYS, LIMITS = "api-keys-test", "rate-limits-test"


@pytest.fixture
def ddb(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, table_spec("ApiKeysTable"), KEYS)
        create_table(client, table_spec("RateLimitsTable"), LIMITS)
        yield client
        client.close()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_key_store_put_get_list_revoke_round_trip(ddb: Any) -> None:
    store = DynamoApiKeyStore(KEYS, ddb)
    token, key = new_key("alice", rpm=7, concurrency=2, models=["openai:*", "echo:echo-1"], now=100.0)
    _, other = new_key("bob", now=200.0)
    await store.put(key)
    await store.put(other)
    assert await store.get(key.key_id) == key
    assert await store.get("0123456789abcdef") is None
    with pytest.raises(ValueError, match="exists"):
        await store.put(key)
    listed = await store.list_keys()
    assert [k.key_id for k in listed] == [key.key_id, other.key_id]
    assert all(k.secret_hash == "" for k in listed)  # list never reads the hash
    revoked = await store.revoke(key.key_id, now=300.0)
    assert revoked is not None and revoked.revoked_at == 300.0
    assert (await store.revoke(key.key_id, now=400.0)).revoked_at == 300.0  # type: ignore[union-attr]
    assert await store.revoke("0123456789abcdef") is None
    with pytest.raises(Exception, match="invalid API key"):
        await Authenticator(store, cache_s=0).authenticate(token)
    raw = ddb.get_item(TableName=KEYS, Key={"key_id": {"S": key.key_id}})["Item"]
    assert token.split("_", 2)[2] not in json.dumps(raw)  # the secret itself is nowhere


async def test_rate_limit_store_counts_to_the_limit_and_leases_expire(ddb: Any) -> None:
    store = DynamoRateLimitStore(LIMITS, ddb)
    clock = Clock(6000.0)
    limiter = RateLimiter(store, lease_s=50, clock=clock)
    for i in range(3):
        await limiter.admit("key-a", Limits(rpm=3), f"s{i}")
    with pytest.raises(LimitExceeded) as caught:
        await limiter.admit("key-a", Limits(rpm=3), "s3")
    assert caught.value.retry_after == 60
    item = ddb.get_item(TableName=LIMITS, Key={"pk": {"S": "rpm#key-a#100"}})["Item"]
    assert item["count"] == {"N": "3"} and item["expires_at"] == {"N": str(6120)}

    first = await limiter.admit("key-b", Limits(concurrency=1), "stream-1")
    assert first is not None
    with pytest.raises(LimitExceeded):
        await limiter.admit("key-b", Limits(concurrency=1), "stream-2")
    clock.now += 51  # the first holder crashed: its lease ran out
    second = await limiter.admit("key-b", Limits(concurrency=1), "stream-2")
    assert second is not None and second.slot == first.slot
    assert not await store.release_slot(first.slot, "stream-1")  # names the stream: the new holder keeps it
    assert await store.release_slot(second.slot, "stream-2")
    assert "Item" not in ddb.get_item(TableName=LIMITS, Key={"pk": {"S": second.slot}})
    assert await limiter.admit("key-b", Limits(concurrency=1), "stream-3") is not None


async def test_stores_on_a_missing_table_raise_store_unavailable_without_secrets(ddb: Any) -> None:
    for call in (
        DynamoApiKeyStore("nope", ddb).get("0123456789abcdef"),
        DynamoRateLimitStore("nope", ddb).count_request("k", 1, 1),
    ):
        with pytest.raises(StoreUnavailable) as caught:
            await call
        assert "nope" in caught.value.message and FAKE_SECRET not in caught.value.message


def test_keys_script_create_list_revoke_round_trip(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_server)
    client = boto3.client("dynamodb", endpoint_url=moto_server, region_name=REGION)
    create_table(client, table_spec("ApiKeysTable"), KEYS)

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = keys_script.main(["--table", KEYS, *argv], out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    code, out, err = run("create", "--name", "alice", "--rpm", "5", "--concurrency", "1", "--models", "openai:*")
    token = out.strip()
    assert code == 0 and token.startswith("trk_") and "\n" not in token and "shown once" in err
    key_id = token.split("_")[1]
    code, listed, _ = run("list")
    assert code == 0 and key_id in listed and "alice" in listed and "active" in listed and "[openai:*]" in listed
    code, as_json, _ = run("list", "--json")
    row = json.loads(as_json)
    assert row["key_id"] == key_id and row["rpm"] == 5 and row["models"] == ["openai:*"] and not row["revoked_at"]
    secret = token.split("_", 2)[2]
    assert secret not in listed + as_json and "secret_hash" not in as_json
    assert run("revoke", key_id)[0] == 0
    assert "revoked" in run("list")[1]
    code, _, err = run("revoke", "0123456789abcdef")
    assert code == 1 and "no key" in err
    with pytest.raises(SystemExit):
        run("create", "--name", "x", "--models", "gpt-4o")  # not provider:model

    # The bash wrapper, with --local: scripts/dev's DynamoDB on DDB_PORT and the admin key it wrote.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "API_KEYS_TABLE"}
    create_table(client, table_spec("ApiKeysTable"), "tokenrelay-api-keys")
    env["DDB_PORT"] = moto_server.rsplit(":", 1)[1]
    admin_file = tmp_path / "admin.json"
    admin = {"access_key_id": os.environ["AWS_ACCESS_KEY_ID"], "secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"]}
    admin_file.write_text(json.dumps({"admin": admin}))  # what scripts/dev writes: the admin key
    env["TOKENRELAY_ADMIN_FILE"] = str(admin_file)
    result = subprocess.run(
        [str(ROOT / "scripts" / "keys"), "--local", "create", "--name", "wrapped"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    listed = subprocess.run(
        [str(ROOT / "scripts" / "keys"), "--local", "list"], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert result.stdout.strip().split("_")[1] in listed and "wrapped" in listed
    client.close()


async def test_budget_counters_are_exact_under_fifty_parallel_writers(moto_server: str) -> None:
    # the local stack's DynamoDB (moto's server, atomic writes), real HTTP: 50 streams ending at once
    client = boto3.client("dynamodb", endpoint_url=moto_server, region_name=REGION)
    create_table(client, table_spec("RateLimitsTable"), "budgets-exact")
    store = DynamoRateLimitStore("budgets-exact", client)
    await asyncio.gather(*(store.spend("tpm#k#1", i + 1, 10**10) for i in range(50)))
    await asyncio.gather(*(store.spend("usd#k#1", 0.000123, 10**10) for _ in range(50)))
    item = client.get_item(TableName="budgets-exact", Key={"pk": {"S": "tpm#k#1"}}, ConsistentRead=True)["Item"]
    assert item["used"] == {"N": "1275"}  # 1 + 2 + ... + 50: no update lost
    item = client.get_item(TableName="budgets-exact", Key={"pk": {"S": "usd#k#1"}}, ConsistentRead=True)["Item"]
    assert Decimal(item["used"]["N"]) == Decimal("0.00615")  # DynamoDB numbers are decimal: exact
    # at the limit, every one of 50 racing checks refuses; just under it, every one passes
    assert not any(await asyncio.gather(*(store.under_budget("tpm#k#1", 1275, 10**10) for _ in range(50))))
    assert all(await asyncio.gather(*(store.under_budget("tpm#k#1", 1276, 10**10) for _ in range(50))))
    assert all(await asyncio.gather(*(store.under_budget("tpm#fresh#1", 1, 10**10) for _ in range(50))))


async def test_budgets_refuse_with_retry_after_to_the_window_end(ddb: Any) -> None:
    store = DynamoRateLimitStore(LIMITS, ddb)
    limiter = RateLimiter(store, lease_s=50, clock=Clock(6030.0))  # minute 100, 30 s in; day 0
    limits = Limits(tpm=10, daily_usd=0.5)
    await limiter.admit("key-t", limits, "s1")
    await limiter.spend("key-t", limits, 10, 0.25)
    with pytest.raises(LimitExceeded) as caught:
        await limiter.admit("key-t", limits, "s2")
    assert (caught.value.limit, caught.value.retry_after) == ("tokens_per_minute", 30)
    await limiter.spend("key-u", limits, 1, 0.5)
    with pytest.raises(LimitExceeded) as caught:
        await limiter.admit("key-u", limits, "s3")
    assert (caught.value.limit, caught.value.retry_after) == ("daily_spend", 86_400 - 6030)
    item = ddb.get_item(TableName=LIMITS, Key={"pk": {"S": "tpm#key-t#100"}})["Item"]
    assert item["used"] == {"N": "10"} and item["expires_at"] == {"N": "6120"}
    await limiter.spend("key-v", limits, 5, None)  # a stream without a price counts its tokens only
    assert "Item" not in ddb.get_item(TableName=LIMITS, Key={"pk": {"S": "usd#key-v#0"}})
