"""What each stream cost (docs/cost.md), end to end: the real OpenAI SDK against the fake
upstream, through the app under uvicorn and moto's DynamoDB. The cost is in the ``done``
event, in ``/v1`` usage (``cost_usd``), and in the stream record, also for a stream its
client left (estimated when the provider never reported usage)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import LocalApp
from tests.e2e.sse_client import iter_sse
from tests.fakes.upstream import Scenario
from tokenrelay.catalog import DEFAULT_PRICES

PRICE = DEFAULT_PRICES[("openai", "gpt-4o-mini")]
TOKENS = tuple(f"w{i} " for i in range(10))


def expected(prompt: int, completion: int, cached: int = 0) -> float:
    return (prompt * PRICE.input + cached * PRICE.cached_input + completion * PRICE.output) / 1_000_000


async def wait_record(app: LocalApp, stream_id: str, status: str, within_s: float = 5.0) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        record = await app.record(stream_id)
        if record is not None and record.status == status:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"record {stream_id} never reached {status}: {await app.record(stream_id)}")


@pytest.fixture
async def client(app: LocalApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as c:
        yield c


async def test_done_event_and_record_carry_the_cost(app: LocalApp, client: httpx.AsyncClient) -> None:
    app.upstream.scenario = Scenario.ok(*TOKENS, prompt_tokens=500, cached_tokens=1500)
    async with client.stream("POST", "/chat/stream", json={"message": "hi", "provider": "openai"}) as response:
        events = [e async for e in iter_sse(response)]
    done = events[-1]
    assert done.event == "done" and done.data["cost_usd"] == pytest.approx(expected(500, 10, 1500), rel=1e-9)
    assert "cost_estimated" not in done.data
    record = await wait_record(app, done.data["stream_id"], "complete")
    assert record.cost_usd == pytest.approx(done.data["cost_usd"], rel=1e-9) and record.cost_estimated is False


async def test_v1_usage_carries_the_cost_as_an_extension_field(app: LocalApp) -> None:
    app.upstream.scenario = Scenario.ok(*TOKENS, prompt_tokens=40)
    sdk = openai.AsyncOpenAI(base_url=f"{app.url}/v1", api_key="tr-local", max_retries=0, timeout=10)
    try:
        stream = await sdk.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = [c.usage async for c in stream if c.usage is not None].pop()
        whole = await sdk.chat.completions.create(model="echo/echo-1", messages=[{"role": "user", "content": "hi"}])
    finally:
        await sdk.close()
    assert (usage.model_extra or {})["cost_usd"] == pytest.approx(expected(40, 10), rel=1e-9)
    assert whole.usage is not None and (whole.usage.model_extra or {})["cost_usd"] == 0  # echo is free


async def test_a_client_that_leaves_still_leaves_a_cost_estimated_from_the_text(
    app: LocalApp, client: httpx.AsyncClient
) -> None:
    # no resume here: the stream stops when its client leaves, before the provider's usage;
    # what it generated until then is billed all the same, so the record estimates it
    app.upstream.scenario = Scenario.ok(*[f"w{i} " for i in range(500)], delay_s=0.02)
    async with client.stream("POST", "/chat/stream", json={"message": "x" * 400, "provider": "openai"}) as response:
        stream_id = response.headers["x-stream-id"]
        seen = 0
        async for event in iter_sse(response):
            seen += event.event == "message"
            if seen == 3:
                break
    record = await wait_record(app, stream_id, "cancelled")
    assert record.cost_estimated is True
    chunks = record.completion_tokens
    assert chunks >= 3 and record.cost_usd == pytest.approx(expected(100, chunks), rel=1e-9)  # 400 chars: 100
