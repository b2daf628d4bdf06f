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

Anything else (images, documents, server tools, top_p, top_k, adaptive thinking...) is a
400 naming it, as is what the provider cannot take (``is_error`` on OpenAI): never dropped. ``cache_control`` on a
block is accepted and ignored: it changes only the price of a request, never its answer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tokenrelay import ChatRequest, RequestInvalid, Settings, parse_chat_request
from tokenrelay.requests import EFFORT_BUDGETS
from tokenrelay.transports.anthropic import AnthropicError
from tokenrelay.transports.openai import OpenAIError

from .anthropic_turns import Turns, check_keys, invalid, texts, turns_of
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


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    chat: ChatRequest
    model: str  # as answered in ``model``: what the client asked for
    stream: bool


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
        check_keys(tool, where, {"type", "name", "description", "input_schema", "strict"})
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
    check_keys(value, "tool_choice", allowed)
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
        check_keys(value, "thinking", {"type"})
        return None
    check_keys(value, "thinking", {"type", "budget_tokens"})
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


def _field_of(exc: RequestInvalid, turns: Turns) -> str:
    """An error's §1 field -> the field of the Anthropic request."""
    parts = exc.field.split(".")
    if parts[0] == "messages" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(turns.origin):
        origin = turns.origin[int(parts[1])]
        block_field = {"is_error": "is_error", "tool_call_id": "tool_use_id"}.get(parts[-1])
        return f"{origin}.{block_field}" if block_field and ".content." in origin else origin
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
    turns = turns_of(body["messages"])
    if turns.out[-1]["role"] == "assistant" and provider != "anthropic":
        last = f"messages.{len(body['messages']) - 1}"
        raise invalid(last, f"a final assistant turn (prefill) is not supported by provider {provider!r}")
    fields: dict[str, Any] = {"messages": turns.out, "provider": provider, "model": model}
    fields["max_tokens"] = body["max_tokens"]
    if body.get("system") is not None:
        fields["system"] = texts(body["system"], "system")
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
