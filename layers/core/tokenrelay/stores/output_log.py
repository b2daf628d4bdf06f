"""The output log's items and the resume lease: records and store protocols (docs/protocol.md §5).

A stream's output log is kept in coalesced batches, then one final item::

    batch 1 .. n   first_seq, texts          seqs first_seq .. first_seq+len(texts)-1
    batch n+1      end: terminal (+ usage)   the last item of every finished stream

``OutputLogStore`` keeps the items; ``AttachmentStore`` keeps, on the stream record, the
lease a resuming reader refreshes and the WebSocket handover's fields. The writer and the
reader are in ``tokenrelay.resume``; ``stores.dynamodb`` has the DynamoDB implementations.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Protocol

from ..events import StreamCancelled, StreamDone, StreamError, Terminal, Usage
from .streams import WatchState

__all__ = [
    "AttachmentStore",
    "LogBatch",
    "LogEnd",
    "LogItem",
    "OutputLogStore",
    "decode_end",
    "encode_end",
]

_TERMINALS: dict[str, type[Terminal]] = {"done": StreamDone, "cancelled": StreamCancelled, "error": StreamError}
_NAMES = {cls: name for name, cls in _TERMINALS.items()}


@dataclass(frozen=True, slots=True)
class LogBatch:
    batch: int
    first_seq: int
    texts: tuple[str, ...]

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.texts) - 1


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
