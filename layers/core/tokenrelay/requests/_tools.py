"""Tools and reasoning in a chat request (docs/protocol.md §1 and §11): the body's models and
the validated values.

The shapes are OpenAI's Chat Completions ones, which every anchor (LiteLLM, the Vercel AI
SDK, bedrock-access-gateway) speaks: ``tools`` of ``{"type": "function", "function": {...}}``,
``tool_choice`` (``auto``, ``none``, ``required`` or ``{"type": "function", "function":
{"name"}}``), ``parallel_tool_calls``, assistant ``tool_calls`` with their JSON
``arguments``, ``tool`` messages answering a ``tool_call_id``. Reasoning is TokenRelay's own
``reasoning`` object (``effort`` and/or ``budget_tokens``); an assistant message may carry
the ``thinking_blocks`` (LiteLLM's name) a provider signed, to send them back in a later turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr

from ..errors import RequestInvalid

__all__ = [
    "EFFORTS",
    "Reasoning",
    "ThinkingBlock",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "check_arguments",
    "check_tool_name",
]

EFFORTS = ("none", "minimal", "low", "medium", "high")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionBody(_Strict):
    name: StrictStr
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema object
    strict: StrictBool | None = None


class ToolBody(_Strict):
    type: Literal["function"]
    function: FunctionBody


class CallFunctionBody(_Strict):
    name: StrictStr
    arguments: StrictStr  # JSON text of an object


class ToolCallBody(_Strict):
    id: StrictStr
    type: Literal["function"] = "function"
    function: CallFunctionBody


class ThinkingBlockBody(_Strict):
    type: Literal["thinking", "redacted_thinking"]
    thinking: StrictStr | None = None
    signature: StrictStr | None = None
    data: StrictStr | None = None  # a redacted block's opaque data


class ChoiceNameBody(_Strict):
    name: StrictStr


class ToolChoiceBody(_Strict):
    type: Literal["function"]
    function: ChoiceNameBody


class ReasoningBody(_Strict):
    effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    budget_tokens: StrictInt | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text of an object

    def input(self) -> dict[str, Any]:
        """The arguments as an object (validated when the request was parsed)."""
        value = json.loads(self.arguments or "{}")
        assert isinstance(value, dict)
        return value


@dataclass(frozen=True, slots=True)
class ThinkingBlock:
    thinking: str = ""
    signature: str = ""
    redacted: str = ""  # a redacted block's data (then thinking and signature are empty)


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "function"]
    name: str | None = None  # mode "function": the tool the model must call


@dataclass(frozen=True, slots=True)
class Reasoning:
    effort: str | None = None
    budget_tokens: int | None = None

    @property
    def enabled(self) -> bool:
        return self.effort != "none" or self.budget_tokens is not None


def check_tool_name(field_name: str, name: str) -> None:
    if not _TOOL_NAME.fullmatch(name):
        raise RequestInvalid(field_name, "must be 1 to 64 letters, digits, '_' or '-'")


def check_arguments(field_name: str, arguments: str) -> None:
    """Arguments are the JSON text of an object (what every provider takes back)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        raise RequestInvalid(field_name, "must be the JSON text of an object") from None
    if not isinstance(value, dict):
        raise RequestInvalid(field_name, "must be the JSON text of an object")


def tools_of(bodies: list[ToolBody]) -> tuple[Tool, ...]:
    tools: list[Tool] = []
    for i, body in enumerate(bodies):
        fn = body.function
        check_tool_name(f"tools.{i}.function.name", fn.name)
        if any(t.name == fn.name for t in tools):
            raise RequestInvalid(f"tools.{i}.function.name", f"duplicate tool name {fn.name!r}")
        parameters = fn.parameters if fn.parameters is not None else {"type": "object", "properties": {}}
        if parameters.get("type", "object") != "object":
            raise RequestInvalid(f"tools.{i}.function.parameters", "must be a JSON Schema of type object")
        tools.append(Tool(fn.name, fn.description, parameters, fn.strict))
    return tuple(tools)


def tool_choice_of(value: str | ToolChoiceBody | None, tools: tuple[Tool, ...]) -> ToolChoice | None:
    if value is None:
        return None
    if not tools:
        raise RequestInvalid("tool_choice", "only allowed when tools are given")
    if isinstance(value, str):
        if value not in ("auto", "none", "required"):
            raise RequestInvalid("tool_choice", f"must be auto, none, required or a function; got {value!r}")
        return ToolChoice(value)  # type: ignore[arg-type]
    name = value.function.name
    if not any(t.name == name for t in tools):
        raise RequestInvalid("tool_choice.function.name", f"no tool named {name!r} in tools")
    return ToolChoice("function", name)


def thinking_of(field_name: str, bodies: list[ThinkingBlockBody]) -> tuple[ThinkingBlock, ...]:
    blocks: list[ThinkingBlock] = []
    for j, b in enumerate(bodies):
        where = f"{field_name}.{j}"
        if b.type == "thinking":
            if b.thinking is None or b.signature is None or b.data is not None:
                raise RequestInvalid(where, "a thinking block has thinking and signature")
            blocks.append(ThinkingBlock(b.thinking, b.signature))
        else:
            if not b.data or b.thinking is not None or b.signature is not None:
                raise RequestInvalid(where, "a redacted_thinking block has data only")
            blocks.append(ThinkingBlock(redacted=b.data))
    return tuple(blocks)


def reasoning_of(body: ReasoningBody | None) -> Reasoning | None:
    if body is None:
        return None
    if body.effort is None and body.budget_tokens is None:
        raise RequestInvalid("reasoning", "give effort, budget_tokens or both")
    if body.budget_tokens is not None and body.budget_tokens < 1:
        raise RequestInvalid("reasoning.budget_tokens", "must be a positive integer")
    return Reasoning(body.effort, body.budget_tokens)
