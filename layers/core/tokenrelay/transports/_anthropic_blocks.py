"""A stream's parts as Anthropic content blocks (docs/anthropic-compat.md): pure, no I/O.

Anthropic streams one content block at a time: ``content_block_start`` (index 0, 1...),
its deltas, ``content_block_stop``, then the next block. ``Blocks`` turns TokenRelay's
parts into exactly that sequence of operations, ``(event type, data)`` pairs:

    text part              a ``text`` block (opened on the first text after another kind)
    reasoning text         a ``thinking`` block: ``thinking_delta``
    reasoning signature    ``signature_delta``, and the thinking block closes
    redacted reasoning     a ``redacted_thinking`` block, opened and closed at once
    tool call start        a ``tool_use`` block with ``id``, ``name``, ``input: {}``
    tool call fragment     ``input_json_delta`` (``partial_json``)
    tool call end          the tool_use block closes

A provider that streams several tool calls at once (OpenAI may interleave them, and ends
them all at its finish) would open blocks side by side, which Anthropic never does: while a
tool_use block is open, the parts of anything else wait, in order, until it ends (at the
latest at the stream's end, ``finish``). A one-call answer is never delayed.

``Accumulator`` applies the same operations to a list of blocks, as the Anthropic SDK does:
the non-streaming answer is built from exactly what a stream would have sent.
"""

from __future__ import annotations

import json
from typing import Any, TypeAlias

from ..events import Part, ReasoningDelta, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart

__all__ = ["Accumulator", "Blocks", "Op"]

Op: TypeAlias = tuple[str, dict[str, Any]]  # (event type, data without "type")


class Blocks:
    __slots__ = ("_count", "_kind", "_open", "_tool", "_waiting")

    def __init__(self) -> None:
        self._count = 0  # blocks started
        self._open: int | None = None  # the open block's index
        self._kind = ""  # its type: text, thinking, tool_use
        self._tool: int | None = None  # the open tool_use block's call index
        self._waiting: list[Part] = []  # parts held while another call's block is open

    @property
    def started(self) -> int:
        return self._count

    def open_text(self) -> int | None:
        """The open text block's index, when the next text part only adds a ``text_delta`` to it
        (the encoder's hot path); None otherwise."""
        return self._open if self._kind == "text" and not self._waiting else None

    def feed(self, part: Part) -> list[Op]:
        if self._tool is not None and not _belongs(part, self._tool):
            self._waiting.append(part)
            return []
        out = self._part(part)
        if self._tool is None and self._waiting:
            out += self._release()
        return out

    def finish(self) -> list[Op]:
        """The stream completed: every waiting part, then the open block closes."""
        out: list[Op] = []
        while True:
            out += self._close()
            if not self._waiting:
                return out
            out += self._release()

    def _release(self) -> list[Op]:
        out: list[Op] = []
        while self._waiting and (self._tool is None or _belongs(self._waiting[0], self._tool)):
            out += self._part(self._waiting.pop(0))
        return out

    def _part(self, part: Part) -> list[Op]:
        if type(part) is TextDelta:
            if not part.text:
                return []
            return [*self._ensure("text", {"text": ""}), self._delta({"type": "text_delta", "text": part.text})]
        if isinstance(part, ReasoningDelta):
            return self._reasoning(part)
        if isinstance(part, ToolCallStart):
            out = self._close()
            self._tool = part.index
            return out + self._start("tool_use", {"id": part.id, "name": part.name, "input": {}})
        if isinstance(part, ToolCallDelta):
            if not part.arguments or self._tool != part.index:
                return []
            return [self._delta({"type": "input_json_delta", "partial_json": part.arguments})]
        if isinstance(part, ToolCallEnd):
            return self._close() if self._tool == part.index else []
        raise TypeError(f"not a part: {part!r}")

    def _reasoning(self, part: ReasoningDelta) -> list[Op]:
        if part.redacted:
            return [*self._close(), *self._start("redacted_thinking", {"data": part.redacted}), *self._close()]
        out = self._ensure("thinking", {"thinking": "", "signature": ""})
        if part.text:
            return [*out, self._delta({"type": "thinking_delta", "thinking": part.text})]
        return [*out, self._delta({"type": "signature_delta", "signature": part.signature}), *self._close()]

    def _ensure(self, kind: str, empty: dict[str, Any]) -> list[Op]:
        if self._open is not None and self._kind == kind:
            return []
        return self._close() + self._start(kind, empty)

    def _start(self, kind: str, fields: dict[str, Any]) -> list[Op]:
        self._open, self._kind = self._count, kind
        self._count += 1
        return [("content_block_start", {"index": self._open, "content_block": {"type": kind, **fields}})]

    def _delta(self, delta: dict[str, Any]) -> Op:
        return ("content_block_delta", {"index": self._open, "delta": delta})

    def _close(self) -> list[Op]:
        if self._open is None:
            return []
        index, self._open, self._kind, self._tool = self._open, None, "", None
        return [("content_block_stop", {"index": index})]


def _belongs(part: Part, tool: int) -> bool:
    return isinstance(part, ToolCallDelta | ToolCallEnd) and part.index == tool


class Accumulator:
    """Content blocks from ``Blocks``' operations, as the SDK's ``get_final_message`` builds them."""

    __slots__ = ("_json", "content")

    def __init__(self) -> None:
        self.content: list[dict[str, Any]] = []
        self._json: dict[int, str] = {}

    def apply(self, ops: list[Op]) -> None:
        for kind, data in ops:
            if kind == "content_block_start":
                self.content.append(dict(data["content_block"]))
            elif kind == "content_block_delta":
                block, delta = self.content[data["index"]], data["delta"]
                if delta["type"] == "text_delta":
                    block["text"] += delta["text"]
                elif delta["type"] == "thinking_delta":
                    block["thinking"] += delta["thinking"]
                elif delta["type"] == "signature_delta":
                    block["signature"] = delta["signature"]
                else:
                    self._json[data["index"]] = self._json.get(data["index"], "") + delta["partial_json"]
            elif kind == "content_block_stop" and data["index"] in self._json:
                self.content[data["index"]]["input"] = _input(self._json.pop(data["index"]))

    def blocks(self) -> list[dict[str, Any]]:
        for index, text in self._json.items():  # a call cut before its end: what arrived
            self.content[index]["input"] = _input(text)
        self._json.clear()
        return self.content


def _input(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
