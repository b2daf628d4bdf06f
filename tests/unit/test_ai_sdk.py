"""The AI SDK's UI message stream encoder (``transports/ai_sdk.py``) and useChat's request body
(``tokenrelay_http/ui_request.py``), pure: docs/ai-sdk.md."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tokenrelay import RequestInvalid, Settings
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
from tokenrelay.transports.ai_sdk import UIMessageStreamEncoder
from tokenrelay_http.ui_request import parse_ui_request

SETTINGS = Settings.from_env({"DEFAULT_PROVIDER": "echo", "ALLOWED_MODELS": "echo:echo-1"})
DONE = StreamDone("s1", "stop", 5, 10, 3)


def chunks(*events: Event, message_id: str | None = None) -> list[Any]:
    encoder = UIMessageStreamEncoder("s1", message_id)
    raw = encoder.start() + b"".join(encoder.encode(e) for e in events)
    assert raw.endswith(b"\n\n") and all(line.startswith(b"data: ") for line in raw.split(b"\n\n")[:-1])
    return [line[6:].decode() if line == b"data: [DONE]" else json.loads(line[6:]) for line in raw.split(b"\n\n")[:-1]]


def test_text_then_reasoning_then_text_are_three_blocks_with_their_own_ids() -> None:
    out = chunks(
        StreamStart("s1", "echo", "echo-1"),
        TextDelta("a", 1),
        ReasoningDelta("r", 2),
        ReasoningDelta("", 3, signature="sig"),
        TextDelta("b", 4),
        Usage(1, 2),
        DONE,
    )
    assert out == [
        {"type": "start", "messageId": "msg-s1"},
        {"type": "start-step"},
        {"type": "text-start", "id": "text-1"},
        {"type": "text-delta", "id": "text-1", "delta": "a"},
        {"type": "text-end", "id": "text-1"},
        {"type": "reasoning-start", "id": "reasoning-2"},
        {"type": "reasoning-delta", "id": "reasoning-2", "delta": "r"},
        {"type": "reasoning-end", "id": "reasoning-2", "providerMetadata": {"tokenrelay": {"signature": "sig"}}},
        {"type": "text-start", "id": "text-3"},
        {"type": "text-delta", "id": "text-3", "delta": "b"},
        {"type": "text-end", "id": "text-3"},
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "stop"},
        "[DONE]",
    ]


def test_a_redacted_block_is_a_reasoning_part_of_its_own() -> None:
    out = chunks(ReasoningDelta("r", 1), ReasoningDelta("", 2, redacted="b64=="), DONE)
    kinds = [c["type"] for c in out[2:-3]]
    assert kinds == ["reasoning-start", "reasoning-delta", "reasoning-end", "reasoning-start", "reasoning-end"]
    assert out[-4]["providerMetadata"] == {"tokenrelay": {"redactedData": "b64=="}}


def test_interleaved_tool_calls_keep_their_ids_and_bad_json_is_a_tool_input_error() -> None:
    out = chunks(
        ToolCallStart(0, "c0", "a", 1),
        ToolCallStart(1, "c1", "b", 2),
        ToolCallDelta(0, '{"x":', 3),
        ToolCallDelta(1, "{oops", 4),
        ToolCallDelta(0, "1}", 5),
        ToolCallEnd(0, 6),
        ToolCallEnd(1, 7),
        StreamDone("s1", "tool_calls", 1, 2, 3),
    )
    assert out[2:4] == [
        {"type": "tool-input-start", "toolCallId": "c0", "toolName": "a"},
        {"type": "tool-input-start", "toolCallId": "c1", "toolName": "b"},
    ]
    assert out[7] == {"type": "tool-input-available", "toolCallId": "c0", "toolName": "a", "input": {"x": 1}}
    assert out[8]["type"] == "tool-input-error" and out[8]["input"] == "{oops" and out[8]["toolCallId"] == "c1"
    assert out[-2] == {"type": "finish", "finishReason": "tool-calls"}


@pytest.mark.parametrize(
    ("terminal", "last"),
    [
        (StreamCancelled("s1", "client"), {"type": "abort", "reason": "client"}),
        (StreamError("down", "upstream_error", True), {"type": "error", "errorText": "down (upstream_error)"}),
        (StreamDone("s1", "max_tokens", 1, 2, 3), {"type": "finish", "finishReason": "other"}),
        (StreamDone("s1", "length", 1, 2, 3), {"type": "finish", "finishReason": "length"}),
    ],
)  # fmt: skip
def test_each_end_closes_the_open_block_then_done(terminal: Event, last: dict[str, Any]) -> None:
    out = chunks(TextDelta("a", 1), terminal, message_id="m-given")
    assert out[0] == {"type": "start", "messageId": "m-given"}
    assert out[4] == {"type": "text-end", "id": "text-1"} and out[-2:] == [last, "[DONE]"]


def ui(role: str, *parts: dict[str, Any], message_id: str = "m") -> dict[str, Any]:
    return {"id": message_id, "role": role, "parts": list(parts)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def test_ui_messages_become_the_native_messages_step_by_step() -> None:
    call = {"type": "tool-get_weather", "toolCallId": "c1", "state": "output-available", "input": {"city": "P"}}
    signed = {"type": "reasoning", "text": "hm", "providerMetadata": {"tokenrelay": {"signature": "sig"}}}
    body = {
        "id": "chat-1",
        "trigger": "submit-message",
        "messages": [
            ui("system", text("be brief")),
            ui("user", text("weather?"), {"type": "data-x", "data": 1}),
            ui(
                "assistant",
                {"type": "step-start"},
                signed,
                {"type": "reasoning", "text": "unsigned"},
                {**call, "output": {"sky": "sunny"}},
                {"type": "step-start"},
                text("It is "),
                text("sunny."),
                {"type": "source-url", "sourceId": "s", "url": "https://example.com"},
                message_id="a1",
            ),
            ui("user", text("thanks")),
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
    }
    request = parse_ui_request(body, SETTINGS)
    assert request.chat_id == "chat-1" and request.continues is None
    roles = [(m.role, m.content) for m in request.chat.messages]
    assert roles == [
        ("system", "be brief"),
        ("user", "weather?"),
        ("assistant", ""),
        ("tool", '{"sky": "sunny"}'),
        ("assistant", "It is sunny."),
        ("user", "thanks"),
    ]
    first = request.chat.messages[2]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in first.tool_calls] == [("c1", "get_weather", {"city": "P"})]
    assert [(b.thinking, b.signature) for b in first.thinking] == [("hm", "sig")]
    assert request.chat.messages[3].tool_call_id == "c1"


def test_a_continuation_after_tool_results_names_the_assistant_message() -> None:
    done = {"type": "dynamic-tool", "toolName": "t", "toolCallId": "c", "state": "output-error", "errorText": "boom"}
    request = parse_ui_request(
        {"id": "c", "messages": [ui("user", text("go t")), ui("assistant", done, message_id="a9")]}, SETTINGS
    )
    assert request.continues == "a9"
    assert [(m.role, m.content) for m in request.chat.messages][-1] == ("tool", "boom")


FILE = {"type": "file", "url": "u", "mediaType": "a/b"}
NO_ID = {"type": "tool-x", "state": "output-available"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "c", "messages": [ui("user", text("x"))] * 200}, "messages"),
        ({"id": "c", "messages": [ui("user", text("hi")), ui("assistant", FILE)]}, "messages.1.parts.0.type"),
        ({"id": "c", "messages": [ui("user", {"type": "reasoning", "text": "x"})]}, "messages.0.parts.0.type"),
        ({"id": "c", "messages": [ui("user", text("hi")), ui("assistant", NO_ID)]}, "messages.1.parts.0.toolCallId"),
        ({"id": "c", "messages": [{"id": "m", "role": "user", "parts": ["nope"]}]}, "messages.0.parts.0.type"),
        ({"id": "c", "messages": [ui("user", text("   "))]}, "messages"),
        ({"id": "c", "messages": [ui("user", text("hi"))], "messageId": 3}, "messageId"),
        ([], "body"),
    ],
)  # fmt: skip
def test_bad_ui_bodies_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(RequestInvalid) as raised:
        parse_ui_request(body, SETTINGS)
    assert raised.value.field == field
