"""Anthropic Messages API end to end: the real ``anthropic`` SDK (retries off) and a raw HTTP client
against ``POST /v1/messages`` under uvicorn (the local Function URL), every provider behind it (fake
OpenAI/Anthropic upstream, fake Bedrock, each speaking its wire format: tests/fakes/parts.py), moto's
DynamoDB. Streaming, ``messages.stream()`` and its final message, the whole Message, thinking with
signatures, a tool-use loop per provider, the raw events one by one, errors and cancel."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import MessageParam, ThinkingConfigEnabledParam, ToolParam

from tests.e2e.conftest import LocalApp, fresh, providers_app
from tests.fakes import parts as p
from tests.fakes.bedrock import BedrockScenario, FakeBedrock, bedrock_server
from tests.fakes.local_stack import LocalAws
from tests.fakes.upstream import FakeUpstream, Scenario

__all__ = ["bedrock_server"]  # fixture

NOVA = "amazon.nova-lite-v1:0"
CLAUDE_BEDROCK = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
MODELS = {  # model as a client names it -> the text each fake answers "Hello there" with
    "echo/echo-1": "You said: Hello there",
    "openai/gpt-4o-mini": "Hello, world!",
    "anthropic/claude-haiku-4-5": "Hello, world!",
    f"bedrock/{NOVA}": "Hello, world!",
}
TOOL_MODELS = ["echo/echo-1", "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", f"bedrock/{CLAUDE_BEDROCK}"]
HELLO: list[MessageParam] = [{"role": "user", "content": "Hello there"}]
QUESTION: list[MessageParam] = [{"role": "user", "content": "Paris? Use get_weather"}]
TOOLS: list[ToolParam] = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
CALL = (
    p.say("Checking."),
    p.call(0, "toolu_w1", "get_weather"),
    p.args(0, '{"city":'),
    p.args(0, '"Paris"}'),
    p.end(0),
)
LONG = tuple(f"w{i} " for i in range(400))


@pytest.fixture(scope="module")
def messages_app(aws: LocalAws, upstream_server: FakeUpstream, bedrock_server: FakeBedrock) -> Iterator[LocalApp]:
    env = {
        "DEFAULT_PROVIDER": "echo",
        "ALLOWED_MODELS": (
            f"echo:echo-1;openai:gpt-4o-mini,o4-mini;anthropic:claude-haiku-4-5;bedrock:{NOVA},{CLAUDE_BEDROCK}"
        ),
        "MODEL_ALIASES": "claude-haiku-4-5=anthropic/claude-haiku-4-5",
        "ECHO_DELAY_MS": "2",
        "CANCEL_POLL_MS": "50",
        "UPSTREAM_MAX_RETRIES": "0",
        "MAX_MESSAGE_CHARS": "2000",
        "MAX_IMAGE_BYTES": "0",  # the Messages API takes no images: the body cap stays the text one (413 below)
    }
    with providers_app(aws, upstream_server, bedrock_server, env, "anthropic-messages") as app:
        yield app


@pytest.fixture
def app(messages_app: LocalApp) -> Iterator[LocalApp]:
    with fresh(messages_app) as app:
        yield app


@pytest.fixture
async def sdk(app: Any) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=app.url, api_key="tr-local", max_retries=0, timeout=10)
    yield client
    await client.close()


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        yield client


async def wait_record(app: Any, stream_id: str, status: str, within_s: float = 5.0) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        record = await app.record(stream_id)
        if record is not None and record.status == status:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"record {stream_id} never reached {status}: {await app.record(stream_id)}")


def script(app: Any, model: str, *turns: tuple[p.Step, ...]) -> None:
    provider = model.split("/")[0]
    if provider == "bedrock":
        app.bedrock.enqueue(*(BedrockScenario(parts=t) for t in turns))
    elif provider != "echo":
        app.upstream.enqueue(*(Scenario(parts=t) for t in turns))


def events_of(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Each SSE event as (event name, data); checks that the data's type is the event's name."""
    out = []
    for frame in raw.decode().split("\n\n"):
        if not frame:
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        out.append((lines["event"], data))
    return out


# -- the anthropic SDK, every provider ---------------------------------------------------------


@pytest.mark.parametrize("model", list(MODELS))
async def test_sdk_create_stream_true_through_every_provider(
    app: Any, sdk: anthropic.AsyncAnthropic, model: str
) -> None:
    stream = await sdk.messages.create(model=model, max_tokens=256, messages=HELLO, stream=True)
    stream_id = stream.response.headers["x-stream-id"]
    events = [event async for event in stream]

    assert events[0].type == "message_start" and events[0].message.id == f"msg_{stream_id}"
    assert events[0].message.model == model and events[-1].type == "message_stop"
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text == MODELS[model]
    (delta,) = [e for e in events if e.type == "message_delta"]
    assert delta.delta.stop_reason == "end_turn" and delta.usage.output_tokens > 0
    assert delta.usage.input_tokens is not None and delta.usage.input_tokens > 0
    record = await wait_record(app, stream_id, "complete")
    assert record.transport == "anthropic" and record.provider == model.split("/")[0]


@pytest.mark.parametrize("model", list(MODELS))
async def test_sdk_stream_helper_final_message(sdk: anthropic.AsyncAnthropic, model: str) -> None:
    async with sdk.messages.stream(model=model, max_tokens=256, messages=HELLO, system="Be brief.") as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()

    assert "".join(texts) == MODELS[model]
    assert [(b.type, getattr(b, "text", None)) for b in final.content] == [("text", MODELS[model])]
    assert final.stop_reason == "end_turn" and final.role == "assistant" and final.model == model
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", list(MODELS))
async def test_sdk_non_streaming_message(app: Any, sdk: anthropic.AsyncAnthropic, model: str) -> None:
    raw = await sdk.messages.with_raw_response.create(model=model, max_tokens=256, messages=HELLO)
    message = await raw.parse()

    assert message.type == "message" and message.id == f"msg_{raw.headers['x-stream-id']}"
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", MODELS[model])]
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    assert message._request_id == f"req_{raw.headers['x-stream-id']}"
    record = await wait_record(app, raw.headers["x-stream-id"], "complete")
    assert record.transport == "anthropic"


async def test_sdk_model_alias_and_max_tokens_stop_reason(app: Any, sdk: anthropic.AsyncAnthropic) -> None:
    app.upstream.scenario = Scenario.ok("a ", "b ", "c", finish_reason="max_tokens")
    message = await sdk.messages.create(model="claude-haiku-4-5", max_tokens=3, messages=HELLO)

    assert message.model == "claude-haiku-4-5" and message.stop_reason == "max_tokens"
    assert app.upstream.last.json["model"] == "claude-haiku-4-5" and app.upstream.last.json["max_tokens"] == 3


async def test_stop_sequences_reach_every_provider_and_say_which_ended_the_answer(
    app: Any, sdk: anthropic.AsyncAnthropic
) -> None:
    echo = await sdk.messages.create(model="echo/echo-1", max_tokens=64, messages=HELLO, stop_sequences=["##", "there"])
    app.upstream.scenario = Scenario.ok("Hi", finish_reason="stop")  # OpenAI does not say why it stopped
    by_openai = await sdk.messages.create(
        model="openai/gpt-4o-mini", max_tokens=64, messages=HELLO, stop_sequences=["#"]
    )
    openai_sent = app.upstream.last.json
    app.upstream.scenario = Scenario.ok("Hi", finish_reason="stop_sequence")
    async with sdk.messages.stream(
        model="anthropic/claude-haiku-4-5", max_tokens=64, messages=HELLO, stop_sequences=["###"]
    ) as stream:
        by_anthropic = await stream.get_final_message()
    anthropic_sent = app.upstream.last.json
    app.bedrock.scenario = BedrockScenario.ok("Hi", stop_reason="stop_sequence")
    by_bedrock = await sdk.messages.create(model=f"bedrock/{NOVA}", max_tokens=64, messages=HELLO, stop_sequences=["#"])

    assert [b.text for b in echo.content if b.type == "text"] == ["You said: Hello "]
    assert (echo.stop_reason, echo.stop_sequence) == ("stop_sequence", "there")
    assert openai_sent["stop"] == ["#"] and (by_openai.stop_reason, by_openai.stop_sequence) == ("end_turn", None)
    assert anthropic_sent["stop_sequences"] == ["###"]
    assert (by_anthropic.stop_reason, by_anthropic.stop_sequence) == ("stop_sequence", "###")
    assert app.bedrock.last.json["inferenceConfig"]["stopSequences"] == ["#"]
    assert (by_bedrock.stop_reason, by_bedrock.stop_sequence) == ("stop_sequence", None)  # Nova does not say which


# -- thinking --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["echo/echo-1", "anthropic/claude-haiku-4-5", f"bedrock/{CLAUDE_BEDROCK}"])
async def test_sdk_thinking_blocks_with_signature(app: Any, sdk: anthropic.AsyncAnthropic, model: str) -> None:
    script(app, model, (p.think("Hmm, "), p.think("a greeting."), p.sign("c2lnbmVk"), p.say("Hello!")))
    thinking: ThinkingConfigEnabledParam = {"type": "enabled", "budget_tokens": 1024}
    async with sdk.messages.stream(model=model, max_tokens=2048, messages=HELLO, thinking=thinking) as stream:
        kinds = [(e.type, e.delta.type if e.type == "content_block_delta" else None) async for e in stream]
        final = await stream.get_final_message()

    block, text = final.content
    assert block.type == "thinking" and text.type == "text"
    if model.startswith("echo"):
        assert block.thinking == "Thinking about: Hello there" and block.signature.startswith("echo-")
    else:
        assert (block.thinking, block.signature, text.text) == ("Hmm, a greeting.", "c2lnbmVk", "Hello!")
        sent = app.bedrock.last.json if model.startswith("bedrock") else app.upstream.last.json
        budget = sent["additionalModelRequestFields"]["thinking"] if "bedrock" in model else sent["thinking"]
        assert budget == {"type": "enabled", "budget_tokens": 1024}
    assert ("content_block_delta", "signature_delta") in kinds and ("content_block_delta", "thinking_delta") in kinds


async def test_thinking_budget_becomes_an_effort_on_openai(app: Any, sdk: anthropic.AsyncAnthropic) -> None:
    app.upstream.scenario = Scenario(parts=(p.think("Let me see."), p.say("Hi.")))
    thinking: ThinkingConfigEnabledParam = {"type": "enabled", "budget_tokens": 2000}
    # a reasoning model: gpt-4o-mini's capabilities (catalog) refuse thinking with a 400
    message = await sdk.messages.create(model="openai/o4-mini", max_tokens=64, messages=HELLO, thinking=thinking)

    assert app.upstream.last.json["reasoning_effort"] == "low"
    assert [b.type for b in message.content] == ["thinking", "text"]
    block = message.content[0]
    assert block.type == "thinking" and (block.thinking, block.signature) == ("Let me see.", "")  # unsigned


# -- the tool-use loop, every provider ---------------------------------------------------------


@pytest.mark.parametrize("model", TOOL_MODELS)
async def test_sdk_runs_a_tool_use_loop(app: Any, sdk: anthropic.AsyncAnthropic, model: str) -> None:
    script(app, model, CALL, (p.say("It is "), p.say("sunny in Paris.")))

    async with sdk.messages.stream(model=model, max_tokens=256, messages=QUESTION, tools=TOOLS) as stream:
        first = await stream.get_final_message()
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    city = QUESTION[0]["content"] if model.startswith("echo") else "Paris"
    assert use.name == "get_weather" and use.input == {"city": city}

    messages: list[MessageParam] = [
        *QUESTION,
        {"role": "assistant", "content": first.content},  # as the SDK's docs do: the content sent back as is
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}]},
    ]
    final = await sdk.messages.create(model=model, max_tokens=256, messages=messages, tools=TOOLS)

    expected = "Tool get_weather returned: sunny, 21 C" if model.startswith("echo") else "It is sunny in Paris."
    assert final.stop_reason == "end_turn" and [b.text for b in final.content if b.type == "text"] == [expected]
    if model.startswith("anthropic"):
        sent = app.upstream.last.json["messages"]
        assert sent[1]["content"][-1] == {
            "type": "tool_use",
            "id": use.id,
            "name": "get_weather",
            "input": {"city": city},
        }
        assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}]
    elif model.startswith("openai"):
        sent = app.upstream.last.json["messages"]
        assert sent[1]["tool_calls"][0]["id"] == use.id and sent[2] == {
            "role": "tool",
            "tool_call_id": use.id,
            "content": "sunny, 21 C",
        }


@pytest.mark.parametrize("model", TOOL_MODELS)
async def test_a_failed_tool_result_reaches_the_provider_as_a_failure(
    app: Any, sdk: anthropic.AsyncAnthropic, model: str
) -> None:
    script(app, model, (p.say("Sorry, no weather."),))
    messages: list[MessageParam] = [
        *QUESTION,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": {}}]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_w1", "content": "timed out", "is_error": True}],
        },
    ]
    if model.startswith("openai"):  # OpenAI's tool messages have no error flag: refused, not dropped
        with pytest.raises(anthropic.BadRequestError) as caught:
            await sdk.messages.create(model=model, max_tokens=64, messages=messages, tools=TOOLS)
        error = caught.value.body["error"]  # type: ignore[index]
        assert error["message"].startswith("messages.2.content.0.is_error: not supported by provider 'openai'")
        assert app.upstream.requests == []
        return
    answer = await sdk.messages.create(model=model, max_tokens=64, messages=messages, tools=TOOLS)

    text = [b.text for b in answer.content if b.type == "text"]
    if model.startswith("echo"):
        assert text == ["Tool get_weather failed: timed out"]
    elif model.startswith("anthropic"):
        result = app.upstream.last.json["messages"][2]["content"][0]
        assert result == {"type": "tool_result", "tool_use_id": "toolu_w1", "content": "timed out", "is_error": True}
    else:
        result = app.bedrock.last.json["messages"][2]["content"][0]["toolResult"]
        assert result == {"toolUseId": "toolu_w1", "content": [{"text": "timed out"}], "status": "error"}


async def test_tool_choice_any_and_parallel_off_reach_anthropic(app: Any, sdk: anthropic.AsyncAnthropic) -> None:
    app.upstream.scenario = Scenario(parts=CALL)
    await sdk.messages.create(
        model="anthropic/claude-haiku-4-5",
        max_tokens=64,
        messages=QUESTION,
        tools=TOOLS,
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )

    assert app.upstream.last.json["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


# -- the raw events, one by one ------------------------------------------------------------------


async def test_raw_stream_is_anthropic_event_for_event(http: httpx.AsyncClient) -> None:
    body = {
        "model": "echo/echo-1",
        "max_tokens": 2048,
        "messages": QUESTION,
        "tools": TOOLS,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stream": True,
    }
    async with http.stream("POST", "/v1/messages", json=body) as response:
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = events_of(raw)
    names = [name for name, _ in events]

    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names[1:3] == ["content_block_start", "ping"] and names.count("ping") == 1
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["stop_sequence"] is None
    # blocks, one at a time: start, deltas, stop; indices 0, 1...
    blocks: list[str] = []
    open_index = None
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_index is None and data["index"] == len(blocks)
            open_index = data["index"]
            blocks.append(data["content_block"]["type"])
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
    assert open_index is None and blocks == ["thinking", "tool_use"]
    deltas = [d["delta"]["type"] for n, d in events if n == "content_block_delta"]
    assert deltas[0] == "thinking_delta" and "signature_delta" in deltas and deltas[-1] == "input_json_delta"
    tool_start = next(d for n, d in events if n == "content_block_start" and d["index"] == 1)["content_block"]
    assert tool_start["name"] == "get_weather" and tool_start["input"] == {} and tool_start["id"]
    end = events[-2][1]
    assert end["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert end["usage"]["input_tokens"] > 0 and end["usage"]["output_tokens"] > 0


async def test_raw_whole_message_and_headers(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/messages", json={"model": "echo/echo-1", "max_tokens": 64, "messages": HELLO, "metadata": {"user_id": "u"}}
    )

    body = response.json()
    stream_id = response.headers["x-stream-id"]
    assert response.status_code == 200 and response.headers["request-id"] == f"req_{stream_id}"
    assert body == {
        "id": f"msg_{stream_id}",
        "type": "message",
        "role": "assistant",
        "model": "echo/echo-1",
        "content": [{"type": "text", "text": "You said: Hello there"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 2, "output_tokens": 4},
    }


# -- errors ----------------------------------------------------------------------------------------


BASE = {"model": "echo/echo-1", "max_tokens": 64, "messages": HELLO}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"max_tokens": None}, "max_tokens"),
        ({"model": 5}, "model"),
        ({"max_tokens": 100_000}, "max_tokens"),
        ({"top_k": 5}, "top_k"),
        ({"colour": "red"}, "colour"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "messages.0.content.0.type"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages.0.content.0.text"),
        (
            {"messages": [*HELLO, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "nope"}]}]},
            "messages.1.content.0.tool_use_id",
        ),
        (
            {
                "messages": [
                    *HELLO,
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}]},
                ]
            },
            "messages.2.content.0.is_error",
        ),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
        ({"tools": [{"name": "bad name", "input_schema": {"type": "object"}}]}, "tools.0"),
        ({"tools": TOOLS, "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"thinking": {"type": "adaptive"}}, "thinking.type"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"metadata": {"tags": ["x"]}}, "metadata"),
        ({"stream": "yes"}, "stream"),
        ({"system": [{"type": "image"}]}, "system.0.type"),
        ({"temperature": 3}, "temperature"),
        ({"messages": [*HELLO, {"role": "assistant", "content": "Sure:"}]}, "messages.1"),  # prefill, not on echo
    ],
)
async def test_bad_input_is_an_invalid_request_error_naming_the_field(
    app: Any, http: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    response = await http.post("/v1/messages", json=body)

    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(f"{field}: "), error
    assert app.upstream.requests == []


async def test_sdk_bad_request_and_unknown_model_raise_typed_errors(sdk: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        await sdk.messages.create(model="echo/echo-1", max_tokens=0, messages=HELLO)
    with pytest.raises(anthropic.NotFoundError) as missing:
        await sdk.messages.create(model="claude-opus-9", max_tokens=8, messages=HELLO, stream=True)

    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model: claude-opus-9"},
    }


async def test_raw_errors_are_anthropic_error_objects(http: httpx.AsyncClient) -> None:
    bad_json = await http.post("/v1/messages", content=b"{", headers={"content-type": "application/json"})
    wrong_type = await http.post("/v1/messages", content=b"{}", headers={"content-type": "text/plain"})
    wrong_method = await http.get("/v1/messages")
    too_large = await http.post("/v1/messages", content=b"x" * 200_000, headers={"content-type": "application/json"})

    for response, status, kind in (
        (bad_json, 400, "invalid_request_error"),
        (wrong_type, 400, "invalid_request_error"),
        (wrong_method, 405, "invalid_request_error"),
        (too_large, 413, "request_too_large"),
    ):
        assert response.status_code == status, response.text
        assert response.json() == {
            "type": "error",
            "error": {"type": kind, "message": response.json()["error"]["message"]},
        }


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("model", "status", "error"),
    [
        ("openai/gpt-4o-mini", 429, anthropic.RateLimitError),
        ("anthropic/claude-haiku-4-5", 503, anthropic.InternalServerError),
        (f"bedrock/{NOVA}", 429, anthropic.RateLimitError),
    ],
)
async def test_upstream_failure_before_output_is_a_status(
    app: Any, sdk: anthropic.AsyncAnthropic, model: str, status: int, error: type[Exception], stream: bool
) -> None:
    app.upstream.scenario = Scenario.http_error(status)
    app.bedrock.scenario = BedrockScenario.http_error(429, "ThrottlingException")

    with pytest.raises(error) as caught:
        await sdk.messages.create(model=model, max_tokens=64, messages=HELLO, stream=stream)

    response = caught.value.response  # type: ignore[attr-defined]
    expected = {429: (429, "rate_limit_error"), 503: (529, "overloaded_error")}[status]
    assert (response.status_code, response.json()["error"]["type"]) == expected
    assert response.headers["x-should-retry"] == "true"
    record = await wait_record(app, response.headers["x-stream-id"], "failed")
    assert record.transport == "anthropic"


async def test_failure_after_output_is_an_error_event_the_sdk_raises(app: Any, sdk: anthropic.AsyncAnthropic) -> None:
    app.upstream.scenario = Scenario.error_frame(after=2)
    stream = await sdk.messages.create(model="openai/gpt-4o-mini", max_tokens=64, messages=HELLO, stream=True)
    texts: list[str] = []

    with pytest.raises(anthropic.APIStatusError) as caught:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                texts.append(event.delta.text)

    assert "".join(texts) == "Hello,"
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert "UPSTREAM-BODY" not in str(caught.value.body)


# -- cancel and disconnect -----------------------------------------------------------------------


async def test_cancel_by_the_stream_id_header_ends_with_one_error_event_and_one_record(
    app: Any, http: httpx.AsyncClient
) -> None:
    app.upstream.scenario = Scenario.ok(*LONG, delay_s=0.02)
    body = {"model": "openai/gpt-4o-mini", "max_tokens": 1024, "messages": HELLO, "stream": True}
    names: list[str] = []
    last: dict[str, Any] = {}
    async with http.stream("POST", "/v1/messages", json=body) as response:
        stream_id = response.headers["x-stream-id"]
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                names.append(line[7:])
            elif line.startswith("data: "):
                last = json.loads(line[6:])
            if names.count("content_block_delta") == 3 and line.startswith("data: ") and len(names) < 8:
                async with httpx.AsyncClient(base_url=app.url) as other:
                    assert (await other.post(f"/chat/stream/{stream_id}/cancel")).status_code == 200

    assert names[-1] == "error" and names.count("error") == 1 and "message_stop" not in names
    assert last == {"type": "error", "error": {"type": "cancelled_error", "message": last["error"]["message"]}}
    assert app.upstream.wait_closed_early(1, timeout=5)
    record = await wait_record(app, stream_id, "cancelled")
    assert record.cancel_reason == "client" and record.transport == "anthropic"


async def test_client_disconnect_closes_upstream(app: Any, sdk: anthropic.AsyncAnthropic) -> None:
    app.bedrock.scenario = BedrockScenario.ok(*LONG, delay_s=0.02)
    stream = await sdk.messages.create(model=f"bedrock/{NOVA}", max_tokens=1024, messages=HELLO, stream=True)
    stream_id = stream.response.headers["x-stream-id"]
    received = 0
    async for _ in stream:
        received += 1
        if received == 5:
            break
    await stream.close()

    assert await asyncio.to_thread(app.bedrock.wait_ended, 1, 5.0, closed_early=True)
    record = await wait_record(app, stream_id, "cancelled")
    assert record.cancel_reason == "disconnect"
