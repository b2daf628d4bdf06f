"""An OpenAI Chat Completions request -> a validated ``tokenrelay.ChatRequest``.

The translation builds a docs/protocol.md §1 body and runs it through the same
``parse_chat_request`` as ``/chat/stream``, so the same limits and allow-list
apply; its errors come back in OpenAI's shape, naming the OpenAI ``param``.

Models are ``provider/model`` (``anthropic/claude-haiku-4-5``, ``echo/echo-1``) or
an alias of the deployment's ``MODEL_ALIASES``; anything else, or a model the
deployment does not allow, is a 404 ``model_not_found`` (as OpenAI answers).

Fields (a field set to ``null`` counts as absent, as in OpenAI's API):

- honoured: ``model``, ``messages``, ``stream``, ``stream_options.include_usage``,
  ``max_tokens`` / ``max_completion_tokens`` (not both), ``temperature``, ``top_p``, ``seed``,
  ``stop``, ``presence_penalty``, ``frequency_penalty``, ``user``, ``prompt_cache_key``, ``tools``, ``tool_choice``,
  ``parallel_tool_calls``, ``response_format`` (``text``, ``json_object``, ``json_schema``: docs/protocol.md
  §14) and ``reasoning_effort`` (as ``/chat/stream``'s fields; what the
  provider or model cannot do is a 400 naming it). ``top_p: 1`` and zero penalties are the
  defaults, sent by some clients on every request: they change nothing and are not forwarded;
- accepted and ignored, because they never change the answer: ``safety_identifier``,
  ``stream_options.include_obfuscation``, and the no-op values SDKs send
  by default (``n=1``, ``logprobs=false``, ``store=false``, ``service_tier``
  ``auto``/``default``);
- ``n`` above 1 is a 400 (one choice per request); any other value of those, and OpenAI
  features TokenRelay does not relay (legacy ``functions``, audio...), is a
  400 naming the ``param``; an unknown field is a 400 ``Unrecognized request argument supplied``.

Messages: roles ``system``, ``developer`` (as system), ``user``, ``assistant``, ``tool``;
``content`` is a string or a list of ``text`` and ``image_url`` parts (each may carry
``cache_control``: docs/protocol.md §13), or null for
an assistant message with ``tool_calls``. An assistant message may carry ``tool_calls`` and
``thinking_blocks`` (sent back to the provider), a tool message its ``tool_call_id``. Fields
an SDK echoes back from a previous answer (``refusal``, ``annotations``...) are accepted
when empty; ``reasoning_content`` is accepted and not sent back (providers that need their
reasoning back take the signed ``thinking_blocks``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tokenrelay import ChatRequest, RequestInvalid, Settings, parse_chat_request
from tokenrelay.requests import EFFORTS
from tokenrelay.transports.openai import OpenAIError, openai_error

__all__ = [
    "CompletionRequest",
    "described_models",
    "list_models",
    "model_not_found",
    "parse_completion_request",
    "resolve_model",
]

_IGNORED = frozenset({"safety_identifier"})
_NO_OP: dict[str, tuple[object, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "store": (False,),
    "service_tier": ("auto", "default"),
}
_UNSUPPORTED = frozenset(_NO_OP) | frozenset(
    "functions function_call logit_bias top_logprobs modalities audio prediction "
    "web_search_options verbosity metadata".split()
)
_SAMPLING = (
    "temperature",
    "top_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "user",
    "prompt_cache_key",
)
_PASSED = (
    *_SAMPLING,
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
)  # the same shape in /chat/stream's body
_DEFAULTS = {"top_p": 1, "presence_penalty": 0, "frequency_penalty": 0}  # no-ops some clients always send
_HONOURED = frozenset(
    {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens"}
    | {*_SAMPLING, "response_format", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort"}
)
_STREAM_OPTIONS = frozenset({"include_usage", "include_obfuscation"})
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
_ECHOED_FIELDS = frozenset({"name", "refusal", "function_call", "audio", "annotations"})
_PART_FIELDS = {"assistant": ("tool_calls", "thinking_blocks"), "tool": ("tool_call_id",)}


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    chat: ChatRequest
    model: str  # as answered in ``model``: provider/model
    stream: bool
    include_usage: bool


def invalid(param: str | None, message: str, code: str | None = "invalid_value") -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code)


def _same(value: object, allowed: tuple[object, ...]) -> bool:
    return any(type(value) is type(a) and value == a for a in allowed)


def _check_fields(body: dict[str, Any]) -> None:
    for name, value in body.items():
        if name not in _HONOURED and name not in _IGNORED and name not in _UNSUPPORTED:
            raise invalid(name, f"Unrecognized request argument supplied: {name}", "unknown_parameter")
        if name in _HONOURED or name in _IGNORED or value is None:
            continue
        if name in _NO_OP and _same(value, _NO_OP[name]):
            continue
        if name == "n":
            raise invalid(
                "n", f"'n': {value!r}: TokenRelay streams one choice per request (n=1)", "unsupported_parameter"
            )
        shown = repr(value) if isinstance(value, str | int | float | bool) else "this value"
        raise invalid(name, f"'{name}': {shown} is not supported by TokenRelay", "unsupported_parameter")


def _content(value: Any, param: str) -> str | list[Any]:
    """A string, or the parts as they are (``parse_chat_request`` checks them: §13)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise invalid(param, f"'{param}': expected a string or a non-empty list of parts")
    for j, part in enumerate(value):
        if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
            raise invalid(f"{param}[{j}]", f"'{param}[{j}]': only text and image_url parts are supported")
    return value


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise invalid("messages", "'messages': expected a non-empty array")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(value):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid(param, f"'{param}': expected an object")
        got_role = message.get("role")
        role = _ROLES.get(got_role) if isinstance(got_role, str) else None
        if role is None:
            got = repr(got_role)[:64]
            raise invalid(
                f"{param}.role", f"'{param}.role': {got} is not supported; use system, user, assistant or tool"
            )
        passed = _PART_FIELDS.get(role, ())
        fields: dict[str, Any] = {"role": role}
        for key, field in message.items():
            if key in passed:
                if field not in (None, []):
                    fields[key] = _calls(field) if key == "tool_calls" else field
                continue
            if role == "assistant" and key == "reasoning_content":
                continue  # our own answer echoed back: documented as not sent
            if key not in ("role", "content") and (key not in _ECHOED_FIELDS or field not in (None, [], "")):
                raise invalid(
                    f"{param}.{key}", f"'{param}.{key}': not supported by TokenRelay", "unsupported_parameter"
                )
        content = message.get("content")
        if content is not None or not fields.get("tool_calls"):
            fields["content"] = _content(content, f"{param}.content")
        out.append(fields)
    return out


def _calls(value: Any) -> Any:
    """Tool calls as a client accumulated them from a stream: the chunks' ``index`` dropped."""
    if not isinstance(value, list):
        return value
    return [{k: v for k, v in c.items() if k != "index"} if isinstance(c, dict) else c for c in value]


def resolve_model(name: Any, settings: Settings) -> tuple[str, str]:
    """``provider/model`` or an alias -> ``(provider, model)``; 404 ``model_not_found`` otherwise."""
    if not isinstance(name, str) or not name:
        raise invalid("model", "you must provide a model parameter", None)
    provider, sep, model = name.partition("/")
    target = settings.model_aliases.get(name) or ((provider, model) if sep and provider and model else None)
    if target is not None:
        try:
            return target[0], settings.resolve_model(*target)
        except RequestInvalid:
            pass
    raise model_not_found(name)


def model_not_found(name: str) -> OpenAIError:
    """OpenAI's 404 for a model that does not exist or that the caller may not use: the same words."""
    return OpenAIError(
        404,
        f"The model `{name}` does not exist or you do not have access to it. "
        "Name models provider/model or by an alias; GET /v1/models lists them.",
        param="model",
        code="model_not_found",
    )


def list_models(settings: Settings, allows: Callable[[str, str], bool] | None = None) -> list[tuple[str, str]]:
    """``(id, owned_by)`` for every model this deployment serves, then its aliases; with
    ``allows(provider, model)`` (the caller's API key), only those it lets the caller use."""
    providers = sorted(settings.configured_providers & set(settings.allowed_models))
    models = [(f"{p}/{m}", p, (p, m)) for p in providers for m in settings.allowed_models[p]]
    aliases = [(alias, p, (p, m)) for alias, (p, m) in settings.model_aliases.items() if p in providers]
    return [(name, owner) for name, owner, target in models + aliases if allows is None or allows(*target)]


def described_models(
    settings: Settings, allows: Callable[[str, str], bool] | None = None
) -> list[tuple[str, str, dict[str, bool]]]:
    """``list_models`` with each model's capabilities (an alias: its target's)."""
    out = []
    for name, owner in list_models(settings, allows):
        provider, model = resolve_model(name, settings)
        out.append((name, owner, settings.capabilities(provider, model).as_dict()))
    return out


def parse_completion_request(body: Any, settings: Settings) -> CompletionRequest:
    """Validate a decoded JSON body; raise ``OpenAIError`` (400/404) naming the ``param``."""
    if not isinstance(body, dict):
        raise invalid(None, "We could not parse the JSON body of your request: expected a JSON object.", None)
    _check_fields(body)
    provider, model = resolve_model(body.get("model"), settings)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream", "'stream': expected a boolean")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not stream:
            raise invalid("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
        if not isinstance(options, dict) or not set(options) <= _STREAM_OPTIONS:
            raise invalid(
                "stream_options", f"'stream_options': only {', '.join(sorted(_STREAM_OPTIONS))} are supported"
            )
        include_usage = options.get("include_usage") is True
    limit_param = "max_tokens"
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise invalid("max_tokens", "max_tokens and max_completion_tokens cannot both be set")
    if body.get("max_completion_tokens") is not None:
        limit_param = "max_completion_tokens"
    fields: dict[str, Any] = {"messages": _messages(body.get("messages")), "provider": provider, "model": model}
    if body.get(limit_param) is not None:
        fields["max_tokens"] = body[limit_param]
    for name in _PASSED:
        value = body.get(name)
        if value is not None and not (name in _DEFAULTS and _same(value, (_DEFAULTS[name], float(_DEFAULTS[name])))):
            fields[name] = value
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in EFFORTS:
            raise invalid("reasoning_effort", f"'reasoning_effort': must be one of {', '.join(EFFORTS)}")
        fields["reasoning"] = {"effort": effort}
    try:
        chat = parse_chat_request(fields, settings)
    except RequestInvalid as exc:
        param = exc.field.split(".")[0]
        names = {"max_tokens": limit_param, "provider": "model", "message": "messages", "reasoning": "reasoning_effort"}
        param = names.get(param, param)
        raise openai_error(exc, param) from None
    return CompletionRequest(chat, f"{provider}/{model}", bool(stream), include_usage)
