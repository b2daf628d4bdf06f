"""``StreamStore`` on a DynamoDB table (PROTOCOL section 4).

Table layout (``StreamsTable`` in ``template.yaml``): partition key
``stream_id`` (S), TTL on ``expires_at`` (N, epoch seconds). One item per
stream; every status change is a conditional write, so status only moves
forward, ``active -> complete | cancelled | failed``.

boto3 is synchronous, the core is not: every call runs in a worker thread
(``asyncio.to_thread``) on one low-level client created with the store and
reused for its lifetime (boto3 clients are thread-safe; creating them is not
cheap). The endpoint comes from boto3's own configuration, so
``AWS_ENDPOINT_URL_DYNAMODB`` points a local run at moto's server.

botocore errors are translated here, at the boundary: a failed condition
becomes ``StreamNotFound``, ``StreamFinished`` or ``False``; anything else
(connection refused, timeout, throttling, access denied, missing table)
becomes ``StoreUnavailable`` with a message that names the operation and the
error class only, never a request, a response body or a credential.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import StoreUnavailable, StreamFinished, StreamNotFound
from .base import FINAL_STATUSES, Status, StreamOutcome, StreamRecord, WatchState

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["PARTITION_KEY", "TTL_ATTRIBUTE", "WATCH_PROJECTION", "DynamoStreamStore", "from_settings", "watch_state"]

PARTITION_KEY = "stream_id"
TTL_ATTRIBUTE = "expires_at"
DEFAULT_TTL_S = 86_400

# The cancel flag is polled every few hundred milliseconds while a stream runs:
# fail fast rather than hang a poll behind a dead connection.
CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "total_max_attempts": 3},
    max_pool_connections=50,
)

_STRING_FIELDS = ("owner", "transport", "provider", "model", "status", "cancel_reason", "finish_reason", "error_code")
_INT_FIELDS = ("expires_at", "prompt_tokens", "completion_tokens", "ttft_ms", "total_time_ms", "last_seq")
_OUTCOME_FIELDS = (
    "completion_tokens",
    "prompt_tokens",
    "finish_reason",
    "cancel_reason",
    "error_code",
    "ttft_ms",
    "total_time_ms",
    "last_seq",
)

# What a producer's watcher reads: the cancel flag, the resume lease and a WebSocket move.
WATCH_PROJECTION = "#pk, cancel_requested, cancel_reason, attached_until, #status, connection_id, resume_after, moves"
WATCH_NAMES = {"#pk": PARTITION_KEY, "#status": "status"}
# The terminal write and the cancel watch fail fast instead (one attempt): the engine retries the
# one with its own short backoff, the poller the other at its next interval. botocore's own retries
# would back off up to 3 s inside a single call. The timeouts stay: a shorter read timeout only
# turns a slow answer into a retry that adds to what made it slow.
FAST_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "total_max_attempts": 1},
    max_pool_connections=50,
)
FAST_THREADS = 8  # threads for those calls alone (a poll per interval, a write per stream's end)
BATCH_GET_MAX_KEYS = 100  # DynamoDB's limit per BatchGetItem
BATCH_GET_ATTEMPTS = 3  # for keys DynamoDB returns as unprocessed (throttling); the rest wait for the next poll

T = TypeVar("T")
Item = dict[str, dict[str, Any]]


def watch_state(item: Mapping[str, Mapping[str, Any]]) -> WatchState:
    """Decode a record read with ``WATCH_PROJECTION`` (an empty item: a record not yet visible)."""
    return WatchState(
        cancel_requested=bool(item.get("cancel_requested", {}).get("BOOL", False)),
        cancel_reason=item["cancel_reason"]["S"] if "cancel_reason" in item else None,
        attached_until=float(Decimal(item["attached_until"]["N"])) if "attached_until" in item else 0.0,
        status=item["status"]["S"] if "status" in item else "active",
        connection_id=item["connection_id"]["S"] if "connection_id" in item else None,
        resume_after=int(item["resume_after"]["N"]) if "resume_after" in item else 0,
        moves=int(item["moves"]["N"]) if "moves" in item else 0,
    )


def _attr(value: str | bool | int | float) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    return {"S": value}


def _encode(record: StreamRecord, now: float, ttl_s: int) -> Item:
    created = record.created_at or now
    item: Item = {
        PARTITION_KEY: _attr(record.stream_id),
        "cancel_requested": _attr(record.cancel_requested),
        "created_at": _attr(created),
        "updated_at": _attr(record.updated_at or created),
        TTL_ATTRIBUTE: _attr(record.expires_at or int(created) + ttl_s),
    }
    for name in (*_STRING_FIELDS, *_INT_FIELDS):
        value = getattr(record, name)
        if value is not None and name not in item:
            item[name] = _attr(value)
    return item


def _decode(item: Mapping[str, Mapping[str, Any]]) -> StreamRecord:
    def s(name: str) -> str | None:
        return cast("str | None", item[name]["S"]) if name in item else None

    def n_int(name: str) -> int | None:
        return int(Decimal(item[name]["N"])) if name in item else None

    return StreamRecord(
        stream_id=item[PARTITION_KEY]["S"],
        owner=s("owner") or "",
        transport=s("transport") or "",
        provider=s("provider") or "",
        model=s("model") or "",
        status=cast(Status, s("status") or "active"),
        cancel_requested=bool(item.get("cancel_requested", {}).get("BOOL", False)),
        cancel_reason=s("cancel_reason"),
        created_at=float(item["created_at"]["N"]) if "created_at" in item else 0.0,
        updated_at=float(item["updated_at"]["N"]) if "updated_at" in item else 0.0,
        expires_at=n_int(TTL_ATTRIBUTE) or 0,
        prompt_tokens=n_int("prompt_tokens"),
        completion_tokens=n_int("completion_tokens"),
        finish_reason=s("finish_reason"),
        error_code=s("error_code"),
        ttft_ms=n_int("ttft_ms"),
        total_time_ms=n_int("total_time_ms"),
        last_seq=n_int("last_seq"),
    )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "unknown error")


def _new_client(config: Config = CLIENT_CONFIG) -> Any:
    # Lambda sets AWS_REGION (and AWS_DEFAULT_REGION); botocore reads only the
    # latter, so honour AWS_REGION the way the other AWS SDKs do.
    region = os.environ.get("AWS_REGION") or None
    return boto3.client("dynamodb", region_name=region, config=config)


class DynamoStreamStore:
    """Stream state in one DynamoDB table, through the low-level boto3 client."""

    def __init__(self, table_name: str, client: Any = None, *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self.table_name = table_name
        self.ttl_s = ttl_s
        # Created once, here, on the caller's thread: creating a client is not
        # thread-safe and costs tens of milliseconds; using one is thread-safe.
        self._client = client if client is not None else _new_client()
        self._fast_client: Any = client  # FAST_CONFIG's, made on first use (on the loop's thread)
        self._fast_pool: ThreadPoolExecutor | None = None

    @property
    def _fast(self) -> Any:
        if self._fast_client is None:
            self._fast_client = _new_client(FAST_CONFIG)
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
        item = _encode(record, time.time(), self.ttl_s)
        try:
            await self._call(
                "PutItem",
                self._client.put_item,
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PARTITION_KEY},
            )
        except _ConditionFailed:
            raise ValueError(f"stream {record.stream_id!r} already exists") from None

    async def get(self, stream_id: str) -> StreamRecord | None:
        response = await self._call(
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key={PARTITION_KEY: _attr(stream_id)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return _decode(item) if item else None

    async def cancel_requested(self, stream_id: str) -> bool:
        response = await self._call(
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key={PARTITION_KEY: _attr(stream_id)},
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
                "Keys": [{PARTITION_KEY: _attr(sid)} for sid in stream_ids],
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
        try:
            await self._call(
                "UpdateItem",
                self._client.update_item,
                TableName=self.table_name,
                Key={PARTITION_KEY: _attr(stream_id)},
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
                    ":true": _attr(True),
                    ":reason": _attr(reason),
                    ":now": _attr(time.time()),
                    ":active": _attr("active"),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as failed:
            if not failed.item:
                raise StreamNotFound(stream_id) from None
            raise StreamFinished(stream_id, _decode(failed.item).status) from None

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
        for name in _OUTCOME_FIELDS:
            value = getattr(outcome, name)
            if value is not None:  # omitted, not written as NULL
                fields[name] = value
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": _attr(value) for i, value in enumerate(fields.values())}
        update = "SET #status = :final, " + ", ".join(f"{n} = :{n[1:]}" for n in names)
        condition = "#status = :active"  # false for a missing item too
        if unless_cancelled:  # the one conditional write that decides a race with a cancel (docs/faults.md)
            condition += " AND (attribute_not_exists(#cancel) OR #cancel = :false)"
            names["#cancel"] = "cancel_requested"
            values[":false"] = _attr(False)
        try:
            await self._call(
                "UpdateItem",
                self._fast.update_item,
                TableName=self.table_name,
                Key={PARTITION_KEY: _attr(stream_id)},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={**names, "#status": "status"},
                ExpressionAttributeValues={**values, ":final": _attr(outcome.status), ":active": _attr("active")},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except _ConditionFailed as failed:
            return watch_state(failed.item) if failed.item else WatchState(status="missing")
        return None

    async def _call(self, operation: str, method: Callable[..., T], **kwargs: Any) -> T:
        try:
            if getattr(method, "__self__", None) is self._fast_client is not self._client:
                # The cancel watch and the terminal write get threads of their own: in the
                # default pool (cpu_count + 4 threads: 6 in a 2-vCPU Lambda) slow calls queued
                # them for seconds, and a cancel went unseen until its stream had completed.
                pool = self._fast_pool
                if pool is None:
                    pool = self._fast_pool = ThreadPoolExecutor(FAST_THREADS, thread_name_prefix="tokenrelay-ddb")
                return await asyncio.get_running_loop().run_in_executor(pool, partial(method, **kwargs))
            return await asyncio.to_thread(method, **kwargs)
        except ClientError as exc:
            code = _error_code(exc)
            if code == "ConditionalCheckFailedException":
                raise _ConditionFailed(exc.response.get("Item")) from None
            raise StoreUnavailable(f"DynamoDB {operation} on {self.table_name!r} failed: {code}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB {operation} on {self.table_name!r} failed: {type(exc).__name__}") from exc


class _ConditionFailed(Exception):
    """Internal: a conditional write was refused; ``item`` is the old item if returned."""

    def __init__(self, item: Item | None) -> None:
        super().__init__("conditional check failed")
        self.item = item


def from_settings(settings: Settings, client: Any = None) -> DynamoStreamStore:
    """The deployment's stream store: ``settings.streams_table``, records kept ``stream_ttl_s``."""
    return DynamoStreamStore(settings.streams_table, client, ttl_s=settings.stream_ttl_s)
