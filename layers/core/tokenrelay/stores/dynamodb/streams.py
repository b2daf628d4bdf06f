"""``StreamStore`` on the streams table (docs/protocol.md §4; the item is in ``_items.py``).

One item per stream; every status change is a conditional write, so status only moves
forward, ``active -> complete | cancelled | failed``. A refused condition becomes
``StreamNotFound``, ``StreamFinished`` or ``False`` here; everything else is
``StoreUnavailable`` (``_client.call``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import StreamFinished, StreamNotFound
from ..streams import FINAL_STATUSES, StreamOutcome, StreamRecord, WatchState
from ._client import FAST_CONFIG, STREAMS_CONFIG, ConditionFailed, call, new_client
from ._items import (
    CHAT_KEY_PREFIX,
    OUTCOME_FIELDS,
    PARTITION_KEY,
    WATCH_NAMES,
    WATCH_PROJECTION,
    attr,
    decode_record,
    encode_record,
    watch_state,
)

if TYPE_CHECKING:
    from ...settings import Settings

__all__ = ["DEFAULT_TTL_S", "DynamoStreamStore", "from_settings"]

DEFAULT_TTL_S = 86_400
FAST_THREADS = 8  # threads for the fast calls alone (a poll per interval, a write per stream's end)
BATCH_GET_MAX_KEYS = 100  # DynamoDB's limit per BatchGetItem
BATCH_GET_ATTEMPTS = 3  # for keys DynamoDB returns as unprocessed (throttling); the rest wait for the next poll

T = TypeVar("T")


class DynamoStreamStore:
    """Stream state in one DynamoDB table, through the low-level boto3 client."""

    def __init__(self, table_name: str, client: Any = None, *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self.table_name = table_name
        self.ttl_s = ttl_s
        # Created once, here, on the caller's thread: creating a client is not
        # thread-safe and costs tens of milliseconds; using one is thread-safe.
        self._client = client if client is not None else new_client(STREAMS_CONFIG)
        self._fast_client: Any = client  # FAST_CONFIG's, made on first use (on the loop's thread)
        self._fast_pool: ThreadPoolExecutor | None = None

    @property
    def _fast(self) -> Any:
        if self._fast_client is None:
            self._fast_client = new_client(FAST_CONFIG)
        return self._fast_client

    @property
    def clients(self) -> tuple[Any, ...]:
        """Its boto3 clients (tests attach fault injection to every one)."""
        return (self._client,) if self._fast is self._client else (self._client, self._fast)

    def close(self) -> None:
        """Close the clients' connection pools (tests and local tools; Lambda never needs it)."""
        self._client.close()
        if self._fast_client is not None and self._fast_client is not self._client:
            self._fast_client.close()
        if self._fast_pool is not None:
            self._fast_pool.shutdown(wait=False)

    async def create(self, record: StreamRecord) -> None:
        """Insert a new active record.

        Raises ``ValueError`` if the id exists already (stream ids are random:
        a collision is a bug, never a retry), ``StoreUnavailable`` otherwise.
        """
        item = encode_record(record, time.time(), self.ttl_s)
        try:
            await self._call(
                "PutItem",
                self._client.put_item,
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
            )
        except ConditionFailed:
            raise ValueError(f"stream {record.stream_id!r} already exists") from None

    async def get(self, stream_id: str) -> StreamRecord | None:
        if stream_id.startswith(CHAT_KEY_PREFIX):  # a chat's item (chats.py) is no stream
            return None
        response = await self._call(
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key={PARTITION_KEY: attr(stream_id)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return decode_record(item) if item else None

    async def cancel_requested(self, stream_id: str) -> bool:
        response = await self._call(
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key={PARTITION_KEY: attr(stream_id)},
            ConsistentRead=True,
            ProjectionExpression="cancel_requested",
        )
        return bool(response.get("Item", {}).get("cancel_requested", {}).get("BOOL", False))

    async def watch_many(self, stream_ids: Sequence[str]) -> dict[str, WatchState]:
        """The watch state of many streams in as few strongly consistent reads as DynamoDB allows
        (one BatchGetItem per 100 ids, run concurrently): what one process's cancel poller needs
        for all its streams, instead of one GetItem per stream per poll. Ids with no visible
        record are absent from the result."""
        chunks = [stream_ids[i : i + BATCH_GET_MAX_KEYS] for i in range(0, len(stream_ids), BATCH_GET_MAX_KEYS)]
        found: dict[str, WatchState] = {}
        for part in await asyncio.gather(*(self._watch_chunk(chunk) for chunk in chunks)):
            found.update(part)
        return found

    async def _watch_chunk(self, stream_ids: Sequence[str]) -> dict[str, WatchState]:
        request: dict[str, Any] = {
            self.table_name: {
                "Keys": [{PARTITION_KEY: attr(sid)} for sid in stream_ids],
                "ConsistentRead": True,
                "ProjectionExpression": WATCH_PROJECTION,
                "ExpressionAttributeNames": WATCH_NAMES,
            }
        }
        found: dict[str, WatchState] = {}
        for attempt in range(BATCH_GET_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.02 * 2**attempt)
            response = await self._call("BatchGetItem", self._fast.batch_get_item, RequestItems=request)
            for item in response.get("Responses", {}).get(self.table_name, []):
                found[item[PARTITION_KEY]["S"]] = watch_state(item)
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        return found

    async def request_cancel(self, stream_id: str, reason: str = "client") -> None:
        """Set the cancel flag of an active stream; the first reason given is kept.

        Idempotent while the stream is active. ``StreamNotFound`` for an
        unknown id, ``StreamFinished`` (with the final status) once it ended.
        """
        if stream_id.startswith(CHAT_KEY_PREFIX):  # a chat's item (chats.py) is no stream
            raise StreamNotFound(stream_id)
        try:
            await self._call(
                "UpdateItem",
                self._client.update_item,
                TableName=self.table_name,
                Key={PARTITION_KEY: attr(stream_id)},
                UpdateExpression=("SET #cancel = :true, #reason = if_not_exists(#reason, :reason), #updated = :now"),
                ConditionExpression="attribute_exists(#pk) AND #status = :active",
                ExpressionAttributeNames={
                    "#pk": PARTITION_KEY,
                    "#status": "status",
                    "#cancel": "cancel_requested",
                    "#reason": "cancel_reason",
                    "#updated": "updated_at",
                },
                ExpressionAttributeValues={
                    ":true": attr(True),
                    ":reason": attr(reason),
                    ":now": attr(time.time()),
                    ":active": attr("active"),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:
            if not failed.item:
                raise StreamNotFound(stream_id) from None
            raise StreamFinished(stream_id, decode_record(failed.item).status) from None

    async def finish(self, stream_id: str, outcome: StreamOutcome) -> bool:
        """Move an active stream to ``outcome.status``; False if it had already ended."""
        return await self._finish(stream_id, outcome, unless_cancelled=False) is None

    async def finish_unless_cancelled(self, stream_id: str, outcome: StreamOutcome) -> WatchState | None:
        """``finish``, unless a cancel was accepted first: None once written; otherwise nothing
        is written and the record's state says why (ended already, or ``cancel_requested``)."""
        return await self._finish(stream_id, outcome, unless_cancelled=True)

    async def _finish(self, stream_id: str, outcome: StreamOutcome, *, unless_cancelled: bool) -> WatchState | None:
        if outcome.status not in FINAL_STATUSES:
            raise ValueError(f"finish: {outcome.status!r} is not a final status")
        fields: dict[str, str | int | float] = {"updated_at": time.time()}
        for name in OUTCOME_FIELDS:
            value = getattr(outcome, name)
            if value is not None:  # omitted, not written as NULL
                fields[name] = value
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": attr(value) for i, value in enumerate(fields.values())}
        update = "SET #status = :final, " + ", ".join(f"{n} = :{n[1:]}" for n in names)
        condition = "#status = :active"  # false for a missing item too
        if unless_cancelled:  # the one conditional write that decides a race with a cancel (docs/faults.md)
            condition += " AND (attribute_not_exists(#cancel) OR #cancel = :false)"
            names["#cancel"] = "cancel_requested"
            values[":false"] = attr(False)
        try:
            await self._call(
                "UpdateItem",
                self._fast.update_item,
                TableName=self.table_name,
                Key={PARTITION_KEY: attr(stream_id)},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={**names, "#status": "status"},
                ExpressionAttributeValues={**values, ":final": attr(outcome.status), ":active": attr("active")},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ConditionFailed as failed:
            return watch_state(failed.item) if failed.item else WatchState(status="missing")
        return None

    async def _call(self, operation: str, method: Callable[..., T], **kwargs: Any) -> T:
        pool = None
        if getattr(method, "__self__", None) is self._fast_client is not self._client:
            # The cancel watch and the terminal write get threads of their own: in the
            # default pool (cpu_count + 4 threads: 6 in a 2-vCPU Lambda) slow calls queued
            # them for seconds, and a cancel went unseen until its stream had completed.
            pool = self._fast_pool
            if pool is None:
                pool = self._fast_pool = ThreadPoolExecutor(FAST_THREADS, thread_name_prefix="tokenrelay-ddb")
        return await call(self.table_name, operation, method, executor=pool, **kwargs)


def from_settings(settings: Settings, client: Any = None) -> DynamoStreamStore:
    """The deployment's stream store: ``settings.streams_table``, records kept ``stream_ttl_s``."""
    return DynamoStreamStore(settings.streams_table, client, ttl_s=settings.stream_ttl_s)
