"""The output log writer with a slow, a failing and a size-limited store (issue 14, item 1 and 4).

The fake store behaves as a DynamoDB call in a worker thread does: a slow write lands
even if the coroutine that started it was cancelled, and every write that landed is
kept per key, so a batch number written twice with different contents shows.
"""

from __future__ import annotations

import asyncio
import time

from tests.fakes.output_log import MemoryOutputLog
from tokenrelay import StreamCancelled, StreamDone, TextDelta, Usage
from tokenrelay.resume import MAX_BATCH_BYTES, OutputLogWriter, follow, text_bytes
from tokenrelay.stores import LogBatch, LogEnd

DONE = StreamDone("s", "stop", 1, 2, 3)


async def feed(writer: OutputLogWriter, texts: list[str], pace_s: float = 0.0) -> None:
    for seq, text in enumerate(texts, 1):
        writer.add(TextDelta(text, seq))
        await asyncio.sleep(pace_s)


async def replay(store: MemoryOutputLog) -> list[object]:
    return [e async for e in follow(store, "s", 0, poll_s=0.01)]


def assert_whole(store: MemoryOutputLog, texts: list[str]) -> None:
    assert store.texts("s") == texts  # every text, once, in order
    assert store.rewritten() == []  # no batch number ever held two different contents
    items = store.items["s"]
    assert sorted(items) == list(range(1, len(items) + 1))  # no gap
    assert isinstance(items[len(items)], LogEnd)  # the final item last


async def test_output_log_close_during_slow_append_loses_nothing() -> None:
    store = MemoryOutputLog(delay_s=0.05)  # close() lands while a write is in flight, again and again
    writer = OutputLogWriter(store, "s", expires_at=1, flush_s=0.01)
    texts = [f"t{i} " for i in range(300)]
    await feed(writer, texts, 0.0005)
    await writer.close(DONE, Usage(1, 300))
    assert_whole(store, texts)
    assert writer.ended and writer.lost == 0


async def test_output_log_close_while_append_fails_writes_each_batch_number_once() -> None:
    store = MemoryOutputLog(delay_s=0.01, fail_when=lambda item: store.attempts % 3 == 1)  # a third fail
    writer = OutputLogWriter(store, "s", expires_at=1, flush_s=0.005)
    texts = [f"f{i} " for i in range(200)]
    await feed(writer, texts, 0.0005)
    await writer.close(StreamCancelled("s", "client"), None)
    assert store.failed >= 3 and writer.failures == store.failed
    assert_whole(store, texts)
    replayed = await replay(store)
    assert "".join(e.text for e in replayed if isinstance(e, TextDelta)) == "".join(texts)
    assert replayed[-1] == StreamCancelled("s", "client")


async def test_output_log_failed_batch_is_retried_alone_never_merged_with_later_texts() -> None:
    attempts: list[LogBatch] = []

    def fail_batch_two(item: object) -> bool:
        if isinstance(item, LogBatch) and item.batch == 2:
            attempts.append(item)
            return len(attempts) <= 4
        return False

    store = MemoryOutputLog(fail_when=fail_batch_two)
    writer = OutputLogWriter(store, "s", expires_at=1, flush_s=0.005)
    texts = [f"r{i} " for i in range(120)]
    await feed(writer, texts, 0.001)
    await writer.close(DONE, None)
    assert len(attempts) == 5 and len(set(attempts)) == 1  # the same item each time: later texts wait
    assert_whole(store, texts)


async def test_output_log_batch_over_item_limit_is_cut_never_fails() -> None:
    store = MemoryOutputLog(max_item_bytes=400_000)  # DynamoDB's item limit, for the texts alone
    writer = OutputLogWriter(store, "s", expires_at=1, flush_s=5.0, max_bytes=10 << 20)  # no early flush
    texts = ["é" * 30_000 + f"{i}" for i in range(40)]  # 60 KB each in UTF-8: 2.4 MB in all
    await feed(writer, texts)
    await writer.close(DONE, None)
    assert store.failed == 0
    assert_whole(store, texts)
    batches = [i for i in store.items["s"].values() if isinstance(i, LogBatch)]
    assert len(batches) > 5 and all(sum(map(text_bytes, b.texts)) <= MAX_BATCH_BYTES for b in batches)


async def test_output_log_store_down_at_close_gives_up_at_deadline_without_a_hole() -> None:
    store = MemoryOutputLog(fail_when=lambda item: isinstance(item, LogBatch) and item.batch >= 2)
    writer = OutputLogWriter(store, "s", expires_at=1, flush_s=0.005)
    await feed(writer, ["a", "b", "c"])
    await asyncio.sleep(0.05)  # batch 1 written
    await feed(writer, ["d", "e"])
    started = time.monotonic()
    await writer.close(DONE, None, give_up_at=time.monotonic() + 0.3)
    assert time.monotonic() - started < 2.0  # bounded: gave up after the deadline, between attempts
    assert not writer.ended and writer.lost == 2
    assert sorted(store.items["s"]) == [1]  # nothing written after the missing batch: no hole, no end


async def test_output_log_close_cancelled_caller_still_finishes_the_write() -> None:
    store = MemoryOutputLog(delay_s=0.1)
    writer = OutputLogWriter(store, "s", expires_at=1, flush_s=0.001)
    await feed(writer, ["x", "y"])
    closing = asyncio.create_task(writer.close(DONE, None))
    await asyncio.sleep(0.02)
    closing.cancel()  # the caller goes away: the writer's own task goes on
    await asyncio.sleep(0.5)
    assert_whole(store, ["x", "y"])
