"""Server-Sent Events encoding (PROTOCOL section 2): a pure function, event -> bytes.

``message`` events carry ``id: <seq>`` so a client's ``Last-Event-ID`` names
the last chunk of text it has; no other event carries an id. Data is compact
JSON on a single line (JSON escapes newlines, so one ``data:`` line suffices).
"""

from __future__ import annotations

import json

from ..events import Event, StreamCancelled, StreamDone, StreamError, StreamStart, TextDelta, Usage

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
        return "error", {"error": event.error, "code": event.code, "retryable": event.retryable}
    raise TypeError(f"not a stream event: {event!r}")


def encode_sse(event: Event) -> bytes:
    if type(event) is TextDelta:  # the hot path: one per chunk of text
        return f"event: message\nid: {event.seq}\ndata: {_dumps({'text': event.text})}\n\n".encode()
    name, data = event_payload(event)
    return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()


def encode_comment(text: str) -> bytes:
    """A comment line (``: ping``): keeps idle connections and proxies alive."""
    return f": {text}\n\n".encode()
