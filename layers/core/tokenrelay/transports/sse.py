"""Server-Sent Events encoding (docs/protocol.md §2): pure functions, event -> bytes.

Every part (``message``, ``reasoning``, ``tool_call_start``, ``tool_call_delta``,
``tool_call_end``: docs/protocol.md §11) carries ``id: <seq>`` so a client's
``Last-Event-ID`` names the last part it has; no other event carries an id. Data is compact
JSON on a single line (JSON escapes newlines, so one ``data:`` line suffices).

TokenRelay's error shape, ``{"error", "code", ...}``, is the same in an SSE ``error``
event and in an HTTP error body (docs/protocol.md §7): ``error_body`` renders both.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import TokenRelayError
from ..events import (
    PART_TYPES,
    Event,
    ReasoningDelta,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)

__all__ = [
    "encode_comment",
    "encode_sse",
    "cost_fields",
    "error_body",
    "event_payload",
    "prompt_details",
    "terminal_error",
    "usage_fields",
]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def event_payload(event: Event) -> tuple[str, dict[str, object]]:
    """The SSE event name and JSON data for ``event``."""
    if isinstance(event, TextDelta):
        return "message", {"text": event.text}
    if isinstance(event, ReasoningDelta):
        data: dict[str, object] = {"text": event.text}
        if event.signature:
            data["signature"] = event.signature
        if event.redacted:
            data["redacted"] = event.redacted
        return "reasoning", data
    if isinstance(event, ToolCallStart):
        return "tool_call_start", {"index": event.index, "id": event.id, "name": event.name}
    if isinstance(event, ToolCallDelta):
        return "tool_call_delta", {"index": event.index, "arguments": event.arguments}
    if isinstance(event, ToolCallEnd):
        return "tool_call_end", {"index": event.index}
    if isinstance(event, StreamStart):
        return "start", {"stream_id": event.stream_id, "provider": event.provider, "model": event.model}
    if isinstance(event, Usage):
        return "usage", usage_fields(event)
    if isinstance(event, StreamDone):
        return "done", {
            "status": "complete",
            "stream_id": event.stream_id,
            "finish_reason": event.finish_reason,
            "ttft_ms": event.ttft_ms,
            "total_time_ms": event.total_time_ms,
            "completion_tokens": event.completion_tokens,
            **cost_fields(event),
        }
    if isinstance(event, StreamCancelled):
        return "cancelled", {"stream_id": event.stream_id, "reason": event.reason}
    if isinstance(event, StreamError):
        return "error", terminal_error(event)
    raise TypeError(f"not a stream event: {event!r}")


def usage_fields(usage: Usage) -> dict[str, object]:
    """``usage``'s fields (docs/protocol.md §2): the details, and ``reasoning_tokens`` (also at
    the top, where the first clients read it), only when the provider counts them."""
    fields: dict[str, object] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.reasoning_tokens is not None:
        fields["reasoning_tokens"] = usage.reasoning_tokens
    prompt = prompt_details(usage)
    if prompt:
        fields["prompt_tokens_details"] = prompt
    if usage.reasoning_tokens is not None:
        fields["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return fields


def cost_fields(done: StreamDone) -> dict[str, object]:
    """``cost_usd`` when the model has a price, and ``cost_estimated`` when it is an estimate."""
    if done.cost_usd is None:
        return {}
    return {"cost_usd": done.cost_usd, **({"cost_estimated": True} if done.cost_estimated else {})}


def prompt_details(usage: Usage) -> dict[str, int]:
    """``prompt_tokens_details``: what of the prompt was read from the cache, and written to it."""
    details = {}
    if usage.cached_tokens is not None:
        details["cached_tokens"] = usage.cached_tokens
    if usage.cache_write_tokens is not None:
        details["cache_write_tokens"] = usage.cache_write_tokens
    return details


def encode_sse(event: Event) -> bytes:
    if type(event) is TextDelta:  # the hot path: one per chunk of text
        return f"event: message\nid: {event.seq}\ndata: {_dumps({'text': event.text})}\n\n".encode()
    name, data = event_payload(event)
    if isinstance(event, PART_TYPES):
        return f"event: {name}\nid: {event.seq}\ndata: {_dumps(data)}\n\n".encode()
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
