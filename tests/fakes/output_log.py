"""In-memory ``OutputLogStore`` and ``AttachmentStore`` with the DynamoDB semantics, for unit tests."""

from __future__ import annotations

from tokenrelay.errors import StoreUnavailable
from tokenrelay.output_log import LogBatch, LogItem, decode_end
from tokenrelay.resume import WatchState


class MemoryOutputLog:
    def __init__(self, fail_writes: int = 0) -> None:
        self.items: dict[str, dict[int, LogItem]] = {}
        self.writes = 0
        self.reads = 0
        self.fail_writes = fail_writes  # the next this-many writes fail

    def _write(self, stream_id: str, item: LogItem) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise StoreUnavailable("DynamoDB PutItem failed: ProvisionedThroughputExceededException")
        self.writes += 1
        self.items.setdefault(stream_id, {})[item.batch] = item

    async def append(self, stream_id: str, batch: LogBatch, expires_at: int) -> None:
        self._write(stream_id, batch)

    async def end(self, stream_id: str, batch: int, payload: str, expires_at: int) -> None:
        self._write(stream_id, decode_end(batch, payload))

    async def read(self, stream_id: str, after_batch: int) -> list[LogItem]:
        self.reads += 1
        items = self.items.get(stream_id, {})
        return [items[n] for n in sorted(items) if n > after_batch]

    def texts(self, stream_id: str) -> list[str]:
        return [t for item in self.items.get(stream_id, {}).values() if isinstance(item, LogBatch) for t in item.texts]


class MemoryAttachments:
    def __init__(self) -> None:
        self.state = WatchState()
        self.watches = 0

    async def watch(self, stream_id: str) -> WatchState:
        self.watches += 1
        return self.state

    async def attach(self, stream_id: str, until: float) -> None:
        self.state = WatchState(attached_until=until)

    async def request_move(self, stream_id: str, connection_id: str, after_seq: int) -> bool:
        return True

    async def seal(self, stream_id: str, marks: list[int], moves_seen: int) -> bool:
        return True

    async def marks(self, stream_id: str) -> list[int] | None:
        return None
