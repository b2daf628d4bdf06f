"""The OpenAI SDK, as a client of ``/v1``, runs a whole tool loop on every provider: the model's
``tool_calls`` (streamed, OpenAI-exact), then a ``tool`` message, then the final answer. The app
runs under uvicorn with moto's DynamoDB; the providers' SDKs talk to fake upstreams that speak
each wire format (``tests/fakes/parts.py``). Also: reasoning as ``delta.reasoning_content`` with
``completion_tokens_details.reasoning_tokens``, and a whole (non-streamed) answer with tool calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.e2e.conftest import LocalApp, providers_app
from tests.fakes import parts as p
from tests.fakes.bedrock import BedrockScenario, FakeBedrock, bedrock_server
from tests.fakes.local_stack import LocalAws
from tests.fakes.upstream import FakeUpstream, Scenario

__all__ = ["bedrock_server"]  # fixture

CLAUDE_BEDROCK = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
MODELS = ["echo/echo-1", "openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", f"bedrock/{CLAUDE_BEDROCK}"]
TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Paris? Use get_weather"}]
CALL = (  # what the fake providers answer first: a short text, then the call, arguments in pieces
    p.say("Checking."),
    p.call(0, "call_w1", "get_weather"),
    p.args(0, ""),
    p.args(0, '{"city":'),
    p.args(0, '"Paris"}'),
    p.end(0),
)


@pytest.fixture(scope="module")
def loop_app(aws: LocalAws, upstream_server: FakeUpstream, bedrock_server: FakeBedrock) -> Iterator[LocalApp]:
    env = {
        "DEFAULT_PROVIDER": "echo",
        "ALLOWED_MODELS": f"echo:echo-1;openai:gpt-4o-mini,o4-mini;anthropic:claude-haiku-4-5;bedrock:{CLAUDE_BEDROCK}",
        "ECHO_DELAY_MS": "2",
        "UPSTREAM_MAX_RETRIES": "0",
    }
    with providers_app(aws, upstream_server, bedrock_server, env, "tool-loop") as app:
        yield app


@pytest.fixture
async def sdk(loop_app: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    loop_app.upstream.reset()
    loop_app.bedrock.reset()
    client = openai.AsyncOpenAI(base_url=f"{loop_app.url}/v1", api_key="tr-local", max_retries=0, timeout=10)
    yield client
    await client.close()


def script(app: Any, model: str, *turns: tuple[p.Step, ...]) -> None:
    provider = model.split("/")[0]
    if provider == "bedrock":
        app.bedrock.enqueue(*(BedrockScenario(parts=t) for t in turns))
    elif provider != "echo":
        app.upstream.enqueue(*(Scenario(parts=t) for t in turns))


@pytest.mark.parametrize("model", MODELS)
async def test_openai_sdk_runs_a_tool_loop(loop_app: Any, sdk: openai.AsyncOpenAI, model: str) -> None:
    script(loop_app, model, CALL, (p.say("It is "), p.say("sunny in Paris.")))

    # Turn 1: the SDK's own stream helper accumulates the deltas (and checks their shape).
    async with sdk.chat.completions.stream(model=model, messages=QUESTION, tools=TOOLS) as stream:
        raw_chunks = [event.chunk async for event in stream if event.type == "chunk"]
        first = await stream.get_final_completion()
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {
        "city": "Paris" if not model.startswith("echo") else QUESTION[0]["content"]
    }
    # OpenAI-exact: the first chunk of the call has id, type and name; later ones only arguments.
    deltas = [tc for c in raw_chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    first_fn = deltas[0].function
    assert deltas[0].id == call.id and deltas[0].type == "function"
    assert first_fn is not None and first_fn.name == "get_weather"
    assert all(d.id is None and (d.function is None or d.function.name is None) for d in deltas[1:])
    assert len(deltas) >= 2

    # Turn 2: the call and its result go back; the model answers.
    messages: list[ChatCompletionMessageParam] = [
        *QUESTION,
        choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    final = await sdk.chat.completions.create(model=model, messages=messages, tools=TOOLS)

    assert final.choices[0].finish_reason == "stop"
    expected = "Tool get_weather returned: sunny, 21 C" if model.startswith("echo") else "It is sunny in Paris."
    assert final.choices[0].message.content == expected
    sent_back(loop_app, model, call.id)


def sent_back(app: Any, model: str, call_id: str) -> None:
    """What the provider got on turn 2: the call and its result, in its own format."""
    provider = model.split("/")[0]
    if provider == "openai":
        messages = app.upstream.last.json["messages"]
        assert messages[1]["tool_calls"][0]["id"] == call_id and messages[2]["role"] == "tool"
        assert messages[2]["tool_call_id"] == call_id and messages[2]["content"] == "sunny, 21 C"
    elif provider == "anthropic":
        messages = app.upstream.last.json["messages"]
        tool_use = messages[1]["content"][-1]
        assert tool_use == {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}}
        assert messages[2]["content"] == [{"type": "tool_result", "tool_use_id": call_id, "content": "sunny, 21 C"}]
        assert app.upstream.last.json["tools"][0]["input_schema"]["required"] == ["city"]
    elif provider == "bedrock":
        body = app.bedrock.last.json
        assert body["messages"][1]["content"][-1]["toolUse"]["toolUseId"] == call_id
        result = body["messages"][2]["content"][0]["toolResult"]
        assert result == {"toolUseId": call_id, "content": [{"text": "sunny, 21 C"}]}
        assert body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"


async def test_openai_sdk_reads_reasoning_and_reasoning_tokens(loop_app: Any, sdk: openai.AsyncOpenAI) -> None:
    loop_app.upstream.scenario = Scenario(
        parts=(p.think("Hmm, "), p.think("weather."), p.say("Sunny.")), reasoning_tokens=2
    )
    stream = await sdk.chat.completions.create(
        model="openai/o4-mini",
        messages=QUESTION,
        reasoning_effort="low",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]

    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    assert reasoning == "Hmm, weather."
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Sunny."
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 2
    assert loop_app.upstream.last.json["reasoning_effort"] == "low"


async def test_whole_completion_has_tool_calls_and_reasoning(loop_app: Any, sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(
        model="echo/echo-1", messages=QUESTION, tools=TOOLS, reasoning_effort="medium"
    )

    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls" and message.content is None
    assert message.tool_calls is not None and message.tool_calls[0].type == "function"
    assert message.tool_calls[0].function.name == "get_weather"
    extra = message.model_extra or {}
    assert extra["reasoning_content"] == f"Thinking about: {QUESTION[0]['content']}"
    assert extra["thinking_blocks"][0]["signature"].startswith("echo-")


@pytest.mark.parametrize(
    ("model", "extra", "param"),
    [
        ("anthropic/claude-haiku-4-5", {"reasoning_effort": "low", "tool_choice": "required"}, "tool_choice"),
        ("openai/gpt-4o-mini", {"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ],
)
async def test_what_the_provider_cannot_do_is_a_400_naming_it(
    sdk: openai.AsyncOpenAI, model: str, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(model=model, messages=QUESTION, tools=TOOLS, max_tokens=4000, **extra)
    assert caught.value.param == param


async def test_what_the_model_cannot_do_is_a_400_before_any_upstream_call(
    loop_app: Any, sdk: openai.AsyncOpenAI
) -> None:
    # gpt-4o-mini does not reason (the shipped capability table): refused here, not by OpenAI
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=QUESTION, reasoning_effort="low")
    assert caught.value.param == "reasoning_effort"
    assert "'openai'" in caught.value.message and "'gpt-4o-mini'" in caught.value.message
    assert loop_app.upstream.requests == []


async def test_models_show_each_models_capabilities(sdk: openai.AsyncOpenAI) -> None:
    models = {m.id: (m.model_extra or {})["capabilities"] for m in (await sdk.models.list()).data}
    no_reasoning = {"images": True, "tools": True, "reasoning": False, "structured_output": True}
    assert models["openai/gpt-4o-mini"] == no_reasoning
    assert models["openai/o4-mini"]["reasoning"] is True
    assert models[f"bedrock/{CLAUDE_BEDROCK}"]["reasoning"] is True
    one = await sdk.models.retrieve("openai/gpt-4o-mini")
    assert (one.model_extra or {})["capabilities"]["reasoning"] is False
