"""A ``ChatRequest`` as ``messages.create``'s keyword arguments (``anthropic.py`` streams them).

System turns fold into ``system`` (blocks when one carries a ``cache_control`` marker, which
content parts pass through as they are); an assistant turn with tool calls or signed reasoning is
content blocks (``thinking``/``redacted_thinking``, ``text``, ``tool_use``); tool results
are ``tool_result`` blocks of the user turn after the calls (``is_error`` for a failed one);
tools carry their JSON Schema as ``input_schema``; ``tool_choice`` ``required`` is ``any``, a function is ``tool``, and
``parallel_tool_calls: false`` is ``disable_parallel_tool_use``; reasoning is the
``thinking`` budget (``requests.thinking_budget``); ``stop`` is ``stop_sequences`` and
``user`` is ``metadata.user_id``; a ``json_schema`` ``response_format`` is
``output_config.format`` (the other sampling settings were refused in ``requests``).
"""

from __future__ import annotations

from typing import Any

from ..requests import ChatRequest, ContentPart, Message, TextPart, thinking_budget

__all__ = ["request_params"]


def _assistant(m: Message) -> str | list[dict[str, Any]]:
    if not (m.tool_calls or m.thinking):
        return m.content
    blocks: list[dict[str, Any]] = [
        {"type": "redacted_thinking", "data": b.redacted}
        if b.redacted
        else {"type": "thinking", "thinking": b.thinking, "signature": b.signature}
        for b in m.thinking
    ]
    if m.content:
        blocks.append({"type": "text", "text": m.content})
    blocks.extend({"type": "tool_use", "id": c.id, "name": c.name, "input": c.input()} for c in m.tool_calls)
    return blocks


def _block(part: ContentPart) -> dict[str, Any]:
    block: dict[str, Any]
    if isinstance(part, TextPart):
        block = {"type": "text", "text": part.text}
    elif part.inline:
        block = {"type": "image", "source": {"type": "base64", "media_type": part.media_type, "data": part.base64}}
    else:  # Anthropic fetches it
        block = {"type": "image", "source": {"type": "url", "url": part.url}}
    if part.cache is not None:
        block["cache_control"] = {"type": "ephemeral", **({"ttl": part.cache} if part.cache else {})}
    return block


def _blocks(m: Message) -> list[dict[str, Any]]:
    return [_block(p) for p in m.parts] if m.parts else [{"type": "text", "text": m.content}]


def _messages(request: ChatRequest, system: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic's turns: tool results are blocks of the user turn that follows the calls (with
    the user's next words, if any, in the same turn)."""
    messages: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "system":
            system.extend(_blocks(m))
        elif m.role == "assistant":
            messages.append({"role": "assistant", "content": _assistant(m)})
        elif m.role == "tool":
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            if m.is_error:
                block["is_error"] = True
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})
        else:
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].extend(_blocks(m))
            else:
                messages.append({"role": "user", "content": _blocks(m) if m.parts else m.content})
    return messages


def _tools(request: ChatRequest, params: dict[str, Any]) -> None:
    tools = []
    for t in request.tools:
        tool: dict[str, Any] = {"name": t.name, "input_schema": dict(t.parameters)}
        if t.description is not None:
            tool["description"] = t.description
        if t.strict is not None:
            tool["strict"] = t.strict
        tools.append(tool)
    params["tools"] = tools
    choice = request.tool_choice
    mode = "auto" if choice is None else choice.mode
    tool_choice: dict[str, Any] = {"type": {"required": "any", "function": "tool"}.get(mode, mode)}
    if choice is not None and choice.mode == "function":
        tool_choice["name"] = choice.name
    if request.parallel_tool_calls is False and mode != "none":
        tool_choice["disable_parallel_tool_use"] = True
    if choice is not None or "disable_parallel_tool_use" in tool_choice:
        params["tool_choice"] = tool_choice


def request_params(request: ChatRequest) -> dict[str, Any]:
    """Keyword arguments for ``messages.create``; system turns are folded into ``system``."""
    system = [{"type": "text", "text": request.system}] if request.system else []
    messages = _messages(request, system)
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": messages,
        "stream": True,
    }
    if any("cache_control" in b for b in system):
        params["system"] = system  # blocks: the marker caches the prompt up to its block
    elif system:
        params["system"] = "\n\n".join(b["text"] for b in system)
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.user is not None:
        params["metadata"] = {"user_id": request.user}
    if request.response_format is not None:  # json_schema only (requests._capabilities)
        params["output_config"] = {"format": {"type": "json_schema", "schema": request.response_format.schema_dict()}}
    if request.tools:
        _tools(request, params)
    budget = thinking_budget(request)
    if budget is not None:
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return params
