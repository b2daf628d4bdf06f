"""``/v1/messages`` pure parts: ``anthropic_request`` (Messages bodies -> ``ChatRequest``, errors
naming the Anthropic field) and ``transports.anthropic`` (parts -> content blocks, one at a time)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenrelay import Settings
from tokenrelay.errors import PayloadTooLarge, Unauthorized
from tokenrelay.events import (
    Event,
    ReasoningDelta,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from tokenrelay.requests import ThinkingBlock, ToolCall, ToolChoice
from tokenrelay.transports.anthropic import AnthropicError, AnthropicStreamEncoder, MessageBuilder, anthropic_error
from tokenrelay_http.anthropic_request import parse_messages_request

SETTINGS = Settings.from_env(
    {
        "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini,o4-mini;anthropic:claude-haiku-4-5",
        "OPENAI_API_KEY": "sk-x",
        "ANTHROPIC_API_KEY": "sk-y",
        "DEFAULT_PROVIDER": "echo",
        "MODEL_ALIASES": "claude-haiku-4-5=anthropic/claude-haiku-4-5",
    }
)
HI = [{"role": "user", "content": "Hi"}]
TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def parse(**body: Any) -> Any:
    return parse_messages_request({"model": "echo/echo-1", "max_tokens": 100, "messages": HI, **body}, SETTINGS)


# -- requests ------------------------------------------------------------------------------------


def test_a_tool_loop_turn_becomes_calls_results_and_signed_thinking() -> None:
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Paris?", "cache_control": {"type": "ephemeral"}}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Weather.", "signature": "sig"},
                {"type": "thinking", "thinking": "unsigned, from an OpenAI model", "signature": ""},
                {"type": "redacted_thinking", "data": "b64"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]
    chat = parse(
        messages=messages,
        system=[{"type": "text", "text": "Be brief."}],
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        metadata={"user_id": "u1"},
    ).chat

    assert [m.role for m in chat.messages] == ["user", "assistant", "tool", "user"]
    assistant = chat.messages[1]
    assert assistant.content == "Checking."
    assert assistant.tool_calls == (ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'),)
    assert assistant.thinking == (ThinkingBlock("Weather.", "sig"), ThinkingBlock(redacted="b64"))
    assert (chat.messages[2].tool_call_id, chat.messages[2].content) == ("toolu_1", "sunny")
    assert chat.messages[3].content == "And tomorrow?" and chat.system == "Be brief."
    assert chat.tool_choice == ToolChoice("function", "get_weather") and chat.parallel_tool_calls is False
    assert chat.tools[0].parameters == TOOL["input_schema"]


@pytest.mark.parametrize(("budget", "effort"), [(1024, "minimal"), (2000, "low"), (8192, "medium"), (50_000, "high")])
def test_a_thinking_budget_is_the_nearest_effort_on_openai(budget: int, effort: str) -> None:
    chat = parse(model="openai/o4-mini", thinking={"type": "enabled", "budget_tokens": budget}).chat

    assert chat.reasoning is not None and (chat.reasoning.effort, chat.reasoning.budget_tokens) == (effort, None)


def test_thinking_any_tool_choice_and_stops_elsewhere() -> None:
    request = parse(
        model="claude-haiku-4-5",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        stop_sequences=["END"],
        stream=True,
    )
    echo = parse(tools=[TOOL], tool_choice={"type": "any"}, thinking={"type": "disabled"})

    assert request.chat.provider == "anthropic" and request.model == "claude-haiku-4-5" and request.stream
    assert request.chat.reasoning is not None and request.chat.reasoning.budget_tokens == 1024
    assert request.chat.stop == ("END",)
    assert echo.chat.tool_choice == ToolChoice("required") and echo.chat.reasoning is None


def test_a_prefill_is_for_anthropic_only() -> None:
    prefill = [*HI, {"role": "assistant", "content": "Sure:"}]
    assert parse(model="anthropic/claude-haiku-4-5", messages=prefill).chat.messages[-1].role == "assistant"
    with pytest.raises(AnthropicError) as caught:
        parse(messages=prefill)
    assert caught.value.message.startswith("messages.1: ")


@pytest.mark.parametrize(
    ("body", "status", "kind", "starts"),
    [
        ({"model": "gpt-9"}, 404, "not_found_error", "model: gpt-9"),
        ({"temperature": 0.5, "model": "anthropic/claude-haiku-4-5"}, 400, "invalid_request_error", "temperature: "),
        ({"messages": [*HI, {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x"}]}]}, 400, "", ""),
        ({"thinking": {"type": "enabled"}}, 400, "invalid_request_error", "thinking.budget_tokens: "),
        (
            {"model": "claude-haiku-4-5", "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 10}},
            400,
            "invalid_request_error",
            "thinking.budget_tokens: ",
        ),
        ({"tools": [{**TOOL, "cache": 1}]}, 400, "invalid_request_error", "tools.0.cache: "),
    ],
)
def test_refusals_name_the_anthropic_field(body: dict[str, Any], status: int, kind: str, starts: str) -> None:
    with pytest.raises(AnthropicError) as caught:
        parse(**body)

    assert caught.value.status == status
    assert caught.value.type == (kind or "invalid_request_error")
    assert caught.value.message.startswith(starts or "messages.1.content.0.tool_use_id: ")


def test_tokenrelay_errors_in_anthropic_words() -> None:
    assert anthropic_error(Unauthorized()).body() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid API key"},
    }
    too_large = anthropic_error(PayloadTooLarge(1000))
    assert (too_large.status, too_large.type) == (413, "request_too_large")


# -- encoding ------------------------------------------------------------------------------------


def encode(*events: Event) -> list[tuple[str, dict[str, Any]]]:
    encoder = AnthropicStreamEncoder("msg_s", "echo/echo-1")
    raw = b"".join(encoder.encode(e) for e in events).decode()
    out = []
    for frame in filter(None, raw.split("\n\n")):
        event, data = frame.split("\n")
        assert event.startswith("event: ") and data.startswith("data: ")
        out.append((event[7:], json.loads(data[6:])))
    return out


DONE = StreamDone("s", "tool_calls", 1, 2, 7)


def test_interleaved_calls_are_sent_one_block_at_a_time_in_order() -> None:
    """OpenAI may interleave two calls and ends both at its finish: Anthropic never opens two blocks."""
    events = encode(
        StreamStart("s", "openai", "gpt-4o-mini"),
        ToolCallStart(0, "c0", "a", 1),
        ToolCallDelta(0, '{"x":', 2),
        ToolCallStart(1, "c1", "b", 3),
        ToolCallDelta(1, '{"y":2}', 4),
        ToolCallDelta(0, "1}", 5),
        ToolCallEnd(0, 6),
        ToolCallEnd(1, 7),
        Usage(5, 7),
        DONE,
    )
    shape = [(name, data.get("index")) for name, data in events if name.startswith("content_block")]

    assert shape == [
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
    ]
    fragments = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert fragments == ['{"x":', "1}", '{"y":2}']
    assert events[-2] == (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"input_tokens": 5, "output_tokens": 7},
        },
    )


def test_reasoning_redacted_text_and_one_ping() -> None:
    events = encode(
        StreamStart("s", "anthropic", "claude"),
        ReasoningDelta("Hm", 1),
        ReasoningDelta("", 2, signature="sig"),
        ReasoningDelta("", 3, redacted="b64"),
        TextDelta("Hi", 4),
        TextDelta("!", 5),
        StreamDone("s", "stop", 1, 2, 3),
    )

    assert [n for n, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert starts == [
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "redacted_thinking", "data": "b64"},
        {"type": "text", "text": ""},
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"] == {"input_tokens": 0, "output_tokens": 3}  # no usage reported: the count


@pytest.mark.parametrize(
    ("terminal", "kind"),
    [
        (StreamError("OpenAI rate limit exceeded (HTTP 429)", "upstream_rate_limited", True), "rate_limit_error"),
        (StreamError("unavailable", "upstream_unavailable", True), "overloaded_error"),
        (StreamCancelled("s", "client"), "cancelled_error"),
        (StreamCancelled("s", "timeout"), "timeout_error"),
    ],
)
def test_an_end_after_output_is_one_error_event(terminal: Event, kind: str) -> None:
    events = encode(StreamStart("s", "echo", "echo-1"), TextDelta("Hi", 1), terminal)

    name, data = events[-1]
    assert name == "error" and data["error"]["type"] == kind and set(data["error"]) == {"type", "message"}
    assert [n for n, _ in events].count("message_stop") == 0


def test_the_whole_message_is_what_the_stream_sends() -> None:
    builder = MessageBuilder()
    for event in (
        ReasoningDelta("Hm", 1),
        ReasoningDelta("", 2, signature="sig"),
        TextDelta("Let me check.", 3),
        ToolCallStart(0, "c0", "get_weather", 4),
        ToolCallDelta(0, '{"city":', 5),
        ToolCallDelta(0, '"Paris"}', 6),
        ToolCallEnd(0, 7),
        Usage(9, 7),
    ):
        builder.add(event)

    message = builder.message("msg_s", "echo/echo-1", DONE)
    assert message["content"] == [
        {"type": "thinking", "thinking": "Hm", "signature": "sig"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "c0", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert message["stop_reason"] == "tool_use" and message["usage"] == {"input_tokens": 9, "output_tokens": 7}


@pytest.mark.parametrize(
    ("finish", "stop", "expected"),
    [
        ("stop", "###", {"stop_reason": "stop_sequence", "stop_sequence": "###"}),
        ("stop", "", {"stop_reason": "stop_sequence", "stop_sequence": None}),  # the provider did not say which
        ("stop", None, {"stop_reason": "end_turn", "stop_sequence": None}),
        ("length", None, {"stop_reason": "max_tokens", "stop_sequence": None}),
        ("content_filter", None, {"stop_reason": "refusal", "stop_sequence": None}),
    ],
)
def test_stop_reason_and_stop_sequence(finish: str, stop: str | None, expected: dict[str, Any]) -> None:
    done = StreamDone("s", finish, 1, 2, 3, stop_sequence=stop)
    events = encode(StreamStart("s", "echo", "echo-1"), TextDelta("Hi", 1), done)
    whole = MessageBuilder().message("msg_s", "echo/echo-1", done)

    assert events[-2][1]["delta"] == expected
    assert {k: whole[k] for k in expected} == expected


def test_the_text_hot_path_sends_the_bytes_of_the_general_one() -> None:
    """Text after the first of a block is formatted as a string; it must equal the JSON encoding."""
    texts = ['a "quoted" word', "é\u2028\n\t\\", "", "😀 </script>"]
    encoder = AnthropicStreamEncoder("msg_s", "echo/echo-1")
    encoder.encode(StreamStart("s", "anthropic", "claude"))
    encoder.encode(ReasoningDelta("Hm", 1))
    encoder.encode(TextDelta("first", 2))  # opens text block 1 (the general path)
    fast = [encoder.encode(TextDelta(t, 3 + i)) for i, t in enumerate(texts)]

    general = [
        f"event: content_block_delta\ndata: {json.dumps(d, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()
        for d in (
            {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": t}} for t in texts
        )
    ]
    assert fast == [g if t else b"" for g, t in zip(general, texts, strict=True)]
