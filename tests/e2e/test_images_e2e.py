"""Images end to end (docs/protocol.md §13): the real OpenAI SDK on ``/v1`` and plain HTTP on
``/chat/stream``, through the app under uvicorn to each provider's real SDK and fake upstream:
what reaches the upstream (OpenAI ``image_url``, Anthropic image blocks, Bedrock bytes), and the
4xx for bad images, before any upstream call."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import LocalApp, providers_app
from tests.fakes.bedrock import BedrockScenario, FakeBedrock, bedrock_server
from tests.fakes.local_stack import LocalAws
from tests.fakes.upstream import FakeUpstream, Scenario

__all__ = ["bedrock_server"]  # fixture

CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PNG = base64.b64decode(PNG_B64)
DATA_URL = f"data:image/png;base64,{PNG_B64}"
REMOTE = "https://upload.example.com/cat.jpg"


def question(*urls: str) -> list[Any]:
    parts = [
        {"type": "text", "text": "What is in it?"},
        *({"type": "image_url", "image_url": {"url": u}} for u in urls),
    ]
    return [{"role": "user", "content": parts}]


@pytest.fixture(scope="module")
def images_app(aws: LocalAws, upstream_server: FakeUpstream, bedrock_server: FakeBedrock) -> Iterator[LocalApp]:
    env = {
        "DEFAULT_PROVIDER": "echo",
        "ALLOWED_MODELS": f"echo:echo-1;openai:gpt-4o-mini;anthropic:claude-haiku-4-5;bedrock:{CLAUDE}",
        "ECHO_DELAY_MS": "2",
        "UPSTREAM_MAX_RETRIES": "0",
        "MAX_IMAGE_BYTES": "2000000",
    }
    with providers_app(aws, upstream_server, bedrock_server, env, "images") as app:
        yield app


@pytest.fixture
async def sdk(images_app: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    images_app.upstream.reset()
    images_app.bedrock.reset()
    images_app.upstream.scenario = Scenario.ok("A ", "pixel.")
    images_app.bedrock.scenario = BedrockScenario.ok("A ", "pixel.")
    client = openai.AsyncOpenAI(base_url=f"{images_app.url}/v1", api_key="tr-local", max_retries=0, timeout=20)
    yield client
    await client.close()


async def test_openai_gets_image_url_parts(images_app: Any, sdk: openai.AsyncOpenAI) -> None:
    answer = await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=question(DATA_URL, REMOTE))
    assert answer.choices[0].message.content == "A pixel."
    content = images_app.upstream.last.json["messages"][0]["content"]
    assert content == [
        {"type": "text", "text": "What is in it?"},
        {"type": "image_url", "image_url": {"url": DATA_URL}},
        {"type": "image_url", "image_url": {"url": REMOTE}},
    ]


async def test_anthropic_gets_image_blocks(images_app: Any, sdk: openai.AsyncOpenAI) -> None:
    await sdk.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=question(DATA_URL, REMOTE))
    content = images_app.upstream.last.json["messages"][0]["content"]
    assert content[1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
        {"type": "image", "source": {"type": "url", "url": REMOTE}},
    ]


async def test_bedrock_gets_the_image_bytes(images_app: Any, sdk: openai.AsyncOpenAI) -> None:
    await sdk.chat.completions.create(model=f"bedrock/{CLAUDE}", messages=question(DATA_URL))
    block = images_app.bedrock.last.json["messages"][0]["content"][1]
    # botocore sends a blob as base64 in the JSON body: the bytes are the image's
    assert block["image"]["format"] == "png" and base64.b64decode(block["image"]["source"]["bytes"]) == PNG


async def test_a_large_image_over_chat_stream_reaches_the_model(images_app: Any) -> None:
    big = PNG + b"\x00" * 1_500_000  # 1.5 MB: well over the text cap, under the Function URL's 6 MB
    url = "data:image/png;base64," + base64.b64encode(big).decode()
    body = {"messages": question(url), "provider": "echo"}
    async with httpx.AsyncClient(base_url=images_app.url, timeout=20) as client:
        response = await client.post("/chat/stream-simple", json=body)
    assert response.status_code == 200 and f"[image image/png, {len(big)} bytes]" in response.text


@pytest.mark.parametrize(
    ("model", "url", "field"),
    [
        ("openai/gpt-4o-mini", "data:text/plain;base64,aGk=", "messages.0.content.1.image_url.url"),
        ("openai/gpt-4o-mini", "https://169.254.169.254/latest/meta-data/", "messages.0.content.1.image_url.url"),
        ("anthropic/claude-haiku-4-5", "http://example.com/a.png", "messages.0.content.1.image_url.url"),
        (f"bedrock/{CLAUDE}", REMOTE, "messages.0.content.1.image_url.url"),
        (
            "echo/echo-1",
            "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 2_000_001).decode(),
            "messages.0.content.1.image_url.url",
        ),
    ],
)
async def test_a_bad_image_is_a_400_naming_the_part_before_any_upstream_call(
    images_app: Any, sdk: openai.AsyncOpenAI, model: str, url: str, field: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(model=model, messages=question(url))
    assert caught.value.param == "messages" and field in caught.value.message
    assert images_app.upstream.requests == [] and images_app.bedrock.requests == []


async def test_a_body_over_the_function_url_payload_is_413(images_app: Any) -> None:
    # the Function URL itself refuses it (Lambda's 6 MB request payload), before the function runs
    url = "data:image/png;base64," + "A" * (6 * 1024 * 1024)
    async with httpx.AsyncClient(base_url=images_app.url, timeout=20) as client:
        response = await client.post("/chat/stream", json={"messages": question(url)})
    assert response.status_code == 413 and "6291456" in response.text
