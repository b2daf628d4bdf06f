"""Offline, deterministic provider: replays a reply derived from the prompt.

It is the default when no API key is configured, so the local stack and the
tests run with no account. Tokens are words with their trailing whitespace,
emitted every ``delay_s`` seconds; ``max_tokens`` truncates with
``finish_reason="length"``. Stop sequences cut the reply before the first one
found, as the real APIs do (the stop string itself is not emitted).

Reasoning and tool calls, offline (docs/protocol.md §11), chosen by the request's shape:

- ``reasoning`` (any effort but ``none``): first a reasoning part, ``Thinking about:
  <the last user message>``, word by word, closed by a signature (``echo-`` + 16 hex
  digits of its SHA-256), as Anthropic's thinking blocks are;
- ``tools``, when the last message is the user's and ``tool_choice`` is not ``none``: a
  call to every tool whose name the last user message mentions (only the first with
  ``parallel_tool_calls: false``), or to the ``tool_choice`` function, or, with
  ``required`` and no name mentioned, to the first tool. Each call streams as the real
  APIs do: its start (id ``call_echo_<n>``), an empty first argument fragment, the JSON
  arguments in pieces of 8 characters, its end; then ``finish_reason: tool_calls``. The
  arguments give every string property of the tool's ``parameters`` the last user message
  (other types: 0, false, [], {});
- the images of the last message are named after its text: `` [image image/png, 68 bytes]``
  for a data: URL, `` [image https://...]`` for a URL (so a test sees that an image arrived);
- after a ``tool`` message: ``Tool <name> returned: <its content>`` (``failed`` for an ``is_error`` one);
- ``response_format``: the reply as JSON, streamed in pieces of 8 characters: ``{"reply":
  <the reply>}`` for ``json_object``; for ``json_schema``, an object of the schema's
  properties, every string one the reply (other types: 0, false, [], {}).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncGenerator
from typing import Any

from ..events import Usage
from ..requests import ChatRequest, ImagePart, Tool
from .base import Chunk, Finish, ReasoningChunk, TextChunk, ToolArgs, ToolEnd, ToolStart

_TOKEN = re.compile(r"\S+\s*|\s+")
_EMPTY = {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
ARGUMENT_PIECE = 8


def echo_reply(request: ChatRequest) -> str:
    return echo_answer(request)[0]


def echo_answer(request: ChatRequest) -> tuple[str, str | None]:
    """The reply, and the stop sequence that cut it (None: none did)."""
    last = request.messages[-1]
    if last.role == "tool":
        name = next((c.name for m in request.messages for c in m.tool_calls if c.id == last.tool_call_id), "tool")
        reply = f"Tool {name} {'failed' if last.is_error else 'returned'}: {last.content}"
    else:
        reply = f"You said: {request.last_user_text}" + "".join(
            f" [image {p.media_type}, {len(p.data())} bytes]" if p.inline else f" [image {p.url}]"
            for m in request.messages[-1:]
            for p in m.parts
            if isinstance(p, ImagePart)
        )
    cut, stop = min(((reply.find(s), s) for s in request.stop if s and s in reply), default=(-1, None))
    return (reply, None) if stop is None else (reply[:cut], stop)


def echo_json(request: ChatRequest, reply: str) -> str:
    """The reply as the ``response_format`` asks (module docstring)."""
    output = request.response_format
    assert output is not None
    if output.kind == "json_object":
        return json.dumps({"reply": reply}, ensure_ascii=False)
    return _object(output.schema_dict(), reply)


def _object(schema: dict[str, Any], text: str) -> str:
    properties = schema.get("properties") or {}
    args: dict[str, Any] = {}
    for name, spec in properties.items():
        kind = spec.get("type") if isinstance(spec, dict) else None
        args[name] = text if kind in (None, "string") else _EMPTY.get(str(kind))
    return json.dumps(args, ensure_ascii=False)


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def echo_calls(request: ChatRequest) -> list[Tool]:
    """The tools echo calls for ``request`` (module docstring)."""
    choice = request.tool_choice
    if not request.tools or request.messages[-1].role != "user" or (choice is not None and choice.mode == "none"):
        return []
    if choice is not None and choice.mode == "function":
        return [t for t in request.tools if t.name == choice.name]
    text = request.last_user_text
    called = [t for t in request.tools if t.name in text]
    if not called and choice is not None and choice.mode == "required":
        called = [request.tools[0]]
    return called[:1] if request.parallel_tool_calls is False else called


def echo_arguments(tool: Tool, text: str) -> str:
    return _object(dict(tool.parameters), text)


def signature(reasoning: str) -> str:
    return "echo-" + hashlib.sha256(reasoning.encode()).hexdigest()[:16]


class EchoProvider:
    name = "echo"

    def __init__(self, delay_s: float = 0.03) -> None:
        self.delay_s = delay_s

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        prompt_tokens = sum(len(tokenize(m.content)) for m in request.messages)
        prompt_tokens += len(tokenize(request.system or ""))
        reasoning_tokens: int | None = None
        if request.reasoning is not None and request.reasoning.enabled:
            thought = f"Thinking about: {request.last_user_text}"
            words = tokenize(thought)
            for word in words:
                await asyncio.sleep(self.delay_s)
                yield ReasoningChunk(word)
            yield ReasoningChunk("", signature=signature(thought))
            reasoning_tokens = len(words)
        calls = echo_calls(request)
        if calls:
            pieces = 0
            for index, tool in enumerate(calls):
                await asyncio.sleep(self.delay_s)
                yield ToolStart(index, f"call_echo_{index}", tool.name)
                yield ToolArgs(index, "")  # as the real APIs: the first fragment is empty
                arguments = echo_arguments(tool, request.last_user_text)
                for i in range(0, len(arguments), ARGUMENT_PIECE):
                    await asyncio.sleep(self.delay_s)
                    yield ToolArgs(index, arguments[i : i + ARGUMENT_PIECE])
                    pieces += 1
                yield ToolEnd(index)
            yield Usage(prompt_tokens, pieces + (reasoning_tokens or 0), reasoning_tokens)
            yield Finish("tool_calls")
            return
        reply, stop = echo_answer(request)
        if request.response_format is not None:
            text = echo_json(request, reply)
            tokens = [text[i : i + ARGUMENT_PIECE] for i in range(0, len(text), ARGUMENT_PIECE)]
        else:
            tokens = tokenize(reply)
        emitted = tokens[: request.max_tokens]
        for token in emitted:
            await asyncio.sleep(self.delay_s)
            yield TextChunk(token)
        yield Usage(prompt_tokens, len(emitted) + (reasoning_tokens or 0), reasoning_tokens)
        yield Finish("length", None) if len(emitted) < len(tokens) else Finish("stop", stop)

    async def aclose(self) -> None:
        return None
