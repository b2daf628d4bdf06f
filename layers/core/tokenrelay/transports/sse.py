"""Server-Sent Events encoding (docs/protocol.md §2): pure functions, event -> bytes.

``message`` events carry ``id: <seq>`` so a client's ``Last-Event-ID`` names
the last chunk of text it has; no other event carries an id. Data is compact
JSON on a single line (JSON escapes newlines, so one ``data:`` line suffices).

TokenRelay's error shape, ``{"error", "code", ...}``, is the same in an SSE ``error``
event and in an HTTP error body (docs/protocol.md §7): ``error_body`` renders both.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import TokenRelayError
from ..events import Event, StreamCancelled, StreamDone, StreamError, StreamStart, TextDelta, Usage

__all__ = ["encode_comment", "encode_sse", "error_body", "event_payload", "terminal_error"]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def event_payload(event: Event) -> tuple[str, dict[str, object]]:
    """The SSE event name and JSON data for ``event``."""
    if isinstance(event, TextDelta):
        return "message", {"text": event.text}
    if isinstance(event, StreamStart):
        return "start", {"stream_id": event.stream_id, "provider": event.provider, "model": event.model}
    if isinstance(event, Usage):
        return "usage", {
            "prompt_tokens": event.prompt_tokens,
            "completion_tokens": event.completion_tokens,
            "total_tokens": event.total_tokens,
        }
    if isinstance(event, StreamDone):
        return "done", {
            "status": "complete",
            "stream_id": event.stream_id,
            "finish_reason": event.finish_reason,
            "ttft_ms": event.ttft_ms,
            "total_time_ms": event.total_time_ms,
            "completion_tokens": event.completion_tokens,
        }
    if isinstance(event, StreamCancelled):
        return "cancelled", {"stream_id": event.stream_id, "reason": event.reason}
    if isinstance(event, StreamError):
        return "error", terminal_error(event)
    raise TypeError(f"not a stream event: {event!r}")


def encode_sse(event: Event) -> bytes:
    if type(event) is TextDelta:  # the hot path: one per chunk of text
        return f"event: message\nid: {event.seq}\ndata: {_dumps({'text': event.text})}\n\n".encode()
    name, data = event_payload(event)
    return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()


def encode_comment(text: str) -> bytes:
    """A comment line (``: ping``): keeps idle connections and proxies alive."""
    return f": {text}\n\n".encode()


def terminal_error(event: StreamError) -> dict[str, Any]:
    """A stream's terminal error: ``error``, ``code``, ``retryable``."""
    return {"error": event.error, "code": event.code, "retryable": event.retryable}


def error_body(exc: TokenRelayError) -> dict[str, Any]:
    """``exc`` as an HTTP error body: ``error``, ``code``, then its fields (``field``, ``status``,
    ``retry_after``...). ``retryable: true`` is said when nothing else tells the client when to
    try again (a 429 says it with ``retry_after``)."""
    body: dict[str, Any] = {"error": exc.message, "code": exc.code, **exc.fields()}
    if exc.retryable and "retry_after" not in body:
        body["retryable"] = True
    return body
