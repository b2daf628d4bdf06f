"""A whole ``chat.completion`` message from a stream's parts (``/v1`` without ``stream``).

OpenAI's shape: ``content`` (null when the answer is only tool calls), ``tool_calls`` with
each call's ``id``, ``type`` and ``function`` (``name``, ``arguments``), and, as
OpenAI-compatible servers (vLLM, DeepSeek) and LiteLLM add them, ``reasoning_content`` and
``thinking_blocks`` (each signed or redacted reasoning block, to send back in a later turn).
"""

from __future__ import annotations

from typing import Any

from ..events import Part, ReasoningDelta, TextDelta, ToolCallDelta, ToolCallStart

__all__ = ["MessageBuilder", "thinking_block"]


def thinking_block(part: ReasoningDelta, thinking: str = "") -> dict[str, str]:
    """A signed (``thinking``) or redacted (``redacted_thinking``) block, as LiteLLM names them."""
    if part.redacted:
        return {"type": "redacted_thinking", "data": part.redacted}
    return {"type": "thinking", "thinking": thinking, "signature": part.signature}


class MessageBuilder:
    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._block: list[str] = []  # reasoning of the block not yet signed
        self._blocks: list[dict[str, str]] = []
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, part: Part) -> None:
        if type(part) is TextDelta:
            self._text.append(part.text)
        elif isinstance(part, ReasoningDelta):
            if part.text:
                self._reasoning.append(part.text)
                self._block.append(part.text)
            else:
                self._blocks.append(thinking_block(part, "".join(self._block)))
                self._block.clear()
        elif isinstance(part, ToolCallStart):
            function = {"name": part.name, "arguments": ""}
            self._calls[part.index] = {"id": part.id, "type": "function", "function": function}
        elif isinstance(part, ToolCallDelta) and part.index in self._calls:
            self._calls[part.index]["function"]["arguments"] += part.arguments

    def message(self) -> dict[str, Any]:
        text = "".join(self._text)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not self._calls else None,
            "refusal": None,
        }
        if self._calls:
            message["tool_calls"] = [self._calls[i] for i in sorted(self._calls)]
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
        if self._blocks:
            message["thinking_blocks"] = self._blocks
        return message
