"""Request settings of #17 end to end: the real OpenAI SDK on ``/v1`` and plain HTTP on
``/chat/stream``, through the app under uvicorn, to the providers' real SDKs and the fake
upstreams; each test checks what reached the upstream, or that nothing did (a 400 first)."""

from __future__ import annotations

import json
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

NOVA = "amazon.nova-lite-v1:0"
CLAUDE = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
HI: list[Any] = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def settings_app(aws: LocalAws, upstream_server: FakeUpstream, bedrock_server: FakeBedrock) -> Iterator[LocalApp]:
    env = {
        "DEFAULT_PROVIDER": "echo",
        "ALLOWED_MODELS": f"echo:echo-1;openai:gpt-4o-mini;anthropic:claude-haiku-4-5;bedrock:{NOVA},{CLAUDE}",
        "ECHO_DELAY_MS": "2",
        "UPSTREAM_MAX_RETRIES": "0",
    }
    with providers_app(aws, upstream_server, bedrock_server, env, "settings") as app:
        yield app


@pytest.fixture
async def sdk(settings_app: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    settings_app.upstream.reset()
    settings_app.bedrock.reset()
    settings_app.upstream.scenario = Scenario.ok("Hello", " there")
    settings_app.bedrock.scenario = BedrockScenario.ok("Hello", " there")
    client = openai.AsyncOpenAI(base_url=f"{settings_app.url}/v1", api_key="tr-local", max_retries=0, timeout=10)
    yield client
    await client.close()


SAMPLING: dict[str, Any] = {
    "top_p": 0.9,
    "seed": 1,
    "stop": ["END", "STOP"],
    "presence_penalty": 0.5,
    "frequency_penalty": -0.25,
    "user": "user-42",
}


async def test_openai_gets_every_sampling_setting(settings_app: Any, sdk: openai.AsyncOpenAI) -> None:
    answer = await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=HI, **SAMPLING)
    assert answer.choices[0].message.content == "Hello there"
    sent = settings_app.upstream.last.json
    assert {k: sent[k] for k in SAMPLING} == SAMPLING


async def test_anthropic_gets_stop_sequences_and_the_user_as_metadata(settings_app: Any, sdk: Any) -> None:
    await sdk.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=HI, stop="END", user="user-42")
    sent = settings_app.upstream.last.json
    assert sent["stop_sequences"] == ["END"] and sent["metadata"] == {"user_id": "user-42"}
    assert not {"top_p", "seed", "temperature"} & set(sent)


async def test_bedrock_gets_top_p_stop_and_the_user_as_request_metadata(settings_app: Any, sdk: Any) -> None:
    await sdk.chat.completions.create(model=f"bedrock/{NOVA}", messages=HI, top_p=0.5, stop=["END"], user="user-42")
    sent = settings_app.bedrock.last.json
    assert sent["inferenceConfig"] == {"maxTokens": 1024, "topP": 0.5, "stopSequences": ["END"]}
    assert sent["requestMetadata"] == {"user": "user-42"}


@pytest.mark.parametrize(
    ("model", "extra", "param"),
    [
        ("anthropic/claude-haiku-4-5", {"top_p": 0.5}, "top_p"),
        ("anthropic/claude-haiku-4-5", {"seed": 1}, "seed"),
        ("anthropic/claude-haiku-4-5", {"frequency_penalty": 1}, "frequency_penalty"),
        (f"bedrock/{NOVA}", {"seed": 1}, "seed"),
        (f"bedrock/{NOVA}", {"presence_penalty": 1}, "presence_penalty"),
        (f"bedrock/{NOVA}", {"user": "émile"}, "user"),
        ("openai/gpt-4o-mini", {"n": 2}, "n"),
        ("openai/gpt-4o-mini", {"top_p": 2}, "top_p"),
        ("openai/gpt-4o-mini", {"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
async def test_what_the_provider_cannot_take_is_a_400_naming_it_before_any_upstream_call(
    settings_app: Any, sdk: openai.AsyncOpenAI, model: str, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(model=model, messages=HI, **extra)
    assert caught.value.param == param
    provider = model.split("/")[0]
    if param not in ("n", "top_p", "stop") or provider != "openai":
        assert f"'{provider}'" in caught.value.message
    assert settings_app.upstream.requests == [] and settings_app.bedrock.requests == []


async def test_chat_stream_takes_the_same_settings(settings_app: Any, sdk: openai.AsyncOpenAI) -> None:
    body = {"message": "Hi", "provider": "openai", **SAMPLING}
    async with httpx.AsyncClient(base_url=settings_app.url, timeout=10) as client:
        response = await client.post("/chat/stream", json=body)
        assert response.status_code == 200 and "event: done" in response.text
        sent = settings_app.upstream.last.json
        assert {k: sent[k] for k in SAMPLING} == SAMPLING

        query = {"message": "Hi", "provider": "openai", "stop": "END", "seed": "5", "top_p": "0.25"}
        response = await client.get("/chat/stream", params=query)
        assert response.status_code == 200
        sent = settings_app.upstream.last.json
        assert (sent["stop"], sent["seed"], sent["top_p"]) == (["END"], 5, 0.25)

        refused = await client.post("/chat/stream", json={"message": "Hi", "provider": "anthropic", "seed": 1})
        assert refused.status_code == 400 and refused.json()["field"] == "seed"
        assert "'anthropic'" in refused.json()["error"]


CACHED_SYSTEM: list[Any] = [
    {"role": "system", "content": [{"type": "text", "text": "A long manual.", "cache_control": {"type": "ephemeral"}}]},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Context.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "Question?"},
        ],
    },
]


async def test_openai_gets_the_cache_key_and_plain_text_parts_and_reports_cached_tokens(
    settings_app: Any, sdk: openai.AsyncOpenAI
) -> None:
    settings_app.upstream.scenario = Scenario.ok("Hi", prompt_tokens=12, cached_tokens=1024)
    stream = await sdk.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=CACHED_SYSTEM,
        prompt_cache_key="tenant-7",
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [c.usage async for c in stream if c.usage is not None].pop()
    sent = settings_app.upstream.last.json
    assert sent["prompt_cache_key"] == "tenant-7"
    # OpenAI caches prefixes itself: the parts go as its own text parts, without the markers
    assert sent["messages"][1]["content"] == [
        {"type": "text", "text": "Context."},
        {"type": "text", "text": "Question?"},
    ]
    assert usage.prompt_tokens == 1036 and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 1024


async def test_anthropic_gets_cache_control_and_reports_cache_reads_and_writes(
    settings_app: Any, sdk: openai.AsyncOpenAI
) -> None:
    settings_app.upstream.scenario = Scenario.ok("Hi", prompt_tokens=12, cached_tokens=1000, cache_write_tokens=200)
    answer = await sdk.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=CACHED_SYSTEM)
    sent = settings_app.upstream.last.json
    assert sent["system"] == [{"type": "text", "text": "A long manual.", "cache_control": {"type": "ephemeral"}}]
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "Context.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "Question?"},
    ]
    usage = answer.usage
    assert usage is not None and usage.prompt_tokens == 1212 and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 1000
    assert usage.prompt_tokens_details.cache_write_tokens == 200  # the SDK's own field


async def test_bedrock_gets_cache_points_and_reports_cache_reads_and_writes(
    settings_app: Any, sdk: openai.AsyncOpenAI
) -> None:
    settings_app.bedrock.scenario = BedrockScenario.ok(
        "Hi", input_tokens=5, cache_read_tokens=900, cache_write_tokens=0
    )
    answer = await sdk.chat.completions.create(model=f"bedrock/{NOVA}", messages=CACHED_SYSTEM)
    sent = settings_app.bedrock.last.json
    assert sent["system"] == [{"text": "A long manual."}, {"cachePoint": {"type": "default"}}]
    assert sent["messages"][0]["content"] == [
        {"text": "Context."},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
        {"text": "Question?"},
    ]
    usage = answer.usage
    assert usage is not None and usage.prompt_tokens == 905 and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 900


async def test_chat_stream_usage_event_has_the_details(settings_app: Any, sdk: openai.AsyncOpenAI) -> None:
    settings_app.upstream.scenario = Scenario.ok("Hi", prompt_tokens=3, cached_tokens=40, cache_write_tokens=7)
    body = {"messages": CACHED_SYSTEM, "provider": "anthropic"}
    async with httpx.AsyncClient(base_url=settings_app.url, timeout=10) as client:
        response = await client.post("/chat/stream", json=body)
        refused = await client.post("/chat/stream", json={**body, "prompt_cache_key": "k"})
    usage = next(b for b in response.text.split("\n\n") if b.startswith("event: usage"))
    data = json.loads(usage.split("data: ", 1)[1])
    assert data["prompt_tokens"] == 50
    assert data["prompt_tokens_details"] == {"cached_tokens": 40, "cache_write_tokens": 7}
    assert refused.status_code == 400 and refused.json()["field"] == "prompt_cache_key"
    assert "'anthropic'" in refused.json()["error"]


WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "degrees": {"type": "number"}},
    "required": ["city", "degrees"],
    "additionalProperties": False,
}
JSON_SCHEMA: Any = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER, "strict": True}}


async def test_structured_output_reaches_each_provider_in_its_own_shape(
    settings_app: Any, sdk: openai.AsyncOpenAI
) -> None:
    await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=HI, response_format=JSON_SCHEMA)
    assert settings_app.upstream.last.json["response_format"] == JSON_SCHEMA
    await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=HI, response_format={"type": "json_object"})
    assert settings_app.upstream.last.json["response_format"] == {"type": "json_object"}

    await sdk.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=HI, response_format=JSON_SCHEMA)
    assert settings_app.upstream.last.json["output_config"] == {"format": {"type": "json_schema", "schema": WEATHER}}

    await sdk.chat.completions.create(model=f"bedrock/{CLAUDE}", messages=HI, response_format=JSON_SCHEMA)
    text_format = settings_app.bedrock.last.json["outputConfig"]["textFormat"]
    assert text_format["type"] == "json_schema"
    structure = text_format["structure"]["jsonSchema"]
    assert structure["name"] == "weather" and json.loads(structure["schema"]) == WEATHER


async def test_echo_answers_in_the_schema(sdk: openai.AsyncOpenAI) -> None:
    answer = await sdk.chat.completions.create(model="echo/echo-1", messages=HI, response_format=JSON_SCHEMA)
    assert json.loads(answer.choices[0].message.content or "") == {"city": "You said: Hi", "degrees": 0}


@pytest.mark.parametrize(
    ("model", "response_format"),
    [
        ("anthropic/claude-haiku-4-5", {"type": "json_object"}),
        (f"bedrock/{CLAUDE}", {"type": "json_object"}),
        (f"bedrock/{NOVA}", JSON_SCHEMA),  # its capabilities: no structured output
    ],
)
async def test_structured_output_a_provider_or_model_cannot_give_is_a_400(
    settings_app: Any, sdk: openai.AsyncOpenAI, model: str, response_format: Any
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(model=model, messages=HI, response_format=response_format)
    assert caught.value.param == "response_format" and f"'{model.split('/')[0]}'" in caught.value.message
    assert settings_app.upstream.requests == [] and settings_app.bedrock.requests == []
