"""Which stream a chat is generating (docs/ai-sdk.md): the AI SDK resumes by chat id.

``useChat`` knows its chat's id, never a stream id, so ``POST /api/chat`` records, per owner
and chat, the stream it started last; ``GET /api/chat/{id}/stream`` reads it back and replays
that stream from its output log while it is still active. One small item per chat, in the
streams table (``stores.dynamodb.DynamoChats``), with the streams' TTL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["ChatStore", "ChatStream"]


@dataclass(frozen=True, slots=True)
class ChatStream:
    stream_id: str
    message_id: str  # the assistant message the stream writes (a replay names the same one)


class ChatStore(Protocol):
    async def set_stream(self, owner: str, chat_id: str, stream: ChatStream) -> None:
        """Record ``stream`` as the chat's latest (the last write wins)."""
        ...

    async def stream_of(self, owner: str, chat_id: str) -> ChatStream | None:
        """The chat's latest stream, or None (strongly consistent)."""
        ...
