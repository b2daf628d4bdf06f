from __future__ import annotations

from typing import Any

import pytest

from tokenrelay import RequestInvalid, Settings, parse_chat_request
from tokenrelay.settings import parse_allowed_models

SETTINGS = Settings(
    max_message_chars=100,
    max_tokens_limit=500,
    default_max_tokens=200,
    configured_providers=frozenset({"echo", "anthropic"}),
)


def invalid(body: Any, settings: Settings = SETTINGS) -> RequestInvalid:
    with pytest.raises(RequestInvalid) as info:
        parse_chat_request(body, settings)
    return info.value


def test_request_message_shorthand_becomes_one_user_turn_with_defaults() -> None:
    req = parse_chat_request({"message": "hello"}, SETTINGS)
    assert [(m.role, m.content) for m in req.messages] == [("user", "hello")]
    assert (req.provider, req.model, req.max_tokens) == ("echo", "echo-1", 200)


def test_request_messages_history_and_options_kept() -> None:
    body = {
        "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
        "system": "be brief",
        "max_tokens": 50,
        "temperature": 1,
        "model": "echo-1",
    }
    req = parse_chat_request(body, SETTINGS)
    assert len(req.messages) == 2 and req.system == "be brief" and req.temperature == 1.0 and req.max_tokens == 50


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "message", "exactly one"),
        ({"message": "  "}, "message", "empty"),
        ({"message": "a", "messages": [{"role": "user", "content": "a"}]}, "message", "exactly one"),
        ({"messages": []}, "messages", "empty"),
        ({"messages": [{"role": "wizard", "content": "a"}]}, "messages.0.role", "one of"),
        ({"messages": [{"role": "assistant", "content": "a"}]}, "messages", "user message"),
        ({"message": 5}, "message", "string"),
        ({"message": "a", "provider": "nope"}, "provider", "unknown provider"),
        ({"message": "a", "provider": "openai"}, "provider", "not configured"),
        ({"message": "a", "model": "gpt-9"}, "model", "not allowed"),
        ({"message": "x" * 101}, "message", "too long"),
        ({"message": "a", "max_tokens": 0}, "max_tokens", "between"),
        ({"message": "a", "max_tokens": 501}, "max_tokens", "between"),
        ({"message": "a", "max_tokens": "5"}, "max_tokens", "integer"),
        ({"message": "a", "max_tokens": True}, "max_tokens", "integer"),
        ({"message": "a", "temperature": 3}, "temperature", "between"),
        ({"message": "a", "max_token": 5}, "max_token", "unknown field"),
        ({"message": "a", "provider": "anthropic", "temperature": 0.5}, "temperature", "not supported"),
    ],
)
def test_request_bad_input_names_the_field(body: dict[str, Any], field: str, words: str) -> None:
    err = invalid(body)
    assert err.field == field
    assert words in err.message


def test_request_non_object_body_rejected() -> None:
    assert invalid(["message"]).field == "body"


def test_settings_default_provider_follows_configured_keys() -> None:
    assert Settings.from_env({}).default_provider == "echo"
    s = Settings.from_env({"OPENAI_API_KEY": "sk-x"})
    assert s.default_provider == "openai" and "openai" in s.configured_providers
    assert Settings.from_env({"ANTHROPIC_API_KEY": "k"}).default_provider == "anthropic"


def test_settings_allowed_models_parsed_first_is_default() -> None:
    assert parse_allowed_models("echo:echo-1,echo-2; openai:gpt-4o-mini") == {
        "echo": ("echo-1", "echo-2"),
        "openai": ("gpt-4o-mini",),
    }
    with pytest.raises(ValueError, match="ALLOWED_MODELS"):
        parse_allowed_models("openai")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"CANCEL_POLL_MS": "soon"}, "CANCEL_POLL_MS"),
        ({"DEFAULT_PROVIDER": "openai"}, "not configured"),
        ({"MAX_TOKENS_LIMIT": "0"}, "MAX_TOKENS_LIMIT"),
    ],
)
def test_settings_bad_environment_fails_fast_naming_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Settings.from_env(env)
