"""Stream state: the record, its outcome, what a watcher reads, and the store protocol
(docs/protocol.md §4).

One record per stream, keyed by ``stream_id``. Status only moves forward,
``active -> complete | cancelled | failed``, and every transition is a
conditional write, so two invocations racing to end a stream cannot both win.
``stores.dynamodb.DynamoStreamStore`` is the implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "FINAL_STATUSES",
    "BatchWatchStore",
    "Status",
    "StreamOutcome",
    "StreamRecord",
    "StreamStore",
    "WatchState",
]

Status: TypeAlias = Literal["active", "complete", "cancelled", "failed"]
FINAL_STATUSES: frozenset[str] = frozenset({"complete", "cancelled", "failed"})


@dataclass(frozen=True, slots=True)
class StreamRecord:
    stream_id: str
    owner: str
    transport: str
    provider: str
    model: str
    status: Status = "active"
    cancel_requested: bool = False
    cancel_reason: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    error_code: str | None = None
    ttft_ms: int | None = None
    total_time_ms: int | None = None
    last_seq: int | None = None  # the seq of the stream's last text message (set when it ends)
    cost_usd: float | None = None  # what it cost (set when it ends; None: no price, or no tokens to price)
    cost_estimated: bool | None = None  # the cost was estimated (the provider reported no usage)


@dataclass(frozen=True, slots=True)
class StreamOutcome:
    """What the producing invocation writes when the stream ends."""

    status: Status
    completion_tokens: int
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    cancel_reason: str | None = None
    error_code: str | None = None
    ttft_ms: int | None = None
    total_time_ms: int | None = None
    last_seq: int | None = None
    cost_usd: float | None = None
    cost_estimated: bool | None = None


@dataclass(frozen=True, slots=True)
class WatchState:
    """What the producer's watcher reads from the stream record, in one strongly consistent read."""

    cancel_requested: bool = False
    cancel_reason: str | None = None
    attached_until: float = 0.0  # epoch seconds; 0 when no resuming reader ever attached
    status: str = "active"
    # WebSocket: the connection a resume last moved the stream to, and the text message seq it had
    connection_id: str | None = None
    resume_after: int = 0
    moves: int = 0  # how many resumes moved it (the worker acts on each new one)


class StreamStore(Protocol):
    async def create(self, record: StreamRecord) -> None:
        """Insert a new active record; the id must not exist yet."""
        ...

    async def get(self, stream_id: str) -> StreamRecord | None: ...

    async def cancel_requested(self, stream_id: str) -> bool:
        """Cheap, strongly consistent read of the cancel flag (polled by the producer)."""
        ...

    async def request_cancel(self, stream_id: str, reason: str = "client") -> None:
        """Set ``cancel_requested`` if the stream is active.

        Raises ``StreamNotFound`` for an unknown id and ``StreamFinished`` (with
        the final status) for a stream that already ended.
        """
        ...

    async def finish(self, stream_id: str, outcome: StreamOutcome) -> bool:
        """Move an active stream to its final status; False if it had already ended."""
        ...

    async def finish_unless_cancelled(self, stream_id: str, outcome: StreamOutcome) -> WatchState | None:
        """``finish`` in one conditional write that also requires no accepted cancel: None once
        written; else nothing is written and the record's state says why (``status`` not
        ``active``: it had ended, ``missing``: no record; ``cancel_requested``: a cancel won)."""
        ...


@runtime_checkable
class BatchWatchStore(Protocol):
    """A store that reads the watch state of many streams at once (one process's cancel poller)."""

    async def watch_many(self, stream_ids: Sequence[str]) -> dict[str, WatchState]: ...
