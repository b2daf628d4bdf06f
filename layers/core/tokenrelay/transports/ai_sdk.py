"""The Vercel AI SDK's UI message stream (docs/ai-sdk.md): events -> ``data: {json}`` SSE lines.

What ``useChat`` (``ai`` 5 and later; tested with 7) reads from ``DefaultChatTransport``: a
``text/event-stream`` with the header ``x-vercel-ai-ui-message-stream: v1``, one JSON chunk per
``data:`` line, ending with ``data: [DONE]``. A stream is

    start (messageId), start-step,
    text-start / text-delta* / text-end            per run of text
    reasoning-start / reasoning-delta* / reasoning-end   per run of reasoning
    tool-input-start / tool-input-delta* / tool-input-available   per tool call
    then finish-step + finish (finishReason) | abort (reason) | error (errorText), and [DONE]

TokenRelay's parts (docs/protocol.md §11) map one to one: a run of text or reasoning is one
block, closed when a part of another kind arrives or the stream ends; a signed reasoning
block ends with ``providerMetadata.tokenrelay.signature`` (``redactedData`` for a redacted
one), which ``ui_request`` sends back as a thinking block; a call's arguments are streamed
as ``tool-input-delta`` and parsed whole for ``tool-input-available``. ``usage`` has no
chunk here (the record and the metrics keep it). Pure: one encoder per response.
"""

from __future__ import annotations

import json
from typing import Any

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

__all__ = ["DONE", "HEADERS", "UIMessageStreamEncoder", "default_message_id", "finish_reason"]

HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}
DONE = b"data: [DONE]\n\n"

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool-calls", "content_filter": "content-filter"}
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def finish_reason(reason: str) -> str:
    """TokenRelay's ``finish_reason`` as the AI SDK names it (``other`` for anything else)."""
    return _FINISH.get(reason, "other")


def default_message_id(stream_id: str) -> str:
    """The id of the assistant message a stream writes, unless it continues one (after tool
    results: that message's id, as the AI SDK's own servers do). The same on every replay, so a
    resumed stream replaces the message a reloaded page kept instead of adding a second one."""
    return f"msg-{stream_id}"


def _line(chunk: dict[str, Any]) -> bytes:
    return f"data: {_dumps(chunk)}\n\n".encode()


class UIMessageStreamEncoder:
    """One response's encoder: it remembers the open block and the tool calls in flight."""

    def __init__(self, stream_id: str, message_id: str | None = None) -> None:
        self.stream_id = stream_id
        self.message_id = message_id or default_message_id(stream_id)
        self._open: tuple[str, str] | None = None  # ("text" | "reasoning", block id)
        self._delta_prefix = ""  # 'data: {"type":"<kind>-delta","id":"<block>","delta":' of the open block
        self._blocks = 0
        self._calls: dict[int, tuple[str, str, list[str]]] = {}  # index -> (id, name, fragments)

    def start(self) -> bytes:
        """The first chunks of every response, a replay's included."""
        return _line({"type": "start", "messageId": self.message_id}) + _line({"type": "start-step"})

    def encode(self, event: Event) -> bytes:
        if type(event) is TextDelta:  # the hot path: one per token, a prefix made once per block
            opened = self._enter("text")
            return opened + (self._delta_prefix + _dumps(event.text) + "}\n\n").encode()
        if isinstance(event, ReasoningDelta):
            return self._reasoning(event)
        if isinstance(event, ToolCallStart):
            self._calls[event.index] = (event.id, event.name, [])
            return self._close() + _line({"type": "tool-input-start", "toolCallId": event.id, "toolName": event.name})
        if isinstance(event, ToolCallDelta):
            call = self._calls.get(event.index)
            if call is None or not event.arguments:
                return b""
            call[2].append(event.arguments)
            return _line({"type": "tool-input-delta", "toolCallId": call[0], "inputTextDelta": event.arguments})
        if isinstance(event, ToolCallEnd):
            return self._tool_end(event.index)
        if isinstance(event, StreamStart | Usage):
            return b""
        return self._terminal(event)

    def _enter(self, kind: str) -> bytes:
        """Open a block of ``kind`` unless one is open (closing a block of another kind first)."""
        if self._open is not None and self._open[0] == kind:
            return b""
        closed = self._close()
        self._blocks += 1
        self._open = (kind, f"{kind}-{self._blocks}")
        self._delta_prefix = f'data: {{"type":"{kind}-delta","id":"{self._open[1]}","delta":'
        return closed + _line({"type": f"{kind}-start", "id": self._open[1]})

    def _close(self, **extra: Any) -> bytes:
        if self._open is None:
            return b""
        kind, block = self._open
        self._open = None
        return _line({"type": f"{kind}-end", "id": block, **extra})

    def _reasoning(self, event: ReasoningDelta) -> bytes:
        if event.redacted:  # a whole encrypted block of its own
            opened = self._close() + self._enter("reasoning")
            return opened + self._close(providerMetadata={"tokenrelay": {"redactedData": event.redacted}})
        out = self._enter("reasoning")
        if event.text:
            out += (self._delta_prefix + _dumps(event.text) + "}\n\n").encode()
        if event.signature:  # the part that closes a signed block
            out += self._close(providerMetadata={"tokenrelay": {"signature": event.signature}})
        return out

    def _tool_end(self, index: int) -> bytes:
        call = self._calls.pop(index, None)
        if call is None:
            return b""
        call_id, name, fragments = call
        text = "".join(fragments)
        try:
            value: Any = json.loads(text) if text.strip() else {}
        except ValueError:
            error = "the model's arguments are not valid JSON"
            return _line(
                {"type": "tool-input-error", "toolCallId": call_id, "toolName": name, "input": text, "errorText": error}
            )
        return _line({"type": "tool-input-available", "toolCallId": call_id, "toolName": name, "input": value})

    def _terminal(self, event: Event) -> bytes:
        out = self._close()
        if isinstance(event, StreamDone):
            out += _line({"type": "finish-step"})
            out += _line({"type": "finish", "finishReason": finish_reason(event.finish_reason)})
        elif isinstance(event, StreamCancelled):
            out += _line({"type": "abort", "reason": event.reason})
        elif isinstance(event, StreamError):
            out += _line({"type": "error", "errorText": f"{event.error} ({event.code})"})
        else:
            raise TypeError(f"not a stream event: {event!r}")
        return out + DONE
