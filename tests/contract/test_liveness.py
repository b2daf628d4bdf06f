"""Contract: any upstream event is a sign of life for ``UPSTREAM_FIRST_CHUNK_S`` and ``UPSTREAM_STALL_S``.

A reasoning model that thinks for longer than the first-chunk limit before its first text used to
end in ``upstream_timeout`` after three requests (the user paid for the reasoning three times).
Here a fake upstream reasons for 3 s with the limits at 1 s: one request, and the stream completes
with the reasoning and the answer. Real SDKs, the registry's resilient providers, a real run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.test_bedrock_provider import MODEL as BEDROCK_MODEL
from tests.fakes import parts as p
from tests.fakes.bedrock import BedrockScenario, FakeBedrock, bedrock, bedrock_server
from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.upstream import FakeUpstream, Scenario
from tokenrelay import (
    ChatRequest,
    Event,
    Message,
    ReasoningDelta,
    Settings,
    StreamDone,
    StreamRun,
    StreamServices,
    TextDelta,
)
from tokenrelay.providers import ProviderRegistry

__all__ = ["bedrock", "bedrock_server"]  # fixtures

MODELS = {"openai": "o4-mini", "anthropic": "claude-haiku-4-5", "bedrock": BEDROCK_MODEL}
LIMITS = {"UPSTREAM_FIRST_CHUNK_S": "1", "UPSTREAM_STALL_S": "1", "UPSTREAM_MAX_RETRIES": "2"}
THINKING = (*[p.think(f"step {i}. ") for i in range(30)], p.sign("sig"), p.say("The answer."))  # 30 x 0.1 s


@pytest.fixture
async def registry(upstream: FakeUpstream, bedrock: FakeBedrock) -> AsyncIterator[ProviderRegistry]:
    allowed = ";".join(f"{k}:{v}" for k, v in MODELS.items())
    env = {**upstream.env, **LIMITS, "BEDROCK_ENABLED": "true", "ALLOWED_MODELS": allowed}
    registry = ProviderRegistry(Settings.from_env(env))
    yield registry
    await registry.aclose()


@pytest.mark.parametrize("provider", ["openai", "anthropic", "bedrock"])
async def test_reasoning_longer_than_the_first_chunk_limit_completes_after_one_request(
    registry: ProviderRegistry, upstream: FakeUpstream, bedrock: FakeBedrock, provider: str
) -> None:
    request = ChatRequest(
        messages=(Message("user", "think"),), provider=provider, model=MODELS[provider], max_tokens=64
    )
    # Warm up: the SDK's import and client (boto3's takes ~1 s cold) are not the upstream's silence.
    await complete(registry, request, "warm-up")
    bedrock.reset()
    upstream.reset()
    if provider == "bedrock":
        bedrock.scenario = BedrockScenario(parts=THINKING, delay_s=0.1)
    else:
        upstream.scenario = Scenario(parts=THINKING, delay_s=0.1)

    run, events = await complete(registry, request, "live-1")

    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert reasoning == "".join(f"step {i}. " for i in range(30))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "The answer."
    assert isinstance(events[-1], StreamDone)
    requests = len(bedrock.requests) if provider == "bedrock" else len(upstream.requests)
    assert requests == 1 and run.upstream.attempts == 1 and run.upstream.retries == 0


async def complete(registry: ProviderRegistry, request: ChatRequest, stream_id: str) -> tuple[StreamRun, list[Event]]:
    run = StreamRun(
        request,
        registry.get(request.provider),
        StreamServices(Settings(cancel_poll_s=0.05), MemoryStreamStore()),
        stream_id=stream_id,
        owner="tester",
        transport="sse",
    )
    await run.open()
    events = [event async for event in run.events()]
    await run.wait()
    return run, events
