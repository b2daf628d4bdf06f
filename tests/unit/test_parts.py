"""Content parts through the engine (docs/protocol.md §11): seq over every part, the output log
round trip, the wire encoders, WebSocket coalescing per kind, request validation and the 400s
for what a provider cannot do, and the run's summary (tool calls, reasoning tokens)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.output_log import MemoryOutputLog
from tokenrelay import (
    PART_TYPES,
    ChatRequest,
    Part,
    ReasoningDelta,
    RequestInvalid,
    Settings,
    StreamDone,
    StreamRun,
    StreamServices,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    parse_chat_request,
)
from tokenrelay.providers.echo import EchoProvider
from tokenrelay.requests import request_fields
from tokenrelay.resume import OutputLogWriter, follow
from tokenrelay.stores import LogBatch
from tokenrelay.transports import CoalescingSender, encode_sse
from tokenrelay.transports.websocket import encode_message

SETTINGS = Settings.from_env(
    {
        "DEFAULT_PROVIDER": "echo",
        "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o,o4-mini;anthropic:claude-haiku-4-5;"
        "bedrock:amazon.nova-lite-v1:0,us.anthropic.claude-haiku-4-5-v1:0",
        "BEDROCK_ENABLED": "true",
        "OPENAI_API_KEY": "sk-x",
        "ANTHROPIC_API_KEY": "sk-y",
    }
)
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": CITY}}
PARTS: list[Part] = [
    ReasoningDelta("Let ", 1),
    ReasoningDelta("me.", 2),
    ReasoningDelta("", 3, signature="sig"),
    ReasoningDelta("", 4, redacted="b3BhcXVl"),
    TextDelta("Hi ", 5),
    ToolCallStart(0, "call_1", "get_weather", 6),
    ToolCallDelta(0, '{"city":', 7),
    ToolCallStart(1, "call_2", "get_time", 8),
    ToolCallDelta(1, "{}", 9),
    ToolCallDelta(0, '"Paris"}', 10),
    ToolCallEnd(0, 11),
    ToolCallEnd(1, 12),
    TextDelta("done", 13),
]


def parse(**body: Any) -> ChatRequest:
    return parse_chat_request({"message": "get_weather in Paris", **body}, SETTINGS)


async def run_echo(request: ChatRequest) -> tuple[StreamRun, list[Any]]:
    run = StreamRun(
        request,
        EchoProvider(delay_s=0),
        StreamServices(SETTINGS, MemoryStreamStore()),
        stream_id="p-1",
        owner="me",
        transport="sse",
    )
    await run.open()
    events = [e async for e in run.events()]
    await run.wait()
    return run, events


async def test_echo_reasoning_then_tool_call_numbers_every_part_and_counts_them() -> None:
    run, events = await run_echo(parse(tools=[TOOL], reasoning={"effort": "low"}))

    parts = [e for e in events if isinstance(e, PART_TYPES)]
    assert [p.seq for p in parts] == list(range(1, len(parts) + 1))
    reasoning = [p for p in parts if isinstance(p, ReasoningDelta)]
    assert "".join(p.text for p in reasoning) == "Thinking about: get_weather in Paris"
    assert reasoning[-1].signature.startswith("echo-")
    assert [p for p in parts if isinstance(p, ToolCallStart)] == [
        ToolCallStart(0, "call_echo_0", "get_weather", len(reasoning) + 1)
    ]
    arguments = "".join(p.arguments for p in parts if isinstance(p, ToolCallDelta))
    assert json.loads(arguments) == {"city": "get_weather in Paris"}
    assert isinstance(parts[-1], ToolCallEnd) and all(p.arguments for p in parts if isinstance(p, ToolCallDelta))
    done = events[-1]
    assert isinstance(done, StreamDone) and done.finish_reason == "tool_calls"
    summary = run.summary()
    assert (summary.tool_calls, summary.reasoning_tokens) == (1, len(reasoning) - 1)
    assert run.outcome is not None and run.outcome.last_seq == len(parts)


async def test_echo_answers_a_tool_result() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    _, events = await run_echo(parse_chat_request({"messages": messages, "tools": [TOOL]}, SETTINGS))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Tool get_weather returned: sunny"
    failed = [*messages[:2], {"role": "tool", "tool_call_id": "c1", "content": "sunny", "is_error": True}]
    _, events = await run_echo(parse_chat_request({"messages": failed, "tools": [TOOL]}, SETTINGS))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Tool get_weather failed: sunny"


async def test_output_log_keeps_every_part_and_replays_from_the_middle_exactly() -> None:
    store = MemoryOutputLog()
    writer = OutputLogWriter(store, "s", expires_at=1, flush_s=0.01, max_bytes=20)
    for part in PARTS:
        writer.add(part)
        await asyncio.sleep(0.003)
    await writer.close(StreamDone("s", "tool_calls", 1, 2, 9), Usage(3, 9, reasoning_tokens=2))

    batches = [i for i in store.items["s"].values() if isinstance(i, LogBatch)]
    assert len(batches) > 1 and any(b.kinds for b in batches)
    for after in (0, 6, 7, 10):
        replay = [e async for e in follow(store, "s", after, poll_s=0.01)]
        assert replay[:-2] == PARTS[after:]
        assert replay[-2] == Usage(3, 9, reasoning_tokens=2)


async def test_a_text_only_batch_has_no_kinds() -> None:
    store = MemoryOutputLog()
    writer = OutputLogWriter(store, "s", expires_at=1, flush_s=0.01)
    writer.add(TextDelta("a", 1))
    await writer.close(StreamDone("s", "stop", 1, 2, 1), None)
    (batch,) = [i for i in store.items["s"].values() if isinstance(i, LogBatch)]
    assert batch.kinds == "" and batch.texts == ("a",)


def test_sse_gives_every_part_an_id_and_its_own_event() -> None:
    frames = [encode_sse(p).decode() for p in PARTS]
    assert all(f"\nid: {p.seq}\n" in f for f, p in zip(frames, PARTS, strict=True))
    assert frames[2] == 'event: reasoning\nid: 3\ndata: {"text":"","signature":"sig"}\n\n'
    assert frames[5] == 'event: tool_call_start\nid: 6\ndata: {"index":0,"id":"call_1","name":"get_weather"}\n\n'
    assert frames[6] == 'event: tool_call_delta\nid: 7\ndata: {"index":0,"arguments":"{\\"city\\":"}\n\n'
    assert frames[10] == 'event: tool_call_end\nid: 11\ndata: {"index":0}\n\n'
    assert frames[4] == 'event: message\nid: 5\ndata: {"text":"Hi "}\n\n'  # the first dialect, unchanged


class Poster:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []

    async def post(self, connection_id: str, data: bytes) -> None:
        self.posted.append(json.loads(data))


async def test_websocket_merges_parts_per_kind_and_numbers_part_messages() -> None:
    poster = Poster()
    sender = CoalescingSender(poster, "c", stream_id="s", flush_interval_s=10.0)
    for part in PARTS:  # queued before the sender runs: everything that may merge, merges
        sender.send(part)
    await sender.aclose()

    kinds = [(m["type"], m["seq"]) for m in poster.posted]
    assert kinds == [
        ("reasoning", 1),
        ("reasoning", 2),
        ("reasoning", 3),
        ("text", 4),
        ("tool_call_start", 5),
        ("tool_call_delta", 6),
        ("tool_call_start", 7),
        ("tool_call_delta", 8),
        ("tool_call_delta", 9),
        ("tool_call_end", 10),
        ("tool_call_end", 11),
        ("text", 12),
    ]
    assert poster.posted[0]["content"] == "Let me." and poster.posted[0]["tokens"] == 2
    assert poster.posted[1]["signature"] == "sig" and poster.posted[2]["redacted"] == "b3BhcXVl"
    assert [m["arguments"] for m in poster.posted if m["type"] == "tool_call_delta"] == ['{"city":', "{}", '"Paris"}']
    assert sender.delivered == 13


def test_websocket_message_of_each_part() -> None:
    assert json.loads(encode_message(ToolCallStart(0, "c", "f", 3), "s")) == {
        "type": "tool_call_start",
        "stream_id": "s",
        "index": 0,
        "id": "c",
        "name": "f",
        "seq": 3,
    }
    assert json.loads(encode_message(ToolCallDelta(1, "{}", 4), "s", tokens=2))["tokens"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice.function.name",
        ),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tools": [TOOL, TOOL]}, "tools.1.function.name"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools.0.function.name"),
        ({"reasoning": {}}, "reasoning"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"provider": "openai", "model": "o4-mini", "reasoning": {"budget_tokens": 2000}}, "reasoning.budget_tokens"),
        ({"provider": "openai", "reasoning": {"effort": "low"}}, "reasoning"),  # gpt-4o does not reason
        ({"provider": "anthropic", "reasoning": {"budget_tokens": 500}, "max_tokens": 4000}, "reasoning.budget_tokens"),
        ({"provider": "anthropic", "reasoning": {"effort": "low"}, "max_tokens": 500}, "max_tokens"),
        (
            {
                "provider": "anthropic",
                "tools": [TOOL],
                "tool_choice": "required",
                "reasoning": {"effort": "low"},
                "max_tokens": 4000,
            },
            "tool_choice",
        ),
        ({"provider": "bedrock", "model": "amazon.nova-lite-v1:0", "reasoning": {"effort": "low"}}, "reasoning"),
        ({"provider": "bedrock", "tools": [TOOL], "tool_choice": "none"}, "tool_choice"),
        ({"provider": "bedrock", "tools": [TOOL], "parallel_tool_calls": False}, "parallel_tool_calls"),
    ],
)
def test_what_a_request_or_provider_cannot_do_is_a_400_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse(**body)
    assert caught.value.field == field
    if "provider" in body and "not supported" in caught.value.message:
        assert repr(body["provider"]) in caught.value.message


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        (
            [{"role": "tool", "content": "x", "tool_call_id": "nope"}, {"role": "user", "content": "hi"}],
            "messages.0.tool_call_id",
        ),
        ([{"role": "user", "content": "hi", "tool_call_id": "c"}], "messages.0.tool_call_id"),
        ([{"role": "user", "content": "hi", "is_error": True}], "messages.0.is_error"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}], "messages.1.content"),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]},
            ],
            "messages.1.tool_calls.0.function.arguments",
        ),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "x", "thinking_blocks": [{"type": "thinking", "thinking": "t"}]},
            ],
            "messages.1.thinking_blocks.0",
        ),
    ],
)
def test_tool_messages_are_checked(messages: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(RequestInvalid) as caught:
        parse_chat_request({"messages": messages}, SETTINGS)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("target", "refused"),
    [
        ({"provider": "echo"}, False),
        ({"provider": "anthropic"}, False),
        ({"provider": "bedrock", "model": "us.anthropic.claude-haiku-4-5-v1:0"}, False),
        ({"provider": "bedrock", "model": "amazon.nova-lite-v1:0"}, True),
        ({"provider": "openai"}, True),  # its tool messages have no such flag
    ],
)
def test_a_failed_tool_result_goes_where_the_provider_takes_it(target: dict[str, Any], refused: bool) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "no such city", "is_error": True},
    ]
    body = {"messages": messages, "tools": [TOOL], **target}
    if refused:
        with pytest.raises(RequestInvalid) as caught:
            parse_chat_request(body, SETTINGS)
        assert caught.value.field == "messages.2.is_error" and repr(target["provider"]) in caught.value.message
    else:
        assert parse_chat_request(body, SETTINGS).messages[2].is_error is True


def test_request_fields_give_the_same_request_back() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "thinking_blocks": [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "redacted_thinking", "data": "ZA=="},
            ],
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "no such city", "is_error": True},
    ]
    body = {
        "messages": messages,
        "provider": "anthropic",
        "tools": [TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "max_tokens": 100,
        "stop": ["END"],
        "user": "u-1",
    }
    request = parse_chat_request(body, SETTINGS)
    sampled = parse_chat_request(
        {"message": "hi", "provider": "openai", "top_p": 0.5, "seed": 9, "presence_penalty": 1, "frequency_penalty": 0},
        SETTINGS,
    )
    assert parse_chat_request(request_fields(sampled), SETTINGS) == sampled
    assert parse_chat_request(request_fields(request), SETTINGS) == request
    assert request.messages[1].content == "" and request.messages[1].tool_calls[0].input() == {}


@pytest.mark.parametrize("extra", [{"tools": [TOOL]}, {"reasoning": {"effort": "low"}}])
async def test_stream_simple_refuses_what_raw_text_cannot_carry(extra: dict[str, Any]) -> None:
    import httpx

    from tokenrelay_http import create_app

    app = create_app(SETTINGS, store=MemoryStreamStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        response = await client.post("/chat/stream-simple", json={"message": "hi get_weather", **extra})
    assert response.status_code == 400 and response.json()["field"] == next(iter(extra))
