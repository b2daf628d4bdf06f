"""The output log writer, its reader, and the grace period of a resumable run (PROTOCOL section 5)."""

from __future__ import annotations

import asyncio
import math
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
    StreamRun,
    StreamServices,
    Terminal,
    TextDelta,
    Usage,
)
from tokenrelay.resume import OutputLogWriter, Resumable, follow
from tokenrelay.stores import LogBatch, LogEnd, WatchState, decode_end, encode_end

REQUEST = ChatRequest(messages=(Message("user", "hi"),), provider="echo", model="echo-1", max_tokens=100)


async def feed(writer: OutputLogWriter, texts: list[str], pace_s: float, burst: int = 1) -> None:
    """Add ``texts`` ``burst`` at a time, sleeping ``pace_s`` between bursts: the writer's flush
    runs only while this sleeps, so it can write at most once per burst however slow the machine."""
    for seq, text in enumerate(texts, 1):
        writer.add(TextDelta(text, seq))
        if seq % burst == 0:
            await asyncio.sleep(pace_s)


async def test_output_log_writer_many_tokens_writes_once_per_window_not_per_token() -> None:
    store = MemoryOutputLog()
    writer = OutputLogWriter(store, "s", expires_at=1, flush_s=0.05, max_bytes=1 << 20)
    texts = [f"t{i} " for i in range(300)]
    started = time.monotonic()
    await feed(writer, texts, 0.01, burst=20)  # 15 bursts over >= 0.15 s: several windows, on any machine
    await writer.close(StreamDone("s", "stop", 1, 2, 300), Usage(1, 300))
    elapsed = time.monotonic() - started
    assert store.writes <= math.ceil(elapsed / 0.05) + 2  # one per window, the last one, the end
    assert store.writes < len(texts) / 10
    assert store.texts("s") == texts
    batches = [i for i in store.items["s"].values() if isinstance(i, LogBatch)]
    assert [b.first_seq for b in batches] == [1] + [b.last_seq + 1 for b in batches[:-1]]  # contiguous


async def test_output_log_writer_size_bound_flushes_before_the_window() -> None:
    store = MemoryOutputLog()
    writer = OutputLogWriter(store, "s", expires_at=1, flush_s=10.0, max_bytes=256)
    await feed(writer, ["x" * 100] * 6, 0.01)
    await asyncio.sleep(0.05)
    assert store.writes >= 2  # the 10 s window never passed
    await writer.close(StreamDone("s", "stop", 1, 2, 6), None)
    assert store.texts("s") == ["x" * 100] * 6


async def test_output_log_writer_failed_write_is_retried_in_order_without_gaps() -> None:
    store = MemoryOutputLog(fail_writes=1)
    writer = OutputLogWriter(store, "s", expires_at=1, flush_s=0.02)
    texts = [f"w{i} " for i in range(40)]
    await feed(writer, texts, 0.002)
    await writer.close(StreamCancelled("s", "client"), None)
    assert store.texts("s") == texts
    replayed = [e async for e in follow(store, "s", 0, poll_s=0.01)]
    assert [e.seq for e in replayed if isinstance(e, TextDelta)] == list(range(1, 41))


@pytest.mark.parametrize(
    "terminal",
    [
        StreamDone("s", "stop", 12, 340, 9),
        StreamCancelled("s", "disconnect"),
        StreamError("boom", "rate_limited", True),
    ],
)
def test_output_log_end_item_round_trips_terminal_and_usage(terminal: Terminal) -> None:
    assert decode_end(7, encode_end(terminal, Usage(3, 9))) == LogEnd(7, terminal, Usage(3, 9))
    assert decode_end(7, encode_end(terminal, None)) == LogEnd(7, terminal, None)


async def test_output_log_follow_after_seq_then_usage_and_one_terminal() -> None:
    store = MemoryOutputLog()
    await store.append("s", LogBatch(1, 1, ("a", "b", "c")), 1)
    await store.append("s", LogBatch(2, 4, ("d",)), 1)

    async def finish_later() -> None:
        await asyncio.sleep(0.05)
        await store.end("s", 3, encode_end(StreamDone("s", "stop", 1, 2, 4), Usage(1, 4)), 1)

    task = asyncio.create_task(finish_later())
    events = [e async for e in follow(store, "s", 2, poll_s=0.01)]
    await task
    assert events[:2] == [TextDelta("c", 3), TextDelta("d", 4)]
    assert events[2] == Usage(1, 4) and isinstance(events[3], StreamDone) and len(events) == 4


def resumable_run(
    provider: ScriptedProvider, log: MemoryOutputLog, att: MemoryAttachments, grace_s: float
) -> StreamRun:
    writer = OutputLogWriter(log, "s-1", expires_at=1, flush_s=0.02)
    return StreamRun(
        REQUEST,
        provider,
        StreamServices(Settings(cancel_poll_s=0.02), MemoryStreamStore()),
        stream_id="s-1",
        owner="t",
        transport="sse",
        resume=Resumable(writer, att, grace_s),
    )


async def test_run_detached_keeps_generating_then_stops_as_disconnect_after_grace() -> None:
    provider = ScriptedProvider([f"t{i} " for i in range(1000)], delay_s=0.005)
    log, att = MemoryOutputLog(), MemoryAttachments()
    run = resumable_run(provider, log, att, grace_s=0.3)
    await run.open()
    await asyncio.sleep(0.05)
    assert run.detach() is True
    await asyncio.sleep(0.15)
    assert not run.done and provider.closed_early == 0  # within the grace period
    terminal = await asyncio.wait_for(run.wait(), 2)
    assert terminal == StreamCancelled("s-1", "disconnect") and provider.closed_early == 1
    end = [i for i in log.items["s-1"].values() if isinstance(i, LogEnd)]
    assert [e.terminal for e in end] == [terminal]  # the terminal event is logged too


async def test_run_detached_with_a_live_lease_outlives_the_grace_period() -> None:
    provider = ScriptedProvider([f"t{i} " for i in range(60)], delay_s=0.01)
    log, att = MemoryOutputLog(), MemoryAttachments()
    att.state = WatchState(attached_until=time.time() + 60)  # a resumed reader on another instance
    run = resumable_run(provider, log, att, grace_s=0.1)
    await run.open()
    run.detach()
    assert isinstance(await asyncio.wait_for(run.wait(), 5), StreamDone)
    assert log.texts("s-1") == [f"t{i} " for i in range(60)]


async def test_run_detached_explicit_cancel_stops_at_once() -> None:
    provider = ScriptedProvider([f"t{i} " for i in range(1000)], delay_s=0.005)
    log, att = MemoryOutputLog(), MemoryAttachments()
    run = resumable_run(provider, log, att, grace_s=30)
    await run.open()
    run.detach()
    att.state = WatchState(cancel_requested=True, cancel_reason="client")
    assert await asyncio.wait_for(run.wait(), 1) == StreamCancelled("s-1", "client")


async def test_run_grace_zero_detach_is_stop_on_disconnect() -> None:
    provider = ScriptedProvider([f"t{i} " for i in range(1000)], delay_s=0.005)
    run = resumable_run(provider, MemoryOutputLog(), MemoryAttachments(), grace_s=0)
    await run.open()
    assert run.detach() is False
    assert await asyncio.wait_for(run.wait(), 1) == StreamCancelled("s-1", "disconnect")


def test_settings_resume_needs_an_output_log_table_and_a_grace_period() -> None:
    assert Settings.from_env({}).resume_enabled is False  # no OUTPUT_LOG_TABLE: stop on disconnect
    on = Settings.from_env({"OUTPUT_LOG_TABLE": "log"})
    assert on.resume_enabled and on.resume_grace_s == 30.0 and on.log_flush_s == 1.0
    assert Settings.from_env({"OUTPUT_LOG_TABLE": "log", "RESUME_GRACE_S": "0"}).resume_enabled is False
    with pytest.raises(ValueError, match="RESUME_GRACE_S"):
        Settings.from_env({"RESUME_GRACE_S": "-1"})
