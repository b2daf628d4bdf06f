"""Contract: ``OpenAIProvider`` drives the real ``openai`` SDK against the fake upstream."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path

import pytest

from tests.contract.streaming import assert_clean, run, text
from tests.fakes.upstream import FAKE_API_KEY, SSE_FIXTURES, FakeUpstream, Scenario
from tokenrelay.errors import ProviderError, RateLimited, Rejected, Unavailable
from tokenrelay.events import Usage
from tokenrelay.providers import Alive, Chunk, Finish, ReasoningChunk, TextChunk
from tokenrelay.providers._sse import SSEDecoder
from tokenrelay.providers.openai import OpenAIProvider
from tokenrelay.requests import ChatRequest, Message

MODEL = "gpt-4o-mini"
CORE = Path(__file__).resolve().parents[2] / "layers" / "core"

MakeProvider = Callable[..., OpenAIProvider]


def chat(text: str = "Hi", *, system: str | None = None, temperature: float | None = None) -> ChatRequest:
    return ChatRequest(
        messages=(Message("user", text),),
        provider="openai",
        model=MODEL,
        max_tokens=64,
        system=system,
        temperature=temperature,
    )


@pytest.fixture
async def make_provider(upstream: FakeUpstream) -> AsyncIterator[MakeProvider]:
    made: list[OpenAIProvider] = []

    def make(*, max_retries: int = 0, timeout_s: float = 5.0) -> OpenAIProvider:
        made.append(OpenAIProvider(max_retries=max_retries, timeout_s=timeout_s))
        return made[-1]

    yield make
    for provider in made:
        await provider.aclose()


# -- happy path -------------------------------------------------------------------------------


async def test_openai_stream_happy_path_yields_text_then_usage_then_finish(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    tokens = ("Hel", "lo", ", ", "wörld", " 🌍", "\n", "")
    upstream.scenario = Scenario.ok(*tokens, prompt_tokens=21)

    chunks = await run(make_provider(), chat())

    assert chunks == [
        *(TextChunk(t) for t in tokens if t),
        Usage(prompt_tokens=21, completion_tokens=len(tokens), reasoning_tokens=0, cached_tokens=0),
        Finish("stop"),
    ]
    assert upstream.last.finished.is_set()


async def test_openai_stream_request_carries_system_prompt_limits_and_key(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    request = ChatRequest(
        messages=(Message("user", "Hi"), Message("assistant", "Hello!"), Message("user", "Bye")),
        provider="openai",
        model=MODEL,
        max_tokens=77,
        system="Be brief.",
        temperature=0.25,
    )

    await run(make_provider(), request)

    sent = upstream.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {FAKE_API_KEY}"
    assert sent.json["model"] == MODEL
    assert sent.json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.json["max_completion_tokens"] == 77
    assert "max_tokens" not in sent.json
    assert sent.json["temperature"] == 0.25


async def test_openai_stream_without_system_or_temperature_omits_them(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    await run(make_provider(), chat())

    assert upstream.last.json["messages"] == [{"role": "user", "content": "Hi"}]
    assert "temperature" not in upstream.last.json


async def test_openai_stream_length_finish_reason_passes_through(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.ok("a", "b", finish_reason="length")

    chunks = await run(make_provider(), chat())

    assert chunks[-1] == Finish("length")


async def test_openai_stream_recorded_transcript_yields_exact_text(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.replay("openai_happy.txt")

    chunks = await run(make_provider(), chat())

    assert text(chunks) == "Hello! How can I help you today?"
    assert chunks[-2:] == [Usage(19, 9, reasoning_tokens=0, cached_tokens=0), Finish("stop")]


@pytest.mark.parametrize(("newline", "chunk_size"), [("\n", None), ("\r\n", 7), ("\r", 5)])
async def test_openai_stream_compatible_server_quirks_parse_the_same(
    upstream: FakeUpstream, make_provider: MakeProvider, newline: str, chunk_size: int | None
) -> None:
    """Comments, ``data:`` without a space, a payload over two ``data:`` lines, id/retry fields,
    extra blank lines, null content, reasoning_content (vLLM); any line ending; any read boundaries."""
    upstream.scenario = Scenario.replay("openai_compatible_quirks.txt", newline=newline, chunk_size=chunk_size)

    chunks = await run(make_provider(), chat())

    assert chunks == [
        TextChunk("Multi"),
        TextChunk("-line"),
        TextChunk(" café ☕"),
        ReasoningChunk("thinking"),
        TextChunk("\n\ndone"),
        Usage(prompt_tokens=7, completion_tokens=5),
        Finish("length"),
    ]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_openai_sse_decoder_any_split_point_gives_the_same_events(newline: bytes) -> None:
    raw = (SSE_FIXTURES / "openai_compatible_quirks.txt").read_bytes().replace(b"\n", newline)
    whole = SSEDecoder("OpenAI")
    expected = whole.feed(raw) + whole.close()
    assert len(expected) == 9
    assert expected[-1] == (b"", b"[DONE]")

    for cut in range(1, len(raw)):
        decoder = SSEDecoder("OpenAI")
        assert decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) + decoder.close() == expected, cut
    decoder = SSEDecoder("OpenAI")
    assert [e for i in range(len(raw)) for e in decoder.feed(raw[i : i + 1])] + decoder.close() == expected


# -- errors -----------------------------------------------------------------------------------


async def test_openai_stream_error_frame_mid_stream_raises_unavailable_after_the_text(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.error_frame(after=2)
    chunks: list[Chunk] = []

    with pytest.raises(Unavailable) as caught:
        await run(make_provider(), chat(), into=chunks)

    assert chunks == [TextChunk("Hello"), TextChunk(",")]
    assert caught.value.code == "upstream_unavailable"
    assert caught.value.retryable is True
    assert_clean(caught.value)


async def test_openai_stream_recorded_error_transcript_raises_unavailable(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.replay("openai_error_midstream.txt")
    chunks: list[Chunk] = []

    with pytest.raises(Unavailable) as caught:
        await run(make_provider(), chat(), into=chunks)

    assert text(chunks) == "The answer is"
    assert "server_error" in caught.value.message
    assert_clean(caught.value)


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        ("rate_limit_exceeded", RateLimited),
        ("invalid_request_error", Rejected),
        ("insufficient_quota", Rejected),
        ("server_error", Unavailable),
        ("something_new", Unavailable),
    ],
)
async def test_openai_stream_error_frame_type_picks_error_class(
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
        Scenario.replay("openai_truncated.txt", drop_connection=True),
        Scenario.replay("openai_truncated.txt", drop_connection=False),
    ],
    ids=["dropped", "clean-eof", "transcript-dropped", "transcript-clean-eof"],
)
async def test_openai_stream_truncated_raises_unavailable(
    upstream: FakeUpstream, make_provider: MakeProvider, scenario: Scenario
) -> None:
    upstream.scenario = scenario
    chunks: list[Chunk] = []

    with pytest.raises(Unavailable, match="stream ended unexpectedly") as caught:
        await run(make_provider(), chat(), into=chunks)

    assert len(chunks) == 2 if scenario.transcript is None else text(chunks) == "Once upon a"
    assert not any(isinstance(c, Finish) for c in chunks)
    assert_clean(caught.value)


async def test_openai_stream_http_429_raises_rate_limited(upstream: FakeUpstream, make_provider: MakeProvider) -> None:
    upstream.scenario = Scenario.http_error(429)

    with pytest.raises(RateLimited) as caught:
        await run(make_provider(max_retries=0), chat())

    assert caught.value.code == "upstream_rate_limited"
    assert caught.value.message == "OpenAI rate limit exceeded (HTTP 429)"
    assert len(upstream.requests) == 1
    assert_clean(caught.value)


async def test_openai_stream_http_429_insufficient_quota_raises_rejected(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.http_error(429, error_type="insufficient_quota")

    with pytest.raises(Rejected) as caught:
        await run(make_provider(), chat())

    assert caught.value.retryable is False
    assert_clean(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_openai_stream_http_5xx_raises_unavailable(
    upstream: FakeUpstream, make_provider: MakeProvider, status: int
) -> None:
    upstream.scenario = Scenario.http_error(status)

    with pytest.raises(Unavailable) as caught:
        await run(make_provider(), chat())

    assert caught.value.message == f"OpenAI is unavailable (HTTP {status})"
    assert_clean(caught.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_openai_stream_http_4xx_raises_rejected(
    upstream: FakeUpstream, make_provider: MakeProvider, status: int
) -> None:
    upstream.scenario = Scenario.http_error(status)

    with pytest.raises(Rejected) as caught:
        await run(make_provider(), chat())

    assert caught.value.code == "upstream_rejected"
    assert f"HTTP {status}" in caught.value.message
    assert_clean(caught.value)


async def test_openai_stream_wrong_api_key_raises_rejected_without_echoing_it(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.api_key = "sk-test-the-right-one"

    with pytest.raises(Rejected) as caught:
        await run(make_provider(), chat())

    assert upstream.last.status == 401
    assert caught.value.message == "OpenAI rejected the credentials (HTTP 401)"
    assert_clean(caught.value)


async def test_openai_stream_missing_api_key_raises_rejected(
    upstream: FakeUpstream, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")

    with pytest.raises(Rejected, match="not configured"):
        await run(make_provider(), chat())

    assert upstream.requests == []


async def test_openai_stream_connection_refused_raises_unavailable(
    make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")

    with pytest.raises(Unavailable, match="could not connect to OpenAI"):
        await run(make_provider(), chat())


async def test_openai_stream_read_timeout_raises_unavailable_and_closes_upstream(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.ok("late", first_token_delay_s=3.0)

    with pytest.raises(Unavailable, match="timed out"):
        await run(make_provider(timeout_s=0.3), chat())

    assert await asyncio.to_thread(upstream.wait_closed_early, 1, 2.0)


# -- retries ----------------------------------------------------------------------------------


async def test_openai_stream_500_then_success_is_retried_before_first_token(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.enqueue(Scenario.http_error(500, retry_after_ms=10))

    chunks = await run(make_provider(max_retries=1), chat())

    assert text(chunks) == "Hello, world!"
    first, second = upstream.requests
    assert (first.status, second.status) == (500, 200)
    assert second.headers["x-stainless-retry-count"] == "1"


async def test_openai_stream_error_after_first_token_is_not_retried(
    upstream: FakeUpstream, make_provider: MakeProvider
) -> None:
    upstream.scenario = Scenario.error_frame(after=1)

    with pytest.raises(Unavailable):
        await run(make_provider(max_retries=2), chat())

    assert len(upstream.requests) == 1


# -- cancellation -----------------------------------------------------------------------------


async def test_openai_stream_closed_mid_stream_closes_upstream_request(
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


def test_tokenrelay_import_does_not_load_openai_sdk() -> None:
    code = (
        "import sys, tokenrelay, tokenrelay.providers\n"
        "from tokenrelay.providers import ProviderRegistry\n"
        "assert 'openai' not in sys.modules, 'openai imported eagerly'\n"
        "assert 'anthropic' not in sys.modules, 'anthropic imported eagerly'\n"
        "import tokenrelay.providers.openai\n"
        "assert 'openai' in sys.modules and 'anthropic' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(CORE)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


async def test_openai_and_anthropic_clients_read_through_the_sdks_aiohttp_transport() -> None:
    # the layer installs the SDKs' [aiohttp] extra: bodies are parsed by aiohttp's C parser, not h11
    import anthropic
    import openai

    from tokenrelay.providers.anthropic import AnthropicProvider
    from tokenrelay.providers.openai import OpenAIProvider

    openai_provider, anthropic_provider = OpenAIProvider(api_key="sk-test"), AnthropicProvider(api_key="sk-ant-test")
    try:
        assert isinstance(openai_provider._get_client()._client, openai.DefaultAioHttpClient)
        assert isinstance(anthropic_provider._get_client()._client, anthropic.DefaultAioHttpClient)
    finally:
        await openai_provider.aclose()
        await anthropic_provider.aclose()
