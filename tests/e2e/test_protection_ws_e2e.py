"""API keys and per-key limits on the WebSocket API, end to end: a real WebSocket client, the local
API Gateway emulator, the real handlers and worker each in its own process environments with its
own IAM identity, the stack's DynamoDB and the fake upstream. The limiter's clock is frozen
mid-minute in every environment (the test layer), so no window rolls over mid-test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from scripts.devstack.gateway import Gateway
from tests.e2e.protection import FIXED_NOW, LIMITS_TABLE, ProtectionTables, protected_env, refusal_docs
from tests.fakes.local_stack import FunctionStack, LocalAws, function_stack
from tests.fakes.upstream import FakeUpstream, Scenario
from tokenrelay.stores.dynamodb import DynamoStreamStore

STREAMS = "tokenrelay-streams-protect-ws-e2e"
CONNECTIONS = "tokenrelay-connections-protect-ws-e2e"
SLOW = Scenario.ok(*[f"s{i} " for i in range(2000)], delay_s=0.01)  # 20 s unless stopped


@dataclass
class WsStack:
    url: str
    gateway: Gateway
    tables: ProtectionTables
    upstream: FakeUpstream
    stack: FunctionStack

    def refusals(self, since: int) -> list[dict[str, Any]]:
        """The Refusals metric's documents the functions printed since ``since`` (a log mark)."""
        return refusal_docs(self.stack.logs.since(since))


@pytest.fixture(scope="module")
def ws_stack(aws: LocalAws, upstream_server: FakeUpstream) -> Iterator[WsStack]:
    env = {
        **upstream_server.env,
        **protected_env(STREAMS),
        "CONNECTIONS_TABLE": CONNECTIONS,
        "WORKER_FUNCTION_NAME": "tokenrelay-worker",
        "WS_FLUSH_MS": "20",
    }
    tables = ProtectionTables.create(aws.endpoint, STREAMS)
    with function_stack(aws, env, http=False, ws=True, name="protect-ws") as stack:
        assert stack.gateway is not None
        yield WsStack(stack.ws, stack.gateway, tables, upstream_server, stack)
        stack.assert_no_access_denied()


@pytest.fixture
def app(ws_stack: WsStack, upstream: FakeUpstream) -> WsStack:
    return ws_stack


def connect(app: WsStack, query: str = "", subprotocols: list[str] | None = None) -> Any:
    offered: Any = subprotocols  # websockets types them as Subprotocol (a NewType of str)
    return websockets.connect(app.url + query, subprotocols=offered, open_timeout=5, close_timeout=2)


async def recv(ws: ClientConnection, wait_s: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), wait_s))  # type: ignore[no-any-return]


async def until(ws: ClientConnection, *kinds: str, wait_s: float = 10.0) -> list[dict[str, Any]]:
    messages = [await recv(ws, wait_s)]
    while messages[-1]["type"] not in kinds:
        messages.append(await recv(ws, wait_s))
    return messages


async def chat(ws: ClientConnection, **body: Any) -> None:
    await ws.send(json.dumps({"type": "chat", "message": "hi", **body}))


@pytest.mark.parametrize(
    ("query", "subprotocols", "status"),
    [
        ("", None, 401),  # no key
        ("/?access_token=trk_nope", None, 401),  # malformed
        ("", ["tokenrelay", "bearer.trk_0123456789abcdef_" + "f" * 43], 401),  # forged: unknown key
        ("", ["tokenrelay", "bearer.WRONG"], 401),  # wrong secret (filled in below)
        ("", ["tokenrelay", "bearer.REVOKED"], 401),  # revoked
        ("", ["bearer.VALID"], 400),  # a key offered without the tokenrelay subprotocol
    ],
)
async def test_connect_without_a_valid_key_is_refused_and_nothing_is_recorded(
    app: WsStack, query: str, subprotocols: list[str] | None, status: int
) -> None:
    token, _ = await app.tables.key()
    revoked, revoked_key = await app.tables.key()
    await app.tables.keys.revoke(revoked_key.key_id)
    fill = {"bearer.WRONG": "bearer." + token[:-6] + "AAAAAA", "bearer.REVOKED": "bearer." + revoked}
    fill["bearer.VALID"] = "bearer." + token
    offered = [fill.get(p, p) for p in subprotocols] if subprotocols else None
    connections, streams = app.tables.count(CONNECTIONS), app.tables.count(STREAMS)
    with pytest.raises(InvalidStatus) as caught:
        async with connect(app, query, offered):
            pass
    assert caught.value.response.status_code == status
    assert await app.gateway.wait_idle(5.0)
    assert app.tables.count(CONNECTIONS) == connections and app.tables.count(STREAMS) == streams
    assert app.upstream.requests == []


async def test_subprotocol_key_is_answered_with_tokenrelay_and_owns_its_streams(app: WsStack) -> None:
    token, key = await app.tables.key()
    app.upstream.scenario = Scenario.ok("Hel", "lo")
    async with connect(app, subprotocols=["tokenrelay", f"bearer.{token}"]) as ws:
        assert ws.subprotocol == "tokenrelay"
        await chat(ws, provider="openai")
        messages = await until(ws, "done", "error")
    assert messages[-1]["type"] == "done" and "".join(m.get("content", "") for m in messages) == "Hello"
    record = await DynamoStreamStore(STREAMS).get(messages[0]["stream_id"])
    assert record is not None and record.owner == key.key_id


async def test_query_token_connects_and_a_revocation_stops_the_next_chat(app: WsStack) -> None:
    token, key = await app.tables.key()
    async with connect(app, f"/?access_token={token}") as ws:
        assert ws.subprotocol is None
        await chat(ws)
        assert (await until(ws, "done", "error"))[-1]["type"] == "done"
        await app.tables.keys.revoke(key.key_id)
        streams = app.tables.count(STREAMS)
        await chat(ws, request_id="r2")
        error = await recv(ws)
    assert error["type"] == "error" and error["code"] == "unauthorized" and error["request_id"] == "r2"
    assert app.tables.count(STREAMS) == streams


async def test_model_not_allowed_for_the_key_is_an_error_and_no_stream(app: WsStack) -> None:
    token, _ = await app.tables.key(models=["echo:*"])
    async with connect(app, f"/?access_token={token}") as ws:
        await chat(ws, provider="openai")
        error = await recv(ws)
    assert error["code"] == "model_not_allowed" and error["field"] == "model" and error["retryable"] is False
    assert app.upstream.requests == []


async def test_rpm_limit_refuses_with_retry_after(app: WsStack) -> None:
    token, _ = await app.tables.key(rpm=2)
    async with connect(app, f"/?access_token={token}") as ws:
        for _ in range(2):
            await chat(ws)
            assert (await until(ws, "done", "error"))[-1]["type"] == "done"
        await chat(ws, request_id="third")
        error = await recv(ws)
    assert error["type"] == "error" and error["code"] == "rate_limited" and error["retryable"] is True
    assert error["retry_after"] == 30 and error["request_id"] == "third"


async def test_token_budget_the_worker_counts_refuses_the_next_chat(app: WsStack) -> None:
    # the worker counts the stream's 4 tokens (echo: "hi", "You said: hi") as it ends; the chat
    # handler of the next message sees the budget spent: refused before any worker runs
    token, key = await app.tables.key(tpm=4)
    async with connect(app, f"/?access_token={token}") as ws:
        await chat(ws)
        assert (await until(ws, "done", "error"))[-1]["type"] == "done"
        pk = {"pk": {"S": f"tpm#{key.key_id}#{int(FIXED_NOW // 60)}"}}
        for _ in range(100):  # the worker's count lands just after the done it posted
            item = app.tables.client.get_item(TableName=LIMITS_TABLE, Key=pk, ConsistentRead=True).get("Item")
            if item is not None and "used" in item:
                break
            await asyncio.sleep(0.05)
        assert item is not None and item["used"] == {"N": "4"}
        await chat(ws, request_id="over")
        error = await recv(ws)
    assert error["type"] == "error" and error["code"] == "rate_limited" and error["retry_after"] == 30
    assert "4 tokens per minute" in error["error"]


async def test_each_refusal_is_counted_once_by_reason(app: WsStack) -> None:
    limited, _ = await app.tables.key(models=["echo:*"], rpm=1)
    other, _ = await app.tables.key()
    mark = app.stack.logs.mark()
    with pytest.raises(InvalidStatus):  # 401 at $connect
        async with connect(app, "/?access_token=trk_nope"):
            pass
    async with connect(app, f"/?access_token={other}") as ws:
        await chat(ws)
        theirs = (await until(ws, "done", "error"))[-1]["stream_id"]
    async with connect(app, f"/?access_token={limited}") as ws:
        await chat(ws, provider="openai", request_id="model")
        assert (await recv(ws))["code"] == "model_not_allowed"
        await chat(ws)
        assert (await until(ws, "done", "error"))[-1]["type"] == "done"
        await chat(ws, request_id="rpm")
        assert (await recv(ws))["code"] == "rate_limited"
        await ws.send(json.dumps({"type": "cancel", "stream_id": theirs}))
        assert (await recv(ws))["code"] == "forbidden"
        await ws.send(json.dumps({"type": "nonsense"}))
        assert (await recv(ws))["code"] == "unknown_type"  # an error, not a refusal
    docs = await refusals_once_idle(app, mark, expected=4)
    assert [d["Reason"] for d in docs] == ["unauthorized", "model_not_allowed", "rate_limited", "forbidden"]
    assert all(d["Refusals"] == [1.0] and d["Transport"] == "websocket" for d in docs)


async def refusals_once_idle(app: WsStack, mark: int, expected: int) -> list[dict[str, Any]]:
    """The refusals since ``mark`` once ``expected`` of them were printed (each function prints its
    document as it answers: the last may still be on its way from its process); bounded."""
    assert await app.gateway.wait_idle(10.0)
    for _ in range(100):
        if len(app.refusals(mark)) >= expected:
            break
        await asyncio.sleep(0.05)
    return app.refusals(mark)


@pytest.mark.parametrize("how", ["cancel", "disconnect", "complete"])
async def test_concurrency_slot_is_refused_then_comes_back_after_the_stream_ends(app: WsStack, how: str) -> None:
    token, key = await app.tables.key(concurrency=1)
    app.upstream.scenario = SLOW if how != "complete" else Scenario.ok(*[f"c{i} " for i in range(10)], delay_s=0.05)
    async with connect(app, f"/?access_token={token}") as ws:
        await chat(ws, provider="openai")
        start = (await until(ws, "start"))[0]
        await until(ws, "text")
        assert app.tables.slot_holder(key.key_id) == start["stream_id"]
        if how != "complete":
            await chat(ws, provider="openai", request_id="second")
            error = (await until(ws, "error"))[-1]
            assert error["code"] == "rate_limited" and error["retry_after"] == 1 and error["request_id"] == "second"
        if how == "cancel":
            await ws.send(json.dumps({"type": "cancel", "stream_id": start["stream_id"]}))
        if how != "disconnect":
            assert (await until(ws, "done", "cancelled"))[-1]["type"] in ("done", "cancelled")
    await app.tables.wait_slot_free(key.key_id)
    app.upstream.scenario = Scenario.ok("again")
    async with connect(app, subprotocols=["tokenrelay", f"bearer.{token}"]) as ws:
        await chat(ws, provider="openai")
        messages = await until(ws, "done", "error")
    assert messages[-1]["type"] == "done"
    await app.tables.wait_slot_free(key.key_id)  # and again after a normal completion
