"""The run's end and its buffer when DynamoDB or the reader is slow (issue 14, items 2, 3 and 5)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.output_log import MemoryAttachments, MemoryOutputLog
from tests.fakes.providers import ScriptedProvider
from tokenrelay import (
    ChatRequest,
    Message,
    Settings,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamFinished,
    StreamRun,
    StreamServices,
    TextDelta,
)
from tokenrelay.errors import Unavailable
from tokenrelay.resume import MAX_TEXT_CHARS, OutputLogWriter, Resumable
from tokenrelay.stores import LogEnd
from tokenrelay.stream import EVENT_COST

REQUEST = ChatRequest(messages=(Message("user", "hi"),), provider="echo", model="echo-1", max_tokens=100)


def make_run(
    provider: ScriptedProvider,
    store: MemoryStreamStore,
    log: MemoryOutputLog | None = None,
    **settings: object,
) -> StreamRun:
    resume = None
    if log is not None:
        writer = OutputLogWriter(log, "s-1", expires_at=1, flush_s=0.01)
        resume = Resumable(writer, MemoryAttachments(), grace_s=30)
    return StreamRun(
        REQUEST,
        provider,
        StreamServices(Settings(**{"cancel_poll_s": 10.0, **settings}), store),  # type: ignore[arg-type]
        stream_id="s-1",
        owner="t",
        transport="sse",
        resume=resume,
    )


async def read_all(run: StreamRun) -> list[object]:
    return [e async for e in run.events()]


# -- item 5: a cancel accepted before the end makes the stream cancelled --------------------------


async def test_run_cancel_accepted_before_terminal_write_ends_cancelled_everywhere() -> None:
    store = MemoryStreamStore()
    log = MemoryOutputLog()
    provider = ScriptedProvider(["a", "b", "c"], delay_s=0.01)
    run = make_run(provider, store, log)  # its own cancel watch never polls: only the write can decide
    await run.open()
    events = []
    async for event in run.events():
        events.append(event)
        if event == TextDelta("c", 3):  # the provider is done; the cancel lands before the end is recorded
            await store.request_cancel("s-1", "client")
    await run.wait()
    assert events[-1] == StreamCancelled("s-1", "client") and provider.completed == 1
    assert store.records["s-1"].status == "cancelled" and store.records["s-1"].cancel_reason == "client"
    ends = [i.terminal for i in log.items["s-1"].values() if isinstance(i, LogEnd)]
    assert ends == [StreamCancelled("s-1", "client")] and log.texts("s-1") == ["a", "b", "c"]


async def test_run_cancel_after_terminal_write_is_refused_with_final_status() -> None:
    store = MemoryStreamStore()
    run = make_run(ScriptedProvider(["a"]), store)
    await run.open()
    events = await read_all(run)
    assert isinstance(events[-1], StreamDone) and store.records["s-1"].status == "complete"
    with pytest.raises(StreamFinished) as refused:  # 409, with the final status
        await store.request_cancel("s-1")
    assert refused.value.status == "complete"


async def test_run_failed_upstream_with_cancel_accepted_first_ends_cancelled() -> None:
    store = MemoryStreamStore()
    provider = ScriptedProvider(["a", "b"], fail_after=1, error=Unavailable("upstream went away"))
    run = make_run(provider, store)
    await run.open()
    await store.request_cancel("s-1", "client")  # accepted while the stream was active
    events = await read_all(run)
    assert events[-1] == StreamCancelled("s-1", "client")
    assert store.records["s-1"].status == "cancelled"


# -- item 2: the terminal event never waits long on DynamoDB --------------------------------------


async def test_run_terminal_write_hung_sends_terminal_within_finish_wait_then_record_lands() -> None:
    store = MemoryStreamStore(finish_delay_s=1.0)  # DynamoDB hangs for a second on the terminal write
    run = make_run(ScriptedProvider(["a", "b"]), store, finish_wait_s=0.1)
    await run.open()
    started = time.monotonic()
    events = await read_all(run)
    waited = time.monotonic() - started
    assert isinstance(events[-1], StreamDone) and waited < 0.6, waited  # 0.1 s wait, not the hang
    assert store.records["s-1"].status == "active"  # not yet...
    await asyncio.wait_for(run.wait(), 5)  # ...but wait() covers the write, and it lands
    final = store.records["s-1"]
    assert final.status == "complete" and final.last_seq == 2


async def test_run_terminal_write_hung_with_cancel_accepted_records_what_client_saw() -> None:
    store = MemoryStreamStore(finish_delay_s=0.5)
    run = make_run(ScriptedProvider(["a"]), store, finish_wait_s=0.05)
    await run.open()
    events = await read_all(run)  # done is sent after 0.05 s: the write has not answered
    await store.request_cancel("s-1")  # DynamoDB took the cancel meanwhile
    await run.wait()
    assert isinstance(events[-1], StreamDone)
    assert store.records["s-1"].status == "complete"  # the record says what the client was told


async def test_run_terminal_write_failing_is_retried_until_the_record_is_terminal() -> None:
    store = MemoryStreamStore(finish_failures=4)  # throttled past botocore's own retries, four times
    run = make_run(ScriptedProvider(["a"]), store)
    await run.open()
    events = await read_all(run)
    await asyncio.wait_for(run.wait(), 10)
    assert isinstance(events[-1], StreamDone) and store.records["s-1"].status == "complete"
    assert store.finish_calls == 5


async def test_run_terminal_write_down_gives_up_after_finish_timeout() -> None:
    store = MemoryStreamStore(finish_failures=10_000)
    run = make_run(ScriptedProvider(["a"]), store, finish_wait_s=0.05, finish_timeout_s=1.0)
    await run.open()
    started = time.monotonic()
    events = await read_all(run)
    assert time.monotonic() - started < 0.5 and isinstance(events[-1], StreamDone)
    await asyncio.wait_for(run.wait(), 5)
    assert 0.9 < time.monotonic() - started < 4.0 and store.records["s-1"].status == "active"


# -- item 3: a slow reader pauses the upstream, never grows the buffer ----------------------------


async def test_run_slow_reader_pauses_upstream_with_bounded_buffer() -> None:
    tokens = [f"token-{i:05d} " for i in range(20_000)]  # 260 KB of text, produced at once
    provider = ScriptedProvider(tokens)
    run = make_run(provider, MemoryStreamStore(), stream_buffer_bytes=4096)
    await run.open()
    await asyncio.sleep(0.2)  # nobody reads: the producer must be waiting, not buffering
    assert run.buffer.buffered <= 4096 + len(tokens[0]) + EVENT_COST and run.buffer.pauses == 1
    assert not run.done
    texts = []
    async with run.session() as events:
        async for batch in events.batches():  # a reader that takes a little at a time
            texts += [e.text for e in batch if isinstance(e, TextDelta)]
            await asyncio.sleep(0)
    assert texts == tokens and run.buffer.peak <= 4096 + len(tokens[0]) + EVENT_COST
    assert provider.completed == 1


async def test_run_reader_left_resumable_run_keeps_generating_into_the_log() -> None:
    tokens = [f"w{i} " for i in range(5000)]
    log = MemoryOutputLog()
    provider = ScriptedProvider(tokens)
    run = make_run(provider, MemoryStreamStore(), log, stream_buffer_bytes=2048)
    await run.open()
    await asyncio.sleep(0.05)
    assert run.buffer.pauses == 1 and not run.done  # paused for the reader...
    assert run.detach() is True
    await run.session().aclose()  # ...who is gone: generation goes on, into the output log only
    await asyncio.wait_for(run.wait(), 5)
    assert provider.completed == 1 and log.texts("s-1") == tokens and run.buffer.buffered == 0


async def test_run_stop_while_paused_for_a_slow_reader_ends_at_once() -> None:
    provider = ScriptedProvider([f"x{i} " for i in range(5000)])
    run = make_run(provider, MemoryStreamStore(), stream_buffer_bytes=1024)
    await run.open()
    await asyncio.sleep(0.05)
    run.stop("client")
    assert await asyncio.wait_for(run.wait(), 2) == StreamCancelled("s-1", "client")
    assert provider.closed_early == 1


# -- item 4: a provider chunk over the output log's item limit ------------------------------------


async def test_run_huge_chunk_is_cut_into_deltas_the_log_can_hold() -> None:
    huge = "ü" * (MAX_TEXT_CHARS * 2 + 10)  # 256 KB of UTF-8 in one chunk
    log = MemoryOutputLog(max_item_bytes=400_000)
    run = make_run(ScriptedProvider(["a", huge, "b"]), MemoryStreamStore(), log)
    await run.open()
    events = await read_all(run)
    await run.wait()
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(texts) == "a" + huge + "b" and max(map(len, texts)) <= MAX_TEXT_CHARS
    assert [e.seq for e in events if isinstance(e, TextDelta)] == list(range(1, 6))
    assert log.failed == 0 and log.texts("s-1") == texts


async def test_run_error_terminal_is_kept_when_no_cancel_came() -> None:
    provider = ScriptedProvider(["a", "b"], fail_after=1, error=Unavailable("gone"))
    store = MemoryStreamStore()
    run = make_run(provider, store)
    await run.open()
    events = await read_all(run)
    assert isinstance(events[-1], StreamError) and store.records["s-1"].status == "failed"
