"""A ``ChatRequest`` as ``converse_stream``'s keyword arguments (``bedrock.py`` streams them).

System turns fold into ``system``; a content part with a ``cache_control`` marker is followed
by a ``cachePoint`` block; tool calls are ``toolUse`` blocks of the assistant turn and
tool results ``toolResult`` blocks of the user turn after it (``status: error`` for a failed
one); signed reasoning goes back as ``reasoningContent`` (``reasoningText`` with its
signature, or ``redactedContent`` bytes); tools are ``toolConfig``; reasoning is the Claude
``thinking`` budget in ``additionalModelRequestFields`` (``requests._capabilities`` refused it
for other models); ``top_p`` and ``stop`` are ``inferenceConfig``'s ``topP`` and
``stopSequences``, ``user`` is ``requestMetadata.user``; a ``json_schema`` ``response_format``
is ``outputConfig.textFormat`` (the schema as JSON text).
"""

from __future__ import annotations

import base64
from typing import Any

from ..errors import Rejected
from ..requests import ChatRequest, ContentPart, Message, TextPart, thinking_budget

__all__ = ["request_params"]


def _assistant(m: Message) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for b in m.thinking:
        if b.redacted:
            content.append({"reasoningContent": {"redactedContent": base64.b64decode(b.redacted)}})
        else:
            content.append({"reasoningContent": {"reasoningText": {"text": b.thinking, "signature": b.signature}}})
    if m.content:
        content.append({"text": m.content})
    content.extend({"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.input()}} for c in m.tool_calls)
    return content


def _cache_point(part: ContentPart) -> list[dict[str, Any]]:
    """The ``cachePoint`` block after a part with a cache marker: Bedrock caches up to it."""
    if part.cache is None:
        return []
    return [{"cachePoint": {"type": "default", **({"ttl": part.cache} if part.cache else {})}}]


def _blocks(m: Message) -> list[dict[str, Any]]:
    if not m.parts:
        return [{"text": m.content}]
    return [block for p in m.parts for block in (_block(p), *_cache_point(p))]


def _block(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    # the bytes: Bedrock fetches nothing (an https URL was refused in requests._capabilities)
    return {"image": {"format": part.format, "source": {"bytes": part.data()}}}


def _messages(request: ChatRequest, system: list[dict[str, Any]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "system":
            system.extend(_blocks(m))
            continue
        if m.role == "assistant":
            messages.append({"role": "assistant", "content": _assistant(m)})
            continue
        if m.role == "tool":
            result: dict[str, Any] = {"toolUseId": m.tool_call_id, "content": [{"text": m.content}]}
            if m.is_error:
                result["status"] = "error"  # Claude models only (requests._capabilities)
            blocks: list[dict[str, Any]] = [{"toolResult": result}]
        else:
            blocks = _blocks(m)
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "user" and any("toolResult" in b for b in last["content"]):
            last["content"].extend(blocks)  # results and the user's next words: one turn
        else:
            messages.append({"role": "user", "content": blocks})
    return messages


def _tool_config(request: ChatRequest) -> dict[str, Any]:
    tools = []
    for t in request.tools:
        spec: dict[str, Any] = {"name": t.name, "inputSchema": {"json": dict(t.parameters)}}
        if t.description is not None:
            spec["description"] = t.description
        tools.append({"toolSpec": spec})
    config: dict[str, Any] = {"tools": tools}
    choice = request.tool_choice
    if choice is not None and choice.mode == "function":
        config["toolChoice"] = {"tool": {"name": choice.name}}
    elif choice is not None and choice.mode == "required":
        config["toolChoice"] = {"any": {}}
    elif choice is not None and choice.mode == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def request_params(request: ChatRequest) -> dict[str, Any]:
    """Keyword arguments for ``converse_stream``."""
    if request.temperature is not None and request.temperature > 1.0:
        raise Rejected("Bedrock takes a temperature between 0 and 1")
    system = [{"text": request.system}] if request.system else []
    messages = _messages(request, system)
    inference: dict[str, Any] = {"maxTokens": request.max_tokens}
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    if request.stop:
        inference["stopSequences"] = list(request.stop)
    params: dict[str, Any] = {"modelId": request.model, "messages": messages, "inferenceConfig": inference}
    if system:
        params["system"] = system
    if request.user is not None:
        params["requestMetadata"] = {"user": request.user}  # filters the invocation logs
    if request.tools:
        params["toolConfig"] = _tool_config(request)
    output = request.response_format
    if output is not None:  # json_schema only (requests._capabilities)
        schema: dict[str, Any] = {"schema": output.schema, "name": output.name}
        if output.description is not None:
            schema["description"] = output.description
        params["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": schema}}}
    budget = thinking_budget(request)
    if budget is not None:
        params["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": budget}}
    return params
