"""``AttachmentStore`` on the streams table (docs/protocol.md §5): the resume lease and the
WebSocket handover, fields of the stream's own item (``_items.py``).

``attached_until`` is the lease a resuming reader refreshes, read by the producer together
with the cancel flag. ``connection_id``, ``resume_after`` and ``moves`` ask a live WebSocket
worker to move the stream; ``text_marks`` seals it once the worker ended (``resume``).
"""

from __future__ import annotations

import time
from typing import Any

from ..streams import WatchState
from ._client import ConditionFailed, call, new_client
from ._items import PARTITION_KEY, WATCH_NAMES, WATCH_PROJECTION, attr, watch_state

__all__ = ["DynamoAttachments"]


class DynamoAttachments:
    """``AttachmentStore`` on the streams table: the ``attached_until`` lease and the cancel flag."""

    def __init__(self, streams_table: str, client: Any = None) -> None:
        self.table_name = streams_table
        self._client = client if client is not None else new_client()

    async def watch(self, stream_id: str) -> WatchState:
        response = await call(
            self.table_name,
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key={PARTITION_KEY: {"S": stream_id}},
            ConsistentRead=True,
            ProjectionExpression=WATCH_PROJECTION,
            ExpressionAttributeNames=WATCH_NAMES,
        )
        return watch_state(response.get("Item", {}))

    async def attach(self, stream_id: str, until: float) -> None:
        """Refresh the lease of an active stream; a finished or unknown stream is left alone."""
        await self._update(
            stream_id,
            "SET attached_until = :until, updated_at = :now",
            "#status = :active",
            {"#status": "status"},
            {":until": attr(until), ":now": attr(time.time()), ":active": {"S": "active"}},
        )

    async def request_move(self, stream_id: str, connection_id: str, after_seq: int) -> bool:
        return await self._update(
            stream_id,
            "SET connection_id = :conn, resume_after = :after, moves = if_not_exists(moves, :zero) + :one",
            "attribute_exists(stream_id) AND attribute_not_exists(text_marks)",
            None,
            {
                ":conn": {"S": connection_id},
                ":after": attr(after_seq),
                ":zero": attr(0),
                ":one": attr(1),
            },
        )

    async def seal(self, stream_id: str, marks: list[int], moves_seen: int) -> bool:
        return await self._update(
            stream_id,
            "SET text_marks = :marks",
            "(attribute_not_exists(moves) AND :seen = :zero) OR moves = :seen",
            None,
            {":marks": {"S": ",".join(map(str, marks))}, ":seen": attr(moves_seen), ":zero": attr(0)},
        )

    async def marks(self, stream_id: str) -> list[int] | None:
        response = await call(
            self.table_name,
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key={PARTITION_KEY: {"S": stream_id}},
            ConsistentRead=True,
            ProjectionExpression="text_marks",
        )
        raw = response.get("Item", {}).get("text_marks", {}).get("S")
        if raw is None:
            return None
        return [int(m) for m in raw.split(",") if m]

    async def _update(
        self,
        stream_id: str,
        update: str,
        condition: str,
        names: dict[str, str] | None,
        values: dict[str, dict[str, Any]],
    ) -> bool:
        """A conditional UpdateItem; False when the condition failed."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {PARTITION_KEY: {"S": stream_id}},
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            await call(self.table_name, "UpdateItem", self._client.update_item, **kwargs)
        except ConditionFailed:
            return False
        return True
