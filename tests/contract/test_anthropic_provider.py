"""Contract: ``AnthropicProvider`` drives the real ``anthropic`` SDK against the fake upstream."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path

import pytest

from tests.contract.streaming import assert_clean, run, text
from tests.fakes.upstream import FAKE_API_KEY, FakeUpstream, Scenario
from tokenrelay.errors import ProviderError, RateLimited, Rejected, Unavailable
from tokenrelay.events import Usage
from tokenrelay.providers import Alive, Chunk, Finish, TextChunk
from tokenrelay.providers.anthropic import AnthropicProvider, AnthropicStreamState
from tokenrelay.requests import ChatRequest, Message

MODEL = "claude-haiku-4-5"
CORE = Path(__file__).resolve().parents[2] / "layers" / "core"

MakeProvider = Callable[..., AnthropicProvider]


def chat(text: str = "Hi", *, system: str | None = None, temperature: float | None = None) -> ChatRequest:
    return ChatRequest(
        messages=(Message("user", text),),
        provider="anthropic",
        model=MODEL,
        max_tokens=64,
        system=system,
        temperature=temperature,
    )


@pytest.fixture
async def make_provider(upstream: FakeUpstream) -> AsyncIterator[MakeProvider]:
    made: list[AnthropicProvider] = []

    def make(*, max_retries: int = 0, timeout_s: float = 5.0) -> AnthropicProvider:
        made.append(AnthropicProvider(max_retries=max_retries, timeout_s=timeout_s))
        return made[-1]

    yield make
    for provider in made:
        await provider.aclose()


# -- happy path -------------------------------------------------------------------------------


async def test_anthropic_stream_happy_path_yields_text_then_usage_then_finish(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    tokens = ("Hel", "lo", ", ", "wörld", " 🌍", "\n")
    upstream.scenario = Scenario.ok(*tokens, prompt_tokens=31)

    chunks = await run(make_provider(), chat())

    assert chunks == [
        *(TextChunk(t) for t in tokens),
        Usage(prompt_tokens=31, completion_tokens=len(tokens), cached_tokens=0, cache_write_tokens=0),
        Finish("stop"),
    ]
    assert upstream.last.finished.is_set()


async def test_anthropic_stream_request_folds_system_turns_and_sends_no_temperature(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    request = ChatRequest(
        messages=(
            Message("system", "Answer in French."),
            Message("user", "Hi"),
            Message("assistant", "Bonjour !"),
            Message("system", "Be brief."),
            Message("user", "Bye"),
        ),
        provider="anthropic",
        model=MODEL,
        max_tokens=77,
        system="You are TokenRelay.",
        temperature=0.3,
    )

    await run(make_provider(), request)

    sent = upstream.last
    assert sent.path == "/v1/messages"
    assert sent.headers["authorization"] == f"Bearer {FAKE_API_KEY}"
    assert sent.headers["anthropic-version"]
    assert sent.json["system"] == "You are TokenRelay.\n\nAnswer in French.\n\nBe brief."
    assert sent.json["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour !"},
        {"role": "user", "content": "Bye"},
    ]
    assert sent.json["max_tokens"] == 77
    assert sent.json["stream"] is True
    assert "temperature" not in sent.json


async def test_anthropic_stream_without_system_omits_it(upstream: FakeUpstream, make_provider: MakeProvider) -> None:
    await run(make_provider(), chat())

    assert "system" not in upstream.last.json


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "refusal"),
    ],
)
async def test_anthropic_stream_stop_reason_maps_to_finish_reason(
    upstream: FakeUpstream, make_provider: MakeProvider, stop_reason: str, finish: str
) -> None:
    upstream.scenario = Scenario.ok("a", "b", finish_reason=stop_reason)

    chunks = await run(make_provider(), chat())

    # a stop sequence is named when the upstream names it ("": it ended the answer, unnamed)
    assert chunks[-1] == Finish(finish, "" if stop_reason == "stop_sequence" else None)


async def test_anthropic_stream_names_the_stop_sequence_that_ended_the_answer(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.ok("a", finish_reason="stop_sequence")

    chunks = await run(make_provider(), dataclasses.replace(chat(), stop=("###", "END")))

    assert upstream.last.json["stop_sequences"] == ["###", "END"] and chunks[-1] == Finish("stop", "###")


@pytest.mark.parametrize(("newline", "chunk_size"), [("\n", None), ("\r\n", 11), ("\r", 13)])
async def test_anthropic_stream_recorded_transcript_yields_exact_text(
    upstream: FakeUpstream, make_provider: MakeProvider, newline: str, chunk_size: int | None
) -> None:
    upstream.scenario = Scenario.replay("anthropic_happy.txt", newline=newline, chunk_size=chunk_size)

    chunks = await run(make_provider(), chat())

    assert text(chunks) == "Hello! How can I help you today?"
    assert chunks[-2:] == [Usage(25, 12, cached_tokens=0, cache_write_tokens=0), Finish("stop")]


def test_anthropic_stream_state_counts_cached_input_as_prompt_tokens_and_says_how_much() -> None:
    state = AnthropicStreamState()
    start = (
        b'{"type":"message_start","message":{"usage":{"input_tokens":5,'
        b'"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":1}}}'
    )

    state.handle(b"message_start", start)
    state.handle(
        b"message_delta", b'{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}'
    )
    state.handle(b"message_stop", b'{"type":"message_stop"}')

    assert state.usage == Usage(prompt_tokens=2105, completion_tokens=9, cached_tokens=2000, cache_write_tokens=100)
    assert state.done


# -- errors -----------------------------------------------------------------------------------


async def test_anthropic_stream_overloaded_error_frame_mid_stream_raises_unavailable_after_the_text(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.error_frame(after=2)
    chunks: list[Chunk] = []

    with pytest.raises(Unavailable) as caught:
        await run(make_provider(), chat(), into=chunks)

    assert chunks == [TextChunk("Hello"), TextChunk(",")]
    assert caught.value.code == "upstream_unavailable"
    assert "overloaded" in caught.value.message
    assert_clean(caught.value)


async def test_anthropic_stream_recorded_error_transcript_raises_unavailable(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.replay("anthropic_error_midstream.txt")
    chunks: list[Chunk] = []

    with pytest.raises(Unavailable) as caught:
        await run(make_provider(), chat(), into=chunks)

    assert text(chunks) == "The answer is"
    assert_clean(caught.value)


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        ("rate_limit_error", RateLimited),
        ("overloaded_error", Unavailable),
        ("api_error", Unavailable),
        ("invalid_request_error", Rejected),
        ("something_new", Unavailable),
    ],
)
async def test_anthropic_stream_error_frame_type_picks_error_class(
    upstream: FakeUpstream, make_provider: MakeProvider, error_type: str, expected: type[ProviderError]
) -> None:
    upstream.scenario = Scenario.error_frame(after=1, error_type=error_type)

    with pytest.raises(ProviderError) as caught:
        await run(make_provider(), chat())

    assert type(caught.value) is expected
    assert_clean(caught.value)


@pytest.mark.parametrize(
    "scenario",
    [
        Scenario.truncated(after=2, drop_connection=True),
        Scenario.truncated(after=2, drop_connection=False),
        Scenario.replay("anthropic_truncated.txt", drop_connection=True),
        Scenario.replay("anthropic_truncated.txt", drop_connection=False),
    ],
    ids=["dropped", "clean-eof", "transcript-dropped", "transcript-clean-eof"],
)
async def test_anthropic_stream_truncated_raises_unavailable(
    upstream: FakeUpstream, make_provider: MakeProvider, scenario: Scenario
) -> None:
    upstream.scenario = scenario
    chunks: list[Chunk] = []

    with pytest.raises(Unavailable, match="stream ended unexpectedly") as caught:
        await run(make_provider(), chat(), into=chunks)

    assert len(chunks) == 2 if scenario.transcript is None else text(chunks) == "Once upon a"
    assert not any(isinstance(c, Finish) for c in chunks)
    assert_clean(caught.value)


async def test_anthropic_stream_http_429_raises_rate_limited(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.http_error(429)

    with pytest.raises(RateLimited) as caught:
        await run(make_provider(max_retries=0), chat())

    assert caught.value.message == "Anthropic rate limit exceeded (HTTP 429)"
    assert len(upstream.requests) == 1
    assert_clean(caught.value)


async def test_anthropic_stream_http_429_spend_limit_raises_rejected(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.http_error(429, error_type="enforced_spend_limit_reached")

    with pytest.raises(Rejected) as caught:
        await run(make_provider(), chat())

    assert caught.value.retryable is False
    assert_clean(caught.value)


async def test_anthropic_stream_http_529_overloaded_raises_unavailable(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.http_error(529)

    with pytest.raises(Unavailable) as caught:
        await run(make_provider(), chat())

    assert caught.value.message == "Anthropic is overloaded (HTTP 529)"
    assert caught.value.retryable is True
    assert_clean(caught.value)


@pytest.mark.parametrize("status", [500, 503])
async def test_anthropic_stream_http_5xx_raises_unavailable(
    upstream: FakeUpstream, make_provider: MakeProvider, status: int
) -> None:
    upstream.scenario = Scenario.http_error(status)

    with pytest.raises(Unavailable) as caught:
        await run(make_provider(), chat())

    assert caught.value.message == f"Anthropic is unavailable (HTTP {status})"
    assert_clean(caught.value)


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 413])
async def test_anthropic_stream_http_4xx_raises_rejected(
    upstream: FakeUpstream, make_provider: MakeProvider, status: int
) -> None:
    upstream.scenario = Scenario.http_error(status)

    with pytest.raises(Rejected) as caught:
        await run(make_provider(), chat())

    assert caught.value.code == "upstream_rejected"
    assert f"HTTP {status}" in caught.value.message
    assert_clean(caught.value)


async def test_anthropic_stream_wrong_api_key_raises_rejected_without_echoing_it(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.api_key = "sk-ant-the-right-one"

    with pytest.raises(Rejected) as caught:
        await run(make_provider(), chat())

    assert upstream.last.status == 401
    assert caught.value.message == "Anthropic rejected the credentials (HTTP 401)"
    assert_clean(caught.value)


async def test_anthropic_stream_connection_refused_raises_unavailable(
    make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")

    with pytest.raises(Unavailable, match="could not connect to Anthropic"):
        await run(make_provider(), chat())


async def test_anthropic_stream_read_timeout_raises_unavailable_and_closes_upstream(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.ok("late", first_token_delay_s=3.0)

    with pytest.raises(Unavailable, match="timed out"):
        await run(make_provider(timeout_s=0.3), chat())

    assert await asyncio.to_thread(upstream.wait_closed_early, 1, 2.0)


# -- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 529])
async def test_anthropic_stream_5xx_then_success_is_retried_before_first_token(
    upstream: FakeUpstream, make_provider: MakeProvider, status: int
) -> None:
    upstream.enqueue(Scenario.http_error(status, retry_after_ms=10))

    chunks = await run(make_provider(max_retries=1), chat())

    assert text(chunks) == "Hello, world!"
    first, second = upstream.requests
    assert (first.status, second.status) == (status, 200)
    assert second.headers["x-stainless-retry-count"] == "1"


async def test_anthropic_stream_error_after_first_token_is_not_retried(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.error_frame(after=1)

    with pytest.raises(Unavailable):
        await run(make_provider(max_retries=2), chat())

    assert len(upstream.requests) == 1


# -- cancellation -----------------------------------------------------------------------------


async def test_anthropic_stream_closed_mid_stream_closes_upstream_request(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.ok(*[f"t{i} " for i in range(200)], delay_s=0.02)
    received: list[Chunk] = []

    async with aclosing(make_provider().stream(chat())) as stream:
        async for chunk in stream:
            if isinstance(chunk, Alive):
                continue  # a sign of life (the role chunk, a ping), nothing to relay
            received.append(chunk)
            if len(received) == 3:
                break

    assert received == [TextChunk("t0 "), TextChunk("t1 "), TextChunk("t2 ")]
    assert await asyncio.to_thread(upstream.wait_closed_early, 1, 2.0)
    assert not upstream.last.finished.is_set()


# -- cold start -------------------------------------------------------------------------------


def test_tokenrelay_import_does_not_load_anthropic_sdk() -> None:
    code = (
        "import sys, tokenrelay, tokenrelay.providers\n"
        "from tokenrelay.providers import ProviderRegistry\n"
        "assert 'anthropic' not in sys.modules, 'anthropic imported eagerly'\n"
        "assert 'openai' not in sys.modules, 'openai imported eagerly'\n"
        "import tokenrelay.providers.anthropic\n"
        "assert 'anthropic' in sys.modules and 'openai' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(CORE)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
