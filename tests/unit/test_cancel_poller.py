"""One cancel watcher per process: many runs, one batched read per interval."""

from __future__ import annotations

import asyncio

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.providers import ScriptedProvider
from tokenrelay import ChatRequest, Message, Settings, StoreUnavailable, StreamCancelled, StreamDone, StreamRun
from tokenrelay.cancel_poller import CancelPoller

REQUEST = ChatRequest(messages=(Message("user", "hi"),), provider="echo", model="echo-1", max_tokens=100)
POLL_S = 0.02


def run_on(poller: CancelPoller, store: MemoryStreamStore, stream_id: str, provider: ScriptedProvider) -> StreamRun:
    return StreamRun(
        REQUEST,
        stream_id=stream_id,
        owner="tester",
        transport="sse",
        provider=provider,
        store=store,
        settings=Settings(cancel_poll_s=POLL_S),
        poller=poller,
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
