"""``ChatStore`` on the streams table: one item per (owner, chat), beside the stream records.

Its key is ``chat#`` and a SHA-256 of the owner and the chat id, so it can never be a stream id
(those are UUIDs; ``DynamoStreamStore`` answers "not found" for this prefix) nor be guessed
from a chat id alone. It needs only what the HTTP functions' roles already grant on the table:
``PutItem`` and ``GetItem``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from ..chats import ChatStream
from ._client import call, new_client
from ._items import CHAT_KEY_PREFIX, PARTITION_KEY, TTL_ATTRIBUTE, attr

__all__ = ["DynamoChats", "chat_key"]


def chat_key(owner: str, chat_id: str) -> str:
    digest = hashlib.sha256(f"{owner}\x00{chat_id}".encode()).hexdigest()
    return f"{CHAT_KEY_PREFIX}{digest}"


class DynamoChats:
    def __init__(self, streams_table: str, client: Any = None, *, ttl_s: int = 86_400) -> None:
        self.table_name, self.ttl_s = streams_table, ttl_s
        self._client = client if client is not None else new_client()

    async def set_stream(self, owner: str, chat_id: str, stream: ChatStream) -> None:
        now = time.time()
        item = {
            PARTITION_KEY: attr(chat_key(owner, chat_id)),
            "kind": attr("chat"),
            "active_stream_id": attr(stream.stream_id),
            "message_id": attr(stream.message_id),
            "updated_at": attr(now),
            TTL_ATTRIBUTE: attr(int(now) + self.ttl_s),
        }
        await call(self.table_name, "PutItem", self._client.put_item, TableName=self.table_name, Item=item)

    async def stream_of(self, owner: str, chat_id: str) -> ChatStream | None:
        response = await call(
            self.table_name,
            "GetItem",
            self._client.get_item,
            TableName=self.table_name,
            Key={PARTITION_KEY: attr(chat_key(owner, chat_id))},
            ConsistentRead=True,
            ProjectionExpression="active_stream_id, message_id",
        )
        item = response.get("Item", {})
        stream_id, message_id = (item.get(name, {}).get("S") for name in ("active_stream_id", "message_id"))
        if not isinstance(stream_id, str):
            return None
        return ChatStream(stream_id, message_id if isinstance(message_id, str) else f"msg-{stream_id}")
