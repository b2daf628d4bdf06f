"""Image parts (docs/protocol.md §13): what is accepted, and the bad-input matrix, each a 400
naming the part."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tokenrelay import RequestInvalid, Settings, parse_chat_request
from tokenrelay.requests import ImagePart, request_fields

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60
ENV = {"ANTHROPIC_API_KEY": "k", "OPENAI_API_KEY": "k", "BEDROCK_ENABLED": "true", "DEFAULT_PROVIDER": "echo"}
SETTINGS = Settings.from_env({**ENV, "MAX_IMAGE_BYTES": "1000", "MAX_IMAGES": "2"})


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def image(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


def parse(*parts: dict[str, Any], settings: Settings = SETTINGS, **body: Any) -> Any:
    content = [{"type": "text", "text": "What is it?"}, *parts]
    return parse_chat_request({"messages": [{"role": "user", "content": content}], **body}, settings)


def test_a_data_url_image_and_an_https_image_are_parts_and_round_trip() -> None:
    request = parse(image(data_url(PNG), detail="low"), image("https://example.com/cat.jpg"), provider="anthropic")
    first, second = request.messages[0].parts[1:]
    assert isinstance(first, ImagePart) and first.media_type == "image/png" and first.data() == PNG
    assert first.detail == "low" and first.format == "png"
    assert isinstance(second, ImagePart) and not second.inline and second.url == "https://example.com/cat.jpg"
    assert request.messages[0].content == "What is it?"  # the text alone counts against MAX_MESSAGE_CHARS
    assert parse_chat_request(request_fields(request), SETTINGS) == request


def test_an_image_alone_is_a_user_message() -> None:
    body = {"messages": [{"role": "user", "content": [image(data_url(PNG))]}]}
    assert isinstance(parse_chat_request(body, SETTINGS).messages[0].parts[0], ImagePart)


@pytest.mark.parametrize(
    ("part", "field", "words"),
    [
        (image("data:text/plain;base64,aGVsbG8="), "messages.0.content.1.image_url.url", "not an image"),
        (image(data_url(JPEG, "image/png")), "messages.0.content.1.image_url.url", "labelled image/png"),
        (image(data_url(b"hello, not an image")), "messages.0.content.1.image_url.url", "not a PNG"),
        (image("data:image/png;base64,!!!not base64"), "messages.0.content.1.image_url.url", "does not decode"),
        (image("data:image/png,rawbytes"), "messages.0.content.1.image_url.url", "data:image/<type>;base64"),
        (image(data_url(PNG + b"\x00" * 2000)), "messages.0.content.1.image_url.url", "too large"),
        (image("http://example.com/cat.png"), "messages.0.content.1.image_url.url", "https"),
        (image("ftp://example.com/cat.png"), "messages.0.content.1.image_url.url", "https"),
        (image("https://127.0.0.1/cat.png"), "messages.0.content.1.image_url.url", "not a public address"),
        (image("https://10.1.2.3/cat.png"), "messages.0.content.1.image_url.url", "not a public address"),
        (image("https://169.254.169.254/latest/meta-data/"), "messages.0.content.1.image_url.url", "not a public"),
        (image("https://[::1]/cat.png"), "messages.0.content.1.image_url.url", "not a public address"),
        (image("https://[fd00::1]/cat.png"), "messages.0.content.1.image_url.url", "not a public address"),
        (image("https://localhost/cat.png"), "messages.0.content.1.image_url.url", "not a public host"),
        (image("https://metadata.google.internal/x"), "messages.0.content.1.image_url.url", "not a public host"),
        (image("https://user:pw@example.com/x.png"), "messages.0.content.1.image_url.url", "no user or password"),
        (image("https:///x.png"), "messages.0.content.1.image_url.url", "needs a host"),
        (image("https://example.com/" + "a" * 3000), "messages.0.content.1.image_url.url", "at most 2048"),
        (image(data_url(PNG), detail="ultra"), "messages.0.content.1.image_url.detail", "auto"),
        ({"type": "image_url", "image_url": {}}, "messages.0.content.1.image_url.url", "required"),
        ({"type": "image_url", "image_url": {"url": data_url(PNG)}, "x": 1}, "messages.0.content.1.x", "unknown"),
        ({"type": "video_url"}, "messages.0.content.1.type", "text, image_url"),
    ],
)
def test_a_bad_image_is_a_400_naming_the_part(part: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse(part)
    assert caught.value.field == field and words in caught.value.message


def test_images_only_in_user_messages_and_at_most_max_images() -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_chat_request(
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [image(data_url(PNG))]},
                    {"role": "user", "content": "and?"},
                ]
            },
            SETTINGS,
        )
    assert caught.value.field == "messages.1.content.0"
    with pytest.raises(RequestInvalid) as caught:
        parse(*[image(data_url(PNG))] * 3)
    assert caught.value.field == "messages" and "MAX_IMAGES" in caught.value.message


def test_a_model_without_images_bedrock_with_a_url_and_images_off_are_400s() -> None:
    no_vision = Settings.from_env({**ENV, "MODEL_CAPABILITIES": json.dumps({"echo/echo-1": {"images": False}})})
    with pytest.raises(RequestInvalid) as caught:
        parse(image(data_url(PNG)), settings=no_vision)
    assert caught.value.field == "messages.0.content.1" and "'echo-1'" in caught.value.message
    with pytest.raises(RequestInvalid) as caught:
        parse(image("https://example.com/cat.png"), provider="bedrock")
    assert caught.value.field == "messages.0.content.1.image_url.url" and "'bedrock'" in caught.value.message
    assert parse(image(data_url(PNG)), provider="bedrock").messages[0].parts[1].format == "png"
    off = Settings.from_env({**ENV, "MAX_IMAGE_BYTES": "0"})
    with pytest.raises(RequestInvalid) as caught:
        parse(image(data_url(PNG)), settings=off)
    assert "MAX_IMAGE_BYTES=0" in caught.value.message
