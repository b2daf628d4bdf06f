"""Token budgets per key over HTTP, end to end (docs/security.md, "Token budgets"): the local
Function URL with AUTH_MODE=api_key, keys and counters in the stack's DynamoDB (moto's server,
IAM enforced), the limiter's clock frozen mid-minute (``tests/e2e/protection.py``). A running
stream always finishes; what it used is counted at its end, exactly, however many end at once;
then the next request is refused with 429 and ``Retry-After``."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.e2e.protection import FIXED_NOW, LIMITS_TABLE, ProtectionTables, protected_env
from tests.e2e.sse_client import iter_sse
from tests.fakes.local_stack import LocalAws, function_stack
from tests.fakes.upstream import FakeUpstream, Scenario
from tokenrelay.catalog import DEFAULT_PRICES

STREAMS = "tokenrelay-streams-budgets-e2e"
MINUTE = int(FIXED_NOW // 60)
DAY = int(FIXED_NOW // 86_400)


@pytest.fixture(scope="module")
def served(aws: LocalAws, upstream_server: FakeUpstream) -> Iterator[tuple[str, ProtectionTables]]:
    tables = ProtectionTables.create(aws.endpoint, STREAMS)
    with function_stack(aws, {**upstream_server.env, **protected_env(STREAMS)}, name="budgets") as stack:
        yield stack.http, tables
        stack.assert_no_access_denied()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def used(tables: ProtectionTables, key: str) -> Decimal | None:
    item = tables.client.get_item(TableName=LIMITS_TABLE, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
    return Decimal(item["used"]["N"]) if item is not None and "used" in item else None


async def settled(tables: ProtectionTables, key: str, expected: Decimal, wait_s: float = 10.0) -> Decimal | None:
    """The counter once it reached ``expected`` (each stream is counted just after its end), held
    a little longer to see that nothing more arrives."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if (used(tables, key) or 0) >= expected:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    return used(tables, key)


async def test_fifty_parallel_streams_are_counted_exactly_then_the_next_request_is_refused(
    served: tuple[str, ProtectionTables], upstream: FakeUpstream
) -> None:
    url, tables = served
    # echo: "hi" is 1 prompt token, "You said: hi" 3 completion tokens: 4 a stream, 200 for 50
    token, key = await tables.key(tpm=200)
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=180, limits=limits) as client:
        answers = await asyncio.gather(
            *(client.post("/chat/stream-simple", json={"message": "hi"}, headers=bearer(token)) for _ in range(50))
        )
        # no stream can be refused: the counter reaches 200 only once all 50 have ended
        assert Counter(r.status_code for r in answers) == {200: 50}, [r.text for r in answers][:3]
        assert await settled(tables, f"tpm#{key.key_id}#{MINUTE}", Decimal(200)) == 200  # not one token lost or doubled
        refused = await client.post("/chat/stream-simple", json={"message": "hi"}, headers=bearer(token))
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"  # to the end of the minute
    assert refused.json()["code"] == "rate_limited" and "200 tokens per minute" in refused.json()["error"]


async def test_a_running_stream_finishes_when_the_budget_runs_out_under_it(
    served: tuple[str, ProtectionTables], upstream: FakeUpstream
) -> None:
    url, tables = served
    token, key = await tables.key(tpm=4)
    upstream.scenario = Scenario.ok(*[f"w{i} " for i in range(60)], delay_s=0.02)  # about 1.2 s
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream(
            "POST", "/chat/stream", json={"message": "go", "provider": "openai"}, headers=bearer(token)
        ) as long:
            events = iter_sse(long)
            assert (await anext(events)).event == "start"
            short = await client.post("/chat/stream-simple", json={"message": "hi"}, headers=bearer(token))
            assert short.status_code == 200  # 4 tokens: the budget is spent
            assert await settled(tables, f"tpm#{key.key_id}#{MINUTE}", Decimal(4), wait_s=5) == 4
            refused = await client.post("/chat/stream-simple", json={"message": "hi"}, headers=bearer(token))
            assert refused.status_code == 429
            rest = [e async for e in events]
    assert rest[-1].event == "done" and rest[-1].data["completion_tokens"] == 60  # it ran to its end
    # and its tokens count too: 12 prompt (the fake's) + 60
    assert await settled(tables, f"tpm#{key.key_id}#{MINUTE}", Decimal(76)) == 76


async def test_a_daily_spend_budget_refuses_until_midnight_utc(
    served: tuple[str, ProtectionTables], upstream: FakeUpstream
) -> None:
    url, tables = served
    token, key = await tables.key(daily_usd=0.000001)
    upstream.scenario = Scenario.ok(*[f"w{i} " for i in range(10)], prompt_tokens=100)
    body: dict[str, Any] = {"message": "hi", "provider": "openai"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        first = await client.post("/chat/stream-simple", json=body, headers=bearer(token))
        assert first.status_code == 200
        price = DEFAULT_PRICES[("openai", "gpt-4o-mini")]
        cost = Decimal(str(price.cost_usd(100, 10)))
        assert await settled(tables, f"usd#{key.key_id}#{DAY}", cost) == cost
        refused = await client.post("/chat/stream-simple", json=body, headers=bearer(token))
    midnight = (DAY + 1) * 86_400
    assert refused.status_code == 429 and refused.headers["retry-after"] == str(int(midnight - FIXED_NOW))
    assert "daily budget" in refused.json()["error"]
