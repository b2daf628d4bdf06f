"""WebSocket connections and the streams each one runs: the record and the store protocol.

A stream id is put in ``streams`` as ``pending`` by the chat handler (bounded per
connection), moved to ``running`` by the worker that claims it (once: Lambda may
deliver an async invoke twice) and removed when the stream ends. ``cancel`` without a
stream id and ``$disconnect`` read this map, so a connection's active streams are found
with one strongly consistent read and no index. ``stores.dynamodb.DynamoConnectionStore``
is the implementation (the table layout is there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

__all__ = ["ClaimResult", "ConnectionRecord", "ConnectionStatus", "ConnectionStore"]

ConnectionStatus: TypeAlias = Literal["connected", "gone"]
ClaimResult: TypeAlias = Literal["claimed", "gone", "unknown"]


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    connection_id: str
    owner: str  # the client id given at $connect, else the connection id
    client_id: str | None = None
    status: ConnectionStatus = "connected"
    domain: str = ""
    stage: str = ""
    connected_at: float = 0.0
    disconnected_at: float | None = None
    expires_at: int = 0
    streams: Mapping[str, str] = field(default_factory=dict)
    key_id: str | None = None  # with AUTH_MODE=api_key: the key, which is also the owner
    rpm: int = 0  # limits of the owner, as $connect found them (0 = none)
    concurrency: int = 0
    tpm: int = 0  # the key's token budgets (0 = none)
    daily_usd: float = 0.0
    models: tuple[str, ...] | None = None  # the key's model allow-list; None = all

    @property
    def active_streams(self) -> list[str]:
        return sorted(self.streams)


class ConnectionStore(Protocol):
    async def put(self, record: ConnectionRecord) -> None: ...

    async def get(self, connection_id: str) -> ConnectionRecord | None: ...

    async def add_stream(self, connection_id: str, stream_id: str, limit: int) -> ConnectionRecord:
        """Reserve ``stream_id`` (``pending``); ``ConnectionNotFound`` or ``TooManyStreams`` if refused."""
        ...

    async def claim_stream(self, connection_id: str, stream_id: str) -> ClaimResult:
        """``pending -> running``: "gone" if the client left first, "unknown" if not pending (a repeat)."""
        ...

    async def remove_stream(self, connection_id: str, stream_id: str) -> None: ...

    async def disconnect(self, connection_id: str) -> ConnectionRecord | None:
        """Mark the connection gone; the record as it is now (with its active streams), None if unknown."""
        ...
