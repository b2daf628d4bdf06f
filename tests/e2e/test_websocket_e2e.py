"""WebSocket end to end: a real WebSocket client, the local gateway, the real handlers and
worker, moto's DynamoDB server and the real OpenAI SDK against the fake upstream."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from scripts.devstack.gateway import Gateway
from tests.fakes.environ import environ
from tests.fakes.local_stack import FunctionStack, LocalAws, function_stack
from tests.fakes.upstream import FakeUpstream, Scenario
from tokenrelay.stores.dynamodb import DynamoStreamStore

TERMINAL = {"done", "cancelled", "error"}
TOKENS = tuple(f"tok{i} " for i in range(40))
SLOW = Scenario.ok(*[f"s{i} " for i in range(2000)], delay_s=0.01)  # 20 s unless stopped


@dataclass
class Stack:
    url: str
    gateway: Gateway
    store: DynamoStreamStore
    upstream: FakeUpstream
    functions: FunctionStack

    async def record(self, stream_id: str, status: str, wait_s: float = 5.0) -> Any:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            record = await self.store.get(stream_id)
            if record is not None and record.status == status:
                return record
            await asyncio.sleep(0.05)
        raise AssertionError(f"{stream_id} never reached {status}: {await self.store.get(stream_id)}")


@pytest.fixture(scope="module")
def stack(aws: LocalAws, upstream_server: FakeUpstream) -> Iterator[Stack]:
    env = {
        **upstream_server.env,
        "CONNECTIONS_TABLE": "tokenrelay-connections-e2e",
        "WORKER_FUNCTION_NAME": "tokenrelay-worker",
        "DEFAULT_PROVIDER": "echo",
        "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini,gpt-4.1-mini",
        "ECHO_DELAY_MS": "5",
        "CANCEL_POLL_MS": "50",
        "UPSTREAM_MAX_RETRIES": "0",
        "WS_FLUSH_MS": "20",
    }
    with function_stack(aws, env, http=False, ws=True, name="websocket") as functions:
        assert functions.gateway is not None
        here = functions.ws.replace("ws://", "http://")
        with environ({"AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": here}):  # the test's own calls, as the admin
            store = DynamoStreamStore(os.environ["STREAMS_TABLE"])
            yield Stack(functions.ws, functions.gateway, store, upstream_server, functions)
            store.close()


@pytest.fixture
def app(stack: Stack, upstream: FakeUpstream) -> Iterator[Stack]:
    mark = stack.functions.logs.mark()  # ``upstream`` resets the fake for each test
    yield stack
    stack.functions.assert_no_access_denied(mark)


class Client:
    """A WebSocket client that reads with bounded waits."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    async def recv(self, wait_s: float = 5.0) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), wait_s))  # type: ignore[no-any-return]

    async def until_terminal(self, count: int = 1, wait_s: float = 15.0) -> list[dict[str, Any]]:
        """Every message until ``count`` terminal messages arrived."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait_s
        while sum(m["type"] in TERMINAL and "stream_id" in m for m in messages) < count:
            messages.append(await self.recv(max(deadline - time.monotonic(), 0.01)))
        return messages

    async def until(self, kind: str, wait_s: float = 5.0) -> list[dict[str, Any]]:
        messages = [await self.recv(wait_s)]
        while messages[-1]["type"] != kind:
            messages.append(await self.recv(wait_s))
        return messages


def connect(app: Stack, query: str = "") -> Any:
    return websockets.connect(app.url + query, open_timeout=5, close_timeout=2)


def text(messages: list[dict[str, Any]]) -> str:
    return "".join(m["content"] for m in messages if m["type"] == "text")


async def test_ws_chat_yields_start_text_done_with_the_exact_upstream_text(app: Stack) -> None:
    app.upstream.scenario = Scenario.ok(*TOKENS, delay_s=0.01)
    async with connect(app, "/?client_id=e2e-a") as ws:
        client = Client(ws)
        await client.send({"type": "chat", "message": "count", "provider": "openai", "request_id": "r-1"})
        messages = await client.until_terminal()
    start, *rest = messages
    assert start["type"] == "start" and start["provider"] == "openai" and start["model"] == "gpt-4o-mini"
    assert start["request_id"] == "r-1"
    assert all(m["stream_id"] == start["stream_id"] and m["request_id"] == "r-1" for m in messages)
    assert text(messages) == "".join(TOKENS)
    texts = [m for m in messages if m["type"] == "text"]
    assert [m["seq"] for m in texts] == list(range(1, len(texts) + 1))
    assert [m["type"] for m in rest[-2:]] == ["usage", "done"] and rest[-1]["completion_tokens"] == len(TOKENS)
    record = await app.record(start["stream_id"], "complete")
    assert record.owner == "e2e-a" and record.transport == "websocket"
    assert app.upstream.last.finished.is_set()


@pytest.mark.parametrize("with_stream_id", [True, False])
async def test_ws_cancel_ends_stream_cancelled_and_closes_the_upstream(app: Stack, with_stream_id: bool) -> None:
    app.upstream.scenario = SLOW
    async with connect(app) as ws:
        client = Client(ws)
        await client.send({"type": "chat", "message": "go", "provider": "openai"})
        start = (await client.until("start"))[0]
        await client.until("text")
        cancel: dict[str, Any] = {"type": "cancel"}
        if with_stream_id:
            cancel["stream_id"] = start["stream_id"]
        await client.send(cancel)
        messages = await client.until_terminal(wait_s=5)
    assert messages[-1] == {"type": "cancelled", "stream_id": start["stream_id"], "reason": "client"}
    assert await asyncio.to_thread(app.upstream.wait_closed_early, 1, 5.0)
    await app.record(start["stream_id"], "cancelled")


async def test_ws_closing_the_socket_midstream_stops_the_worker_and_the_upstream(app: Stack) -> None:
    app.upstream.scenario = SLOW
    async with connect(app) as ws:
        client = Client(ws)
        await client.send({"type": "chat", "message": "go", "provider": "openai"})
        start = (await client.until("start"))[0]
        await client.until("text")
    assert await asyncio.to_thread(app.upstream.wait_closed_early, 1, 5.0)
    record = await app.record(start["stream_id"], "cancelled")
    assert record.cancel_reason == "disconnect"
    assert await app.gateway.wait_idle(5.0)


async def test_ws_two_streams_on_one_connection_stay_separate(app: Stack) -> None:
    # A runs until cancelled, so B (whose message handler and worker may each need a cold start,
    # seconds on a loaded machine) always overlaps it; B completes, then A is cancelled.
    app.upstream.by_model["gpt-4o-mini"] = Scenario.ok(*[f"a{i} " for i in range(4000)], delay_s=0.01)
    app.upstream.by_model["gpt-4.1-mini"] = Scenario.ok(*[f"b{i} " for i in range(30)], delay_s=0.01)
    async with connect(app) as ws:
        client = Client(ws)
        await client.send({"type": "chat", "message": "x", "provider": "openai", "request_id": "A"})
        await client.send(
            {"type": "chat", "message": "y", "provider": "openai", "model": "gpt-4.1-mini", "request_id": "B"}
        )
        messages = await client.until_terminal(count=1, wait_s=30)
        a_start = next(m for m in messages if m.get("request_id") == "A" and m["type"] == "start")
        await client.send({"type": "cancel", "stream_id": a_start["stream_id"]})
        messages += await client.until_terminal(count=1)
    by_request = {rid: [m for m in messages if m.get("request_id") == rid] for rid in "AB"}
    assert len(messages) == len(by_request["A"]) + len(by_request["B"])
    for rid, end in (("A", "cancelled"), ("B", "done")):
        mine = by_request[rid]
        assert mine[0]["type"] == "start" and mine[-1]["type"] == end, mine[-1]
        assert len({m["stream_id"] for m in mine}) == 1
    assert text(by_request["B"]) == "".join(f"b{i} " for i in range(30))
    a_text = text(by_request["A"])
    assert a_text == "".join(f"a{i} " for i in range(a_text.count(" ")))  # its own tokens, in order, none lost
    assert by_request["A"][0]["stream_id"] != by_request["B"][0]["stream_id"]
    # they ran at the same time: each started before the other finished
    assert messages.index(by_request["B"][0]) < messages.index(by_request["A"][-1])
    assert messages.index(by_request["A"][0]) < messages.index(by_request["B"][-1])


async def test_ws_stream_outlasting_the_integration_timeout_completes(app: Stack) -> None:
    # 0.3 s stands for API Gateway's 29 s: the chat handler returns at once, the worker streams on.
    # First a chat at the normal timeout, so that the chat handler's environment is warm (a cold
    # start alone takes longer than 0.3 s; API Gateway's 29 s covers one).
    async with connect(app) as ws:
        await Client(ws).send({"type": "chat", "message": "warm up"})
        await Client(ws).until_terminal()
    app.gateway.config.integration_timeout_s = 0.3
    app.upstream.scenario = Scenario.ok(*TOKENS, delay_s=0.03)  # 1.2 s of generation
    timeouts_before = app.gateway.stats.integration_timeouts
    calls_before = len(app.gateway.stats.route_calls)
    try:
        async with connect(app) as ws:
            client = Client(ws)
            started = time.monotonic()
            await client.send({"type": "chat", "message": "long", "provider": "openai"})
            messages = await client.until_terminal()
            elapsed = time.monotonic() - started
    finally:
        app.gateway.config.integration_timeout_s = 29.0
    assert messages[-1]["type"] == "done" and text(messages) == "".join(TOKENS)
    assert elapsed > 4 * 0.3
    assert app.gateway.stats.integration_timeouts == timeouts_before
    chat_calls = [seconds for route, seconds in app.gateway.stats.route_calls[calls_before:] if route == "chat"]
    assert chat_calls and max(chat_calls) < 0.3


async def test_gateway_handler_outliving_the_integration_timeout_answers_like_api_gateway(app: Stack) -> None:
    slow = app.gateway.routes["$default"]
    app.gateway.routes["$default"] = lambda event, context: time.sleep(0.5)
    app.gateway.config.integration_timeout_s = 0.1
    try:
        async with connect(app) as ws:
            await ws.send("anything")
            answer = await Client(ws).recv()
    finally:
        app.gateway.routes["$default"] = slow
        app.gateway.config.integration_timeout_s = 29.0
    assert answer["message"] == "Endpoint request timed out" and {"connectionId", "requestId"} <= set(answer)


async def test_ws_bad_frames_get_error_messages_and_the_connection_survives(app: Stack) -> None:
    async with connect(app) as ws:
        client = Client(ws)
        frames: list[tuple[str | bytes | dict[str, Any], str]] = [
            ("not json", "invalid_json"),
            (b"\x00\x01binary", "invalid_json"),
            ({"type": "launch", "request_id": "q1"}, "unknown_type"),
            ({"message": "no type"}, "invalid_request"),
            ({"type": "chat", "message": "hi", "temperature": 9}, "invalid_request"),
            ({"type": "cancel", "stream_id": "no-such-stream"}, "stream_not_found"),
        ]
        for frame, code in frames:
            await client.send(frame)
            error = await client.recv()
            assert error["type"] == "error" and error["code"] == code, (frame, error)
        await client.send({"type": "chat", "message": "still here"})
        messages = await client.until_terminal()
    assert text(messages) == "You said: still here" and messages[-1]["type"] == "done"


async def test_ws_tokens_faster_than_posts_are_coalesced_in_order_under_the_frame_limit(app: Stack) -> None:
    app.gateway.config.post_delay_s = 0.01  # a post takes 10 ms; the upstream sends as fast as it can
    tokens = [f"t{i} " for i in range(600)] + ["x" * 3000 for _ in range(30)]
    app.upstream.scenario = Scenario.ok(*tokens)
    posts_before = app.gateway.stats.posts
    try:
        async with connect(app) as ws:
            client = Client(ws)
            await client.send({"type": "chat", "message": "fast", "provider": "openai", "max_tokens": 4000})
            messages = await client.until_terminal()
    finally:
        app.gateway.config.post_delay_s = 0.0
    assert text(messages) == "".join(tokens)
    posts = app.gateway.stats.posts - posts_before
    assert posts * 5 < len(tokens), f"{posts} posts for {len(tokens)} tokens"
    assert app.gateway.stats.max_post_bytes <= 32_000


async def test_gateway_management_api_get_delete_gone_and_payload_limit(app: Stack) -> None:
    api = boto3.client("apigatewaymanagementapi")  # endpoint: AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI
    async with connect(app) as ws:
        deadline = time.monotonic() + 5  # the gateway marks it open just after the handshake
        while not (opened := [c for c, conn in app.gateway.connections.items() if conn.open]):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        (connection_id,) = opened
        info = await asyncio.to_thread(api.get_connection, ConnectionId=connection_id)
        assert {"ConnectedAt", "LastActiveAt", "Identity"} <= set(info)
        await asyncio.to_thread(api.post_to_connection, ConnectionId=connection_id, Data=b'{"hello":1}')
        assert await Client(ws).recv() == {"hello": 1}
        with pytest.raises(api.exceptions.PayloadTooLargeException):
            await asyncio.to_thread(api.post_to_connection, ConnectionId=connection_id, Data=b"x" * (128 * 1024 + 1))
        with pytest.raises(api.exceptions.GoneException):
            await asyncio.to_thread(api.post_to_connection, ConnectionId="NoSuchConnXXXX=", Data=b"{}")
        await asyncio.to_thread(api.delete_connection, ConnectionId=connection_id)
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    with pytest.raises(api.exceptions.GoneException):
        await asyncio.to_thread(api.post_to_connection, ConnectionId=connection_id, Data=b"{}")
    api.close()


async def test_gateway_connect_with_a_bad_client_id_is_refused(app: Stack) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(app, "/?client_id=not%20valid"):
            pass
    assert refused.value.response.status_code == 400


async def test_ws_chat_sampling_settings_reach_the_upstream(app: Stack) -> None:
    # the chat handler validates, the worker re-validates what it was handed: nothing lost between
    app.upstream.scenario = Scenario.ok("a ", "b")
    settings = {
        "top_p": 0.5,
        "seed": 3,
        "stop": ["END"],
        "presence_penalty": 1,
        "frequency_penalty": -0.5,
        "user": "u7",
    }
    async with connect(app) as ws:
        client = Client(ws)
        await client.send({"type": "chat", "message": "go", "provider": "openai", **settings})
        messages = await client.until_terminal()
    assert messages[-1]["type"] == "done"
    sent = app.upstream.last.json
    assert {k: sent[k] for k in settings} == {**settings, "presence_penalty": 1.0}


async def test_ws_chat_with_a_small_image_reaches_the_model(app: Stack) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}
    content = [{"type": "text", "text": "look"}, image]  # under 128 KB: a WebSocket message carries it
    async with connect(app) as ws:
        client = Client(ws)
        await client.send({"type": "chat", "messages": [{"role": "user", "content": content}], "provider": "echo"})
        messages = await client.until_terminal()
    assert messages[-1]["type"] == "done" and text(messages) == "You said: look [image image/png, 70 bytes]"
