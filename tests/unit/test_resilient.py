"""``ResilientProvider``: retries and fallback before the first text, timeouts, the report."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import replace
from typing import Any

import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.providers import ScriptedProvider
from tokenrelay import (
    ChatRequest,
    Message,
    RateLimited,
    Rejected,
    Settings,
    StreamDone,
    StreamError,
    StreamRun,
    StreamServices,
    TextDelta,
    Unavailable,
)
from tokenrelay.errors import ProviderError, UpstreamTimeout
from tokenrelay.providers import Chunk, Provider, ProviderRegistry, TextChunk
from tokenrelay.providers._sse import retry_after_s
from tokenrelay.providers.resilient import (
    MAX_BACKOFF_S,
    ResilientProvider,
    RetryPolicy,
    UpstreamReport,
    track_upstream,
    with_upstream,
)

REQUEST = ChatRequest(messages=(Message("user", "hi"),), provider="openai", model="gpt-4o-mini", max_tokens=100)
FAST = RetryPolicy(max_retries=2, budget_s=5.0, backoff_s=0.001, first_chunk_s=5.0, stall_s=5.0)


class Attempts:
    """A provider whose n-th ``stream`` call is the n-th scripted provider (the last one repeats)."""

    def __init__(self, *scripts: ScriptedProvider, name: str = "openai") -> None:
        self.name = name
        self.scripts = list(scripts)
        self.requests: list[ChatRequest] = []

    def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        self.requests.append(request)
        return self.scripts[min(len(self.requests), len(self.scripts)) - 1].stream(request)

    async def aclose(self) -> None:
        return None


def failing(error: ProviderError, after: int = 0, tokens: Sequence[str] = ("x",)) -> ScriptedProvider:
    return ScriptedProvider([*tokens, "never"], fail_after=after, error=error)


async def read(provider: Provider, request: ChatRequest = REQUEST) -> list[Chunk]:
    async with aclosing(provider.stream(request)) as chunks:
        return [c async for c in chunks]


def text(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextChunk))


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_resilient_unavailable_before_text_then_success_yields_the_text_once() -> None:
    first, ok = failing(Unavailable("HTTP 503")), ScriptedProvider(["Hel", "lo"])
    report = track_upstream()
    chunks = await read(ResilientProvider(Attempts(first, ok), FAST))
    assert text(chunks) == "Hello"
    assert (report.attempts, report.retries, report.fallback, report.errors) == (2, 1, False, ["upstream_unavailable"])
    assert first.closed_early == 1 and ok.completed == 1


async def test_resilient_error_after_the_first_text_is_not_retried() -> None:
    broken = failing(Unavailable("mid-stream"), after=1)
    inner = Attempts(broken, ScriptedProvider(["other"]))
    received: list[Chunk] = []
    with pytest.raises(Unavailable):
        async with aclosing(ResilientProvider(inner, FAST).stream(REQUEST)) as chunks:
            async for chunk in chunks:
                received.append(chunk)
    assert received == [TextChunk("x")] and len(inner.requests) == 1 and broken.closed_early == 1


async def test_resilient_rejected_is_neither_retried_nor_sent_to_the_fallback() -> None:
    inner, spare = Attempts(failing(Rejected("HTTP 400"))), Attempts(ScriptedProvider(["f"]), name="anthropic")
    wrapper = ResilientProvider(inner, FAST, fallback=("anthropic", "claude-haiku-4-5"), lookup=lambda _: spare)
    with pytest.raises(Rejected):
        await read(wrapper)
    assert len(inner.requests) == 1 and spare.requests == []


async def test_resilient_retries_spent_falls_back_to_the_fallback_model() -> None:
    inner = Attempts(failing(Unavailable("HTTP 500")))
    spare = Attempts(ScriptedProvider(["from ", "fallback"]), name="anthropic")
    seen: list[str] = []

    def lookup(name: str) -> Provider:
        seen.append(name)
        return spare

    report = track_upstream()
    wrapper = ResilientProvider(inner, FAST, fallback=("anthropic", "claude-haiku-4-5"), lookup=lookup, sleep=Sleeps())
    assert text(await read(wrapper)) == "from fallback"
    assert len(inner.requests) == 3 and seen == ["anthropic"]
    (fallback_request,) = spare.requests
    assert (fallback_request.provider, fallback_request.model) == ("anthropic", "claude-haiku-4-5")
    assert fallback_request.messages == REQUEST.messages and fallback_request.max_tokens == REQUEST.max_tokens
    assert (report.attempts, report.retries, report.fallback) == (4, 2, True)
    assert (report.provider, report.model) == ("anthropic", "claude-haiku-4-5")
    summary = with_upstream(make_summary())
    assert summary.served_provider == "anthropic" and summary.upstream_retries == 2 and summary.upstream_fallback


async def test_resilient_fallback_failing_too_raises_its_error() -> None:
    inner = Attempts(failing(Unavailable("HTTP 500")))
    spare = Attempts(failing(RateLimited("HTTP 429")), name="anthropic")
    policy = RetryPolicy(max_retries=0, backoff_s=0.001)
    wrapper = ResilientProvider(inner, policy, fallback=("anthropic", "claude-haiku-4-5"), lookup=lambda _: spare)
    with pytest.raises(RateLimited):
        await read(wrapper)
    assert len(inner.requests) == 1 and len(spare.requests) == 1


async def test_resilient_request_for_the_fallback_model_itself_has_no_fallback() -> None:
    inner = Attempts(failing(Unavailable("HTTP 500")), name="anthropic")
    request = ChatRequest(REQUEST.messages, provider="anthropic", model="claude-haiku-4-5", max_tokens=10)
    wrapper = ResilientProvider(
        inner,
        RetryPolicy(max_retries=1, backoff_s=0.001),
        fallback=("anthropic", "claude-haiku-4-5"),
        lookup=lambda name: Attempts(name=name),
    )
    with pytest.raises(Unavailable):
        await read(wrapper, request)
    assert len(inner.requests) == 2


async def test_resilient_request_whose_key_may_not_use_the_fallback_gets_the_primary_error() -> None:
    inner = Attempts(failing(Unavailable("HTTP 500")))
    spare = Attempts(ScriptedProvider(["never"]), name="anthropic")
    policy = RetryPolicy(max_retries=1, backoff_s=0.001)
    wrapper = ResilientProvider(inner, policy, fallback=("anthropic", "claude-haiku-4-5"), lookup=lambda _: spare)
    with pytest.raises(Unavailable):
        await read(wrapper, replace(REQUEST, fallback=False))
    assert len(inner.requests) == 2 and spare.requests == []


async def test_resilient_backoff_is_full_jitter_exponential_and_capped() -> None:
    policy = RetryPolicy(backoff_s=0.25)
    assert [policy.backoff(n, lambda: 1.0) for n in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, MAX_BACKOFF_S]
    assert policy.backoff(2, lambda: 0.5) == 0.5 and policy.backoff(3, lambda: 0.0) == 0.0


async def test_resilient_honours_retry_after_that_fits_the_budget() -> None:
    limited = RateLimited("HTTP 429")
    limited.retry_after_s = 1.5
    sleeps = Sleeps()
    wrapper = ResilientProvider(Attempts(failing(limited), ScriptedProvider(["ok"])), FAST, sleep=sleeps)
    assert text(await read(wrapper)) == "ok"
    assert sleeps.delays == [1.5]


async def test_resilient_retry_after_beyond_the_budget_goes_straight_to_the_fallback() -> None:
    limited = RateLimited("HTTP 429")
    limited.retry_after_s = 60.0
    inner, spare = Attempts(failing(limited)), Attempts(ScriptedProvider(["f"]), name="anthropic")
    sleeps = Sleeps()
    wrapper = ResilientProvider(inner, FAST, fallback=("anthropic", "c"), lookup=lambda _: spare, sleep=sleeps)
    assert text(await read(wrapper)) == "f"
    assert len(inner.requests) == 1 and sleeps.delays == []


async def test_resilient_no_retry_once_the_budget_is_spent() -> None:
    now = [0.0]
    inner = Attempts(failing(Unavailable("HTTP 503")))

    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        now[0] += delay

    policy = RetryPolicy(max_retries=5, budget_s=10.0, backoff_s=1.0)
    with pytest.raises(Unavailable):
        await read(ResilientProvider(inner, policy, sleep=sleep, rng=lambda: 1.0, clock=lambda: now[0]))
    assert delays == [1.0, 2.0, 4.0]  # the next wait would end at 7 + 8 = 15 s, past the 10 s budget
    assert len(inner.requests) == 4


async def test_resilient_no_first_chunk_times_out_closes_and_retries() -> None:
    slow, ok = ScriptedProvider(["late"], first_delay_s=30.0), ScriptedProvider(["on ", "time"])
    policy = RetryPolicy(max_retries=1, backoff_s=0.001, first_chunk_s=0.05, stall_s=5.0)
    report = track_upstream()
    assert text(await read(ResilientProvider(Attempts(slow, ok), policy))) == "on time"
    assert slow.closed_early == 1 and report.errors == ["upstream_timeout"]


async def test_resilient_stall_after_text_is_an_upstream_timeout_not_retried() -> None:
    async def stream(request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        yield TextChunk("a")
        await asyncio.sleep(30.0)
        yield TextChunk("b")

    closed: list[bool] = []

    class Stalls:
        name = "openai"

        async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
            try:
                async for chunk in stream(request):
                    yield chunk
            finally:
                closed.append(True)

        async def aclose(self) -> None:
            return None

    policy = RetryPolicy(max_retries=2, backoff_s=0.001, first_chunk_s=5.0, stall_s=0.05)
    received: list[Chunk] = []
    with pytest.raises(UpstreamTimeout) as caught:
        async with aclosing(ResilientProvider(Stalls(), policy).stream(REQUEST)) as chunks:
            async for chunk in chunks:
                received.append(chunk)
    assert received == [TextChunk("a")] and closed == [True]
    assert caught.value.code == "upstream_timeout" and caught.value.retryable and "stalled" in caught.value.message


async def test_resilient_steady_stream_slower_in_total_than_the_limits_is_not_timed_out() -> None:
    steady = ScriptedProvider([f"t{i} " for i in range(8)], delay_s=0.02)
    policy = RetryPolicy(max_retries=0, first_chunk_s=0.1, stall_s=0.1)
    assert text(await read(ResilientProvider(steady, policy))) == "".join(f"t{i} " for i in range(8))


async def test_resilient_cancel_while_waiting_stays_a_cancellation_and_closes_the_upstream() -> None:
    slow = ScriptedProvider(["a"], first_delay_s=30.0)
    task = asyncio.create_task(read(ResilientProvider(slow, RetryPolicy(first_chunk_s=0.05))))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slow.closed_early == 1


async def test_resilient_cancel_during_backoff_starts_no_new_attempt() -> None:
    inner = Attempts(failing(Unavailable("HTTP 503")), ScriptedProvider(["never"]))
    policy = RetryPolicy(max_retries=3, budget_s=60.0, backoff_s=30.0)
    waiting = asyncio.Event()

    async def sleep(delay: float) -> None:
        waiting.set()
        await asyncio.sleep(delay)

    task = asyncio.create_task(read(ResilientProvider(inner, policy, sleep=sleep, rng=lambda: 1.0)))
    await asyncio.wait_for(waiting.wait(), 5.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(inner.requests) == 1


async def test_resilient_in_the_engine_timeout_then_text_ends_done_with_the_full_text() -> None:
    slow, ok = ScriptedProvider(["late"], first_delay_s=30.0), ScriptedProvider(["a", "b", "c"])
    store = MemoryStreamStore()
    policy = RetryPolicy(max_retries=1, backoff_s=0.001, first_chunk_s=0.05)
    run = StreamRun(
        REQUEST,
        ResilientProvider(Attempts(slow, ok), policy),
        StreamServices(Settings(cancel_poll_s=0.02), store),
        stream_id="s-r",
        owner="t",
        transport="sse",
    )
    report = run.upstream  # the run's own report: its provider stream fills it in
    await run.open()
    events = [e async for e in run.events()]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a", "b", "c"]
    assert isinstance(events[-1], StreamDone) and store.records["s-r"].status == "complete"
    assert with_upstream(run.summary()).upstream_retries == 1 and report.attempts == 2


async def test_resilient_in_the_engine_stall_ends_with_a_retryable_upstream_timeout() -> None:
    stalls = ScriptedProvider(["a", "b"], delay_s=30.0)
    store = MemoryStreamStore()
    run = StreamRun(
        REQUEST,
        ResilientProvider(stalls, RetryPolicy(first_chunk_s=0.05, stall_s=0.05)),
        StreamServices(Settings(cancel_poll_s=0.02), store),
        stream_id="s-t",
        owner="t",
        transport="sse",
    )
    await run.open()
    events = [e async for e in run.events()]
    assert events[-1] == StreamError(events[-1].error, "upstream_timeout", True)  # type: ignore[union-attr]
    assert store.records["s-t"].status == "failed" and store.records["s-t"].error_code == "upstream_timeout"
    assert stalls.closed_early >= 1


def test_registry_wraps_sdk_providers_turns_sdk_retries_off_and_leaves_echo_bare() -> None:
    settings = Settings.from_env(
        {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k", "FALLBACK_MODEL": "anthropic:claude-haiku-4-5"}
    )
    registry = ProviderRegistry(settings)
    wrapped = registry.get("openai")
    assert isinstance(wrapped, ResilientProvider) and wrapped.fallback == ("anthropic", "claude-haiku-4-5")
    assert wrapped.inner.max_retries == 0  # type: ignore[attr-defined]
    assert wrapped.policy == RetryPolicy.from_settings(settings) and registry.get("openai") is wrapped
    assert type(registry.get("echo")).__name__ == "EchoProvider"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FALLBACK_MODEL": "openai"}, "expected 'provider:model'"),
        ({"FALLBACK_MODEL": "anthropic:claude-haiku-4-5"}, "'anthropic' is not configured"),
        ({"FALLBACK_MODEL": "openai:gpt-9"}, "openai:gpt-9 is not in ALLOWED_MODELS"),
        ({"UPSTREAM_STALL_S": "0"}, "UPSTREAM_STALL_S: must be >= 0.1"),
        ({"UPSTREAM_RETRY_BUDGET_S": "soon"}, "UPSTREAM_RETRY_BUDGET_S: expected a number"),
    ],
)
def test_settings_bad_upstream_values_stop_the_process_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env({"OPENAI_API_KEY": "k", **env})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_forms(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(headers) == expected


def make_summary(**kw: Any) -> Any:
    from tokenrelay.events import StreamSummary

    return StreamSummary("s", "sse", "openai", "gpt-4o-mini", "complete", 1, 10, **kw)


def test_with_upstream_without_a_report_leaves_the_summary_alone() -> None:
    assert with_upstream(make_summary(), UpstreamReport()) == make_summary()
