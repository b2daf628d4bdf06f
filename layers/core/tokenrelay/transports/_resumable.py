"""A ``CoalescingSender`` that survives its connection (docs/protocol.md §5, WebSocket).

``seq`` counts ``text`` messages, so a resume's ``after_seq`` names a message, not a
chunk of the output log. The sender keeps what that takes:

- ``history``: every message it gave a place in the stream (``start`` excepted), in
  order, with its text ``seq``; a ``move`` re-posts, byte for byte, every message after
  ``after_seq`` to the new connection, then goes on with what is still queued;
- ``marks``: the output log seq of the last chunk in each text message, sealed into the
  stream record when the worker ends, so that a resume after that can rebuild exactly
  the same messages from the output log.

On ``GoneException`` it does not drop its queue: it calls ``on_gone`` (the worker
detaches the run: the grace period starts) and waits for a ``move``.
"""

from __future__ import annotations

from typing import Any

from ..events import StreamStart
from ._coalescing import CoalescingSender, _TextRun
from .websocket import encode_message

__all__ = ["ResumableSender"]


class _Replay(bytes):
    """A message being posted again after a move (already in ``history``)."""


class ResumableSender(CoalescingSender):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history: list[tuple[int, bytes]] = []  # (text seq, or 0 for other messages; data)
        self.marks: list[int] = []
        self.detached = False
        self.moves = 0

    @property
    def connection_id(self) -> str:
        return self._connection_id

    def send(self, event: Any) -> None:
        if type(event) is StreamStart:  # never replayed: a resuming client has it
            self._items.append(_Replay(encode_message(event, self._stream_id, self._request_id)))
            self._wake.set()
            return
        super().send(event)

    def move(self, connection_id: str, after_seq: int) -> None:
        """Post to ``connection_id`` from now on, starting with every message after ``after_seq``."""
        self._connection_id = connection_id
        self.moves += 1
        replay: list[bytes] = []
        seen = after_seq <= 0
        for seq, data in self.history:
            if seen:
                replay.append(_Replay(data))
            elif seq == after_seq:
                seen = True
        self._items.extendleft(reversed(replay))
        self.detached = False
        self._wake.set()
        if self._task is not None and self._task.done():
            self._task = None
            self.start()

    def final_marks(self) -> list[int]:
        """``marks``, plus the text still queued (never delivered) as the messages it would have made."""
        queued = [item.last_seq for item in self._items if type(item) is _TextRun]
        return [*self.marks, *queued]

    def _paused(self) -> bool:
        return self.detached

    def _posting(self, head: _TextRun | bytes, data: bytes) -> None:
        if type(head) is _TextRun:
            self.history.append((self.text_messages, data))
            self.marks.append(head.last_seq)
        elif type(head) is not _Replay:
            self.history.append((0, data))

    def _connection_gone(self) -> bool:
        self.detached = True  # keep the queue; the failed message is in history
        if self._on_gone is not None:
            self._on_gone()
        return True
