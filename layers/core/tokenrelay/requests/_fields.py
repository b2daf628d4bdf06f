"""A validated ``ChatRequest`` written back as body fields (docs/protocol.md §1, §11): what
``parse_chat_request`` reads gives the same request again (the WebSocket worker re-validates
the chat handler's request this way, so the two cannot disagree on a default)."""

from __future__ import annotations

from typing import Any

from ._chat import ChatRequest, Message
from ._content import ContentPart, TextPart
from ._tools import ToolChoice

__all__ = ["request_fields"]


def _part(p: ContentPart) -> dict[str, Any]:
    part: dict[str, Any]
    if isinstance(p, TextPart):
        part = {"type": "text", "text": p.text}
    else:
        image = {"url": p.url, **({"detail": p.detail} if p.detail else {})}
        part = {"type": "image_url", "image_url": image}
    if p.cache is not None:
        part["cache_control"] = {"type": "ephemeral", **({"ttl": p.cache} if p.cache else {})}
    return part


def _message(m: Message) -> dict[str, Any]:
    fields: dict[str, Any] = {"role": m.role, "content": [_part(p) for p in m.parts] if m.parts else m.content}
    if m.tool_calls:
        fields["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        fields["tool_call_id"] = m.tool_call_id
    if m.is_error:
        fields["is_error"] = True
    if m.thinking:
        fields["thinking_blocks"] = [
            {"type": "redacted_thinking", "data": b.redacted}
            if b.redacted
            else {"type": "thinking", "thinking": b.thinking, "signature": b.signature}
            for b in m.thinking
        ]
    return fields


def _choice(choice: ToolChoice) -> Any:
    return {"type": "function", "function": {"name": choice.name}} if choice.mode == "function" else choice.mode


def request_fields(chat: ChatRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "messages": [_message(m) for m in chat.messages],
        "provider": chat.provider,
        "model": chat.model,
        "max_tokens": chat.max_tokens,
    }
    if chat.system is not None:
        fields["system"] = chat.system
    if chat.temperature is not None:
        fields["temperature"] = chat.temperature
    if chat.stop:
        fields["stop"] = list(chat.stop)
    for name in ("top_p", "seed", "presence_penalty", "frequency_penalty", "user", "prompt_cache_key"):
        if getattr(chat, name) is not None:
            fields[name] = getattr(chat, name)
    if chat.tools:
        fields["tools"] = [
            {"type": "function", "function": {k: v for k, v in function.items() if v is not None}}
            for function in (
                {"name": t.name, "description": t.description, "parameters": dict(t.parameters), "strict": t.strict}
                for t in chat.tools
            )
        ]
    if chat.tool_choice is not None:
        fields["tool_choice"] = _choice(chat.tool_choice)
    if chat.parallel_tool_calls is not None:
        fields["parallel_tool_calls"] = chat.parallel_tool_calls
    if chat.response_format is not None:
        fields["response_format"] = chat.response_format.as_openai()
    if chat.reasoning is not None:
        r = chat.reasoning
        fields["reasoning"] = {
            k: v for k, v in (("effort", r.effort), ("budget_tokens", r.budget_tokens)) if v is not None
        }
    return fields
