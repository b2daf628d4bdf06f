"""Capabilities per model: which accept images, tools, reasoning and structured output
(docs/protocol.md §12).

The table below is shipped for the default models (``settings.DEFAULT_MODELS``). A model not
in it gets its provider's default: what the provider's API can carry (an OpenAI-compatible
server behind ``OPENAI_BASE_URL`` may serve any model, so nothing is refused for it up front).
A deployment overrides or extends the table with ``MODEL_CAPABILITIES`` (JSON) or
``MODEL_CAPABILITIES_FILE`` (a path to the same JSON), keyed ``provider/model``, each entry
naming only the capabilities it changes::

    {"openai/gpt-4o-mini": {"reasoning": true}, "openai/my-vllm-model": {"images": false}}

A request that needs what its model lacks is a 400 naming the provider, the model and the
field, before any upstream call (``requests._capabilities``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ._overrides import json_overrides

__all__ = [
    "CAPABILITY_FIELDS",
    "DEFAULT_CAPABILITIES",
    "Capabilities",
    "capabilities_from_env",
    "parse_capabilities",
    "provider_default",
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    images: bool = True  # image_url content parts
    tools: bool = True  # tools, tool_choice, tool calls in the answer
    reasoning: bool = True  # reasoning (effort or a thinking budget), thinking_blocks sent back
    structured_output: bool = True  # response_format json_object / json_schema

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


CAPABILITY_FIELDS = tuple(f.name for f in fields(Capabilities))
_ALL = Capabilities()
_NO_REASONING = Capabilities(reasoning=False)

# As the providers' model pages state them (docs/protocol.md §12 names the sources).
DEFAULT_CAPABILITIES: dict[tuple[str, str], Capabilities] = {
    ("echo", "echo-1"): _ALL,
    ("openai", "gpt-4o-mini"): _NO_REASONING,
    ("openai", "gpt-4.1-mini"): _NO_REASONING,
    ("openai", "gpt-4.1"): _NO_REASONING,
    ("openai", "gpt-4o"): _NO_REASONING,
    ("openai", "o4-mini"): _ALL,
    ("anthropic", "claude-haiku-4-5"): _ALL,
    ("anthropic", "claude-sonnet-4-6"): _ALL,
    ("anthropic", "claude-opus-4-6"): _ALL,
    ("bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0"): _ALL,
    ("bedrock", "amazon.nova-lite-v1:0"): Capabilities(reasoning=False, structured_output=False),
}


def provider_default(provider: str, model: str) -> Capabilities:
    """A model the table does not name: what its provider's API can carry. On Bedrock,
    reasoning is the Claude ``thinking`` budget, so only Anthropic models have it."""
    if provider == "bedrock" and not ("anthropic." in model or "claude" in model):
        return _NO_REASONING
    return _ALL


def parse_capabilities(
    spec: Any, base: Mapping[tuple[str, str], Capabilities], source: str = "MODEL_CAPABILITIES"
) -> dict[tuple[str, str], Capabilities]:
    """``{"provider/model": {"images": false, ...}}`` applied over ``base``; ValueError naming
    ``source`` and the entry for anything else."""
    if not isinstance(spec, dict):
        raise ValueError(f"{source}: expected a JSON object of 'provider/model': {{capability: bool}}")
    table = dict(base)
    for name, entry in spec.items():
        provider, slash, model = name.partition("/")
        if not slash or not provider or not model:
            raise ValueError(f"{source}: {name!r} is not 'provider/model'")
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: {name!r}: expected an object of capability: true/false")
        for key, value in entry.items():
            if key not in CAPABILITY_FIELDS:
                raise ValueError(
                    f"{source}: {name!r}: unknown capability {key!r}; known: {', '.join(CAPABILITY_FIELDS)}"
                )
            if not isinstance(value, bool):
                raise ValueError(f"{source}: {name!r}.{key}: expected true or false")
        current = table.get((provider, model)) or provider_default(provider, model)
        table[(provider, model)] = replace(current, **entry)
    return table


def capabilities_from_env(env: Mapping[str, str]) -> dict[tuple[str, str], Capabilities]:
    """The shipped table, then ``MODEL_CAPABILITIES_FILE``, then ``MODEL_CAPABILITIES`` over it."""
    table = dict(DEFAULT_CAPABILITIES)
    for var, spec in json_overrides(env, "MODEL_CAPABILITIES"):
        table = parse_capabilities(spec, table, var)
    return table
