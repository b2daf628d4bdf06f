"""Contract: reasoning and tool calls through the real ``openai``, ``anthropic`` and ``boto3`` SDKs,
against fake upstreams that speak each wire format (``tests/fakes/parts.py``).

Each provider gets the same cases: parallel tool calls, an empty first argument fragment, a whole
call in one delta, thinking with a signature, redacted thinking, and text, tool, text interleaved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contract.streaming import run
from tests.fakes import parts as p
from tests.fakes.bedrock import BedrockScenario, FakeBedrock, bedrock, bedrock_server
from tests.fakes.upstream import FakeUpstream, Scenario
from tokenrelay.events import Usage
from tokenrelay.providers import Chunk, Finish, Provider, ReasoningChunk, TextChunk, ToolArgs, ToolEnd, ToolStart
from tokenrelay.providers.anthropic import AnthropicProvider
from tokenrelay.providers.bedrock import BedrockProvider
from tokenrelay.providers.openai import OpenAIProvider
from tokenrelay.requests import ChatRequest, Message

__all__ = ["bedrock", "bedrock_server"]  # fixtures

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "bedrock": "us.anthropic.claude-haiku-4-5-v1:0"}
CITY = '{"city":"Paris"}'
INTERLEAVED = (
    p.say("Let me check. "),
    p.call(0, "call_a", "get_weather"),
    p.args(0, ""),  # the empty first fragment the real APIs send
    p.args(0, '{"city":'),
    p.args(0, '"Paris"}'),
    p.end(0),
    p.say("Asked."),
)
THINKING = (p.think("The user "), p.think("wants weather."), p.sign("sig-123"), p.say("Sunny."))
REDACTED = (p.redacted(p.b64(b"\x00opaque\xff")), p.think("More."), p.sign("sig-9"), p.say("Ok."))
WHOLE = (p.whole(0, "call_w", "get_time", '{"tz":"UTC"}'),)
PARALLEL_SEQUENTIAL = (  # Anthropic and Bedrock: one block after the other
    p.call(0, "call_1", "get_weather"),
    p.args(0, CITY),
    p.end(0),
    p.call(1, "call_2", "get_time"),
    p.args(1, '{"tz":'),
    p.args(1, '"CET"}'),
    p.end(1),
)
PARALLEL_INTERLEAVED = (  # OpenAI: fragments of both calls, interleaved by index
    p.call(0, "call_1", "get_weather"),
    p.call(1, "call_2", "get_time"),
    p.args(0, CITY),
    p.args(1, '{"tz":'),
    p.args(1, '"CET"}'),
)


def chat(provider: str) -> ChatRequest:
    return ChatRequest(
        messages=(Message("user", "Weather?"),), provider=provider, model=MODELS[provider], max_tokens=64
    )


class Target:
    """One provider, its SDK client, and the fake it talks to."""

    def __init__(self, name: str, upstream: FakeUpstream, fake_bedrock: FakeBedrock | None) -> None:
        self.name, self.upstream, self.bedrock = name, upstream, fake_bedrock
        kinds: dict[str, type[Provider]] = {
            "openai": OpenAIProvider,
            "anthropic": AnthropicProvider,
            "bedrock": BedrockProvider,
        }
        self.provider = kinds[name](max_retries=0, timeout_s=5.0)  # type: ignore[call-arg]

    async def stream(self, script: tuple[p.Step, ...]) -> list[Chunk]:
        if self.bedrock is not None:
            self.bedrock.scenario = BedrockScenario(parts=script)
        else:
            self.upstream.scenario = Scenario(parts=script, reasoning_tokens=7)
        chunks = await run(self.provider, chat(self.name))
        assert isinstance(chunks[-1], Finish) and isinstance(chunks[-2], Usage)
        return chunks


@pytest.fixture(params=["openai", "anthropic", "bedrock"])
async def target(request: pytest.FixtureRequest, upstream: FakeUpstream) -> AsyncIterator[Target]:
    fake = request.getfixturevalue("bedrock") if request.param == "bedrock" else None
    target = Target(request.param, upstream, fake)
    yield target
    await target.provider.aclose()


async def test_text_tool_text_interleaved(target: Target) -> None:
    name = target.name
    chunks = await target.stream(INTERLEAVED)

    content = chunks[:-2]
    calls = [ToolStart(0, "call_a", "get_weather"), ToolArgs(0, '{"city":'), ToolArgs(0, '"Paris"}')]
    if name == "openai":  # OpenAI ends its calls when the choice finishes
        assert content == [TextChunk("Let me check. "), *calls, TextChunk("Asked."), ToolEnd(0)]
    else:
        assert content == [TextChunk("Let me check. "), *calls, ToolEnd(0), TextChunk("Asked.")]
    assert chunks[-1] == Finish("tool_calls")


async def test_whole_call_in_one_delta(target: Target) -> None:
    chunks = await target.stream(WHOLE)

    assert chunks[:-2] == [ToolStart(0, "call_w", "get_time"), ToolArgs(0, '{"tz":"UTC"}'), ToolEnd(0)]


async def test_parallel_tool_calls(target: Target) -> None:
    name = target.name
    script = PARALLEL_INTERLEAVED if name == "openai" else PARALLEL_SEQUENTIAL
    chunks = await target.stream(script)

    starts = [c for c in chunks if isinstance(c, ToolStart)]
    assert starts == [ToolStart(0, "call_1", "get_weather"), ToolStart(1, "call_2", "get_time")]
    for index, expected in ((0, CITY), (1, '{"tz":"CET"}')):
        assert "".join(c.arguments for c in chunks if isinstance(c, ToolArgs) and c.index == index) == expected
    ends = [c for c in chunks if isinstance(c, ToolEnd)]
    assert ends == [ToolEnd(0), ToolEnd(1)]
    for end in ends:  # an end comes after every fragment of its call
        last_fragment = max(i for i, c in enumerate(chunks) if isinstance(c, ToolArgs) and c.index == end.index)
        assert chunks.index(end) > last_fragment


async def test_thinking_with_signature(target: Target) -> None:
    name = target.name
    chunks = await target.stream(THINKING)

    reasoning = [ReasoningChunk("The user "), ReasoningChunk("wants weather.")]
    if name != "openai":  # OpenAI-compatible servers sign nothing
        reasoning.append(ReasoningChunk("", signature="sig-123"))
    assert chunks[:-2] == [*reasoning, TextChunk("Sunny.")]
    assert chunks[-1] == Finish("stop")
    if name == "openai":
        assert chunks[-2] == Usage(12, 3, reasoning_tokens=7, cached_tokens=0)


@pytest.mark.parametrize("target", ["anthropic", "bedrock"], indirect=True)  # OpenAI's format has none
async def test_redacted_thinking(target: Target) -> None:
    chunks = await target.stream(REDACTED)

    assert chunks[:-2] == [
        ReasoningChunk("", redacted=p.b64(b"\x00opaque\xff")),
        ReasoningChunk("More."),
        ReasoningChunk("", signature="sig-9"),
        TextChunk("Ok."),
    ]
