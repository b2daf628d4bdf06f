"""Content parts (docs/protocol.md §13): what a part may carry, what is refused, and that the
WebSocket worker's round trip (``request_fields``) keeps them."""

from __future__ import annotations

from typing import Any

import pytest

from tokenrelay import RequestInvalid, Settings, parse_chat_request
from tokenrelay.requests import TextPart, request_fields

SETTINGS = Settings.from_env(
    {"ANTHROPIC_API_KEY": "sk-ant", "OPENAI_API_KEY": "sk", "BEDROCK_ENABLED": "true", "DEFAULT_PROVIDER": "echo"}
)
MARK = {"type": "ephemeral"}


def parse(*messages: dict[str, Any], **body: Any) -> Any:
    return parse_chat_request({"messages": list(messages), **body}, SETTINGS)


def test_parts_keep_their_cache_markers_and_their_text_is_the_content() -> None:
    request = parse(
        {"role": "system", "content": [{"type": "text", "text": "Manual", "cache_control": MARK}]},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        provider="anthropic",
    )
    assert request.messages[0].parts == (TextPart("Manual", ""),)
    assert request.messages[1].content == "a\nb" and request.messages[1].parts == (TextPart("a"), TextPart("b"))
    assert parse_chat_request(request_fields(request), SETTINGS) == request


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"role": "user", "content": []}, "messages.0.content"),
        ({"role": "user", "content": [{"type": "text"}]}, "messages.0.content.list[PartBody].0.text"),
        ({"role": "user", "content": [{"type": "text", "text": "x", "colour": 1}]}, "colour"),
        ({"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "forever"}}]}, "type"),
        ({"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {**MARK, "ttl": "2h"}}]}, "ttl"),
        ({"role": "user", "content": [{"type": "text", "text": "bad\x00"}]}, "messages.0.content.0.text"),
    ],
)
def test_a_bad_part_is_a_400_naming_it(message: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse(message)
    assert caught.value.field.startswith("messages.0.content") and caught.value.field.endswith(field.split(".")[-1])


def test_a_cache_marker_on_an_assistant_part_is_refused() -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse(
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "x", "cache_control": MARK}]},
            {"role": "user", "content": "more"},
        )
    assert caught.value.field == "messages.1.content.0.cache_control"


@pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
def test_prompt_cache_key_is_openais_only(provider: str) -> None:
    assert parse({"role": "user", "content": "hi"}, provider="openai", prompt_cache_key="k").prompt_cache_key == "k"
    with pytest.raises(RequestInvalid) as caught:
        parse({"role": "user", "content": "hi"}, provider=provider, prompt_cache_key="k")
    assert caught.value.field == "prompt_cache_key" and repr(provider) in caught.value.message
