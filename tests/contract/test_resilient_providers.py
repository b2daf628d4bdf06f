"""Contract: the registry's providers retry once, in TokenRelay, never in the SDK as well.

Real SDKs against the fakes: a persistent failure costs exactly ``1 + UPSTREAM_MAX_RETRIES``
upstream requests for every provider (with the SDKs' own retries on, 3 x 3 = 9), and a
failure before the first text is retried for Bedrock as for the HTTP providers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.contract.streaming import run, text
from tests.contract.test_bedrock_provider import MODEL as BEDROCK_MODEL
from tests.fakes.bedrock import BedrockScenario, FakeBedrock, bedrock, bedrock_server
from tests.fakes.upstream import FakeUpstream, Scenario
from tokenrelay import ChatRequest, Message, Settings
from tokenrelay.errors import RateLimited, Unavailable, UpstreamTimeout
from tokenrelay.providers import ProviderRegistry
from tokenrelay.providers.resilient import track_upstream

__all__ = ["bedrock", "bedrock_server"]  # fixtures

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "bedrock": BEDROCK_MODEL}
ENV = {
    "UPSTREAM_MAX_RETRIES": "2",
    "UPSTREAM_BACKOFF_MS": "1",
    "UPSTREAM_FIRST_CHUNK_S": "0.5",
    "UPSTREAM_STALL_S": "0.5",
}


def chat(provider: str) -> ChatRequest:
    return ChatRequest(messages=(Message("user", "hi"),), provider=provider, model=MODELS[provider], max_tokens=16)


@pytest.fixture
async def registry(upstream: FakeUpstream, bedrock: FakeBedrock) -> AsyncIterator[ProviderRegistry]:
    env = {**upstream.env, **ENV, "BEDROCK_ENABLED": "true", "ALLOWED_MODELS": "openai:gpt-4o-mini;"
           "anthropic:claude-haiku-4-5;bedrock:" + BEDROCK_MODEL}  # fmt: skip
    registry = ProviderRegistry(Settings.from_env(env))
    yield registry
    await registry.aclose()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_registry_persistent_503_costs_exactly_one_plus_retries_requests(
    registry: ProviderRegistry, upstream: FakeUpstream, provider: str
) -> None:
    upstream.scenario = Scenario.http_error(503)
    with pytest.raises(Unavailable):
        await run(registry.get(provider), chat(provider))
    assert len(upstream.requests) == 3


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_registry_503_then_ok_streams_the_text_once(
    registry: ProviderRegistry, upstream: FakeUpstream, provider: str
) -> None:
    upstream.enqueue(Scenario.http_error(503))
    upstream.scenario = Scenario.ok("a", "b", "c")
    report = track_upstream()
    assert text(await run(registry.get(provider), chat(provider))) == "abc"
    assert len(upstream.requests) == 2 and report.retries == 1


async def test_registry_bedrock_throttled_is_retried_by_tokenrelay_not_botocore(
    registry: ProviderRegistry, bedrock: FakeBedrock
) -> None:
    bedrock.scenario = BedrockScenario.http_error(429, "ThrottlingException")
    with pytest.raises(RateLimited):
        await run(registry.get("bedrock"), chat("bedrock"))
    assert len(bedrock.requests) == 3

    bedrock.reset()
    bedrock.enqueue(BedrockScenario.http_error(429, "ThrottlingException"))
    bedrock.scenario = BedrockScenario.ok("Bon", "jour")
    assert text(await run(registry.get("bedrock"), chat("bedrock"))) == "Bonjour"
    assert len(bedrock.requests) == 2


async def test_registry_bedrock_no_first_token_times_out_and_closes_the_stream(
    registry: ProviderRegistry, bedrock: FakeBedrock
) -> None:
    bedrock.scenario = BedrockScenario.ok("late", delay_s=30.0)
    with pytest.raises(UpstreamTimeout):
        await run(registry.get("bedrock"), chat("bedrock"))
    assert len(bedrock.requests) == 3
    assert await asyncio.to_thread(bedrock.wait_ended, 3, 5.0, closed_early=True)
