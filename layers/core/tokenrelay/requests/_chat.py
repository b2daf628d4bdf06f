"""The validated chat request (docs/protocol.md §1) and its deployment limits.

Rule for unknown fields: they are rejected with a 400 naming them, so a typo
such as ``max_token`` never turns into a silent default.

Types are strict: ``true`` is not an integer, ``"5"`` is not a number. Text
(``message``, ``system``, ``messages[].content``) may hold any Unicode except
C0 control characters other than tab, newline and carriage return (NUL, ESC,
...: they mean nothing to a model and break logs and terminals) and lone UTF-16
surrogates (not encodable); either is a 400 naming the field and the character.
The JSON text itself is decoded by ``json_text.loads_strict``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from ..errors import RequestInvalid
from ..settings import Settings
from ._capabilities import check_capabilities
from ._content import ContentPart, ImagePart, TextPart, parts_of
from ._output import ResponseFormat, ResponseFormatBody, response_format_of
from ._sampling import sampling_of
from ._tools import (
    Reasoning,
    ReasoningBody,
    ThinkingBlock,
    ThinkingBlockBody,
    Tool,
    ToolBody,
    ToolCall,
    ToolCallBody,
    ToolChoice,
    ToolChoiceBody,
    check_arguments,
    check_tool_name,
    reasoning_of,
    thinking_of,
    tool_choice_of,
    tools_of,
)

Role = Literal["system", "user", "assistant", "tool"]
_FORBIDDEN_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Role
    content: StrictStr | list[Any] | None = None  # null only for an assistant message with tool_calls
    tool_calls: list[ToolCallBody] | None = None  # assistant
    tool_call_id: StrictStr | None = None  # tool: the call it answers
    is_error: StrictBool | None = None  # tool: the call failed (its content says how)
    thinking_blocks: list[ThinkingBlockBody] | None = None  # assistant: signed reasoning, sent back


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    message: StrictStr | None = None
    messages: list[_Message] | None = None
    system: StrictStr | None = None
    provider: StrictStr | None = None
    model: StrictStr | None = None
    max_tokens: StrictInt | None = Field(default=None)
    temperature: StrictFloat | None = None  # strict: an integer is a number, a bool is not
    top_p: StrictFloat | None = None
    seed: StrictInt | None = None
    stop: StrictStr | list[StrictStr] | None = None
    presence_penalty: StrictFloat | None = None
    frequency_penalty: StrictFloat | None = None
    user: StrictStr | None = None
    prompt_cache_key: StrictStr | None = None
    response_format: ResponseFormatBody | None = None
    tools: list[ToolBody] | None = None
    tool_choice: StrictStr | ToolChoiceBody | None = None
    parallel_tool_calls: StrictBool | None = None
    reasoning: ReasoningBody | None = None


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # assistant
    tool_call_id: str | None = None  # tool
    thinking: tuple[ThinkingBlock, ...] = ()  # assistant
    is_error: bool = False  # tool: the call failed
    parts: tuple[ContentPart, ...] = ()  # content given as a list of parts; ``content`` is their text

    @property
    def cached(self) -> bool:
        """Does a part of it carry a cache marker."""
        return any(p.cache is not None for p in self.parts)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A request that passed validation against the deployment's limits."""

    messages: tuple[Message, ...]
    provider: str
    model: str
    max_tokens: int
    system: str | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()  # stop sequences
    top_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None  # the end user, for the provider's abuse monitoring
    prompt_cache_key: str | None = None  # OpenAI's prompt cache routing key
    response_format: ResponseFormat | None = None  # structured output (None: text)
    fallback: bool = True  # may FALLBACK_MODEL serve it (False: the key may not use it, or the model cannot do it)
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    reasoning: Reasoning | None = None

    @property
    def last_user_text(self) -> str:
        for m in reversed(self.messages):
            if m.role == "user":
                return m.content
        return ""


# pydantic names the branch of a union in ``loc`` ("str", "list[PartBody]"): not a field.
_UNION_BRANCH = re.compile(r"^(str|int|float|bool|list\[.*\]|dict\[.*\]|[A-Z]\w*Body)$")


def _first_error(exc: ValidationError) -> RequestInvalid:
    """The error to show: of a union's branches, the one that went deepest (a part's missing
    ``text`` rather than "content: not a string"), its location without the branch names."""
    errors = exc.errors()
    first = errors[0]["loc"]
    err = max((e for e in errors if e["loc"][:1] == first[:1]), key=lambda e: len(e["loc"]))
    loc = ".".join(str(p) for p in err["loc"] if not _UNION_BRANCH.match(str(p)))
    kind = err["type"]
    if kind == "extra_forbidden":
        return RequestInvalid(loc, "unknown field")
    if kind == "missing":
        return RequestInvalid(loc, "field required")
    if kind == "literal_error":
        expected = str((err.get("ctx") or {}).get("expected", "")).replace("'", "")
        return RequestInvalid(loc, f"must be one of {expected}; got {err.get('input')!r}")
    return RequestInvalid(loc or "body", err["msg"])


def _check_text(field: str, text: str | None) -> None:
    found = _FORBIDDEN_CHAR.search(text) if text else None
    if found is not None:
        char = f"U+{ord(found.group()):04X}"
        kind = "a lone surrogate" if "\ud800" <= found.group() <= "\udfff" else "a control character"
        raise RequestInvalid(field, f"contains {kind} ({char}) at index {found.start()}; only tab, LF, CR are allowed")


def parse_chat_request(body: Any, settings: Settings) -> ChatRequest:
    """Validate a decoded JSON body; raise ``RequestInvalid`` naming the field."""
    if not isinstance(body, Mapping):
        raise RequestInvalid("body", "expected a JSON object")
    try:
        raw = _Body.model_validate(body)
    except ValidationError as exc:
        raise _first_error(exc) from None

    if (raw.message is None) == (raw.messages is None):
        raise RequestInvalid("message", "give exactly one of 'message' or 'messages'")
    if raw.message is not None:
        messages: tuple[Message, ...] = (Message("user", raw.message),)
        if not raw.message.strip():
            raise RequestInvalid("message", "must not be empty")
    else:
        assert raw.messages is not None
        if not raw.messages:
            raise RequestInvalid("messages", "must not be empty")
        if len(raw.messages) > settings.max_messages:
            raise RequestInvalid("messages", f"at most {settings.max_messages} messages are allowed")
        messages = _messages(raw.messages, settings.max_image_bytes)
        images = sum(isinstance(p, ImagePart) for m in messages for p in m.parts)
        if images > settings.max_images:
            raise RequestInvalid("messages", f"at most {settings.max_images} images are allowed (MAX_IMAGES)")
        if not any(m.role == "user" and (m.content.strip() or m.parts) for m in messages):
            raise RequestInvalid("messages", "must contain a non-empty user message")

    if raw.message is not None:
        _check_text("message", raw.message)
    else:
        for i, m in enumerate(messages):
            if not m.parts:
                _check_text(f"messages.{i}.content", m.content)
            for j, part in enumerate(m.parts):
                if isinstance(part, TextPart):
                    _check_text(f"messages.{i}.content.{j}.text", part.text)
    _check_text("system", raw.system)

    total = sum(_chars(m) for m in messages) + len(raw.system or "")
    if total > settings.max_message_chars:
        field = "message" if raw.message is not None else "messages"
        raise RequestInvalid(field, f"too long: {total} characters, the limit is {settings.max_message_chars}")

    default_max = min(settings.default_max_tokens, settings.max_tokens_limit)
    max_tokens = default_max if raw.max_tokens is None else raw.max_tokens
    if not 1 <= max_tokens <= settings.max_tokens_limit:
        raise RequestInvalid("max_tokens", f"must be between 1 and {settings.max_tokens_limit}")
    temperature = None if raw.temperature is None else float(raw.temperature)
    if temperature is not None and not 0.0 <= temperature <= 2.0:
        raise RequestInvalid("temperature", "must be between 0 and 2")

    tools = tools_of(raw.tools or [])
    if raw.tools is not None and not tools:
        raise RequestInvalid("tools", "must not be empty (leave it out instead)")
    provider = raw.provider if raw.provider is not None else settings.default_provider
    model = settings.resolve_model(provider, raw.model)
    request = ChatRequest(
        messages=messages,
        provider=provider,
        model=model,
        max_tokens=max_tokens,
        system=raw.system,
        temperature=temperature,
        **sampling_of(raw),
        tools=tools,
        tool_choice=tool_choice_of(raw.tool_choice, tools),
        parallel_tool_calls=raw.parallel_tool_calls,
        reasoning=reasoning_of(raw.reasoning),
        prompt_cache_key=_cache_key(raw.prompt_cache_key),
        response_format=response_format_of(raw.response_format),
    )
    # what the provider or model cannot do is a 400, never dropped
    check_capabilities(request, settings.capabilities(provider, model))
    return request if _fallback_can_serve(request, settings) else replace(request, fallback=False)


def _fallback_can_serve(request: ChatRequest, settings: Settings) -> bool:
    """Could ``FALLBACK_MODEL`` answer ``request`` as asked? If not (an image for a model without
    vision, tools for one without them...), the request gets no fallback: its own provider's error
    is the answer, never a fallback that drops part of the request or fails on it."""
    fallback = settings.fallback_model
    if fallback is None or fallback == (request.provider, request.model):
        return True
    try:
        check_capabilities(replace(request, provider=fallback[0], model=fallback[1]), settings.capabilities(*fallback))
    except RequestInvalid:
        return False
    return True


def _cache_key(key: str | None) -> str | None:
    if key is not None and not 1 <= len(key) <= 256:
        raise RequestInvalid("prompt_cache_key", "1 to 256 characters")
    return key


def _chars(m: Message) -> int:
    return len(m.content) + sum(len(c.arguments) + len(c.name) for c in m.tool_calls)


def _messages(raw: list[_Message], max_image_bytes: int) -> tuple[Message, ...]:
    """The messages, each checked for what its role may carry; every tool message answers a
    call an earlier assistant message made."""
    out: list[Message] = []
    calls: set[str] = set()
    for i, m in enumerate(raw):
        where = f"messages.{i}"
        if m.role != "assistant":
            for name in ("tool_calls", "thinking_blocks"):
                if getattr(m, name) is not None:
                    raise RequestInvalid(f"{where}.{name}", "only an assistant message may have it")
        if m.role != "tool" and m.tool_call_id is not None:
            raise RequestInvalid(f"{where}.tool_call_id", "only a tool message may have it")
        if m.role != "tool" and m.is_error is not None:
            raise RequestInvalid(f"{where}.is_error", "only a tool message may have it")
        if m.role == "tool":
            if m.tool_call_id is None:
                raise RequestInvalid(f"{where}.tool_call_id", "field required")
            if m.tool_call_id not in calls:
                raise RequestInvalid(
                    f"{where}.tool_call_id", f"no earlier assistant tool call has id {m.tool_call_id!r}"
                )
        tool_calls: list[ToolCall] = []
        for j, c in enumerate(m.tool_calls or []):
            check_tool_name(f"{where}.tool_calls.{j}.function.name", c.function.name)
            check_arguments(f"{where}.tool_calls.{j}.function.arguments", c.function.arguments)
            if not c.id:
                raise RequestInvalid(f"{where}.tool_calls.{j}.id", "must not be empty")
            tool_calls.append(ToolCall(c.id, c.function.name, c.function.arguments))
            calls.add(c.id)
        if m.content is None and not tool_calls:
            raise RequestInvalid(f"{where}.content", "field required")
        thinking = thinking_of(f"{where}.thinking_blocks", m.thinking_blocks or [])
        parts = parts_of(f"{where}.content", m.role, m.content, max_image_bytes) if isinstance(m.content, list) else ()
        text = (
            "\n".join(p.text for p in parts if isinstance(p, TextPart))
            if parts
            else (m.content if isinstance(m.content, str) else "")
        )
        out.append(Message(m.role, text, tuple(tool_calls), m.tool_call_id, thinking, m.is_error is True, parts))
    return tuple(out)
