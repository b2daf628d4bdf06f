"""Reasoning and tool calls on ``/chat/stream`` end to end (docs/protocol.md §11): the new events, each
part with its ``id``, a first-generation reader that sees only ``message`` text, and a resume in the
middle of a tool call, on another process, that replays every part exactly once."""

from __future__ import annotations

import json

import httpx

from tests.e2e.resume_stack import ResumeStack
from tests.e2e.sse_client import SSEEvent, iter_sse
from tests.e2e.test_sse_resume_e2e import resume, resume_from, stack, wait_record
from tests.fakes import parts as p
from tests.fakes.upstream import Scenario

PARTS = ("message", "reasoning", "tool_call_start", "tool_call_delta", "tool_call_end")
PIECES = [f'"k{i}":{i},' for i in range(40)]
SCRIPT = (
    *[p.think(f"r{i} ") for i in range(8)],
    p.sign("sig-e2e"),
    p.say("Checking. "),
    p.call(0, "toolu_1", "lookup"),
    p.args(0, ""),
    p.args(0, "{"),
    *[p.args(0, piece) for piece in PIECES],
    p.args(0, '"end":true}'),
    p.end(0),
    p.say("Done."),
)
ARGUMENTS = "{" + "".join(PIECES) + '"end":true}'
BODY = {"message": "go", "provider": "anthropic", "reasoning": {"effort": "low"}, "max_tokens": 4000}


__all__ = ["resume", "stack"]  # fixtures, shared with the text resume suite


def parts_of(events: list[SSEEvent]) -> list[SSEEvent]:
    return [e for e in events if e.event in PARTS]


def assert_whole(parts: list[SSEEvent]) -> None:
    """The script's parts, each once, in order, with consecutive ids."""
    assert [int(e.id or 0) for e in parts] == list(range(1, len(parts) + 1))
    reasoning = [e.data for e in parts if e.event == "reasoning"]
    assert "".join(d["text"] for d in reasoning) == "".join(f"r{i} " for i in range(8))
    assert reasoning[-1] == {"text": "", "signature": "sig-e2e"}
    assert "".join(e.data["text"] for e in parts if e.event == "message") == "Checking. Done."
    starts = [e.data for e in parts if e.event == "tool_call_start"]
    assert starts == [{"index": 0, "id": "toolu_1", "name": "lookup"}]
    arguments = "".join(e.data["arguments"] for e in parts if e.event == "tool_call_delta")
    assert json.loads(arguments) == json.loads(ARGUMENTS)
    assert [e.data for e in parts if e.event == "tool_call_end"] == [{"index": 0}]
    kinds = [e.event for e in parts]
    assert kinds.index("tool_call_start") < kinds.index("tool_call_end") < len(kinds) - 1


async def test_new_events_stream_in_order_and_the_upstream_got_the_thinking_budget(resume: ResumeStack) -> None:
    resume.upstream.scenario = Scenario(parts=SCRIPT)
    async with httpx.AsyncClient(base_url=resume.producer, timeout=10) as client:
        async with client.stream("POST", "/chat/stream", json=BODY) as response:
            events = [e async for e in iter_sse(response)]

    assert_whole(parts_of(events))
    assert events[-1].event == "done" and events[-1].data["finish_reason"] == "tool_calls"
    assert resume.upstream.last.json["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    # A first-generation reader: only `message` events' data.text, unchanged.
    assert [e.data for e in events if e.event == "message"] == [{"text": "Checking. "}, {"text": "Done."}]


async def test_resume_in_the_middle_of_a_tool_call_replays_it_exactly(resume: ResumeStack) -> None:
    resume.upstream.scenario = Scenario(parts=SCRIPT, delay_s=0.03)
    before: list[SSEEvent] = []
    async with httpx.AsyncClient(base_url=resume.producer, timeout=10) as client:
        async with client.stream("POST", "/chat/stream", json=BODY) as response:
            stream_id = response.headers["x-stream-id"]
            async for event in iter_sse(response):
                before.append(event)
                if sum(e.event == "tool_call_delta" for e in before) == 5:
                    break  # dropped mid-call: the start and five fragments read

    after = await resume_from(resume.other, stream_id, before[-1].id or "0")

    assert_whole(parts_of(before) + parts_of(after))
    assert after[-1].event == "done"
    await wait_record(resume, stream_id, "complete", 5)
    assert resume.upstream.finished_count == 1
