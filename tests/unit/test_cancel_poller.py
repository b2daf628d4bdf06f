"""One cancel watcher per process: many runs, one batched read per interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.providers import ScriptedProvider
from tokenrelay import (
    ChatRequest,
    Message,
    Settings,
    StoreUnavailable,
    StreamCancelled,
    StreamDone,
    StreamRun,
    StreamServices,
)
from tokenrelay.stores import WatchState
from tokenrelay.stream import CancelPoller

REQUEST = ChatRequest(messages=(Message("user", "hi"),), provider="echo", model="echo-1", max_tokens=100)
POLL_S = 0.02


def run_on(poller: CancelPoller, store: MemoryStreamStore, stream_id: str, provider: ScriptedProvider) -> StreamRun:
    return StreamRun(
        REQUEST,
        provider,
        StreamServices(Settings(cancel_poll_s=POLL_S), store, poller=poller),
        stream_id=stream_id,
        owner="tester",
        transport="sse",
    )


async def test_many_runs_share_one_read_per_interval_and_a_flag_stops_only_its_stream() -> None:
    store = MemoryStreamStore()
    poller = CancelPoller(store, POLL_S)
    runs = [run_on(poller, store, f"s-{i}", ScriptedProvider(["x"] * 400, delay_s=0.002)) for i in range(20)]
    for run in runs:
        await run.open()
    await asyncio.sleep(POLL_S * 3)
    await store.request_cancel("s-7", "client")
    terminals = await asyncio.gather(*(run.wait() for run in runs))
    assert terminals[7] == StreamCancelled("s-7", "client")
    assert all(isinstance(t, StreamDone) for i, t in enumerate(terminals) if i != 7)
    assert store.records["s-7"].status == "cancelled"
    # one read per interval for all 20 streams, never one per stream
    assert store.cancel_checks == 0
    assert 1 <= store.batch_reads <= poller.polls
    assert poller.watching == 0


async def test_poller_stops_when_nothing_is_watched_and_restarts_for_a_new_stream() -> None:
    store = MemoryStreamStore()
    poller = CancelPoller(store, POLL_S)
    await run_on(poller, store, "s-1", ScriptedProvider(["a"])).open()
    await asyncio.sleep(POLL_S * 4)
    reads = store.batch_reads
    await asyncio.sleep(POLL_S * 4)
    assert store.batch_reads == reads  # idle: no reads
    run = run_on(poller, store, "s-2", ScriptedProvider(["x"] * 1000, delay_s=0.002))
    await run.open()
    await store.request_cancel("s-2", "client")
    assert await run.wait() == StreamCancelled("s-2", "client")


async def test_failed_poll_is_logged_and_the_next_one_still_cancels() -> None:
    class Flaky(MemoryStreamStore):
        fail = 2

        async def watch_many(self, stream_ids):  # type: ignore[no-untyped-def]
            if self.fail:
                self.fail -= 1
                raise StoreUnavailable("DynamoDB BatchGetItem failed: ProvisionedThroughputExceededException")
            return await super().watch_many(stream_ids)

    store = Flaky()
    poller = CancelPoller(store, POLL_S)
    run = run_on(poller, store, "s-1", ScriptedProvider(["x"] * 1000, delay_s=0.002))
    await run.open()
    await store.request_cancel("s-1", "client")
    assert await run.wait() == StreamCancelled("s-1", "client")
    assert store.fail == 0


async def test_a_failing_poll_is_an_error_with_a_metric_and_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    """A poll that cannot read (AccessDenied from a missing grant) means cancels go unseen: an
    ERROR line and a failure report, then retries at the interval, quietly until the next report."""
    store = MemoryStreamStore()
    reports: list[tuple[int, str]] = []
    poller = CancelPoller(store, POLL_S, on_failure=lambda n, exc: reports.append((n, exc.message)))
    denied = StoreUnavailable("DynamoDB BatchGetItem on 'streams' failed: AccessDeniedException")

    async def refuse(stream_ids: Sequence[str]) -> dict[str, WatchState]:
        raise denied

    store.watch_many = refuse  # type: ignore[method-assign]
    run = run_on(poller, store, "s-1", ScriptedProvider(["x"] * 400, delay_s=0.002))
    with caplog.at_level(logging.ERROR, logger="tokenrelay.cancel"):
        await run.open()
        await asyncio.sleep(POLL_S * 8)
        await store.request_cancel("s-1", "client")
        await asyncio.sleep(POLL_S * 4)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "AccessDeniedException" in errors[0].getMessage()
    assert "cancels and resume lease expiries are not seen" in errors[0].getMessage()
    assert reports == [(1, denied.message)]
    assert poller.failures >= 4  # kept trying
    del store.watch_many  # reads work again: the flag is seen
    assert await run.wait() == StreamCancelled("s-1", "client")
