"""OpenAI-compatible API end to end: the real ``openai`` SDK and a raw HTTP client against the app
under uvicorn, every provider behind it (fake OpenAI/Anthropic upstream, fake Bedrock), moto's DynamoDB."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.conftest import LocalApp, fresh, providers_app
from tests.fakes.bedrock import BedrockScenario, FakeBedrock, bedrock_server
from tests.fakes.local_stack import LocalAws
from tests.fakes.upstream import FakeUpstream, Scenario

__all__ = ["bedrock_server"]  # fixture

NOVA = "amazon.nova-lite-v1:0"
CLAUDE_BEDROCK = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
MODELS = {  # model name as a client sends it -> the text each fake answers with
    "echo/echo-1": "You said: Hello there",
    "openai/gpt-4o-mini": "Hello, world!",
    "anthropic/claude-haiku-4-5": "Hello, world!",
    f"bedrock/{NOVA}": "Hello, world!",
}
LONG = tuple(f"w{i} " for i in range(400))


@pytest.fixture(scope="module")
def compat_app(aws: LocalAws, upstream_server: FakeUpstream, bedrock_server: FakeBedrock) -> Iterator[LocalApp]:
    env = {
        "DEFAULT_PROVIDER": "echo",
        "ALLOWED_MODELS": f"echo:echo-1;openai:gpt-4o-mini;anthropic:claude-haiku-4-5;bedrock:{NOVA},{CLAUDE_BEDROCK}",
        "MODEL_ALIASES": f"gpt-4o-mini=openai/gpt-4o-mini,claude=bedrock/{CLAUDE_BEDROCK}",
        "ECHO_DELAY_MS": "5",
        "CANCEL_POLL_MS": "50",
        "UPSTREAM_MAX_RETRIES": "0",
        "MAX_MESSAGE_CHARS": "2000",
    }
    with providers_app(aws, upstream_server, bedrock_server, env, "openai-compat") as app:
        yield app


@pytest.fixture
def app(compat_app: LocalApp) -> Iterator[LocalApp]:
    with fresh(compat_app) as app:
        yield app


@pytest.fixture
async def sdk(app: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{app.url}/v1", api_key="tr-local", max_retries=0, timeout=10)
    yield client
    await client.close()


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        yield client


HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there"}]


async def wait_record(app: Any, stream_id: str, status: str, within_s: float = 5.0) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        record = await app.record(stream_id)
        if record is not None and record.status == status:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"record {stream_id} never reached {status}: {await app.record(stream_id)}")


def frames(body: bytes) -> list[bytes]:
    return [f for f in body.split(b"\n\n") if f and not f.startswith(b":")]


# -- the openai SDK, every provider -------------------------------------------------------------


@pytest.mark.parametrize("model", list(MODELS))
async def test_openai_sdk_streams_through_provider_with_usage(app: Any, sdk: openai.AsyncOpenAI, model: str) -> None:
    stream = await sdk.chat.completions.create(
        model=model,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    stream_id = stream.response.headers["x-stream-id"]
    chunks = [chunk async for chunk in stream]

    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == MODELS[model]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    assert {c.id for c in chunks} == {f"chatcmpl-{stream_id}"} and {c.model for c in chunks} == {model}
    record = await wait_record(app, stream_id, "complete")
    assert record.transport == "openai" and record.provider == model.split("/")[0]


@pytest.mark.parametrize("model", list(MODELS))
async def test_openai_sdk_non_streaming_through_provider(app: Any, sdk: openai.AsyncOpenAI, model: str) -> None:
    raw = await sdk.chat.completions.with_raw_response.create(model=model, messages=HELLO)
    completion = raw.parse()

    assert completion.object == "chat.completion" and completion.model == model
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == MODELS[model]
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert completion.id == f"chatcmpl-{raw.headers['x-stream-id']}"


async def test_openai_sdk_without_include_usage_gets_no_usage_chunk(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(model="echo/echo-1", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]

    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)


async def test_openai_sdk_alias_routes_to_bedrock_claude(app: Any, sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(model="claude", messages=HELLO)

    assert completion.model == f"bedrock/{CLAUDE_BEDROCK}" and completion.choices[0].message.content
    assert app.bedrock.last.model_id == CLAUDE_BEDROCK


async def test_openai_sdk_stop_is_honoured_by_every_provider(app: Any, sdk: openai.AsyncOpenAI) -> None:
    echo = await sdk.chat.completions.create(model="echo/echo-1", messages=HELLO, stop=["there"])
    await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO, stop="###")
    openai_sent = app.upstream.last.json
    await sdk.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=HELLO, stop=["###"])
    anthropic_sent = app.upstream.last.json
    await sdk.chat.completions.create(model=f"bedrock/{NOVA}", messages=HELLO, stop=["###"])

    assert echo.choices[0].message.content == "You said: Hello "
    assert openai_sent["stop"] == ["###"] and anthropic_sent["stop_sequences"] == ["###"]
    assert app.bedrock.last.json["inferenceConfig"]["stopSequences"] == ["###"]


async def test_openai_sdk_models_lists_and_retrieves_what_the_deployment_allows(sdk: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in sdk.models.list()]

    assert ids == [
        "anthropic/claude-haiku-4-5",
        f"bedrock/{NOVA}",
        f"bedrock/{CLAUDE_BEDROCK}",
        "echo/echo-1",
        "openai/gpt-4o-mini",
        "gpt-4o-mini",
        "claude",
    ]
    model = await sdk.models.retrieve("echo/echo-1")
    assert (model.id, model.owned_by) == ("echo/echo-1", "echo")
    with pytest.raises(openai.NotFoundError):
        await sdk.models.retrieve("openai/gpt-9")


# -- the openai SDK, errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "bad name", "parameters": {}}}]}, "tools"),
        ({"extra_body": {"colour": "red"}}, "colour"),
        ({"max_tokens": 100_000}, "max_tokens"),
        ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages[0].role"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "t"}]}, "messages"),  # answers no call
    ],
)
async def test_openai_sdk_bad_request_raises_bad_request_error_naming_param(
    sdk: openai.AsyncOpenAI, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(**{"model": "echo/echo-1", "messages": HELLO, **kwargs})

    assert caught.value.status_code == 400 and caught.value.param == param
    assert caught.value.type == "invalid_request_error"


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_sdk_unknown_model_raises_not_found_error(sdk: openai.AsyncOpenAI, stream: bool) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.chat.completions.create(model="gpt-5-ultra", messages=HELLO, stream=stream)

    assert caught.value.code == "model_not_found" and "gpt-5-ultra" in caught.value.message


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", f"bedrock/{NOVA}"])
async def test_openai_sdk_upstream_rate_limit_raises_rate_limit_error(
    app: Any, sdk: openai.AsyncOpenAI, model: str, stream: bool
) -> None:
    app.upstream.scenario = Scenario.http_error(429)
    app.bedrock.scenario = BedrockScenario.http_error(429, "ThrottlingException")

    with pytest.raises(openai.RateLimitError) as caught:
        await sdk.chat.completions.create(model=model, messages=HELLO, stream=stream)

    assert caught.value.code == "upstream_rate_limited" and caught.value.response.headers["x-should-retry"] == "true"
    record = await wait_record(app, caught.value.response.headers["x-stream-id"], "failed")
    assert record.error_code == "upstream_rate_limited"


@pytest.mark.parametrize(
    ("model", "code"), [("openai/gpt-4o-mini", "upstream_unavailable"), (f"bedrock/{NOVA}", "upstream_rate_limited")]
)
async def test_openai_sdk_error_after_first_text_raises_api_error_in_band(
    app: Any, sdk: openai.AsyncOpenAI, model: str, code: str
) -> None:
    app.upstream.scenario = Scenario.error_frame(after=2)
    app.bedrock.scenario = BedrockScenario.stream_error(after=2, exception="throttlingException")
    stream = await sdk.chat.completions.create(model=model, messages=HELLO, stream=True)
    texts: list[str] = []

    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            texts.append(chunk.choices[0].delta.content or "")

    assert "".join(texts) == "Hello,"
    assert caught.value.code == code and "UPSTREAM-BODY" not in caught.value.message


async def test_openai_sdk_retries_only_what_tokenrelay_calls_retryable(app: Any) -> None:
    app.upstream.scenario = Scenario.http_error(401)  # a bad upstream key: Rejected, not retryable
    client = openai.AsyncOpenAI(base_url=f"{app.url}/v1", api_key="tr-local", max_retries=2)
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    finally:
        await client.close()

    assert caught.value.status_code == 502 and caught.value.code == "upstream_rejected"
    assert len(app.upstream.requests) == 1


# -- an independent client: raw HTTP and SSE bytes -----------------------------------------------


async def test_openai_raw_stream_is_openai_framing_byte_for_byte(http: httpx.AsyncClient) -> None:
    body = {"model": "echo/echo-1", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    stream_id = response.headers["x-stream-id"]
    created = json.loads(frames(raw)[0][6:])["created"]
    head = f'"id":"chatcmpl-{stream_id}","object":"chat.completion.chunk","created":{created},"model":"echo/echo-1"'
    tail = '"logprobs":null,"finish_reason":null}],"usage":null}'

    def delta(content: str) -> str:
        return f'data: {{{head},"choices":[{{"index":0,"delta":{{"content":{json.dumps(content)}}},{tail}\n\n'

    # the usage chunk ends with TokenRelay's cost_usd (echo is free: docs/cost.md)
    assert raw.decode() == (
        f'data: {{{head},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},{tail}\n\n'
        + "".join(delta(t) for t in ("You ", "said: ", "Hello ", "there"))
        + f'data: {{{head},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}],'
        '"usage":null}\n\n'
        f'data: {{{head},"choices":[],"usage":{{"prompt_tokens":2,"completion_tokens":4,"total_tokens":6,'
        f'"prompt_tokens_details":{{"cached_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0}},'
        '"cost_usd":0.0}}\n\n'
        "data: [DONE]\n\n"
    )


async def test_openai_raw_errors_are_openai_error_objects(http: httpx.AsyncClient) -> None:
    bad_json = await http.post("/v1/chat/completions", content=b"{", headers={"content-type": "application/json"})
    wrong_type = await http.post("/v1/chat/completions", content=b"{}", headers={"content-type": "text/plain"})
    no_route = await http.get("/v1/embeddings")
    wrong_method = await http.get("/v1/chat/completions")

    for response, status in ((bad_json, 400), (wrong_type, 415), (no_route, 404), (wrong_method, 405)):
        assert response.status_code == status
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_openai_stream_cancel_from_another_connection_ends_with_error_frame_and_closes_upstream(
    app: Any, http: httpx.AsyncClient
) -> None:
    app.upstream.scenario = Scenario.ok(*LONG, delay_s=0.02)
    body = {"model": "openai/gpt-4o-mini", "messages": HELLO, "stream": True}
    seen: list[bytes] = []
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        stream_id = response.headers["x-stream-id"]
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            seen.append(line[6:].encode())
            if len(seen) == 4:  # role + three chunks of text
                async with httpx.AsyncClient(base_url=app.url) as other:
                    assert (await other.post(f"/chat/stream/{stream_id}/cancel")).status_code == 200

    assert seen[-1] == b"[DONE]" and seen.count(b"[DONE]") == 1
    assert json.loads(seen[-2])["error"]["code"] == "stream_cancelled"
    assert app.upstream.wait_closed_early(1, timeout=5)
    record = await wait_record(app, stream_id, "cancelled")
    assert record.cancel_reason == "client" and record.transport == "openai"


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", f"bedrock/{NOVA}"])
async def test_openai_stream_client_disconnect_closes_upstream_and_records_disconnect(
    app: Any, sdk: openai.AsyncOpenAI, model: str
) -> None:
    app.upstream.scenario = Scenario.ok(*LONG, delay_s=0.02)
    app.bedrock.scenario = BedrockScenario.ok(*LONG, delay_s=0.02)
    stream = await sdk.chat.completions.create(model=model, messages=HELLO, stream=True)
    stream_id = stream.response.headers["x-stream-id"]
    received = 0
    async for _ in stream:
        received += 1
        if received == 3:
            break
    await stream.close()

    fake = app.bedrock if model.startswith("bedrock") else app.upstream
    closed = fake.wait_ended(1, 5.0, closed_early=True) if fake is app.bedrock else fake.wait_closed_early(1, 5.0)
    assert closed
    record = await wait_record(app, stream_id, "cancelled")
    assert record.cancel_reason == "disconnect"


async def test_openai_non_streaming_client_gone_stops_the_run(app: Any) -> None:
    app.bedrock.scenario = BedrockScenario.ok(*LONG, delay_s=0.02)
    async with httpx.AsyncClient(base_url=app.url, timeout=0.5) as short:
        with pytest.raises(httpx.ReadTimeout):
            await short.post("/v1/chat/completions", json={"model": f"bedrock/{NOVA}", "messages": HELLO})

    assert await asyncio.to_thread(app.bedrock.wait_ended, 1, 5.0, closed_early=True)
