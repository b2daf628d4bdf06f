"""Reasoning and tool calls in the fake upstreams: one script, each provider's exact wire format.

A script is a tuple of steps, written once and rendered by ``openai_frames``,
``anthropic_frames`` and ``bedrock_frames`` as the real API would send it::

    think("Let me ")           reasoning text      OpenAI delta.reasoning_content (vLLM, DeepSeek);
                                                   Anthropic thinking_delta; Bedrock reasoningContent.text
    sign("sig")                closes the block    Anthropic signature_delta; Bedrock reasoningContent.signature;
                                                   OpenAI: nothing (its servers sign nothing)
    redacted("b64")            a redacted block    Anthropic redacted_thinking; Bedrock redactedContent; OpenAI: nothing
    say("Hi")                  text
    call(0, "id", "name")      a tool call opens   OpenAI: its first chunk (id, type, name, arguments "");
                                                   Anthropic/Bedrock: a tool_use/toolUse block start
    args(0, '{"a"')            argument fragment   ("" is an empty fragment, sent as such)
    end(0)                     the call ends       OpenAI: nothing (calls end at finish_reason)
    whole(0, "id", "n", "{}")  a whole call in one delta (Anthropic/Bedrock: start, one fragment, stop)

OpenAI interleaves parallel calls freely (by ``index``); Anthropic and Bedrock stream one
block at a time, so their scripts list each call's steps together.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

Step = tuple[Any, ...]
Frame = tuple[float, bytes]

__all__ = ["anthropic_frames", "args", "bedrock_frames", "call", "end", "openai_frames", "redacted"]


def think(text: str) -> Step:
    return ("think", text)


def sign(signature: str) -> Step:
    return ("sign", signature)


def redacted(data: str) -> Step:
    return ("redacted", data)


def say(text: str) -> Step:
    return ("text", text)


def call(index: int, call_id: str, name: str) -> Step:
    return ("call", index, call_id, name)


def args(index: int, fragment: str) -> Step:
    return ("args", index, fragment)


def end(index: int) -> Step:
    return ("end", index)


def whole(index: int, call_id: str, name: str, arguments: str) -> Step:
    return ("whole", index, call_id, name, arguments)


def has_calls(script: tuple[Step, ...]) -> bool:
    return any(step[0] in ("call", "whole") for step in script)


def output_tokens(script: tuple[Step, ...]) -> int:
    return sum(1 for step in script if step[0] in ("think", "text", "args"))


def openai_frames(script: tuple[Step, ...], delay_s: float, chunk: Callable[..., bytes]) -> list[Frame]:
    """The chunks after the role chunk; ``chunk(delta)`` renders one ``chat.completion.chunk``."""
    frames: list[Frame] = []
    for step in script:
        kind = step[0]
        if kind == "think":
            frames.append((delay_s, chunk({"content": None, "reasoning_content": step[1]})))
        elif kind == "text":
            frames.append((delay_s, chunk({"content": step[1]})))
        elif kind in ("call", "whole"):
            arguments = step[4] if kind == "whole" else ""
            function = {"name": step[3], "arguments": arguments}
            frames.append(
                (
                    delay_s,
                    chunk(
                        {"tool_calls": [{"index": step[1], "id": step[2], "type": "function", "function": function}]}
                    ),
                )
            )
        elif kind == "args":
            frames.append((delay_s, chunk({"tool_calls": [{"index": step[1], "function": {"arguments": step[2]}}]})))
    return frames


class _Blocks:
    """Anthropic's content blocks, opened and closed as the script goes."""

    def __init__(self, sse: Callable[[Any, str], bytes], delay_s: float) -> None:
        self.sse, self.delay_s = sse, delay_s
        self.frames: list[Frame] = []
        self.index = -1
        self.open: str | None = None

    def emit(self, data: dict[str, Any], event: str, delay_s: float = 0.0) -> None:
        self.frames.append((delay_s, self.sse(data, event)))

    def start(self, kind: str, block: dict[str, Any]) -> None:
        self.close()
        self.index += 1
        self.open = kind
        self.emit({"type": "content_block_start", "index": self.index, "content_block": block}, "content_block_start")

    def delta(self, delta: dict[str, Any]) -> None:
        event = {"type": "content_block_delta", "index": self.index, "delta": delta}
        self.emit(event, "content_block_delta", self.delay_s)

    def close(self) -> None:
        if self.open is not None:
            self.emit({"type": "content_block_stop", "index": self.index}, "content_block_stop")
            self.open = None


def anthropic_frames(script: tuple[Step, ...], delay_s: float, sse: Callable[[Any, str], bytes]) -> list[Frame]:
    """The content block events between ``message_start`` (and its ping) and ``message_delta``."""
    b = _Blocks(sse, delay_s)
    for step in script:
        kind = step[0]
        if kind == "think":
            if b.open != "thinking":
                b.start("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            b.delta({"type": "thinking_delta", "thinking": step[1]})
        elif kind == "sign":
            b.delta({"type": "signature_delta", "signature": step[1]})
            b.close()
        elif kind == "redacted":
            b.start("redacted", {"type": "redacted_thinking", "data": step[1]})
            b.close()
        elif kind == "text":
            if b.open != "text":
                b.start("text", {"type": "text", "text": ""})
            b.delta({"type": "text_delta", "text": step[1]})
        elif kind in ("call", "whole"):
            b.start("tool", {"type": "tool_use", "id": step[2], "name": step[3], "input": {}})
            if kind == "whole":
                b.delta({"type": "input_json_delta", "partial_json": step[4]})
                b.close()
        elif kind == "args":
            b.delta({"type": "input_json_delta", "partial_json": step[2]})
        elif kind == "end":
            b.close()
    b.close()
    return b.frames


def bedrock_frames(
    script: tuple[Step, ...], delay_s: float, event: Callable[[str, dict[str, Any]], bytes]
) -> list[Frame]:
    """The content block events between ``messageStart`` and ``messageStop``."""
    frames: list[Frame] = []
    index, open_kind = -1, None

    def close() -> None:
        nonlocal open_kind
        if open_kind is not None:
            frames.append((0.0, event("contentBlockStop", {"contentBlockIndex": index})))
            open_kind = None

    def open_block(kind: str, start: dict[str, Any] | None = None) -> None:
        nonlocal index, open_kind
        close()
        index += 1
        open_kind = kind
        if start is not None:
            frames.append((0.0, event("contentBlockStart", {"contentBlockIndex": index, "start": start})))

    def delta(body: dict[str, Any]) -> None:
        frames.append((delay_s, event("contentBlockDelta", {"contentBlockIndex": index, "delta": body})))

    for step in script:
        kind = step[0]
        if kind == "think":
            if open_kind != "thinking":
                open_block("thinking")
            delta({"reasoningContent": {"text": step[1]}})
        elif kind == "sign":
            delta({"reasoningContent": {"signature": step[1]}})
            close()
        elif kind == "redacted":
            open_block("redacted")
            delta({"reasoningContent": {"redactedContent": step[1]}})  # a blob: base64 in the JSON
            close()
        elif kind == "text":
            if open_kind != "text":
                open_block("text")
            delta({"text": step[1]})
        elif kind in ("call", "whole"):
            open_block("tool", {"toolUse": {"toolUseId": step[2], "name": step[3]}})
            if kind == "whole":
                delta({"toolUse": {"input": step[4]}})
                close()
        elif kind == "args":
            delta({"toolUse": {"input": step[2]}})
        elif kind == "end":
            close()
    close()
    return frames


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def arguments(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))
