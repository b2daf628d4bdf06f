"""What each provider (and model) can do with a request: anything else is a 400 naming the
provider and the field, never silently dropped (docs/protocol.md §1, §11, §12).

First the model's capabilities (``catalog.capabilities``, overridable per deployment): tools,
reasoning (and thinking_blocks sent back), images, structured output. Then the provider's own
rules:

    echo       everything (a deterministic stand-in: docs/protocol.md §11)
    openai     tools, tool_choice, parallel_tool_calls; reasoning.effort (``reasoning_effort``);
               no budget_tokens, no thinking_blocks to send back (OpenAI keeps reasoning itself),
               no is_error on a tool result (its tool messages have no such flag); every sampling setting
    anthropic  tools, tool_choice (``none``, ``auto``, ``required`` = any, a function = tool),
               parallel_tool_calls (false = ``disable_parallel_tool_use``); reasoning as a
               ``thinking`` budget (effort -> ``EFFORT_BUDGETS``, at least 1,024 and below
               max_tokens), not with a forced tool (Anthropic refuses that); thinking_blocks;
               no temperature, top_p, seed or penalties (API version 2026-10-21 refuses sampling
               parameters); stop as ``stop_sequences``, user as ``metadata.user_id``
    bedrock    tools, tool_choice but ``none`` (Converse has none); not parallel_tool_calls
               false; reasoning as the Claude ``thinking`` budget in
               ``additionalModelRequestFields`` (the table gives it to Claude models only); a tool
               result's is_error (``status``) for Claude models only;
               temperature 0 to 1, top_p, stop; user as ``requestMetadata`` (its characters);
               no seed, no penalties (Converse has none)
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import RequestInvalid
from ._images import ImagePart

if TYPE_CHECKING:
    from ..catalog import Capabilities
    from ._chat import ChatRequest

__all__ = ["EFFORT_BUDGETS", "MIN_BUDGET", "check_capabilities", "thinking_budget"]

# What ``requestMetadata`` (Bedrock) takes as a value.
_BEDROCK_METADATA = re.compile(r"[a-zA-Z0-9 \t\n\x0b\f\r:_@$#=/+,.-]{1,256}")  # Java's \s: ASCII only
_NOT_SAMPLED = {  # sampling settings each provider has no parameter for
    "anthropic": ("top_p", "seed", "presence_penalty", "frequency_penalty"),
    "bedrock": ("seed", "presence_penalty", "frequency_penalty"),
}
_WHY = {"anthropic": " (its API version 2026-10-21 takes no sampling parameters)", "bedrock": " (Converse has none)"}

# Anthropic's thinking budget for an effort (its minimum is 1,024 tokens).
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
MIN_BUDGET = 1024


def _refuse(request: ChatRequest, field: str, why: str) -> RequestInvalid:
    return RequestInvalid(field, f"not supported by provider {request.provider!r}{why}")


def _lacks(request: ChatRequest, field: str) -> RequestInvalid:
    return RequestInvalid(
        field,
        f"not supported by provider {request.provider!r} model {request.model!r} "
        "(its capabilities: GET /v1/models; a deployment changes them with MODEL_CAPABILITIES)",
    )


def _check_model(request: ChatRequest, caps: Capabilities) -> None:
    """What the model itself cannot do, whatever the provider's API could carry."""
    if not caps.tools:
        if request.tools:
            raise _lacks(request, "tools")
        if (i := next((i for i, m in enumerate(request.messages) if m.tool_calls), None)) is not None:
            raise _lacks(request, f"messages.{i}.tool_calls")
    if not caps.images and (at := _first_image(request)) is not None:
        raise _lacks(request, at)
    if request.response_format is not None and not caps.structured_output:
        raise _lacks(request, "response_format")
    if not caps.reasoning:
        if request.reasoning is not None and request.reasoning.enabled:
            raise _lacks(request, "reasoning")
        if (i := _thinking_blocks(request)) is not None:
            raise _lacks(request, f"messages.{i}.thinking_blocks")


def thinking_budget(request: ChatRequest) -> int | None:
    """The ``thinking`` budget of an Anthropic model for the request's reasoning (None: off)."""
    r = request.reasoning
    if r is None or not r.enabled:
        return None
    budget = r.budget_tokens if r.budget_tokens is not None else EFFORT_BUDGETS[r.effort or "medium"]
    return min(budget, request.max_tokens - 1)


def _check_thinking(request: ChatRequest) -> None:
    r = request.reasoning
    if r is None or not r.enabled:
        return
    if r.budget_tokens is not None and r.budget_tokens < MIN_BUDGET:
        raise _refuse(request, "reasoning.budget_tokens", f": at least {MIN_BUDGET} tokens")
    if r.budget_tokens is not None and r.budget_tokens >= request.max_tokens:
        raise RequestInvalid("max_tokens", f"must be above reasoning.budget_tokens ({r.budget_tokens})")
    if request.max_tokens <= MIN_BUDGET:
        raise RequestInvalid("max_tokens", f"must be above {MIN_BUDGET} for reasoning on {request.provider!r}")
    choice = request.tool_choice
    if choice is not None and choice.mode in ("required", "function"):
        raise _refuse(request, "tool_choice", f": {choice.mode} with reasoning (only auto or none)")


def _first_image(request: ChatRequest, remote: bool = False) -> str | None:
    """Where the first image part is (the first remote one, with ``remote``): its field."""
    for i, m in enumerate(request.messages):
        for j, p in enumerate(m.parts):
            if isinstance(p, ImagePart) and not (remote and p.inline):
                return f"messages.{i}.content.{j}"
    return None


def _thinking_blocks(request: ChatRequest) -> int | None:
    return next((i for i, m in enumerate(request.messages) if m.thinking), None)


def _failed_result(request: ChatRequest) -> int | None:
    return next((i for i, m in enumerate(request.messages) if m.is_error), None)


def _check_sampling(request: ChatRequest) -> None:
    for name in _NOT_SAMPLED.get(request.provider, ()):
        if getattr(request, name) is not None:
            raise _refuse(request, name, _WHY[request.provider])
    output = request.response_format
    if output is not None and output.kind == "json_object" and request.provider in ("anthropic", "bedrock"):
        raise _refuse(request, "response_format", ": json_object (it constrains output to a json_schema only)")
    if request.prompt_cache_key is not None and request.provider in ("anthropic", "bedrock"):
        raise _refuse(request, "prompt_cache_key", ": mark the cached prefix with cache_control on a content part")
    if request.provider == "bedrock" and request.user is not None and not _BEDROCK_METADATA.fullmatch(request.user):
        raise _refuse(request, "user", ": only letters, digits, spaces and :_@$#=/+,.- (it travels as requestMetadata)")


def check_capabilities(request: ChatRequest, caps: Capabilities) -> None:
    """Raise ``RequestInvalid`` for the first thing ``request.model`` (``caps``) or
    ``request.provider`` cannot do."""
    _check_model(request, caps)
    _check_sampling(request)
    provider = request.provider
    r = request.reasoning
    if provider == "openai":
        if r is not None and r.budget_tokens is not None:
            raise _refuse(request, "reasoning.budget_tokens", ": give reasoning.effort")
        if (i := _thinking_blocks(request)) is not None:
            raise _refuse(request, f"messages.{i}.thinking_blocks", "")
        if (i := _failed_result(request)) is not None:
            raise _refuse(request, f"messages.{i}.is_error", ": put the failure in the content")
    elif provider == "anthropic":
        if request.temperature is not None:
            raise _refuse(request, "temperature", "")
        _check_thinking(request)
    elif provider == "bedrock":
        if (at := _first_image(request, remote=True)) is not None:
            raise _refuse(
                request, f"{at}.image_url.url", ": an https image URL (Bedrock takes the bytes: send a data: URL)"
            )
        choice = request.tool_choice
        if choice is not None and choice.mode == "none":
            raise _refuse(request, "tool_choice", ": 'none' (leave tools out instead)")
        if request.parallel_tool_calls is False:
            raise _refuse(request, "parallel_tool_calls", ": false")
        claude = "anthropic." in request.model or "claude" in request.model  # Converse's status: Claude only
        if (i := _failed_result(request)) is not None and not claude:
            raise _refuse(request, f"messages.{i}.is_error", f" for model {request.model!r}")
        if request.temperature is not None and request.temperature > 1.0:
            raise _refuse(request, "temperature", ": above 1")
        _check_thinking(request)
