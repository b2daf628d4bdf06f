"""An in-memory ``StreamStore`` with the same semantics as the DynamoDB one.

For engine unit tests only: it counts calls so tests can check that the cancel
flag is polled at a bounded rate (never once per token).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from tokenrelay import StoreUnavailable, StreamFinished, StreamNotFound, StreamOutcome, StreamRecord
from tokenrelay.stores import WatchState


class MemoryStreamStore:
    def __init__(self, create_delay_s: float = 0.0, finish_delay_s: float = 0.0, finish_failures: int = 0) -> None:
        self.records: dict[str, StreamRecord] = {}
        self.create_delay_s = create_delay_s
        self.finish_delay_s = finish_delay_s  # each terminal write takes this long (lands even if abandoned)
        self.finish_failures = finish_failures  # the next this-many terminal writes fail
        self.cancel_checks = 0
        self.batch_reads = 0
        self.finish_calls = 0

    async def create(self, record: StreamRecord) -> None:
        if self.create_delay_s:
            await asyncio.sleep(self.create_delay_s)
        if record.stream_id in self.records:
            raise ValueError(f"duplicate stream id {record.stream_id}")
        self.records[record.stream_id] = record

    async def get(self, stream_id: str) -> StreamRecord | None:
        return self.records.get(stream_id)

    async def cancel_requested(self, stream_id: str) -> bool:
        self.cancel_checks += 1
        record = self.records.get(stream_id)
        return bool(record and record.cancel_requested)

    async def watch_many(self, stream_ids: Sequence[str]) -> dict[str, WatchState]:
        self.batch_reads += 1
        found = {sid: self.records[sid] for sid in stream_ids if sid in self.records}
        return {
            sid: WatchState(cancel_requested=r.cancel_requested, cancel_reason=r.cancel_reason, status=r.status)
            for sid, r in found.items()
        }

    async def request_cancel(self, stream_id: str, reason: str = "client") -> None:
        record = self.records.get(stream_id)
        if record is None:
            raise StreamNotFound(stream_id)
        if record.status != "active":
            raise StreamFinished(stream_id, record.status)
        self.records[stream_id] = dataclasses.replace(record, cancel_requested=True, cancel_reason=reason)

    async def finish(self, stream_id: str, outcome: StreamOutcome) -> bool:
        return await self._finish(stream_id, outcome, unless_cancelled=False) is None

    async def finish_unless_cancelled(self, stream_id: str, outcome: StreamOutcome) -> WatchState | None:
        return await self._finish(stream_id, outcome, unless_cancelled=True)

    async def _finish(self, stream_id: str, outcome: StreamOutcome, *, unless_cancelled: bool) -> WatchState | None:
        self.finish_calls += 1
        return await asyncio.shield(self._finish_later(stream_id, outcome, unless_cancelled))

    async def _finish_later(self, stream_id: str, outcome: StreamOutcome, unless_cancelled: bool) -> WatchState | None:
        if self.finish_delay_s:
            await asyncio.sleep(self.finish_delay_s)
        if self.finish_failures:
            self.finish_failures -= 1
            raise StoreUnavailable("DynamoDB UpdateItem failed: ProvisionedThroughputExceededException")
        record = self.records.get(stream_id)
        if record is None:
            return WatchState(status="missing")
        if record.status != "active" or (unless_cancelled and record.cancel_requested):
            return WatchState(record.cancel_requested, record.cancel_reason, status=record.status)
        fields = {k: v for k, v in dataclasses.asdict(outcome).items() if v is not None}
        self.records[stream_id] = dataclasses.replace(record, **fields)
        return None
