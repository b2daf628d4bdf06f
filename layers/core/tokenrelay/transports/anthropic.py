"""Anthropic Messages API wire format (docs/anthropic-compat.md): pure encoders, no I/O.

A stream, as ``api.anthropic.com`` sends it (``event:`` line, one compact JSON ``data:`` line)::

    event: message_start
    data: {"type":"message_start","message":{"id":"msg_<stream_id>","type":"message","role":"assistant",
           "model":"echo/echo-1","content":[],"stop_reason":null,"stop_sequence":null,
           "usage":{"input_tokens":0,"output_tokens":0}}}
    event: content_block_start
    data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}
    event: ping
    data: {"type":"ping"}
    event: content_block_delta
    data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}
    event: content_block_stop
    data: {"type":"content_block_stop","index":0}
    event: message_delta
    data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},
           "usage":{"input_tokens":9,"output_tokens":2}}
    event: message_stop
    data: {"type":"message_stop"}

The blocks (text, thinking, redacted_thinking, tool_use) come from ``_anthropic_blocks``.
``message_start`` cannot know the input tokens yet (TokenRelay's providers report usage at
the end): it says 0, and ``message_delta`` carries the totals, which the SDKs take (its
counts are cumulative). A failure or a cancellation after the stream started is one
``event: error`` (Anthropic's error object), as Anthropic sends an overload mid-stream; the
SDKs raise it. Errors before the first byte are the same object with an HTTP status.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import PayloadTooLarge, TokenRelayError
from ..events import PART_TYPES, Event, StreamCancelled, StreamDone, StreamError, StreamStart, TextDelta, Usage
from ._anthropic_blocks import Accumulator, Blocks, Op

__all__ = [
    "PING",
    "AnthropicError",
    "AnthropicStreamEncoder",
    "MessageBuilder",
    "anthropic_error",
    "from_terminal",
    "stop_reason",
]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# TokenRelay error code -> (HTTP status, Anthropic error type)
_STATUS: dict[str, tuple[int, str]] = {
    "invalid_request": (400, "invalid_request_error"),
    "unsupported_media_type": (400, "invalid_request_error"),  # Anthropic answers a body it cannot read with 400
    "unauthorized": (401, "authentication_error"),
    "forbidden": (403, "permission_error"),
    "model_not_allowed": (403, "permission_error"),
    "not_found": (404, "not_found_error"),
    "stream_not_found": (404, "not_found_error"),
    "method_not_allowed": (405, "invalid_request_error"),
    "request_timeout": (408, "timeout_error"),
    "payload_too_large": (413, "request_too_large"),
    "rate_limited": (429, "rate_limit_error"),  # the key's own limit
    "upstream_rate_limited": (429, "rate_limit_error"),  # the provider's
    "internal_error": (500, "api_error"),
    "upstream_error": (502, "api_error"),
    "upstream_rejected": (502, "api_error"),
    "upstream_unavailable": (529, "overloaded_error"),
    "store_unavailable": (503, "api_error"),
    "upstream_timeout": (504, "timeout_error"),
}
_CANCELLED: dict[str, tuple[int, str, str]] = {  # reason -> (status, type, message)
    "client": (409, "cancelled_error", "the stream was cancelled (POST /chat/stream/{id}/cancel)"),
    "timeout": (504, "timeout_error", "the stream reached its time limit"),
    "disconnect": (409, "cancelled_error", "the client disconnected"),
}
# TokenRelay finish_reason -> Anthropic stop_reason
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


class AnthropicError(Exception):
    """An error in Anthropic's shape, with the HTTP status it is sent with before the first byte."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", retryable: bool = False):
        super().__init__(message)
        self.status, self.message, self.type, self.retryable = status, message, type, retryable

    def body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.type, "message": self.message}}

    def headers(self) -> dict[str, str]:
        return {"x-should-retry": "true" if self.retryable else "false"}  # the SDKs obey it


def anthropic_error(exc: TokenRelayError) -> AnthropicError:
    """``exc`` in Anthropic's shape: the one renderer of TokenRelay's errors on ``/v1/messages``."""
    status, kind = _STATUS.get(exc.code, (exc.status_code, "api_error"))
    message = exc.message
    if isinstance(exc, PayloadTooLarge):
        message = f"Request exceeds the maximum allowed number of bytes ({exc.limit})."
    return AnthropicError(status, message, type=kind, retryable=exc.retryable)


def from_terminal(terminal: StreamError | StreamCancelled) -> AnthropicError:
    """The error a failed or cancelled stream ends with (as a status, or in-band)."""
    if isinstance(terminal, StreamError):
        status, kind = _STATUS.get(terminal.code, (502, "api_error"))
        return AnthropicError(status, terminal.error, type=kind, retryable=terminal.retryable)
    status, kind, message = _CANCELLED[terminal.reason]
    return AnthropicError(status, message, type=kind)


def stop_reason(done: StreamDone) -> str:
    if done.stop_sequence is not None and done.finish_reason == "stop":
        return "stop_sequence"
    return STOP_REASONS.get(done.finish_reason, done.finish_reason)


def _stop(done: StreamDone) -> dict[str, str | None]:
    return {"stop_reason": stop_reason(done), "stop_sequence": done.stop_sequence or None}


def usage_object(usage: Usage | None, done: StreamDone | None) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": done.completion_tokens if done is not None else 0}
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {_dumps({'type': kind, **data})}\n\n".encode()


PING = _event("ping", {})


def _frames(ops: list[Op]) -> bytes:
    return b"".join(_event(kind, data) for kind, data in ops)


class AnthropicStreamEncoder:
    """Engine events -> Messages API SSE events. Holds the block state and the usage, which
    Anthropic sends in ``message_delta`` after the last block."""

    __slots__ = ("_blocks", "_message_id", "_model", "_pinged", "_text_index", "_text_prefix", "_usage")

    def __init__(self, message_id: str, model: str) -> None:
        self._message_id, self._model = message_id, model
        self._blocks = Blocks()
        self._usage: Usage | None = None
        self._pinged = False
        self._text_index: int | None = None
        self._text_prefix = ""

    def message_start(self) -> bytes:
        message = message_object(self._message_id, self._model, [], None, {"input_tokens": 0, "output_tokens": 0})
        return _event("message_start", {"message": message})

    @staticmethod
    def error(error: AnthropicError) -> bytes:
        return _event("error", {"error": error.body()["error"]})

    def _text(self, index: int, text: str) -> bytes:
        """A ``text_delta`` for the open text block, formatted as a string (one a token): the same
        bytes as ``_event`` gives."""
        if index != self._text_index:
            self._text_index = index
            self._text_prefix = (
                'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
                f'{index},"delta":{{"type":"text_delta","text":'
            )
        return (self._text_prefix + _dumps(text) + "}}\n\n").encode()

    def encode(self, event: Event) -> bytes:
        """The bytes for one engine event (``b""`` for an event that sends nothing yet)."""
        if type(event) is TextDelta and (index := self._blocks.open_text()) is not None:
            return self._text(index, event.text) if event.text else b""
        if isinstance(event, PART_TYPES):
            out = _frames(self._blocks.feed(event))
            if out and not self._pinged:  # Anthropic pings once after the first block starts
                self._pinged = True
                head, sep, rest = out.partition(b"\n\n")
                out = head + sep + PING + rest
            return out
        if isinstance(event, StreamStart):
            return self.message_start()
        if isinstance(event, Usage):
            self._usage = event
            return b""
        if isinstance(event, StreamDone):
            end = _event("message_delta", {"delta": _stop(event), "usage": usage_object(self._usage, event)})
            return _frames(self._blocks.finish()) + end + _event("message_stop", {})
        if isinstance(event, StreamError | StreamCancelled):
            return self.error(from_terminal(event))
        raise TypeError(f"not a stream event: {event!r}")


def message_object(
    message_id: str,
    model: str,
    content: list[dict[str, Any]],
    done: StreamDone | None,
    usage: dict[str, int],
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        **(_stop(done) if done is not None else {"stop_reason": None, "stop_sequence": None}),
        "usage": usage,
    }


class MessageBuilder:
    """The whole Message (no ``stream``) from a stream's events: the blocks a stream would send."""

    __slots__ = ("_acc", "_blocks", "usage")

    def __init__(self) -> None:
        self._blocks, self._acc = Blocks(), Accumulator()
        self.usage: Usage | None = None

    def add(self, event: Event) -> None:
        if isinstance(event, PART_TYPES):
            self._acc.apply(self._blocks.feed(event))
        elif isinstance(event, Usage):
            self.usage = event

    def message(self, message_id: str, model: str, done: StreamDone) -> dict[str, Any]:
        self._acc.apply(self._blocks.finish())
        return message_object(message_id, model, self._acc.blocks(), done, usage_object(self.usage, done))
