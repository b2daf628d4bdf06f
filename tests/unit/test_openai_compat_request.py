"""``openai_request``: OpenAI request bodies -> ``ChatRequest``, and OpenAI-shaped 400/404s."""

from __future__ import annotations

from typing import Any

import pytest

from tokenrelay import Message, Settings
from tokenrelay.protection import Principal
from tokenrelay.requests import TextPart
from tokenrelay.transports.openai import OpenAIError
from tokenrelay_http.openai_request import list_models, parse_completion_request, resolve_model

SETTINGS = Settings.from_env(
    {
        "ALLOWED_MODELS": (
            "echo:echo-1;openai:gpt-4o-mini,gpt-4.1;anthropic:claude-haiku-4-5;bedrock:amazon.nova-lite-v1:0"
        ),
        "OPENAI_API_KEY": "sk-x",
        "ANTHROPIC_API_KEY": "sk-y",
        "BEDROCK_ENABLED": "true",
        "DEFAULT_PROVIDER": "echo",
        "MODEL_ALIASES": "gpt-4o-mini=openai/gpt-4o-mini,fast=echo/echo-1",
        "MAX_TOKENS_LIMIT": "500",
    }
)
HI = [{"role": "user", "content": "Hi"}]
NOVA = "amazon.nova-lite-v1:0"


def parse(**body: Any) -> Any:
    return parse_completion_request({"model": "echo/echo-1", "messages": HI, **body}, SETTINGS)


def error_of(**body: Any) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        parse(**body)
    return caught.value


def test_openai_request_minimal_translates_to_chat_request() -> None:
    request = parse()

    assert request.model == "echo/echo-1" and not request.stream and not request.include_usage
    assert request.chat.provider == "echo" and request.chat.model == "echo-1"
    assert request.chat.messages == (Message("user", "Hi"),)
    assert request.chat.max_tokens == 500 and request.chat.stop == ()  # the default, capped by the limit


def test_openai_request_full_honours_every_supported_field() -> None:
    request = parse(
        model="openai/gpt-4.1",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "ok", "refusal": None, "tool_calls": None, "annotations": []},
            {"role": "user", "content": "again"},
        ],
        stream=True,
        stream_options={"include_usage": True, "include_obfuscation": False},
        max_completion_tokens=99,
        temperature=0.2,
        stop=["END", "\n\n"],
    )

    assert request.stream and request.include_usage and request.model == "openai/gpt-4.1"
    assert request.chat.messages == (
        Message("system", "Be brief."),
        Message("user", "a\nb", parts=(TextPart("a"), TextPart("b"))),
        Message("assistant", "ok"),
        Message("user", "again"),
    )
    assert (request.chat.max_tokens, request.chat.temperature, request.chat.stop) == (99, 0.2, ("END", "\n\n"))


def test_openai_request_stop_string_is_one_stop_sequence() -> None:
    assert parse(stop="###").chat.stop == ("###",)


def test_openai_request_alias_routes_to_its_target() -> None:
    assert parse(model="gpt-4o-mini").model == "openai/gpt-4o-mini"
    assert parse(model="fast").chat.provider == "echo"


@pytest.mark.parametrize(
    "extra",
    [
        {"n": 1},
        {"safety_identifier": "x", "prompt_cache_key": "k"},
        {"top_p": 1, "presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": False, "store": False},
        {"parallel_tool_calls": True, "service_tier": "auto", "response_format": {"type": "text"}},
        {"tools": None, "seed": None, "stop": None, "temperature": None, "max_tokens": None},
    ],
)
def test_openai_request_harmless_fields_are_accepted_and_ignored(extra: dict[str, Any]) -> None:
    assert parse(**extra).chat.provider == "echo"


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"n": 2}, "n", "unsupported_parameter"),
        ({"top_p": 0.5, "model": "anthropic/claude-haiku-4-5"}, "top_p", "invalid_request"),
        ({"top_p": 1.5}, "top_p", "invalid_request"),
        ({"functions": [{"name": "f"}]}, "functions", "unsupported_parameter"),
        ({"tools": [{"type": "function"}]}, "tools", "invalid_request"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort", "invalid_value"),
        (
            {"response_format": {"type": "json_object"}, "model": "anthropic/claude-haiku-4-5"},
            "response_format",
            "invalid_request",
        ),
        ({"response_format": {"type": "json_schema"}}, "response_format", "invalid_request"),
        ({"response_format": {"type": "xml"}}, "response_format", "invalid_request"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a b", "schema": {"type": "object"}}}},
            "response_format",
            "invalid_request",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}, "model": f"bedrock/{NOVA}"},
            "response_format",
            "invalid_request",
        ),
        ({"seed": 7, "model": "bedrock/amazon.nova-lite-v1:0"}, "seed", "invalid_request"),
        ({"presence_penalty": 0.5, "model": "anthropic/claude-haiku-4-5"}, "presence_penalty", "invalid_request"),
        ({"frequency_penalty": -3}, "frequency_penalty", "invalid_request"),
        ({"user": "bad\u00e9", "model": "bedrock/amazon.nova-lite-v1:0"}, "user", "invalid_request"),
        ({"n": 4}, "n", "unsupported_parameter"),
        ({"logprobs": True}, "logprobs", "unsupported_parameter"),
        ({"n": True}, "n", "unsupported_parameter"),
        ({"max_tokenz": 5}, "max_tokenz", "unknown_parameter"),
        ({"stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
        ({"stream": True, "stream_options": {"colour": 1}}, "stream_options", "invalid_value"),
        ({"stream": "yes"}, "stream", "invalid_value"),
        ({"max_tokens": 5, "max_completion_tokens": 5}, "max_tokens", "invalid_value"),
        ({"max_completion_tokens": 501}, "max_completion_tokens", "invalid_request"),
        ({"max_tokens": "lots"}, "max_tokens", "invalid_request"),
        ({"temperature": 3}, "temperature", "invalid_request"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_request"),
        ({"stop": [""]}, "stop", "invalid_request"),
        ({"stop": 5}, "stop", "invalid_request"),
        ({"messages": []}, "messages", "invalid_value"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages", "invalid_request"),
        ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages[0].name", "unsupported_parameter"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages[0].content[0]",
            "invalid_value",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages",
            "invalid_request",
        ),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "messages", "invalid_request"),
        ({"messages": [{"role": "user", "content": "x" * 40_000}]}, "messages", "invalid_request"),
    ],
)
def test_openai_request_unsupported_or_bad_field_is_400_naming_the_param(
    extra: dict[str, Any], param: str, code: str
) -> None:
    error = error_of(**extra)

    assert (error.status, error.type, error.param, error.code) == (400, "invalid_request_error", param, code)
    assert error.body()["error"]["param"] == param


def test_openai_request_temperature_for_anthropic_is_400_on_temperature() -> None:
    error = error_of(model="anthropic/claude-haiku-4-5", temperature=0.5)

    assert (error.status, error.param) == (400, "temperature")


@pytest.mark.parametrize("model", ["gpt-5-ultra", "openai/gpt-5-ultra", "bogus/echo-1", "echo/", "/echo-1", "echo"])
def test_openai_request_unknown_model_is_404_model_not_found(model: str) -> None:
    error = error_of(model=model)

    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")
    assert model in error.message


def test_openai_request_missing_model_or_non_object_body_is_400() -> None:
    with pytest.raises(OpenAIError) as caught:
        parse_completion_request({"messages": HI}, SETTINGS)
    assert (caught.value.status, caught.value.param) == (400, "model")
    with pytest.raises(OpenAIError) as caught:
        parse_completion_request(["not", "an", "object"], SETTINGS)
    assert caught.value.status == 400


def test_openai_request_unconfigured_provider_model_is_404() -> None:
    settings = Settings.from_env({"ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini"})  # no OpenAI key

    with pytest.raises(OpenAIError) as caught:
        resolve_model("openai/gpt-4o-mini", settings)

    assert caught.value.status == 404


def test_openai_models_lists_allowed_models_of_configured_providers_then_aliases() -> None:
    assert list_models(SETTINGS) == [
        ("anthropic/claude-haiku-4-5", "anthropic"),
        ("bedrock/amazon.nova-lite-v1:0", "bedrock"),
        ("echo/echo-1", "echo"),
        ("openai/gpt-4o-mini", "openai"),
        ("openai/gpt-4.1", "openai"),
        ("gpt-4o-mini", "openai"),
        ("fast", "echo"),
    ]


def test_openai_models_for_a_key_with_a_model_list_are_only_its_models_and_their_aliases() -> None:
    key = Principal("k1", models=("openai:gpt-4o-mini", "bedrock:*"))
    assert list_models(SETTINGS, key.allows) == [
        ("bedrock/amazon.nova-lite-v1:0", "bedrock"),
        ("openai/gpt-4o-mini", "openai"),
        ("gpt-4o-mini", "openai"),  # an alias of a model the key may use; "fast" (echo) is not
    ]
    assert list_models(SETTINGS, Principal("k2").allows) == list_models(SETTINGS)  # no list: everything


def test_settings_model_alias_to_a_model_off_the_allow_list_stops_the_start() -> None:
    with pytest.raises(ValueError, match="MODEL_ALIASES"):
        Settings.from_env({"MODEL_ALIASES": "x=openai/gpt-9"})
    with pytest.raises(ValueError, match="MODEL_ALIASES"):
        Settings.from_env({"MODEL_ALIASES": "no-target"})


def test_settings_bedrock_enabled_configures_bedrock_and_rejects_bad_values() -> None:
    assert "bedrock" in Settings.from_env({"BEDROCK_ENABLED": "true"}).configured_providers
    assert Settings.from_env({"BEDROCK_ENABLED": "true"}).default_provider == "bedrock"
    assert "bedrock" not in Settings.from_env({}).configured_providers
    with pytest.raises(ValueError, match="BEDROCK_ENABLED"):
        Settings.from_env({"BEDROCK_ENABLED": "yes"})


def test_openai_request_sampling_settings_reach_the_chat_request_and_defaults_are_not_forwarded() -> None:
    chat = parse(
        model="openai/gpt-4o-mini", top_p=0.9, seed=1, stop="END", presence_penalty=0.5, frequency_penalty=-1, user="u"
    ).chat
    assert (chat.top_p, chat.seed, chat.stop, chat.presence_penalty, chat.frequency_penalty, chat.user) == (
        0.9,
        1,
        ("END",),
        0.5,
        -1.0,
        "u",
    )
    # what clients send on every request changes nothing: not forwarded, so Anthropic takes it
    chat = parse(model="anthropic/claude-haiku-4-5", top_p=1, presence_penalty=0, frequency_penalty=0.0).chat
    assert (chat.top_p, chat.presence_penalty, chat.frequency_penalty) == (None, None, None)
