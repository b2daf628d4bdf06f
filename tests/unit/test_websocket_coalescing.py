"""CoalescingSender: one post in flight, tokens merged, order kept, frames bounded."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tokenrelay import StreamCancelled, StreamDone, StreamStart, TextDelta, Usage
from tokenrelay.errors import ConnectionGone
from tokenrelay.transports import CoalescingSender
from tokenrelay.transports.websocket import MAX_FRAME_BYTES

START = StreamStart("s-1", "echo", "echo-1")
DONE = StreamDone("s-1", "stop", 1, 2, 3)


class RecordingPoster:
    """A ``ConnectionPoster`` that takes ``delay_s`` per post and can turn the connection gone."""

    def __init__(self, delay_s: float = 0.0, gone_after: int | None = None, fail: Exception | None = None) -> None:
        self.delay_s = delay_s
        self.gone_after = gone_after
        self.fail = fail
        self.frames: list[bytes] = []
        self.times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.attempts = 0

    async def post(self, connection_id: str, data: bytes) -> None:
        self.attempts += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gone_after is not None and len(self.frames) >= self.gone_after:
                raise ConnectionGone(connection_id)
            if self.fail is not None:
                raise self.fail
            await asyncio.sleep(self.delay_s)
            self.frames.append(data)
            self.times.append(time.monotonic())
        finally:
            self.in_flight -= 1

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.frames]

    def text(self) -> str:
        return "".join(m["content"] for m in self.messages if m["type"] == "text")


def sender_for(poster: RecordingPoster, **kw: Any) -> CoalescingSender:
    sender = CoalescingSender(poster, "conn-1", stream_id="s-1", request_id="r-1", **kw)
    sender.start()
    return sender


async def test_sender_tokens_faster_than_posts_are_merged_without_loss_or_reordering() -> None:
    poster = RecordingPoster(delay_s=0.02)  # a post takes 20 ms, a token comes every ~1 ms
    sender = sender_for(poster)
    tokens = [f"t{i} " for i in range(400)]
    sender.send(START)
    for i, token in enumerate(tokens, 1):
        sender.send(TextDelta(token, i))
        await asyncio.sleep(0.001)
    sender.send(Usage(5, len(tokens)))
    sender.send(DONE)
    await sender.aclose()

    kinds = [m["type"] for m in poster.messages]
    assert kinds[0] == "start" and kinds[-2:] == ["usage", "done"]
    assert poster.text() == "".join(tokens)
    texts = [m for m in poster.messages if m["type"] == "text"]
    assert [m["seq"] for m in texts] == list(range(1, len(texts) + 1))  # seq counts messages
    assert len(poster.frames) * 5 < len(tokens), f"{len(poster.frames)} posts for {len(tokens)} tokens"
    assert poster.max_in_flight == 1
    assert all(m["stream_id"] == "s-1" and m["request_id"] == "r-1" for m in poster.messages)
    assert max(len(f) for f in poster.frames) <= MAX_FRAME_BYTES
    assert sender.posts == len(poster.frames) and sender.text_messages == len(texts)
    assert sum(m["tokens"] for m in texts) == len(tokens)  # each message says how many tokens it merges
    assert max(m["tokens"] for m in texts) > 1


async def test_sender_large_burst_is_cut_into_frames_under_the_limit() -> None:
    poster = RecordingPoster()
    sender = sender_for(poster)
    tokens = ['quote " back \\ ctrl \x01 é ✓ 🙂 ' * 20 for _ in range(300)]  # ~300 KB once escaped
    for i, token in enumerate(tokens, 1):
        sender.send(TextDelta(token, i))
    sender.send(DONE)
    await sender.aclose()
    assert poster.text() == "".join(tokens)
    assert max(len(f) for f in poster.frames) <= MAX_FRAME_BYTES
    assert max(len(f) for f in poster.frames) > MAX_FRAME_BYTES * 0.9  # frames are filled, not tiny
    assert poster.messages[-1]["type"] == "done"


async def test_sender_single_token_longer_than_a_frame_is_split_in_order() -> None:
    poster = RecordingPoster()
    sender = sender_for(poster, max_frame_bytes=1024)
    token = "".join(chr(0x20 + i % 5000) for i in range(10_000))  # ASCII, escapes, 2-3 byte UTF-8
    sender.send(TextDelta("a", 1))
    sender.send(TextDelta(token, 2))
    sender.send(TextDelta("z", 3))
    sender.send(DONE)
    await sender.aclose()
    assert poster.text() == "a" + token + "z"
    assert max(len(f) for f in poster.frames) <= 1024
    # the split token counts once, on its first piece: the tokens add up to the chunks sent
    assert sum(m["tokens"] for m in poster.messages if m["type"] == "text") == 3


async def test_sender_coalescing_off_posts_one_message_per_token() -> None:
    poster = RecordingPoster()
    sender = sender_for(poster, coalesce=False)
    for i in range(20):
        sender.send(TextDelta(f"{i},", i + 1))
    sender.send(DONE)
    await sender.aclose()
    assert [m.get("content") for m in poster.messages[:-1]] == [f"{i}," for i in range(20)]
    assert {m["tokens"] for m in poster.messages[:-1]} == {1}


async def test_sender_burst_keeps_start_first_and_terminal_last() -> None:
    poster = RecordingPoster()
    sender = sender_for(poster)
    sender.send(START)
    for i in range(5):
        sender.send(TextDelta(f"t{i}", i + 1))
    sender.send(Usage(1, 5))
    sender.send(StreamCancelled("s-1", "client"))
    await sender.aclose()
    assert [m["type"] for m in poster.messages] == ["start", "text", "usage", "cancelled"]
    assert poster.messages[1]["content"] == "t0t1t2t3t4"


async def test_sender_first_text_goes_out_at_once_later_text_waits_for_the_interval() -> None:
    poster = RecordingPoster()
    sender = sender_for(poster, flush_interval_s=0.3)
    sender.send(START)
    await asyncio.sleep(0.05)
    sent_at = time.monotonic()
    sender.send(TextDelta("first", 1))
    await asyncio.sleep(0.05)
    assert poster.text() == "first"
    assert poster.times[-1] - sent_at < 0.04  # no flush wait before the first token
    sender.send(TextDelta(" second", 2))
    await asyncio.sleep(0.05)
    assert poster.text() == "first"  # held: it may still gain company
    sender.send(DONE)  # a terminal flushes at once
    await sender.aclose()
    assert poster.text() == "first second" and poster.messages[-1]["type"] == "done"


async def test_sender_flush_interval_bounds_the_post_rate() -> None:
    poster = RecordingPoster()
    sender = sender_for(poster, flush_interval_s=0.05)
    started = time.monotonic()
    for i in range(100):  # 200 tokens/s for 0.5 s
        sender.send(TextDelta("x", i + 1))
        await asyncio.sleep(0.005)
    elapsed = time.monotonic() - started
    await sender.aclose()
    assert poster.text() == "x" * 100
    assert 3 <= sender.text_messages <= elapsed / 0.05 + 2


async def test_sender_connection_gone_stops_posting_and_reports_once() -> None:
    poster = RecordingPoster(delay_s=0.005, gone_after=2)
    calls: list[str] = []
    sender = sender_for(poster, on_gone=lambda: calls.append("gone"), flush_interval_s=0.0)
    sender.send(START)
    for i in range(50):
        sender.send(TextDelta("x", i + 1))
        await asyncio.sleep(0.002)
    sender.send(StreamCancelled("s-1", "disconnect"))
    await asyncio.wait_for(sender.aclose(), 1)
    assert calls == ["gone"] and sender.gone and sender.error is None
    assert poster.attempts == 3  # nothing is posted after the GoneException


async def test_sender_post_failure_stops_the_stream_and_keeps_the_error() -> None:
    poster = RecordingPoster(fail=RuntimeError("throttled"))
    calls: list[str] = []
    sender = sender_for(poster, on_gone=lambda: calls.append("gone"))
    sender.send(START)
    await asyncio.wait_for(sender.aclose(), 1)
    assert calls == ["gone"] and isinstance(sender.error, RuntimeError)


async def test_sender_flush_that_cannot_finish_is_bounded_by_its_timeout() -> None:
    poster = RecordingPoster(delay_s=30)
    sender = sender_for(poster)
    sender.send(START)
    sender.send(DONE)
    started = time.monotonic()
    await sender.aclose(timeout_s=0.1)
    assert time.monotonic() - started < 1


async def first_post(poster: RecordingPoster) -> None:
    for _ in range(10_000):  # bounded: 10 s at most
        if poster.frames:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("nothing was posted")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_widens_from_the_first_text_while_the_stream_flows() -> None:
    async def run() -> list[float]:
        clock = FakeClock()
        poster = RecordingPoster()
        sender = sender_for(poster, flush_interval_s=0.05, max_flush_interval_s=0.25, ramp_s=1.0, clock=clock)
        windows = [sender._window()]  # before any text: the short window
        sender.send(TextDelta("first", 1))
        await first_post(poster)  # the first text goes out at once
        for elapsed in (0.0, 0.5, 1.0, 5.0):
            clock.now = 1000.0 + elapsed
            windows.append(sender._window())
        await sender.aclose()
        return windows

    assert asyncio.run(run()) == pytest.approx([0.05, 0.05, 0.15, 0.25, 0.25])


def test_a_flowing_stream_waits_out_the_wide_window_and_the_close_flushes_at_once() -> None:
    async def run() -> tuple[int, list[dict[str, Any]]]:
        clock = FakeClock()
        poster = RecordingPoster()
        sender = sender_for(poster, flush_interval_s=0.0, max_flush_interval_s=60.0, ramp_s=1.0, clock=clock)
        sender.send(TextDelta("a", 1))
        await first_post(poster)
        clock.now += 2.0  # the stream has flowed past the ramp: a 60 s window
        sender.send(TextDelta("b", 2))
        sender.send(TextDelta("c", 3))
        await asyncio.sleep(0.2)  # far less than the window: the tokens wait, merged
        held = len(poster.frames)
        sender.send(DONE)
        await sender.aclose()
        return held, poster.messages

    held, messages = asyncio.run(run())
    assert held == 1
    assert [(m["type"], m.get("content")) for m in messages] == [("text", "a"), ("text", "bc"), ("done", None)]


def test_without_a_wider_window_or_coalescing_the_window_is_fixed() -> None:
    fixed = CoalescingSender(RecordingPoster(), "c", stream_id="s-1", flush_interval_s=0.05)
    assert fixed._window() == 0.05
    narrower = CoalescingSender(
        RecordingPoster(), "c", stream_id="s-1", flush_interval_s=0.1, max_flush_interval_s=0.01
    )
    assert narrower._window() == 0.1
    per_token = CoalescingSender(RecordingPoster(), "c", stream_id="s-1", max_flush_interval_s=0.2, coalesce=False)
    assert per_token._window() == 0.0
