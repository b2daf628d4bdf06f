"""A ``ChatRequest`` as ``chat.completions.create``'s keyword arguments (``openai.py`` streams them).

The request is OpenAI's own shape, so the mapping is nearly one to one: a system prompt
leads the messages, tool messages keep their ``tool_call_id``, assistant ``tool_calls``
go back as they came, ``reasoning.effort`` is ``reasoning_effort``; every sampling setting
(``top_p``, ``seed``, ``stop``, the penalties, ``user``) is OpenAI's own, as is
``prompt_cache_key``; content parts go as OpenAI's text parts, without their cache markers
(OpenAI caches every prompt prefix of 1,024 tokens or more by itself).
"""

from __future__ import annotations

from typing import Any

from ..requests import ChatRequest, ContentPart, Message, TextPart, ToolChoice

__all__ = ["request_params"]


def _content(m: Message) -> str | list[dict[str, Any]]:
    """Parts as OpenAI's; a cache marker is not sent (OpenAI caches prompt prefixes itself)."""
    if not m.parts:
        return m.content
    return [_part(p) for p in m.parts]


def _part(p: ContentPart) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    return {"type": "image_url", "image_url": {"url": p.url, **({"detail": p.detail} if p.detail else {})}}


def _message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": _content(m)}
    message: dict[str, Any] = {"role": m.role, "content": _content(m)}
    if m.tool_calls:
        message["content"] = m.content or None
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    return message


def _tool_choice(choice: ToolChoice) -> Any:
    if choice.mode == "function":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def request_params(request: ChatRequest) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create``: a system prompt leads the messages."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.extend(_message(m) for m in request.messages)
    params: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        # ``max_tokens`` is deprecated by the API and refused by reasoning models.
        "max_completion_tokens": request.max_tokens,
    }
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.stop:
        params["stop"] = list(request.stop)
    for name in ("top_p", "seed", "presence_penalty", "frequency_penalty", "user", "prompt_cache_key"):
        if getattr(request, name) is not None:
            params[name] = getattr(request, name)
    if request.response_format is not None:
        params["response_format"] = request.response_format.as_openai()
    if request.tools:
        params["tools"] = [{"type": "function", "function": _function(t)} for t in request.tools]
    if request.tool_choice is not None:
        params["tool_choice"] = _tool_choice(request.tool_choice)
    if request.parallel_tool_calls is not None:
        params["parallel_tool_calls"] = request.parallel_tool_calls
    if request.reasoning is not None and request.reasoning.effort is not None:
        params["reasoning_effort"] = request.reasoning.effort
    return params


def _function(tool: Any) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return function
