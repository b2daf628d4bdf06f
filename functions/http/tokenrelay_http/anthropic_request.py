"""An Anthropic Messages API request -> a validated ``tokenrelay.ChatRequest`` (docs/anthropic-compat.md).

As ``openai_request`` does for ``/v1/chat/completions``, the translation builds a
docs/protocol.md §1 body and runs it through ``parse_chat_request``, so the same limits,
allow-list and provider capabilities apply; a refusal comes back as Anthropic's
``invalid_request_error`` naming the field as Anthropic does (``messages.1.content.0.type:
...``), located in the request the client sent.

    model            provider/model or a MODEL_ALIASES alias (404 not_found_error otherwise)
    max_tokens       required, as Anthropic requires it
    system           a string or a list of text blocks
    messages         user / assistant turns; content a string or blocks:
                       user       text, tool_result (content: a string or text blocks)
                       assistant  text, thinking (signed), redacted_thinking, tool_use
    tools            custom tools: name, description, input_schema
    tool_choice      auto, any (= required), tool (= a function), none; disable_parallel_tool_use
    thinking         enabled + budget_tokens (on openai: the nearest reasoning effort); disabled
    stop_sequences   at most 4 (what every provider takes)
    temperature      as the provider takes it (refused for anthropic: see protocol §1)
    metadata         user_id only: accepted, never sent
    stream           boolean

Anything else (images, documents, server tools, top_p, top_k, adaptive thinking,
``is_error`` tool results...) is a 400 naming it: never dropped. ``cache_control`` on a
block is accepted and ignored: it changes only the price of a request, never its answer.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from tokenrelay import ChatRequest, RequestInvalid, Settings, parse_chat_request
from tokenrelay.requests import EFFORT_BUDGETS
from tokenrelay.transports.anthropic import AnthropicError
from tokenrelay.transports.openai import OpenAIError

from .openai_request import resolve_model

__all__ = ["MessagesRequest", "invalid", "parse_messages_request"]

_FIELDS = frozenset(
    "model max_tokens messages system tools tool_choice thinking stop_sequences temperature metadata stream".split()
)
_UNSUPPORTED = frozenset(
    "top_p top_k service_tier container mcp_servers context_management output_format output_config "
    "inference_geo".split()
)
_MAX_STOP = 4
_CACHE = frozenset({"cache_control"})


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    chat: ChatRequest
    model: str  # as answered in ``model``: what the client asked for
    stream: bool


def invalid(field: str, message: str) -> AnthropicError:
    return AnthropicError(400, f"{field}: {message}" if field else message)


def _keys(block: dict[str, Any], where: str, allowed: set[str]) -> None:
    for key, value in block.items():
        if key not in allowed and key not in _CACHE and not (key == "citations" and value is None):
            raise invalid(f"{where}.{key}", "Extra inputs are not permitted")


def _text(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        kind = block.get("type") if isinstance(block, dict) else None
        raise invalid(f"{where}.type", f"only text blocks are supported here; got {kind!r}")
    _keys(block, where, {"type", "text"})
    if not isinstance(block.get("text"), str):
        raise invalid(f"{where}.text", "Input should be a valid string")
    return str(block["text"])


def _texts(value: Any, where: str, *, empty: bool = False) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or (not value and not empty):
        raise invalid(where, "Input should be a string or a non-empty list of text blocks")
    return "\n".join(_text(b, f"{where}.{j}") for j, b in enumerate(value))


class _Turns:
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
                _keys(block, at, {"type", "id", "name", "input"})
                if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                    raise invalid(at, "a tool_use block has a string id and name")
                if not isinstance(block.get("input"), dict):
                    raise invalid(f"{at}.input", "Input should be a valid dictionary")
                arguments = json.dumps(block["input"], ensure_ascii=False)
                function = {"name": block["name"], "arguments": arguments}
                calls.append({"id": block["id"], "type": "function", "function": function})
            elif kind == "thinking":
                _keys(block, at, {"type", "thinking", "signature"})
                if not isinstance(block.get("thinking"), str) or not isinstance(block.get("signature"), str):
                    raise invalid(at, "a thinking block has a string thinking and signature")
                if block["signature"]:  # unsigned reasoning (an OpenAI-compatible model's) is not sent back
                    thinking.append({"type": "thinking", **{k: block[k] for k in ("thinking", "signature")}})
            elif kind == "redacted_thinking":
                _keys(block, at, {"type", "data"})
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
    _keys(block, where, {"type", "tool_use_id", "content", "is_error"})
    if not isinstance(block.get("tool_use_id"), str):
        raise invalid(f"{where}.tool_use_id", "Field required")
    if block.get("is_error") not in (None, False):
        raise invalid(f"{where}.is_error", "true is not supported by TokenRelay (its tool results carry no error flag)")
    content = block.get("content")
    text = "" if content is None else _texts(content, f"{where}.content", empty=True)
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}


def _messages(value: Any) -> _Turns:
    if not isinstance(value, list) or not value:
        raise invalid("messages", "Input should be a non-empty list")
    turns = _Turns()
    for i, message in enumerate(value):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise invalid(where, "Input should be a valid dictionary")
        _keys(message, where, {"role", "content"})
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


def _tools(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise invalid("tools", "Input should be a valid list")
    tools = []
    for i, tool in enumerate(value):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise invalid(where, "Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):
            raise invalid(f"{where}.type", f"{str(tool.get('type'))[:64]!r} is not supported: only custom tools")
        _keys(tool, where, {"type", "name", "description", "input_schema", "strict"})
        if not isinstance(tool.get("input_schema"), dict):
            raise invalid(f"{where}.input_schema", "Field required (a JSON Schema object)")
        function = {k: tool[k] for k in ("name", "description", "strict") if tool.get(k) is not None}
        tools.append({"type": "function", "function": {**function, "parameters": tool["input_schema"]}})
    return tools


def _tool_choice(value: Any, fields: dict[str, Any]) -> None:
    if not isinstance(value, dict):
        raise invalid("tool_choice", "Input should be a valid dictionary")
    kind = value.get("type")
    allowed = {"type", "name", "disable_parallel_tool_use"} if kind == "tool" else {"type", "disable_parallel_tool_use"}
    if kind == "none":
        allowed = {"type"}
    if kind not in ("auto", "any", "tool", "none"):
        raise invalid("tool_choice.type", f"Input should be 'auto', 'any', 'tool' or 'none'; got {str(kind)[:64]!r}")
    _keys(value, "tool_choice", allowed)
    if kind == "tool":
        if not isinstance(value.get("name"), str):
            raise invalid("tool_choice.name", "Field required")
        fields["tool_choice"] = {"type": "function", "function": {"name": value["name"]}}
    else:
        fields["tool_choice"] = {"any": "required"}.get(kind, kind)
    parallel = value.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise invalid("tool_choice.disable_parallel_tool_use", "Input should be a valid boolean")
    if parallel:
        fields["parallel_tool_calls"] = False


def _thinking(value: Any, provider: str) -> dict[str, Any] | None:
    if not isinstance(value, dict) or value.get("type") not in ("enabled", "disabled"):
        raise invalid("thinking.type", "Input should be 'enabled' or 'disabled' (adaptive thinking is not supported)")
    if value["type"] == "disabled":
        _keys(value, "thinking", {"type"})
        return None
    _keys(value, "thinking", {"type", "budget_tokens"})
    budget = value.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise invalid("thinking.budget_tokens", "Field required (an integer)")
    if provider == "openai":  # OpenAI takes an effort: the smallest whose budget covers it
        effort = next((e for e, b in EFFORT_BUDGETS.items() if budget <= b), "high")
        return {"effort": effort}
    return {"budget_tokens": budget}


def _top_level(body: dict[str, Any]) -> None:
    for name in body:
        if name in _UNSUPPORTED:
            raise invalid(name, "not supported by TokenRelay")
        if name not in _FIELDS:
            raise invalid(name, "Extra inputs are not permitted")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise invalid(name, "Field required")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or not set(metadata) <= {"user_id"}):
        raise invalid("metadata", "only user_id is supported")
    if isinstance(metadata, dict) and not isinstance(metadata.get("user_id", ""), str | None):
        raise invalid("metadata.user_id", "Input should be a valid string")


def _field_of(exc: RequestInvalid, turns: _Turns) -> str:
    """An error's §1 field -> the field of the Anthropic request."""
    parts = exc.field.split(".")
    if parts[0] == "messages" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(turns.origin):
        return turns.origin[int(parts[1])]
    names = {"provider": "model", "message": "messages", "reasoning": "thinking", "stop": "stop_sequences"}
    if parts[0] == "reasoning" and parts[-1] == "budget_tokens":
        return "thinking.budget_tokens"
    if parts[0] == "tools" and len(parts) > 1:
        return f"tools.{parts[1]}"
    if parts[0] == "parallel_tool_calls":
        return "tool_choice.disable_parallel_tool_use"
    return names.get(parts[0], parts[0])


def parse_messages_request(body: Any, settings: Settings) -> MessagesRequest:
    """Validate a decoded JSON body; raise ``AnthropicError`` (400/404) naming the field."""
    if not isinstance(body, dict):
        raise invalid("", "The request body is not a JSON object.")
    _top_level(body)
    name = body["model"]
    if not isinstance(name, str) or not name:
        raise invalid("model", "Input should be a non-empty string")
    try:
        provider, model = resolve_model(name, settings)
    except OpenAIError:
        raise AnthropicError(404, f"model: {name[:128]}", type="not_found_error") from None
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream", "Input should be a valid boolean")
    turns = _messages(body["messages"])
    if turns.out[-1]["role"] == "assistant" and provider != "anthropic":
        last = f"messages.{len(body['messages']) - 1}"
        raise invalid(last, f"a final assistant turn (prefill) is not supported by provider {provider!r}")
    fields: dict[str, Any] = {"messages": turns.out, "provider": provider, "model": model}
    fields["max_tokens"] = body["max_tokens"]
    if body.get("system") is not None:
        fields["system"] = _texts(body["system"], "system")
    if body.get("temperature") is not None:
        fields["temperature"] = body["temperature"]
    if body.get("tools") is not None:
        fields["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], fields)
    if body.get("thinking") is not None and (reasoning := _thinking(body["thinking"], provider)) is not None:
        fields["reasoning"] = reasoning
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or len(stops) > _MAX_STOP or not all(isinstance(s, str) and s for s in stops)
    ):
        raise invalid("stop_sequences", f"Input should be a list of at most {_MAX_STOP} non-empty strings")
    try:
        chat = parse_chat_request(fields, settings)
    except RequestInvalid as exc:
        message = exc.message.partition(": ")[2] if exc.field else exc.message
        raise invalid(_field_of(exc, turns), message) from None
    if stops:
        chat = dataclasses.replace(chat, stop=tuple(stops))
    return MessagesRequest(chat, name, bool(stream))
