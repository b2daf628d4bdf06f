"""Contract: ``BedrockProvider`` drives real boto3 (``converse_stream``) against the fake Bedrock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import pytest
import urllib3.response
from botocore.eventstream import EventStreamBuffer

from tests.contract.streaming import run
from tests.fakes.bedrock import BedrockScenario, FakeBedrock, bedrock, bedrock_server, encode_frame
from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.upstream import UPSTREAM_DETAIL
from tokenrelay import Settings, StreamCancelled, StreamRun, StreamServices
from tokenrelay.errors import ProviderError, RateLimited, Rejected, Unavailable
from tokenrelay.events import Usage
from tokenrelay.providers import Alive, Chunk, Finish, TextChunk
from tokenrelay.providers.bedrock import BedrockProvider
from tokenrelay.requests import ChatRequest, Message

__all__ = ["bedrock", "bedrock_server"]  # fixtures

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
MakeProvider = Callable[..., BedrockProvider]


def chat(text: str = "Hi", **kw: object) -> ChatRequest:
    fields: dict[str, object] = {"provider": "bedrock", "model": MODEL, "max_tokens": 64, **kw}
    return ChatRequest(messages=(Message("user", text),), **fields)  # type: ignore[arg-type]


@pytest.fixture
async def make_provider(bedrock: FakeBedrock) -> AsyncIterator[MakeProvider]:
    made: list[BedrockProvider] = []

    def make(*, max_retries: int = 0, timeout_s: float = 5.0) -> BedrockProvider:
        made.append(BedrockProvider(max_retries=max_retries, timeout_s=timeout_s))
        return made[-1]

    yield make
    for provider in made:
        await provider.aclose()


def stream_threads(within_s: float = 1.0) -> list[threading.Thread]:
    """Worker threads still alive after ``within_s`` (each ends just after it signals the loop)."""
    for thread in [t for t in threading.enumerate() if t.name == "bedrock-stream"]:
        thread.join(within_s)
    return [t for t in threading.enumerate() if t.name == "bedrock-stream"]


def assert_clean(exc: ProviderError) -> None:
    for leaked in (UPSTREAM_DETAIL, "testing-secret", "Too many"):
        assert leaked not in exc.message


def test_bedrock_fake_frame_encoder_is_decoded_by_botocore() -> None:
    frames = encode_frame({":event-type": "contentBlockDelta", ":message-type": "event"}, b'{"x":"h\xc3\xa9"}')
    buffer = EventStreamBuffer()
    buffer.add_data(frames + encode_frame({":message-type": "exception"}, b"{}"))

    first, second = list(buffer)

    assert first.headers == {":event-type": "contentBlockDelta", ":message-type": "event"}
    assert first.payload == b'{"x":"h\xc3\xa9"}'
    assert second.headers == {":message-type": "exception"} and second.payload == b"{}"


async def test_bedrock_stream_happy_path_yields_text_then_usage_then_finish(
    bedrock: FakeBedrock, make_provider: MakeProvider
) -> None:
    bedrock.scenario = BedrockScenario.ok("Bon", "jour", " 🌍", input_tokens=21)

    chunks = await run(make_provider(), chat())

    assert chunks == [
        TextChunk("Bon"),
        TextChunk("jour"),
        TextChunk(" 🌍"),
        Usage(prompt_tokens=21, completion_tokens=3, cached_tokens=0, cache_write_tokens=0),
        Finish("stop"),
    ]
    assert bedrock.last.finished.is_set() and bedrock.last.model_id == MODEL


async def test_bedrock_stream_request_folds_system_and_carries_limits_stop_and_signature(
    bedrock: FakeBedrock, make_provider: MakeProvider
) -> None:
    request = ChatRequest(
        messages=(
            Message("system", "Use French."),
            Message("user", "Hi"),
            Message("assistant", "Yo"),
            Message("user", "Bye"),
        ),
        provider="bedrock",
        model=MODEL,
        max_tokens=77,
        system="Be brief.",
        temperature=0.5,
        stop=("END", "\n\n"),
    )

    await run(make_provider(), request)

    sent = bedrock.last
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/us-east-1/bedrock/aws4_request" in sent.headers["authorization"]
    assert sent.json == {
        "messages": [
            {"role": "user", "content": [{"text": "Hi"}]},
            {"role": "assistant", "content": [{"text": "Yo"}]},
            {"role": "user", "content": [{"text": "Bye"}]},
        ],
        "system": [{"text": "Be brief."}, {"text": "Use French."}],
        "inferenceConfig": {"maxTokens": 77, "temperature": 0.5, "stopSequences": ["END", "\n\n"]},
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("guardrail_intervened", "content_filter"),
    ],
)
async def test_bedrock_stream_stop_reason_maps_to_finish_reason(
    bedrock: FakeBedrock, make_provider: MakeProvider, stop_reason: str, finish: str
) -> None:
    bedrock.scenario = BedrockScenario.ok("a", stop_reason=stop_reason)

    chunks = await run(make_provider(), chat())

    # a stop sequence is named when the upstream names it ("": it ended the answer, unnamed)
    assert chunks[-1] == Finish(finish, "" if stop_reason == "stop_sequence" else None)


async def test_bedrock_stream_http_429_throttling_raises_rate_limited(
    bedrock: FakeBedrock, make_provider: MakeProvider
) -> None:
    bedrock.scenario = BedrockScenario.http_error(429, "ThrottlingException")

    with pytest.raises(RateLimited) as caught:
        await run(make_provider(), chat())

    assert caught.value.code == "upstream_rate_limited" and caught.value.retryable
    assert "ThrottlingException" in caught.value.message
    assert_clean(caught.value)


async def test_bedrock_stream_throttling_frame_mid_stream_raises_rate_limited_after_the_text(
    bedrock: FakeBedrock, make_provider: MakeProvider
) -> None:
    bedrock.scenario = BedrockScenario.stream_error(after=2, exception="throttlingException")
    chunks: list[Chunk] = []

    with pytest.raises(RateLimited) as caught:
        await run(make_provider(), chat(), into=chunks)

    assert chunks == [TextChunk("Hello"), TextChunk(",")]
    assert "mid-stream" in caught.value.message
    assert_clean(caught.value)


@pytest.mark.parametrize(
    ("scenario", "error"),
    [
        (BedrockScenario.http_error(400, "ValidationException"), Rejected),
        (BedrockScenario.http_error(403, "AccessDeniedException"), Rejected),
        (BedrockScenario.http_error(404, "ResourceNotFoundException"), Rejected),
        (BedrockScenario.http_error(503, "ServiceUnavailableException"), Unavailable),
        (BedrockScenario.http_error(500, "InternalServerException"), Unavailable),
        (BedrockScenario.stream_error(1, "modelStreamErrorException"), Unavailable),
        (BedrockScenario.stream_error(1, "validationException"), Rejected),
        (BedrockScenario.truncated(after=2), Unavailable),
    ],
)
async def test_bedrock_stream_error_code_picks_error_class(
    bedrock: FakeBedrock, make_provider: MakeProvider, scenario: BedrockScenario, error: type[ProviderError]
) -> None:
    bedrock.scenario = scenario

    with pytest.raises(ProviderError) as caught:
        await run(make_provider(), chat())

    assert type(caught.value) is error
    assert_clean(caught.value)


async def test_bedrock_stream_temperature_above_one_is_rejected_before_any_request(
    bedrock: FakeBedrock, make_provider: MakeProvider
) -> None:
    with pytest.raises(Rejected, match="between 0 and 1"):
        await run(make_provider(), chat(temperature=1.5))

    assert bedrock.requests == []


async def test_bedrock_stream_without_credentials_raises_rejected(
    bedrock: FakeBedrock, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/none")

    with pytest.raises(Rejected, match="not configured"):
        await run(make_provider(), chat())


async def test_bedrock_stream_connection_refused_raises_unavailable(
    bedrock: FakeBedrock, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://127.0.0.1:9")

    with pytest.raises(Unavailable, match="could not connect"):
        await run(make_provider(), chat())


async def test_bedrock_stream_closed_mid_stream_closes_upstream_and_ends_its_thread(
    bedrock: FakeBedrock, make_provider: MakeProvider
) -> None:
    bedrock.scenario = BedrockScenario.ok(*[f"w{i} " for i in range(500)], delay_s=0.02)
    seen = 0

    async with aclosing(make_provider().stream(chat())) as stream:
        async for _ in stream:
            seen += 1
            if seen == 3:
                break

    assert bedrock.wait_ended(1, timeout=5, closed_early=True)
    assert not bedrock.last.finished.is_set()
    assert stream_threads() == []


@pytest.mark.parametrize("urllib3_shutdown", [True, False], ids=["urllib3-shutdown", "older-urllib3"])
async def test_bedrock_stream_long_silence_cancel_closes_upstream_without_waiting_for_a_token(
    bedrock: FakeBedrock, make_provider: MakeProvider, monkeypatch: pytest.MonkeyPatch, urllib3_shutdown: bool
) -> None:
    """The worker thread is blocked reading the socket: cancelling must wake it, not wait 10 s,
    with urllib3's ``HTTPResponse.shutdown`` (2.3+) or without it (the socket, directly)."""
    if not urllib3_shutdown:
        monkeypatch.delattr(urllib3.response.HTTPResponse, "shutdown")
        monkeypatch.delattr(urllib3.response.BaseHTTPResponse, "shutdown")
    bedrock.scenario = BedrockScenario.ok("first ", "late", delay_s=10.0)
    provider = make_provider(timeout_s=30.0)
    started = asyncio.Event()

    async def consume() -> None:
        async with aclosing(provider.stream(chat())) as stream:
            async for chunk in stream:
                if not isinstance(chunk, Alive):  # messageStart is a sign of life, not a token
                    started.set()

    task = asyncio.create_task(consume())
    assert await asyncio.to_thread(_wait_requests, bedrock)
    await asyncio.sleep(0.2)  # the thread is now blocked in the read
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert loop.time() - t0 < 1.5
    assert await asyncio.to_thread(bedrock.wait_ended, 1, 5.0, closed_early=True)
    assert not started.is_set() and stream_threads() == []


def _wait_requests(fake: FakeBedrock, timeout: float = 5.0) -> bool:
    with fake._changed:
        return fake._changed.wait_for(lambda: len(fake._requests) >= 1, timeout)


async def test_bedrock_stream_run_stop_client_closes_upstream_and_records_cancelled(
    bedrock: FakeBedrock, make_provider: MakeProvider
) -> None:
    bedrock.scenario = BedrockScenario.ok(*[f"w{i} " for i in range(500)], delay_s=0.02)
    store = MemoryStreamStore()
    run_ = StreamRun(
        chat(),
        make_provider(),
        StreamServices(Settings(cancel_poll_s=0.05), store),
        stream_id="b-1",
        owner="tester",
        transport="openai",
    )
    await run_.open()
    texts = 0
    async for event in run_.events():
        if type(event).__name__ == "TextDelta":
            texts += 1
            if texts == 3:
                run_.stop("client")
        terminal = event

    assert terminal == StreamCancelled("b-1", "client")
    assert await asyncio.to_thread(bedrock.wait_ended, 1, 5.0, closed_early=True)
    assert store.records["b-1"].status == "cancelled"
