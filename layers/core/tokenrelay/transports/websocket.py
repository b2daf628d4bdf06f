"""WebSocket messages (docs/protocol.md §3): pure encoders, event -> bytes.

Every server -> client message is one compact JSON object with ``type`` first,
then ``stream_id`` and ``request_id`` (when the client gave one), then the
fields of the matching SSE event (section 2). ``text`` carries ``content``, ``seq``
and ``tokens``: ``seq`` counts ``text`` messages (1, 2, 3...), and ``tokens`` says how
many of the stream's text chunks (SSE ``message`` events) the message merges, so a
client counts tokens, not frames (docs/protocol.md section 3).

``CoalescingSender`` (``_coalescing.py``) posts a stream's messages through a
``ConnectionPoster``, merging tokens under API Gateway's frame limit.
"""

from __future__ import annotations

import json
from typing import Protocol

from ..errors import TokenRelayError
from ..events import Event, TextDelta
from .sse import event_payload

__all__ = [
    "MAX_FRAME_BYTES",
    "ConnectionPoster",
    "encode_error",
    "error_message",
    "encode_message",
    "message_fields",
]

MAX_FRAME_BYTES = 32_000  # API Gateway: 32 KB per frame; keep a little slack

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class ConnectionPoster(Protocol):
    async def post(self, connection_id: str, data: bytes) -> None:
        """Send one message; raise ``ConnectionGone`` if the connection is gone."""
        ...


def envelope(kind: str, stream_id: str | None, request_id: str | None) -> dict[str, object]:
    fields: dict[str, object] = {"type": kind}
    if stream_id is not None:
        fields["stream_id"] = stream_id
    if request_id is not None:
        fields["request_id"] = request_id
    return fields


def message_fields(event: Event, stream_id: str, request_id: str | None = None, tokens: int = 1) -> dict[str, object]:
    """The JSON object for ``event``: ``type``, ``stream_id``, ``request_id``?, then its fields.

    A ``text`` message built from a ``TextDelta`` carries ``tokens`` (one chunk unless the
    caller merged several into it)."""
    if isinstance(event, TextDelta):
        return {**envelope("text", stream_id, request_id), "content": event.text, "seq": event.seq, "tokens": tokens}
    name, data = event_payload(event)
    return {**envelope(name, stream_id, request_id), **data}


def encode_message(event: Event, stream_id: str, request_id: str | None = None, tokens: int = 1) -> bytes:
    return dumps(message_fields(event, stream_id, request_id, tokens)).encode()


def encode_error(
    code: str,
    error: str,
    *,
    retryable: bool = False,
    request_id: str | None = None,
    stream_id: str | None = None,
    **extra: object,
) -> bytes:
    """An ``error`` message that is not a stream's terminal event (bad frame, refused cancel...)."""
    fields = envelope("error", stream_id, request_id)
    fields.update({"error": error, "code": code, "retryable": retryable}, **extra)
    return dumps(fields).encode()


def error_message(exc: TokenRelayError, request_id: str | None = None, stream_id: str | None = None) -> bytes:
    """``exc`` as the WebSocket says it: the one renderer of refusals and errors outside a stream's
    own terminal event (its code, ``retryable``, and its fields: ``field``, ``status``, ``retry_after``...)."""
    about = stream_id if stream_id is not None else getattr(exc, "stream_id", None)
    return encode_error(
        exc.code, exc.message, retryable=exc.retryable, request_id=request_id, stream_id=about, **exc.fields()
    )
