"""OpenAI Chat Completions wire format (docs/protocol.md §6): pure encoders, no I/O.

A stream, as ``api.openai.com`` sends it (compact JSON, one ``data:`` line per chunk)::

    data: {"id":"chatcmpl-<stream_id>","object":"chat.completion.chunk","created":1700000000,"model":"echo/echo-1",
           "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}
    data: {...,"choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}]}
    data: {...,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}
    data: {...,"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}
    data: [DONE]

With ``stream_options.include_usage`` every chunk carries ``"usage":null`` and the
usage chunk (empty ``choices``) comes after the finish chunk; without it there is
no usage chunk. The completion id is ``chatcmpl-`` + the TokenRelay stream id, so
``POST /chat/stream/{stream_id}/cancel`` can be called with it.

Ending after the stream started (the status line is already 200): an error or a
cancellation is one ``data: {"error": {...}}`` frame in OpenAI's error shape, then
``data: [DONE]``. That is what OpenAI itself sends for a failure mid-stream; the
official SDKs raise ``APIError`` on the ``error`` frame (before reading ``[DONE]``),
and a client that reads only until ``[DONE]`` still terminates. Every stream ends
with exactly one ``[DONE]``.

Errors (``errors.OpenAIError``) are ``{"error": {"message","type","param","code"}}`` with
an HTTP status the SDKs map to their typed exceptions (400 BadRequestError,
404 NotFoundError, 429 RateLimitError, 5xx InternalServerError), plus
``x-should-retry`` from TokenRelay's ``retryable`` so the SDKs retry only what a
retry can fix. ``openai_error`` is the one renderer of any TokenRelay error in this shape.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import PayloadTooLarge, TokenRelayError
from ..events import (
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
from ._openai_message import MessageBuilder, thinking_block
from .sse import cost_fields

__all__ = [
    "DONE",
    "MessageBuilder",
    "OpenAIError",
    "OpenAIStreamEncoder",
    "completion_object",
    "from_terminal",
    "model_list",
    "model_object",
    "openai_error",
    "status_for",
]

DONE = b"data: [DONE]\n\n"
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# TokenRelay error code -> (HTTP status, OpenAI error type); /chat/stream-simple uses the same statuses
_STATUS: dict[str, tuple[int, str]] = {
    "invalid_request": (400, "invalid_request_error"),
    "unauthorized": (401, "invalid_request_error"),  # the SDKs' AuthenticationError
    "model_not_allowed": (403, "invalid_request_error"),  # PermissionDeniedError
    "stream_not_found": (404, "invalid_request_error"),
    "stream_finished": (409, "invalid_request_error"),
    "forbidden": (403, "invalid_request_error"),
    "request_timeout": (408, "invalid_request_error"),
    "payload_too_large": (413, "invalid_request_error"),
    "unsupported_media_type": (415, "invalid_request_error"),
    "rate_limited": (429, "rate_limit_error"),  # the key's own limit
    "upstream_rate_limited": (429, "rate_limit_error"),  # the provider's
    "internal_error": (500, "server_error"),
    "upstream_error": (502, "upstream_error"),
    "upstream_rejected": (502, "upstream_error"),
    "upstream_unavailable": (503, "server_error"),
    "upstream_timeout": (504, "server_error"),  # no first chunk, or a stall (docs/faults.md)
    "store_unavailable": (503, "server_error"),
}
_CANCELLED: dict[str, tuple[int, str, str]] = {  # reason -> (status, code, message)
    "client": (409, "stream_cancelled", "the stream was cancelled (POST /chat/stream/{id}/cancel)"),
    "timeout": (504, "stream_timeout", "the stream reached its time limit"),
    "disconnect": (409, "stream_cancelled", "the client disconnected"),
}


class OpenAIError(Exception):
    """An error in OpenAI's shape, with the HTTP status it is sent with before the first byte."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.retryable = retryable

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {"x-should-retry": "true" if self.retryable else "false"}


def openai_error(exc: TokenRelayError, param: str | None = None) -> OpenAIError:
    """``exc`` in OpenAI's shape: the one renderer of TokenRelay's errors under ``/v1``."""
    status, kind = _STATUS.get(exc.code, (exc.status_code, "server_error"))
    message = exc.message
    if isinstance(exc, PayloadTooLarge):  # in OpenAI's words
        message = f"The request body is larger than {exc.limit} bytes."
    return OpenAIError(status, message, type=kind, code=exc.code, param=param, retryable=exc.retryable)


def status_for(code: str) -> int:
    """The HTTP status of a stream that failed with ``code`` before its first text
    (``/v1`` and ``/chat/stream-simple`` alike: 429, 502, 503, 504...)."""
    return _STATUS.get(code, (502, "upstream_error"))[0]


def from_terminal(terminal: StreamError | StreamCancelled) -> OpenAIError:
    """The error a failed or cancelled stream ends with (as a status, or in-band)."""
    if isinstance(terminal, StreamError):
        status, kind = _STATUS.get(terminal.code, (502, "upstream_error"))
        return OpenAIError(status, terminal.error, type=kind, code=terminal.code, retryable=terminal.retryable)
    status, code, message = _CANCELLED[terminal.reason]
    kind = "timeout_error" if terminal.reason == "timeout" else "cancelled_error"
    return OpenAIError(status, message, type=kind, code=code)


def _usage(usage: Usage, done: StreamDone | None = None) -> dict[str, Any]:
    """OpenAI's usage object; ``prompt_tokens_details.cache_write_tokens`` (the SDK's own field:
    OpenAI does not fill it, Anthropic and Bedrock do), and TokenRelay's ``cost_usd`` (and
    ``cost_estimated``) from the done event."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens or 0, **_cache_writes(usage)},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        **(cost_fields(done) if done is not None else {}),
    }


def _cache_writes(usage: Usage) -> dict[str, int]:
    return {} if usage.cache_write_tokens is None else {"cache_write_tokens": usage.cache_write_tokens}


class OpenAIStreamEncoder:
    """Engine events -> ``chat.completion.chunk`` frames. Holds only the usage, which
    OpenAI sends after the finish chunk while the engine reports it before ``done``."""

    __slots__ = ("_head", "_include_usage", "_text_prefix", "_text_suffix", "_usage")

    def __init__(self, completion_id: str, created: int, model: str, *, include_usage: bool) -> None:
        self._head: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        self._include_usage = include_usage
        self._usage: Usage | None = None
        # The hot path (one frame per chunk of text) formats a string instead of encoding a dict.
        self._text_prefix = "data: " + _dumps(self._head)[:-1] + ',"choices":[{"index":0,"delta":{"content":'
        self._text_suffix = (
            '},"logprobs":null,"finish_reason":null}]' + (',"usage":null' if include_usage else "") + "}\n\n"
        )

    def _frame(self, data: dict[str, Any]) -> bytes:
        return b"data: " + _dumps(data).encode() + b"\n\n"

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data = {**self._head, "choices": [choice]}
        if self._include_usage:
            data["usage"] = None
        return self._frame(data)

    def role(self) -> bytes:
        return self.chunk({"role": "assistant", "content": ""})

    def text(self, text: str) -> bytes:
        return (self._text_prefix + _dumps(text) + self._text_suffix).encode()

    def usage(self, usage: Usage, done: StreamDone | None = None) -> bytes:
        return self._frame({**self._head, "choices": [], "usage": _usage(usage, done)})

    @staticmethod
    def error(error: OpenAIError) -> bytes:
        return b"data: " + _dumps(error.body()).encode() + b"\n\n"

    def encode(self, event: Event) -> bytes:
        """The bytes for one engine event (``b""`` for an event that sends nothing yet)."""
        if type(event) is TextDelta:
            return self.text(event.text)
        if isinstance(event, ReasoningDelta):
            if event.text:
                return self.chunk({"reasoning_content": event.text})
            return self.chunk({"thinking_blocks": [thinking_block(event)]})  # a signature or a redacted block
        if isinstance(event, ToolCallStart):
            function = {"name": event.name, "arguments": ""}
            return self.chunk(
                {"tool_calls": [{"index": event.index, "id": event.id, "type": "function", "function": function}]}
            )
        if isinstance(event, ToolCallDelta):
            if not event.arguments:
                return b""
            return self.chunk({"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]})
        if isinstance(event, ToolCallEnd):
            return b""
        if isinstance(event, StreamStart):
            return self.role()
        if isinstance(event, Usage):
            self._usage = event
            return b""
        if isinstance(event, StreamDone):
            out = self.chunk({}, event.finish_reason)
            if self._include_usage and self._usage is not None:
                out += self.usage(self._usage, event)
            return out + DONE
        if isinstance(event, StreamError | StreamCancelled):
            return self.error(from_terminal(event)) + DONE
        raise TypeError(f"not a stream event: {event!r}")


def completion_object(
    completion_id: str, created: int, model: str, text: str | dict[str, Any], done: StreamDone, usage: Usage | None
) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object for a stream that ended ``done``; ``text`` is
    the answer's text, or its whole message (``MessageBuilder.message``)."""
    message = text if isinstance(text, dict) else {"role": "assistant", "content": text, "refusal": None}
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": done.finish_reason,
            }
        ],
    }
    if usage is not None:
        body["usage"] = _usage(usage, done)
    return body


def model_list(models: list[tuple[str, str, dict[str, bool]]]) -> dict[str, Any]:
    """``GET /v1/models``: ``(id, owned_by, capabilities)`` as OpenAI model objects."""
    return {"object": "list", "data": [model_object(*model) for model in models]}


def model_object(model_id: str, owned_by: str, capabilities: dict[str, bool]) -> dict[str, Any]:
    """OpenAI's model object, with TokenRelay's ``capabilities`` (an extension field: the SDKs
    keep it in ``model_extra``)."""
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owned_by, "capabilities": capabilities}
