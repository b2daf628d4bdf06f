from __future__ import annotations

import asyncio

import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.providers import ScriptedProvider
from tokenrelay import (
    ChatRequest,
    Message,
    RateLimited,
    Settings,
    StoreUnavailable,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamRecord,
    StreamRun,
    StreamServices,
    StreamStart,
    TextDelta,
    Usage,
)

REQUEST = ChatRequest(messages=(Message("user", "hi"),), provider="echo", model="echo-1", max_tokens=100)


def make_run(provider: ScriptedProvider, store: MemoryStreamStore | None = None, **settings: object) -> StreamRun:
    return StreamRun(
        REQUEST,
        provider,
        StreamServices(
            Settings(**{"cancel_poll_s": 0.02, **settings}),  # type: ignore[arg-type]
            store or MemoryStreamStore(),
        ),
        stream_id="s-1",
        owner="tester",
        transport="sse",
    )


async def collect(run: StreamRun) -> list[object]:
    await run.open()
    return [e async for e in run.events()]


async def test_run_happy_path_emits_start_text_usage_done_in_order() -> None:
    provider = ScriptedProvider(["Hel", "lo", " world"], usage=Usage(3, 3))
    store = MemoryStreamStore()
    events = await collect(make_run(provider, store))
    assert events[0] == StreamStart("s-1", "echo", "echo-1")
    assert events[1:4] == [TextDelta("Hel", 1), TextDelta("lo", 2), TextDelta(" world", 3)]
    assert events[4] == Usage(3, 3)
    done = events[5]
    assert isinstance(done, StreamDone) and done.completion_tokens == 3 and done.finish_reason == "stop"
    assert done.ttft_ms is not None and done.total_time_ms >= done.ttft_ms
    record = store.records["s-1"]
    assert record.status == "complete" and record.completion_tokens == 3 and record.prompt_tokens == 3
    assert provider.completed == 1 and provider.closed_early == 0


async def test_run_without_usage_counts_chunks_as_tokens() -> None:
    events = await collect(make_run(ScriptedProvider(["a", "b"])))
    assert not any(isinstance(e, Usage) for e in events)
    assert isinstance(events[-1], StreamDone) and events[-1].completion_tokens == 2


async def test_run_provider_error_midstream_ends_with_one_error_event_and_failed_record() -> None:
    provider = ScriptedProvider(["a", "b", "c"], fail_after=2, error=RateLimited("slow down"))
    store = MemoryStreamStore()
    events = await collect(make_run(provider, store))
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("a", 1), TextDelta("b", 2)]
    assert events[-1] == StreamError("slow down", "upstream_rate_limited", True)
    assert store.records["s-1"].status == "failed" and store.records["s-1"].error_code == "upstream_rate_limited"


async def test_run_unexpected_exception_is_internal_error_without_details() -> None:
    provider = ScriptedProvider(["a"], fail_after=0, error=RuntimeError("secret sk-123"))  # type: ignore[arg-type]
    events = await collect(make_run(provider))
    assert events[-1] == StreamError("internal error while streaming", "internal_error", False)


async def test_run_cancel_flag_in_store_stops_stream_and_closes_upstream() -> None:
    provider = ScriptedProvider(["x"] * 1000, delay_s=0.005)
    store = MemoryStreamStore()
    run = make_run(provider, store)
    await run.open()
    seen: list[object] = []
    async for event in run.events():
        seen.append(event)
        if len(seen) == 5:
            await store.request_cancel("s-1")
    assert seen[-1] == StreamCancelled("s-1", "client")
    assert provider.closed_early == 1
    assert store.records["s-1"].status == "cancelled" and store.records["s-1"].cancel_reason == "client"
    texts = [e for e in seen if isinstance(e, TextDelta)]
    assert [t.seq for t in texts] == list(range(1, len(texts) + 1))
    assert len(texts) < 1000
    # polled at a bounded interval, not once per token
    assert store.cancel_checks < len(texts)


async def test_run_stop_disconnect_records_disconnect_and_closes_upstream() -> None:
    provider = ScriptedProvider(["x"] * 1000, delay_s=0.005)
    store = MemoryStreamStore()
    run = make_run(provider, store)
    await run.open()
    await asyncio.sleep(0.05)
    run.stop("disconnect")
    terminal = await asyncio.wait_for(run.wait(), 2)
    assert terminal == StreamCancelled("s-1", "disconnect")
    assert provider.closed_early == 1 and store.records["s-1"].cancel_reason == "disconnect"


async def test_run_deadline_ends_as_cancelled_timeout() -> None:
    provider = ScriptedProvider(["x"] * 1000, delay_s=0.01)
    store = MemoryStreamStore()
    run = make_run(provider, store, stream_timeout_s=0.1)
    events = await asyncio.wait_for(collect(run), 2)
    assert events[-1] == StreamCancelled("s-1", "timeout")
    assert provider.closed_early == 1


async def test_run_first_stop_reason_wins_and_terminal_is_written_once() -> None:
    provider = ScriptedProvider(["x"] * 1000, delay_s=0.005)
    store = MemoryStreamStore()
    run = make_run(provider, store)
    await run.open()
    run.stop("client")
    run.stop("disconnect")
    events = [e async for e in run.events()]
    terminals = [e for e in events if isinstance(e, StreamDone | StreamCancelled | StreamError)]
    assert terminals == [StreamCancelled("s-1", "client")]
    assert store.finish_calls == 1


async def test_run_record_creation_overlaps_upstream_call() -> None:
    # creating the record takes 100 ms and the first token 100 ms: the upstream call is open
    # while the record is written (checked by order, not by the clock: a loaded machine can
    # stretch any duration)
    provider = ScriptedProvider(["a"], first_delay_s=0.1)
    opened_during_create: list[int] = []

    class Probe(MemoryStreamStore):
        async def create(self, record: StreamRecord) -> None:
            await super().create(record)
            opened_during_create.append(provider.opened - provider.completed)

    run = make_run(provider, Probe(create_delay_s=0.1))
    await run.open()
    events = [e async for e in run.events()]
    assert isinstance(events[-1], StreamDone)
    assert opened_during_create == [1]  # the provider's stream was open when the create finished


async def test_run_first_token_does_not_wait_for_the_record_and_terminal_write_does() -> None:
    # the upstream has text at once, DynamoDB takes 150 ms: start and text go out first
    provider = ScriptedProvider(["a", "b"])
    store = MemoryStreamStore(create_delay_s=0.15)
    run = make_run(provider, store)
    await run.open()
    events = run.events()
    assert isinstance(await anext(events), StreamStart)
    assert await anext(events) == TextDelta("a", 1)
    assert "s-1" not in store.records  # the text came before the record was written (order, not time)
    rest = [e async for e in events]
    assert isinstance(rest[-1], StreamDone)
    assert store.records["s-1"].status == "complete"  # written after the create, never lost


async def test_run_record_create_failing_after_start_ends_stream_as_store_unavailable() -> None:
    class LateDownStore(MemoryStreamStore):
        async def create(self, record: object) -> None:
            await asyncio.sleep(0.05)
            raise StoreUnavailable("DynamoDB PutItem failed: ProvisionedThroughputExceededException")

    provider = ScriptedProvider(["x"] * 1000, delay_s=0.002)
    run = make_run(provider, LateDownStore())
    await run.open()
    events = [e async for e in run.events()]
    texts = [e for e in events if isinstance(e, TextDelta)]
    assert texts and [t.seq for t in texts] == list(range(1, len(texts) + 1))
    assert events[-1] == StreamError("could not record the stream", "store_unavailable", True)
    assert provider.opened == provider.closed_early == 1


async def test_run_store_down_at_open_raises_and_closes_upstream() -> None:
    class DownStore(MemoryStreamStore):
        async def create(self, record: object) -> None:
            raise StoreUnavailable("table unreachable")

    provider = ScriptedProvider(["x"] * 100, delay_s=0.01)
    run = make_run(provider, DownStore())
    with pytest.raises(StoreUnavailable):
        await run.open()
    assert provider.opened == provider.closed_early


async def test_run_empty_text_chunks_are_dropped_and_seq_has_no_gaps() -> None:
    events = await collect(make_run(ScriptedProvider(["", "a", "", "b"])))
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("a", 1), TextDelta("b", 2)]


async def test_run_summary_after_disconnect_counts_tokens_not_delivered() -> None:
    provider = ScriptedProvider(["x"] * 1000, delay_s=0.002)
    run = make_run(provider)
    async with run.session() as events:  # a transport: the reader leaves while writing the fourth
        async for event in events:
            if isinstance(event, TextDelta) and event.seq == 4:
                await asyncio.sleep(0.05)  # writing the fourth when the client leaves: more were made
                break  # the transport got only three to its client
    s = run.summary()
    assert (s.status, s.cancel_reason, s.client_gone) == ("cancelled", "disconnect", True)
    assert s.tokens_after_disconnect == s.completion_tokens - 3 >= 2
    assert (s.transport, s.provider, s.model) == ("sse", "echo", "echo-1")


async def test_run_summary_of_completed_stream() -> None:
    run = make_run(ScriptedProvider(["a", "b"], usage=Usage(1, 2)))
    await collect(run)
    s = run.summary()
    assert (s.status, s.completion_tokens, s.client_gone, s.tokens_after_disconnect) == ("complete", 2, False, 0)
    assert s.ttft_ms is not None and s.total_time_ms >= s.ttft_ms
