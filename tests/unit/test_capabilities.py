"""Capabilities per model (docs/protocol.md §12): the shipped table, its overrides, and the
400 that names provider, model and field before any upstream call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tokenrelay import RequestInvalid, Settings, parse_chat_request
from tokenrelay.catalog import DEFAULT_CAPABILITIES, Capabilities
from tokenrelay.settings import DEFAULT_MODELS

ENV = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant", "BEDROCK_ENABLED": "true"}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def test_every_default_model_has_a_shipped_entry() -> None:
    shipped = {(p, m) for p, models in DEFAULT_MODELS.items() for m in models}
    assert shipped == set(DEFAULT_CAPABILITIES)


def test_a_model_off_the_table_gets_its_providers_default() -> None:
    settings = Settings.from_env({**ENV, "ALLOWED_MODELS": "openai:my-vllm;bedrock:meta.llama3-8b,anthropic.claude-x"})
    assert settings.capabilities("openai", "my-vllm") == Capabilities()
    assert settings.capabilities("bedrock", "meta.llama3-8b").reasoning is False
    assert settings.capabilities("bedrock", "anthropic.claude-x").reasoning is True


def test_an_override_changes_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "caps.json"
    path.write_text(json.dumps({"openai/gpt-4o-mini": {"reasoning": True, "images": False}}))
    env = {
        **ENV,
        "MODEL_CAPABILITIES_FILE": str(path),
        "MODEL_CAPABILITIES": '{"openai/gpt-4o-mini": {"tools": false}}',
    }
    caps = Settings.from_env(env).capabilities("openai", "gpt-4o-mini")
    # the file, then the variable over it
    assert caps == Capabilities(images=False, tools=False, reasoning=True, structured_output=True)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MODEL_CAPABILITIES": "{"}, "not JSON"),
        ({"MODEL_CAPABILITIES": "[]"}, "expected a JSON object"),
        ({"MODEL_CAPABILITIES": '{"gpt-4o": {}}'}, "'provider/model'"),
        ({"MODEL_CAPABILITIES": '{"openai/gpt-4o": {"vision": true}}'}, "unknown capability 'vision'"),
        ({"MODEL_CAPABILITIES": '{"openai/gpt-4o": {"tools": 1}}'}, "expected true or false"),
        ({"MODEL_CAPABILITIES_FILE": "/nonexistent/caps.json"}, "cannot read"),
    ],
)
def test_a_bad_override_stops_the_start_naming_it(env: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match="MODEL_CAPABILITIES") as caught:
        Settings.from_env({**ENV, **env})
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("override", "body", "field"),
    [
        ({"tools": False}, {"tools": [TOOL]}, "tools"),
        ({"reasoning": False}, {"reasoning": {"effort": "low"}}, "reasoning"),
        (
            {"tools": False},
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                ],
            },
            "messages.1.tool_calls",
        ),
    ],
)
def test_what_the_model_lacks_is_a_400_naming_provider_model_and_field(
    override: dict[str, bool], body: dict[str, Any], field: str
) -> None:
    settings = Settings.from_env({**ENV, "MODEL_CAPABILITIES": json.dumps({"echo/echo-1": override})})
    whole = body if "messages" in body else {"message": "hi", **body}
    with pytest.raises(RequestInvalid) as caught:
        parse_chat_request({**whole, "provider": "echo"}, settings)
    assert caught.value.field == field
    assert "'echo'" in caught.value.message and "'echo-1'" in caught.value.message


def test_reasoning_off_the_table_is_refused_also_when_sent_back_as_thinking_blocks() -> None:
    settings = Settings.from_env(
        {**ENV, "ALLOWED_MODELS": "bedrock:amazon.nova-lite-v1:0", "DEFAULT_PROVIDER": "bedrock"}
    )
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "x",
            "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}],
        },
        {"role": "user", "content": "more"},
    ]
    with pytest.raises(RequestInvalid) as caught:
        parse_chat_request({"messages": messages}, settings)
    assert caught.value.field == "messages.1.thinking_blocks"
    assert "'amazon.nova-lite-v1:0'" in caught.value.message


def test_no_fallback_for_a_request_the_fallback_model_cannot_serve() -> None:
    """``FALLBACK_MODEL`` takes over only what it could answer as asked: tools and an image go to
    no fallback without them (the request's own provider's error is the answer), text does."""
    lacking = json.dumps({"echo/echo-1": {"tools": False, "images": False}})
    env = {**ENV, "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini", "FALLBACK_MODEL": "echo:echo-1"}
    settings = Settings.from_env({**env, "MODEL_CAPABILITIES": lacking})
    png = (
        "data:image/png;base64,"
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
    image = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": png}}],
        }
    ]
    asked: dict[str, dict[str, Any]] = {
        "text": {"message": "hi"},
        "tools": {"message": "hi", "tools": [TOOL]},
        "image": {"messages": image},
    }
    served = {
        name: parse_chat_request({**body, "provider": "openai"}, settings).fallback for name, body in asked.items()
    }
    assert served == {"text": True, "tools": False, "image": False}
    capable = Settings.from_env(env)  # echo-1's shipped entry has tools and images
    assert all(parse_chat_request({**b, "provider": "openai"}, capable).fallback for b in asked.values())
