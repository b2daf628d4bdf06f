"""The AI SDK's UI message stream on the wire (docs/ai-sdk.md): ``POST /api/chat`` and
``GET /api/chat/{id}/stream`` through the local Function URL, each request in its own execution
environment with StreamFunction's role, on moto's DynamoDB: the header, the chunk order and ids,
``[DONE]``, the error chunk, the cancel by ``X-Stream-Id``, the resume by chat id (a replay from
the start, then 204 once the stream ended), and bad input answered with a 4xx naming the field."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.resume_stack import ResumeStack, resume_stack
from tests.e2e.test_sse_resume_e2e import wait_record
from tests.fakes.local_stack import LocalAws
from tests.fakes.upstream import FakeUpstream, Scenario
from tokenrelay.stores import StreamRecord

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def stack(aws: LocalAws, upstream_server: FakeUpstream) -> Iterator[ResumeStack]:
    with resume_stack(aws, upstream_server) as s:
        yield s


@pytest.fixture
def relay(stack: ResumeStack) -> Iterator[ResumeStack]:
    stack.upstream.reset()
    mark = stack.stack.logs.mark()
    yield stack
    stack.stack.assert_no_access_denied(mark)


def user(text: str, message_id: str = "u1") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}


def chat_body(text: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"chat-{uuid.uuid4().hex[:12]}", "messages": [user(text)], "trigger": "submit-message", **fields}


async def read_chunks(response: httpx.Response) -> list[Any]:
    """Every ``data:`` line, decoded (``[DONE]`` as the string); nothing after ``[DONE]``."""
    chunks: list[Any] = []
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            assert not chunks or chunks[-1] != "[DONE]", f"data after [DONE]: {line}"
            payload = line[len("data: ") :]
            chunks.append(payload if payload == "[DONE]" else json.loads(payload))
        else:
            assert line == "" or line.startswith(":"), f"not a data line: {line!r}"  # pings are comments
    return chunks


async def post_chat(url: str, body: dict[str, Any]) -> tuple[httpx.Headers, list[Any]]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream("POST", "/api/chat", json=body) as response:
            assert response.status_code == 200, await response.aread()
            return response.headers, await read_chunks(response)


def types(chunks: list[Any]) -> list[str]:
    return [c if c == "[DONE]" else c["type"] for c in chunks]


def text(chunks: list[Any], kind: str = "text") -> str:
    return "".join(c["delta"] for c in chunks if isinstance(c, dict) and c["type"] == f"{kind}-delta")


async def test_text_streams_as_ui_message_chunks_with_the_header_and_done(relay: ResumeStack) -> None:
    headers, chunks = await post_chat(relay.producer, chat_body("Hello there, useChat"))

    assert headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert headers["content-type"].startswith("text/event-stream")
    stream_id = headers["x-stream-id"]
    kinds = types(chunks)
    deltas = kinds.count("text-delta")
    assert kinds == [
        "start",
        "start-step",
        "text-start",
        *["text-delta"] * deltas,
        "text-end",
        "finish-step",
        "finish",
        "[DONE]",
    ]
    assert deltas == len("You said: Hello there, useChat".split())
    assert chunks[0] == {"type": "start", "messageId": f"msg-{stream_id}"}
    block = chunks[2]["id"]
    assert all(c["id"] == block for c in chunks if isinstance(c, dict) and c["type"].startswith("text-"))
    assert text(chunks) == "You said: Hello there, useChat"
    assert chunks[-2] == {"type": "finish", "finishReason": "stop"}
    record = await wait_record(relay, stream_id, "complete", 10)
    assert isinstance(record, StreamRecord) and record.transport == "ai-sdk"


async def test_reasoning_and_a_tool_call_map_to_their_parts(relay: ResumeStack) -> None:
    prompt = "Weather in Paris? use get_weather"
    body = chat_body(prompt, tools=[WEATHER], reasoning={"effort": "low"})
    _, chunks = await post_chat(relay.producer, body)

    kinds = [k for k in types(chunks) if not k.endswith("-delta")]
    assert kinds == [
        "start", "start-step",
        "reasoning-start", "reasoning-end",
        "tool-input-start", "tool-input-available",
        "finish-step", "finish", "[DONE]",
    ]  # fmt: skip
    assert text(chunks, "reasoning") == f"Thinking about: {prompt}"
    end = next(c for c in chunks if isinstance(c, dict) and c["type"] == "reasoning-end")
    assert end["providerMetadata"]["tokenrelay"]["signature"].startswith("echo-")
    start = next(c for c in chunks if isinstance(c, dict) and c["type"] == "tool-input-start")
    call_id = start["toolCallId"]
    assert start == {"type": "tool-input-start", "toolCallId": call_id, "toolName": "get_weather"}
    fragments = [c["inputTextDelta"] for c in chunks if isinstance(c, dict) and c["type"] == "tool-input-delta"]
    assert len(fragments) > 1 and json.loads("".join(fragments)) == {"city": prompt}
    available = next(c for c in chunks if isinstance(c, dict) and c["type"] == "tool-input-available")
    assert available == {
        "type": "tool-input-available",
        "toolCallId": call_id,
        "toolName": "get_weather",
        "input": {"city": prompt},
    }
    assert chunks[-2] == {"type": "finish", "finishReason": "tool-calls"}

    # The tool's result comes back as useChat sends it: a tool part with its output, in the assistant message.
    assistant = {
        "id": chunks[0]["messageId"],
        "role": "assistant",
        "parts": [
            {"type": "step-start"},
            {"type": "reasoning", "text": text(chunks, "reasoning"), "providerMetadata": end["providerMetadata"]},
            {
                "type": "tool-get_weather",
                "toolCallId": call_id,
                "state": "output-available",
                "input": {"city": prompt},
                "output": {"sky": "sunny"},
            },
        ],
    }
    follow_up = {**body, "messages": [user(prompt), assistant]}
    _, answer = await post_chat(relay.producer, follow_up)
    assert answer[0] == {
        "type": "start",
        "messageId": assistant["id"],
    }  # it continues that message, as the SDK's servers do
    assert text(answer) == 'Tool get_weather returned: {"sky": "sunny"}'


async def test_an_upstream_failure_after_text_is_an_error_chunk_then_done(relay: ResumeStack) -> None:
    relay.upstream.scenario = Scenario.error_frame(after=2)
    _, chunks = await post_chat(relay.producer, chat_body("fail, please", provider="openai"))

    kinds = types(chunks)
    assert kinds[:3] == ["start", "start-step", "text-start"] and kinds[-3:] == ["text-end", "error", "[DONE]"]
    error = chunks[-2]
    assert set(error) == {"type", "errorText"} and "upstream" in error["errorText"]
    assert "finish" not in kinds


async def test_cancel_by_the_stream_id_header_ends_with_abort(relay: ResumeStack) -> None:
    body = chat_body(" ".join(f"w{i}" for i in range(200)))
    async with httpx.AsyncClient(base_url=relay.producer, timeout=30) as client:
        async with client.stream("POST", "/api/chat", json=body) as response:
            stream_id = response.headers["x-stream-id"]
            lines = response.aiter_lines()
            async for line in lines:
                if "text-delta" in line:
                    break
            async with httpx.AsyncClient(base_url=relay.other, timeout=30) as other:
                cancelled = await other.post(f"/chat/stream/{stream_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            rest = await read_chunks_from(lines)
    assert rest[-2:] == [{"type": "abort", "reason": "client"}, "[DONE]"]
    record = await wait_record(relay, stream_id, "cancelled", 10)
    assert isinstance(record, StreamRecord) and record.cancel_reason == "client"


async def read_chunks_from(lines: Any) -> list[Any]:
    out: list[Any] = []
    async for line in lines:
        if line.startswith("data: "):
            payload = line[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


async def test_resume_by_chat_id_replays_from_the_start_then_204_once_ended(relay: ResumeStack) -> None:
    words = " ".join(f"w{i}" for i in range(250))  # 252 tokens at 20 ms: live when resumed, even under load
    body = chat_body(words)
    chat_id = body["id"]
    async with httpx.AsyncClient(base_url=relay.other, timeout=30) as other:
        nothing = await other.get(f"/api/chat/{chat_id}/stream")
        assert nothing.status_code == 204 and nothing.content == b""

        async with httpx.AsyncClient(base_url=relay.producer, timeout=30) as client:
            async with client.stream("POST", "/api/chat", json=body) as response:
                stream_id = response.headers["x-stream-id"]
                seen = 0
                async for line in response.aiter_lines():
                    seen += "text-delta" in line
                    if seen == 5:
                        break  # the page reloads: the fetch is gone, the stream goes on

        other_owner = await other.get(f"/api/chat/{chat_id}/stream", headers={"X-Client-Id": "someone-else"})
        assert other_owner.status_code == 204  # a chat id is looked up under its owner only

        async with other.stream("GET", f"/api/chat/{chat_id}/stream") as resumed:
            assert resumed.status_code == 200
            assert resumed.headers["x-vercel-ai-ui-message-stream"] == "v1"
            assert resumed.headers["x-stream-id"] == stream_id
            chunks = await read_chunks(resumed)
        assert chunks[0] == {"type": "start", "messageId": f"msg-{stream_id}"}
        assert text(chunks) == f"You said: {words}"  # from the first word: nothing lost or repeated
        assert types(chunks)[-2:] == ["finish", "[DONE]"]

        await wait_record(relay, stream_id, "complete", 10)
        ended = await other.get(f"/api/chat/{chat_id}/stream")
        assert ended.status_code == 204


FILE = {"type": "file", "url": "data:image/png;base64,AA==", "mediaType": "image/png"}
UNANSWERED = {"type": "tool-x", "toolCallId": "t1", "state": "input-available", "input": {}}


def with_part(role: str, part: dict[str, Any]) -> dict[str, Any]:
    return {"id": "m", "role": role, "parts": [part]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [user("hi")]}, "id"),
        ({"id": "bad id!", "messages": [user("hi")]}, "id"),
        ({"id": "c1"}, "messages"),
        ({"id": "c1", "messages": [user("hi")], "trigger": "resume-stream"}, "trigger"),
        ({"id": "c1", "messages": [user("hi")], "temprature": 1}, "temprature"),
        ({"id": "c1", "messages": [{"id": "m", "role": "tool", "parts": []}]}, "messages.0.role"),
        ({"id": "c1", "messages": [with_part("user", FILE)]}, "messages.0.parts.0.type"),
        ({"id": "c1", "messages": [with_part("user", {"type": "text"})]}, "messages.0.parts.0.text"),
        ({"id": "c1", "messages": [user("hi"), with_part("assistant", UNANSWERED)]}, "messages.1.parts.0.output"),
        ({"id": "c1", "messages": [with_part("user", {"type": "text", "text": "a\u0000b"})]}, "messages.0"),
        ({"id": "c1", "messages": [user("hi")], "model": "nope"}, "model"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(relay: ResumeStack, body: dict[str, Any], field: str) -> None:
    async with httpx.AsyncClient(base_url=relay.producer, timeout=30) as client:
        response = await client.post("/api/chat", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field, response.json()


async def test_a_bad_chat_id_on_resume_is_a_400(relay: ResumeStack) -> None:
    async with httpx.AsyncClient(base_url=relay.producer, timeout=30) as client:
        response = await client.get("/api/chat/%20bad%20/stream")
    assert response.status_code == 400 and response.json()["field"] == "chat_id"


async def test_two_chats_resume_their_own_streams(relay: ResumeStack) -> None:
    first, second = chat_body("first chat words " * 80), chat_body("second chat words " * 80)  # ~5 s each
    async with httpx.AsyncClient(base_url=relay.producer, timeout=30) as client:
        async with (
            client.stream("POST", "/api/chat", json=first) as a,
            client.stream("POST", "/api/chat", json=second) as b,
        ):
            ids = (a.headers["x-stream-id"], b.headers["x-stream-id"])
            async with httpx.AsyncClient(base_url=relay.other, timeout=30) as other:
                answers = await asyncio.gather(
                    other.get(f"/api/chat/{first['id']}/stream"), other.get(f"/api/chat/{second['id']}/stream")
                )
            await asyncio.gather(a.aread(), b.aread())
    assert [r.status_code for r in answers] == [200, 200], [(r.status_code, r.text) for r in answers]
    assert [r.headers["x-stream-id"] for r in answers] == list(ids)
    replayed = [
        text([json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]) for r in answers
    ]
    assert replayed == [f"You said: {b['messages'][0]['parts'][0]['text']}" for b in (first, second)]


async def test_concurrent_chats_dropped_and_resumed_by_chat_id_lose_and_repeat_nothing(relay: ResumeStack) -> None:
    """Four chats at once, each client gone after a few tokens, each resumed on another environment
    by its chat id: every resume replays its own stream from the first token to [DONE], once."""
    bodies = [chat_body(" ".join(f"c{n}w{i}" for i in range(300))) for n in range(4)]  # 6 s each: live when resumed

    async def drop_then_resume(body: dict[str, Any], after: int) -> tuple[str, list[Any]]:
        async with httpx.AsyncClient(base_url=relay.producer, timeout=30) as client:
            async with client.stream("POST", "/api/chat", json=body) as response:
                stream_id = response.headers["x-stream-id"]
                seen = 0
                async for line in response.aiter_lines():
                    seen += "text-delta" in line
                    if seen == after:
                        break
        async with httpx.AsyncClient(base_url=relay.other, timeout=30) as other:
            async with other.stream("GET", f"/api/chat/{body['id']}/stream") as resumed:
                assert resumed.status_code == 200 and resumed.headers["x-stream-id"] == stream_id
                return stream_id, await read_chunks(resumed)

    results = await asyncio.gather(*(drop_then_resume(body, 2 + 3 * n) for n, body in enumerate(bodies)))
    for body, (stream_id, chunks) in zip(bodies, results, strict=True):
        said = body["messages"][0]["parts"][0]["text"]
        assert text(chunks) == f"You said: {said}"
        assert types(chunks)[:3] == ["start", "start-step", "text-start"] and types(chunks)[-2:] == ["finish", "[DONE]"]
        assert chunks[0]["messageId"] == f"msg-{stream_id}"
    assert len({stream_id for stream_id, _ in results}) == 4
