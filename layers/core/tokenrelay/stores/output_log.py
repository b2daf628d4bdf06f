"""The output log's items and the resume lease: records and store protocols (docs/protocol.md §5).

A stream's output log is kept in coalesced batches, then one final item::

    batch 1 .. n   first_seq, texts, kinds   seqs first_seq .. first_seq+len(texts)-1
    batch n+1      end: terminal (+ usage)   the last item of every finished stream

Every part of the stream (docs/protocol.md §11) is one entry: ``texts[i]`` holds its payload
and ``kinds[i]`` its kind, one character each (``encode_part``). A batch of text alone has
no ``kinds`` (as every batch written before parts existed), so text costs nothing more:

    t text   r reasoning text   s reasoning signature   x redacted reasoning
    c tool call start: JSON [index, id, name]   a arguments: JSON [index, fragment]
    e tool call end: the index

``OutputLogStore`` keeps the items; ``AttachmentStore`` keeps, on the stream record, the
lease a resuming reader refreshes and the WebSocket handover's fields. The writer and the
reader are in ``tokenrelay.resume``; ``stores.dynamodb`` has the DynamoDB implementations.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Protocol

from ..events import (
    Part,
    ReasoningDelta,
    StreamCancelled,
    StreamDone,
    StreamError,
    Terminal,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from .streams import WatchState

__all__ = [
    "AttachmentStore",
    "LogBatch",
    "LogEnd",
    "LogItem",
    "OutputLogStore",
    "decode_end",
    "decode_part",
    "encode_end",
    "encode_part",
]

_TERMINALS: dict[str, type[Terminal]] = {"done": StreamDone, "cancelled": StreamCancelled, "error": StreamError}
_NAMES = {cls: name for name, cls in _TERMINALS.items()}


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_part(part: Part) -> tuple[str, str]:
    """A part as a log entry: its kind (one character) and its payload (module docstring)."""
    if type(part) is TextDelta:
        return "t", part.text
    if isinstance(part, ReasoningDelta):
        if part.redacted:
            return "x", part.redacted
        if part.signature:
            return "s", part.signature
        return "r", part.text
    if isinstance(part, ToolCallStart):
        return "c", _json([part.index, part.id, part.name])
    if isinstance(part, ToolCallDelta):
        return "a", _json([part.index, part.arguments])
    if isinstance(part, ToolCallEnd):
        return "e", str(part.index)
    raise TypeError(f"not a part: {part!r}")


def decode_part(kind: str, payload: str, seq: int) -> Part:
    if kind == "t":
        return TextDelta(payload, seq)
    if kind == "r":
        return ReasoningDelta(payload, seq)
    if kind == "s":
        return ReasoningDelta("", seq, signature=payload)
    if kind == "x":
        return ReasoningDelta("", seq, redacted=payload)
    if kind == "c":
        index, call_id, name = json.loads(payload)
        return ToolCallStart(int(index), str(call_id), str(name), seq)
    if kind == "a":
        index, arguments = json.loads(payload)
        return ToolCallDelta(int(index), str(arguments), seq)
    if kind == "e":
        return ToolCallEnd(int(payload), seq)
    raise ValueError(f"output log: unknown entry kind {kind!r}")


@dataclass(frozen=True, slots=True)
class LogBatch:
    batch: int
    first_seq: int
    texts: tuple[str, ...]  # each entry's payload
    kinds: str = ""  # each entry's kind; "": every entry is text

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.texts) - 1

    def parts(self) -> list[Part]:
        """The batch's entries as parts, with their seqs."""
        first, kinds = self.first_seq, self.kinds
        if not kinds:
            return [TextDelta(text, first + i) for i, text in enumerate(self.texts)]
        return [decode_part(kinds[i], text, first + i) for i, text in enumerate(self.texts)]


@dataclass(frozen=True, slots=True)
class LogEnd:
    batch: int
    terminal: Terminal
    usage: Usage | None = None


LogItem = LogBatch | LogEnd


def encode_end(terminal: Terminal, usage: Usage | None) -> str:
    """The final item's payload: compact JSON of the terminal event (and usage)."""
    body: dict[str, Any] = {"type": _NAMES[type(terminal)], **dataclasses.asdict(terminal)}
    if usage is not None:
        body["usage"] = dataclasses.asdict(usage)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def decode_end(batch: int, payload: str) -> LogEnd:
    body = json.loads(payload)
    usage = body.pop("usage", None)
    terminal = _TERMINALS[body.pop("type")](**body)
    return LogEnd(batch, terminal, Usage(**usage) if usage is not None else None)


class OutputLogStore(Protocol):
    async def append(self, stream_id: str, batch: LogBatch, expires_at: int) -> None:
        """Write one batch item (idempotent: the key is ``stream_id`` + ``batch.batch``)."""
        ...

    async def end(self, stream_id: str, batch: int, payload: str, expires_at: int) -> None:
        """Write the final item (``payload`` from ``encode_end``)."""
        ...

    async def read(self, stream_id: str, after_batch: int) -> list[LogItem]:
        """Every item with a batch number above ``after_batch``, in order (strongly consistent)."""
        ...


class AttachmentStore(Protocol):
    async def watch(self, stream_id: str) -> WatchState: ...

    async def attach(self, stream_id: str, until: float) -> None:
        """Set ``attached_until`` (a resuming reader's lease; ``until=now`` detaches it)."""
        ...

    async def request_move(self, stream_id: str, connection_id: str, after_seq: int) -> bool:
        """WebSocket: ask the live worker to move the stream to ``connection_id``; False once the
        worker has sealed the stream (it is gone: replay from the log yourself)."""
        ...

    async def seal(self, stream_id: str, marks: list[int], moves_seen: int) -> bool:
        """WebSocket worker, at its end: record each text message's last seq; False if a move
        it has not seen arrived (handle it, then seal again)."""
        ...

    async def marks(self, stream_id: str) -> list[int] | None:
        """The sealed text message boundaries, or None while the worker owns the stream."""
        ...
