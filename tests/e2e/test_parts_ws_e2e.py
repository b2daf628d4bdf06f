"""Reasoning and tool calls on the WebSocket end to end (docs/protocol.md §11): the new message types,
``seq`` over every part message, and a resume on a new connection in the middle of a tool call that
replays each message once, byte for byte, whether the worker still runs or has sealed the stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.e2e.test_websocket_e2e import Client, Stack, connect
from tests.e2e.test_websocket_resume_e2e import app, resume, stack

__all__ = ["app", "stack"]  # fixtures

PARTS = ("text", "reasoning", "tool_call_start", "tool_call_delta", "tool_call_end")
ASK = "use get_weather for " + " ".join(f"w{i}" for i in range(150))  # long arguments: many fragments
CHAT = {
    "type": "chat",
    "message": ASK,
    "provider": "echo",
    "reasoning": {"effort": "low"},
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ],
}


def parts_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] in PARTS]


def assert_whole(parts: list[dict[str, Any]]) -> None:
    assert [m["seq"] for m in parts] == list(range(1, len(parts) + 1))
    reasoning = [m for m in parts if m["type"] == "reasoning"]
    assert "".join(m["content"] for m in reasoning) == f"Thinking about: {ASK}"
    assert reasoning[-1]["signature"].startswith("echo-")
    assert [(m["index"], m["id"], m["name"]) for m in parts if m["type"] == "tool_call_start"] == [
        (0, "call_echo_0", "get_weather")
    ]
    arguments = "".join(m["arguments"] for m in parts if m["type"] == "tool_call_delta")
    assert json.loads(arguments) == {"q": ASK}
    assert [m["index"] for m in parts if m["type"] == "tool_call_end"] == [0]


async def test_ws_streams_reasoning_and_a_tool_call(app: Stack) -> None:
    async with connect(app, "/?client_id=parts") as ws:
        client = Client(ws)
        await client.send(CHAT)
        messages = await client.until_terminal(wait_s=20)
    assert_whole(parts_of(messages))
    assert messages[-1]["type"] == "done" and messages[-1]["finish_reason"] == "tool_calls"


async def test_ws_resume_in_the_middle_of_a_tool_call_replays_it_exactly(app: Stack) -> None:
    async with connect(app, "/?client_id=resumer") as ws:
        client = Client(ws)
        await client.send(CHAT)
        before = [await client.recv()]
        while sum(m["type"] == "tool_call_delta" for m in before) < 2:
            before.append(await client.recv())
    stream_id = before[0]["stream_id"]
    last = max(m["seq"] for m in parts_of(before))

    after = await resume(app, stream_id, last, owner="resumer")

    assert_whole(parts_of(before) + parts_of(after))
    assert after[-1]["type"] == "done"
    await app.record(stream_id, "complete")
    await asyncio.sleep(0.5)  # the worker seals its message boundaries: a replay from the log now
    again = await resume(app, stream_id, last, owner="resumer")
    assert parts_of(again) == parts_of(after)
