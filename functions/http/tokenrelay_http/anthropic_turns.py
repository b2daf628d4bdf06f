"""Anthropic turns -> docs/protocol.md §1 messages, for ``anthropic_request`` (docs/anthropic-compat.md).

    user       text blocks (joined with a newline); each ``tool_result`` becomes a ``tool``
               message answering its ``tool_use_id`` (content: a string or text blocks;
               ``is_error``: the call failed), the text around it stays user turns, in order
    assistant  text; ``tool_use`` -> ``tool_calls`` (``input`` as JSON text); signed
               ``thinking`` and ``redacted_thinking`` -> ``thinking_blocks`` (an unsigned
               thinking block, as an OpenAI-compatible model gives, is not sent back)

``_Turns.origin[i]`` is where §1 message ``i`` came from, so a refusal names the field of
the request the client sent. ``cache_control`` on a block is accepted and ignored.
"""

from __future__ import annotations

import json
from typing import Any

from tokenrelay.transports.anthropic import AnthropicError

__all__ = ["Turns", "check_keys", "invalid", "texts", "turns_of"]

_CACHE = frozenset({"cache_control"})


def invalid(field: str, message: str) -> AnthropicError:
    return AnthropicError(400, f"{field}: {message}" if field else message)


def check_keys(block: dict[str, Any], where: str, allowed: set[str]) -> None:
    for key, value in block.items():
        if key not in allowed and key not in _CACHE and not (key == "citations" and value is None):
            raise invalid(f"{where}.{key}", "Extra inputs are not permitted")


def _text(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        kind = block.get("type") if isinstance(block, dict) else None
        raise invalid(f"{where}.type", f"only text blocks are supported here; got {kind!r}")
    check_keys(block, where, {"type", "text"})
    if not isinstance(block.get("text"), str):
        raise invalid(f"{where}.text", "Input should be a valid string")
    return str(block["text"])


def texts(value: Any, where: str, *, empty: bool = False) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or (not value and not empty):
        raise invalid(where, "Input should be a string or a non-empty list of text blocks")
    return "\n".join(_text(b, f"{where}.{j}") for j, b in enumerate(value))


class Turns:
    """Anthropic turns -> §1 messages; ``origin[i]`` is where §1 message ``i`` came from."""

    def __init__(self) -> None:
        self.out: list[dict[str, Any]] = []
        self.origin: list[str] = []

    def add(self, message: dict[str, Any], where: str) -> None:
        self.out.append(message)
        self.origin.append(where)

    def user(self, content: Any, where: str) -> None:
        if isinstance(content, str):
            self.add({"role": "user", "content": content}, where)
            return
        if not isinstance(content, list) or not content:
            raise invalid(f"{where}.content", "Input should be a string or a non-empty list of blocks")
        texts: list[str] = []
        for j, block in enumerate(content):
            at = f"{where}.content.{j}"
            if isinstance(block, dict) and block.get("type") == "tool_result":
                if texts:
                    self.add({"role": "user", "content": "\n".join(texts)}, where)
                    texts = []
                self.add(_tool_result(block, at), at)
            else:
                texts.append(_text(block, at))
        if texts:
            self.add({"role": "user", "content": "\n".join(texts)}, where)

    def assistant(self, content: Any, where: str) -> None:
        if isinstance(content, str):
            self.add({"role": "assistant", "content": content}, where)
            return
        if not isinstance(content, list) or not content:
            raise invalid(f"{where}.content", "Input should be a string or a non-empty list of blocks")
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        thinking: list[dict[str, Any]] = []
        for j, block in enumerate(content):
            at = f"{where}.content.{j}"
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "tool_use":
                check_keys(block, at, {"type", "id", "name", "input"})
                if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                    raise invalid(at, "a tool_use block has a string id and name")
                if not isinstance(block.get("input"), dict):
                    raise invalid(f"{at}.input", "Input should be a valid dictionary")
                arguments = json.dumps(block["input"], ensure_ascii=False)
                function = {"name": block["name"], "arguments": arguments}
                calls.append({"id": block["id"], "type": "function", "function": function})
            elif kind == "thinking":
                check_keys(block, at, {"type", "thinking", "signature"})
                if not isinstance(block.get("thinking"), str) or not isinstance(block.get("signature"), str):
                    raise invalid(at, "a thinking block has a string thinking and signature")
                if block["signature"]:  # unsigned reasoning (an OpenAI-compatible model's) is not sent back
                    thinking.append({"type": "thinking", **{k: block[k] for k in ("thinking", "signature")}})
            elif kind == "redacted_thinking":
                check_keys(block, at, {"type", "data"})
                if not isinstance(block.get("data"), str) or not block["data"]:
                    raise invalid(f"{at}.data", "Input should be a non-empty string")
                thinking.append({"type": "redacted_thinking", "data": block["data"]})
            else:
                texts.append(_text(block, at))
        message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts or not calls else None}
        if calls:
            message["tool_calls"] = calls
        if thinking:
            message["thinking_blocks"] = thinking
        self.add(message, where)


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    check_keys(block, where, {"type", "tool_use_id", "content", "is_error"})
    if not isinstance(block.get("tool_use_id"), str):
        raise invalid(f"{where}.tool_use_id", "Field required")
    failed = block.get("is_error")
    if failed is not None and not isinstance(failed, bool):
        raise invalid(f"{where}.is_error", "Input should be a valid boolean")
    content = block.get("content")
    text = "" if content is None else texts(content, f"{where}.content", empty=True)
    message = {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}
    return {**message, "is_error": True} if failed else message


def turns_of(value: Any) -> Turns:
    if not isinstance(value, list) or not value:
        raise invalid("messages", "Input should be a non-empty list")
    turns = Turns()
    for i, message in enumerate(value):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise invalid(where, "Input should be a valid dictionary")
        check_keys(message, where, {"role", "content"})
        if "content" not in message:
            raise invalid(f"{where}.content", "Field required")
        role = message.get("role")
        if role == "user":
            turns.user(message["content"], where)
        elif role == "assistant":
            turns.assistant(message["content"], where)
        else:
            raise invalid(f"{where}.role", f"Input should be 'user' or 'assistant'; got {str(role)[:64]!r}")
    return turns
