"""In-memory ``OutputLogStore`` and ``AttachmentStore`` with the DynamoDB semantics, for unit tests.

``MemoryOutputLog`` can also be slow or failing, the way a DynamoDB call in a worker
thread is: a write that is slow (``delay_s``) still lands even if the coroutine that
started it is cancelled (the thread runs on), and every item ever put under a key is kept
(``puts``), so a test can see a batch number written twice with different contents.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tokenrelay.errors import StoreUnavailable
from tokenrelay.stores import LogBatch, LogItem, WatchState, decode_end

ItemSize = Callable[[LogItem], int]


class MemoryOutputLog:
    def __init__(
        self,
        fail_writes: int = 0,
        *,
        delay_s: float = 0.0,
        fail_when: Callable[[LogItem], bool] | None = None,
        max_item_bytes: int | None = None,
    ) -> None:
        self.items: dict[str, dict[int, LogItem]] = {}
        self.puts: dict[tuple[str, int], list[LogItem]] = {}  # every write that landed, per key
        self.writes = 0
        self.reads = 0
        self.failed = 0
        self.attempts = 0
        self.fail_writes = fail_writes  # the next this-many writes fail
        self.delay_s = delay_s  # each write takes this long, and lands even if its caller is cancelled
        self.fail_when = fail_when  # writes of items it picks fail (DynamoDB's ValidationException, say)
        self.max_item_bytes = max_item_bytes  # items larger than this fail, as DynamoDB's 400 KB limit does

    async def _write(self, stream_id: str, item: LogItem) -> None:
        if self.delay_s:
            await asyncio.shield(self._land(stream_id, item, self.delay_s))
        else:
            await self._land(stream_id, item, 0.0)

    async def _land(self, stream_id: str, item: LogItem, delay_s: float) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        self.attempts += 1
        if self.fail_writes:
            self.fail_writes -= 1
            self.failed += 1
            raise StoreUnavailable("DynamoDB PutItem failed: ProvisionedThroughputExceededException")
        if self.fail_when is not None and self.fail_when(item):
            self.failed += 1
            raise StoreUnavailable("DynamoDB PutItem failed: InternalServerError")
        if self.max_item_bytes is not None and isinstance(item, LogBatch):
            size = sum(len(t.encode()) + 1 for t in item.texts)
            if size > self.max_item_bytes:
                self.failed += 1
                raise StoreUnavailable("DynamoDB PutItem failed: ValidationException")
        self.writes += 1
        self.items.setdefault(stream_id, {})[item.batch] = item
        self.puts.setdefault((stream_id, item.batch), []).append(item)

    async def append(self, stream_id: str, batch: LogBatch, expires_at: int) -> None:
        await self._write(stream_id, batch)

    async def end(self, stream_id: str, batch: int, payload: str, expires_at: int) -> None:
        await self._write(stream_id, decode_end(batch, payload))

    async def read(self, stream_id: str, after_batch: int) -> list[LogItem]:
        self.reads += 1
        items = self.items.get(stream_id, {})
        return [items[n] for n in sorted(items) if n > after_batch]

    def texts(self, stream_id: str) -> list[str]:
        items = self.items.get(stream_id, {})
        return [t for n in sorted(items) if isinstance(item := items[n], LogBatch) for t in item.texts]

    def rewritten(self) -> list[tuple[str, int]]:
        """Keys written more than once with different contents (never allowed)."""
        return [key for key, items in self.puts.items() if len(set(items)) > 1]


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
