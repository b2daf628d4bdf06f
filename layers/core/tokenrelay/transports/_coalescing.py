"""The coalescing sender: a stream's messages posted on one WebSocket connection.

- one post in flight at a time, so messages arrive in order;
- tokens that arrive while a post is in flight, or within the flush window of
  the previous post, are merged into the next ``text`` message; the first
  text goes out at once (time to first token is not traded for fewer posts);
- the window adapts: ``flush_interval_s`` just after the first text, widening
  linearly to ``max_flush_interval_s`` over ``ramp_s`` while the stream flows.
  API Gateway bills each post (32 KB units), so a flowing stream is posted in
  fewer, larger messages, while its first second stays as responsive as before
  (``scripts/bench cost``: posts, $ and latency per window);
- a ``text`` message never exceeds ``max_frame_bytes`` (the JSON envelope
  included), under API Gateway's 32 KB frame; a longer token is split;
- reasoning text merges the same way into ``reasoning`` messages, and one tool call's
  argument fragments into ``tool_call_delta`` messages; a part never merges with a part
  of another kind (``websocket.merge_key``), and every part message takes the next ``seq``;
- ``start``, ``usage`` and the terminal message are posted on their own, in
  stream order, pending parts before them; the terminal one is flushed last.

Posting goes through a ``ConnectionPoster`` (API Gateway's ``@connections`` API
in the worker). A poster raises ``ConnectionGone`` when the client has left:
the sender stops posting and calls ``on_gone`` once, so the producer can stop
the upstream at once instead of at its next token. ``delivered`` is the seq of the
last token posted: how far the client got (the run reads it for its summary).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from ..errors import ConnectionGone
from ..events import PART_TYPES, Event, Part, TextDelta
from .websocket import (
    MAX_FRAME_BYTES,
    ConnectionPoster,
    dumps,
    encode_message,
    envelope,
    merge_key,
    merge_parts,
    part_payload,
)

__all__ = ["CoalescingSender"]

log = logging.getLogger("tokenrelay.websocket")
_SEQ_RESERVE = 24  # room for the `seq` and `tokens` digits beyond the envelope measured with 0s
_PART_RESERVE = 64  # a reasoning or tool_call_delta envelope is longer than a text one


def _escaped_size(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string (escaping is per character, so sizes add up)."""
    return len(dumps(text).encode()) - 2


def _split(text: str, room: int) -> list[tuple[str, int]]:
    """Cut ``text`` into pieces whose escaped size fits in ``room`` (slow path: huge tokens only)."""
    pieces: list[tuple[str, int]] = []
    start = size = 0
    for i, char in enumerate(text):
        char_size = _escaped_size(char)
        if size + char_size > room and i > start:
            pieces.append((text[start:i], size))
            start, size = i, 0
        size += char_size
    pieces.append((text[start:], size))
    return pieces


class _TextRun:
    """Parts waiting to go out as one message: text (``key`` "t"), or another kind
    (``websocket.merge_key``; ``single`` holds a part that merges with nothing)."""

    __slots__ = ("key", "last_seq", "parts", "single", "size", "tokens")

    def __init__(
        self, text: str, size: int, seq: int, tokens: int = 1, key: str | None = "t", single: Part | None = None
    ) -> None:
        self.parts = [text]
        self.size = size
        self.last_seq = seq  # the engine's seq of the last token in it
        self.tokens = tokens  # how many chunks it merges (a chunk split over frames: the first piece)
        self.key = key
        self.single = single


class CoalescingSender:
    """Posts one stream's messages on one connection, merging tokens (see module docstring)."""

    def __init__(
        self,
        poster: ConnectionPoster,
        connection_id: str,
        *,
        stream_id: str,
        request_id: str | None = None,
        flush_interval_s: float = 0.05,
        max_flush_interval_s: float | None = None,  # None: the window stays at flush_interval_s
        ramp_s: float = 1.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        coalesce: bool = True,
        on_gone: Callable[[], object] | None = None,  # what it returns is ignored
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._poster = poster
        self._connection_id = connection_id
        self._stream_id = stream_id
        self._request_id = request_id
        self._interval = flush_interval_s if coalesce else 0.0
        widest = flush_interval_s if max_flush_interval_s is None else max(flush_interval_s, max_flush_interval_s)
        self._max_interval = widest if coalesce else 0.0
        self._ramp_s = ramp_s
        self._first_text_at = 0.0
        self._coalesce = coalesce
        self._on_gone = on_gone
        self._clock = clock
        head = dumps(envelope("text", stream_id, request_id))[:-1] + ',"content":'
        self._text_head = head
        self._room = max_frame_bytes - len(f'{head}"","seq":0,"tokens":0}}'.encode()) - _SEQ_RESERVE
        if self._room < 64:
            raise ValueError(f"max_frame_bytes={max_frame_bytes} leaves no room for text")
        self._items: deque[bytes | _TextRun] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._last_post_at = float("-inf")
        self._text_posted = False
        self.gone = False
        self.error: BaseException | None = None
        self.posts = 0
        self.text_messages = 0
        self.max_frame = 0
        self.delivered = 0  # the engine's seq of the last token posted

    # -- producer side (never blocks) ------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ws-sender-{self._stream_id}")

    def send(self, event: Event) -> None:
        """Queue ``event``; text may be merged with the text queued before it."""
        if self.gone or self._closing:
            return
        items = self._items
        if type(event) is TextDelta:
            text = event.text
            size = _escaped_size(text)
            tail = items[-1] if items else None
            if self._coalesce and type(tail) is _TextRun and tail.key == "t" and tail.size + size <= self._room:
                tail.parts.append(text)
                tail.size += size
                tail.last_seq = event.seq
                tail.tokens += 1
                return  # merged: the sender needs no wake-up for this
            if size <= self._room:
                items.append(_TextRun(text, size, event.seq))
            else:
                pieces = _split(text, self._room)
                items.extend(_TextRun(piece, n, event.seq, 1 if i == 0 else 0) for i, (piece, n) in enumerate(pieces))
        elif isinstance(event, PART_TYPES):
            if not self._queue_part(event):
                return
        else:
            items.append(encode_message(event, self._stream_id, self._request_id))
        self._wake.set()

    def _queue_part(self, part: Part) -> bool:
        """Queue a part that is not text; False when it merged into the tail (no wake-up needed)."""
        items, key = self._items, merge_key(part)
        if key is None:
            items.append(_TextRun("", 0, part.seq, 1, None, part))
            return True
        payload = part_payload(part)
        size, room = _escaped_size(payload), self._room - _PART_RESERVE
        tail = items[-1] if items else None
        if self._coalesce and type(tail) is _TextRun and tail.key == key and tail.size + size <= room:
            tail.parts.append(payload)
            tail.size += size
            tail.last_seq = part.seq
            tail.tokens += 1
            return False
        pieces = [(payload, size)] if size <= room else _split(payload, room)
        items.extend(_TextRun(p, n, part.seq, 1 if i == 0 else 0, key) for i, (p, n) in enumerate(pieces))
        return True

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Post everything queued (the terminal message last), then stop; bounded by ``timeout_s``."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            self.start()
        assert self._task is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except TimeoutError:
            log.warning("stream %s: flush timed out with %d messages queued", self._stream_id, len(self._items))
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- the one task that posts ------------------------------------------

    def _paused(self) -> bool:
        """Hold the queue without posting (a resumable sender between connections)."""
        return False

    def _posting(self, head: _TextRun | bytes, data: bytes) -> None:
        """``data``, encoded from ``head``, is about to be posted (a resumable sender keeps it)."""

    def _connection_gone(self) -> bool:
        """The connection is gone: True to keep the queue and go on, False to stop posting."""
        self._stop_posting(None)
        return False

    async def _run(self) -> None:
        items = self._items
        while True:
            if self._paused() or not items:
                if self._closing:
                    return
                await self._wait(None)
                continue
            head = items[0]
            if type(head) is _TextRun and head.key and len(items) == 1 and not self._closing and self._text_posted:
                delay = self._last_post_at + self._window() - self._clock()
                if delay > 0:  # only text pending: give more tokens a chance to join
                    await self._wait(delay)
                    continue
            items.popleft()
            if type(head) is _TextRun:
                self.text_messages += 1
                if not self._text_posted:
                    self._text_posted, self._first_text_at = True, self._clock()
                if head.key == "t":
                    text = dumps("".join(head.parts))
                    data = f'{self._text_head}{text},"seq":{self.text_messages},"tokens":{head.tokens}}}'.encode()
                else:
                    part = merge_parts(head.key, head.parts, self.text_messages, head.single)
                    data = encode_message(part, self._stream_id, self._request_id, head.tokens)
            else:
                assert isinstance(head, bytes)
                data = head
            self._posting(head, data)
            self._last_post_at = self._clock()
            try:
                await self._poster.post(self._connection_id, data)
            except ConnectionGone:
                if self._connection_gone():
                    continue
                return
            except Exception as exc:
                log.error("stream %s: post to %s failed: %r", self._stream_id, self._connection_id, exc)
                self._stop_posting(exc)
                return
            self.posts += 1
            self.max_frame = max(self.max_frame, len(data))
            if type(head) is _TextRun:
                self.delivered = head.last_seq

    def _window(self) -> float:
        """How long text may wait after the previous post: widening from the first text on."""
        if self._max_interval <= self._interval or not self._text_posted:
            return self._interval
        flowing = self._clock() - self._first_text_at
        if flowing >= self._ramp_s:
            return self._max_interval
        return self._interval + (self._max_interval - self._interval) * flowing / self._ramp_s

    async def _wait(self, timeout_s: float | None) -> None:
        self._wake.clear()
        try:
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _stop_posting(self, error: BaseException | None) -> None:
        self.gone = True
        self.error = error
        self._items.clear()
        if self._on_gone is not None:
            self._on_gone()
