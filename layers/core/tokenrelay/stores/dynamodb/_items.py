"""The streams table's items (``StreamsTable``; docs/protocol.md §4), shared by the stores that use it.

Partition key ``stream_id`` (S), TTL on ``expires_at`` (N, epoch seconds): one item per
stream, read and written by ``DynamoStreamStore`` (the record, the cancel flag, the end)
and ``DynamoAttachments`` (the resume lease and the WebSocket handover on the same item).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, cast

from ..streams import Status, StreamRecord, WatchState
from ._client import Item

__all__ = [
    "CHAT_KEY_PREFIX",
    "OUTCOME_FIELDS",
    "PARTITION_KEY",
    "TTL_ATTRIBUTE",
    "WATCH_NAMES",
    "WATCH_PROJECTION",
    "attr",
    "decode_record",
    "encode_record",
    "watch_state",
]

PARTITION_KEY = "stream_id"
CHAT_KEY_PREFIX = "chat#"  # a chat's item (``chats.py``), never a stream's
TTL_ATTRIBUTE = "expires_at"

_STRING_FIELDS = ("owner", "transport", "provider", "model", "status", "cancel_reason", "finish_reason", "error_code")
_INT_FIELDS = ("expires_at", "prompt_tokens", "completion_tokens", "ttft_ms", "total_time_ms", "last_seq")
OUTCOME_FIELDS = (
    "completion_tokens",
    "prompt_tokens",
    "finish_reason",
    "cancel_reason",
    "error_code",
    "ttft_ms",
    "total_time_ms",
    "last_seq",
    "cost_usd",
    "cost_estimated",
)

# What a producer's watcher reads: the cancel flag, the resume lease and a WebSocket move.
WATCH_PROJECTION = "#pk, cancel_requested, cancel_reason, attached_until, #status, connection_id, resume_after, moves"
WATCH_NAMES = {"#pk": PARTITION_KEY, "#status": "status"}


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


def attr(value: str | bool | int | float) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, float):  # plain digits: a cost of 1.5e-05 dollars is 0.000015
        return {"N": repr(value) if "e" not in repr(value) else f"{value:.12f}".rstrip("0").rstrip(".")}
    if isinstance(value, int):
        return {"N": str(value)}
    return {"S": value}


def encode_record(record: StreamRecord, now: float, ttl_s: int) -> Item:
    created = record.created_at or now
    item: Item = {
        PARTITION_KEY: attr(record.stream_id),
        "cancel_requested": attr(record.cancel_requested),
        "created_at": attr(created),
        "updated_at": attr(record.updated_at or created),
        TTL_ATTRIBUTE: attr(record.expires_at or int(created) + ttl_s),
    }
    for name in (*_STRING_FIELDS, *_INT_FIELDS):
        value = getattr(record, name)
        if value is not None and name not in item:
            item[name] = attr(value)
    return item


def decode_record(item: Mapping[str, Mapping[str, Any]]) -> StreamRecord:
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
        cost_usd=float(Decimal(item["cost_usd"]["N"])) if "cost_usd" in item else None,
        cost_estimated=item["cost_estimated"]["BOOL"] if "cost_estimated" in item else None,
    )
