"""WebSocket resume end to end (PROTOCOL section 5): drop the socket, resume on a new one.

The local gateway runs each handler and the worker in its own process environments, each
with its own IAM identity; they share only DynamoDB and the @connections API, as on AWS.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.resume_stack import GRACE_S, OUTPUT_LOG_TABLE
from tests.e2e.test_websocket_e2e import TERMINAL, Client, Stack, connect, text
from tests.fakes.local_stack import LocalAws, function_stack
from tests.fakes.upstream import FakeUpstream, Scenario
from tokenrelay.stores.dynamodb import DynamoStreamStore

TOKENS = tuple(f"t{i} " for i in range(400))  # 400 x 15 ms: 6 s, longer than the grace period
SLOW = Scenario.ok(*[f"s{i} " for i in range(4000)], delay_s=0.01)


@pytest.fixture(scope="module")
def stack(aws: LocalAws, upstream_server: FakeUpstream) -> Iterator[Stack]:
    env = {
        **upstream_server.env,
        "CONNECTIONS_TABLE": "tokenrelay-connections-e2e",
        "WORKER_FUNCTION_NAME": "tokenrelay-worker",
        "DEFAULT_PROVIDER": "echo",
        "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini",
        "ECHO_DELAY_MS": "5",
        "CANCEL_POLL_MS": "50",
        "UPSTREAM_MAX_RETRIES": "0",
        "WS_FLUSH_MS": "20",
        "OUTPUT_LOG_TABLE": OUTPUT_LOG_TABLE,
        "RESUME_GRACE_S": str(GRACE_S),
        "RESUME_POLL_MS": "100",
    }
    with function_stack(aws, env, http=False, ws=True, name="websocket-resume") as functions:
        assert functions.gateway is not None
        store = DynamoStreamStore(os.environ["STREAMS_TABLE"])
        yield Stack(functions.ws, functions.gateway, store, upstream_server, functions)
        store.close()


@pytest.fixture
def app(stack: Stack, upstream: FakeUpstream) -> Iterator[Stack]:
    mark = stack.functions.logs.mark()
    yield stack
    stack.functions.assert_no_access_denied(mark)


async def chat_and_drop(app: Stack, k: int, owner: str = "resumer") -> tuple[str, list[dict[str, Any]]]:
    """Start a stream, read ``k`` text messages, then close the socket."""
    async with connect(app, f"/?client_id={owner}") as ws:
        client = Client(ws)
        await client.send({"type": "chat", "message": "go", "provider": "openai", "request_id": "r1"})
        seen = [await client.recv()]
        while sum(m["type"] == "text" for m in seen) < k:
            seen.append(await client.recv())
    return seen[0]["stream_id"], seen


async def resume(app: Stack, stream_id: str, after: int, owner: str = "resumer") -> list[dict[str, Any]]:
    async with connect(app, f"/?client_id={owner}") as ws:
        client = Client(ws)
        await client.send({"type": "resume", "stream_id": stream_id, "after_seq": after})
        return await client.until_terminal(wait_s=20)


def assert_exactly_once(before: list[dict[str, Any]], after: list[dict[str, Any]], tokens: tuple[str, ...]) -> None:
    seqs = [m["seq"] for m in [*before, *after] if m["type"] == "text"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert text(before) + text(after) == "".join(tokens)
    terminals = [m for m in [*before, *after] if m["type"] in TERMINAL]
    assert [t["type"] for t in terminals] == ["done"] and terminals[0] is after[-1]


def last_seq(messages: list[dict[str, Any]]) -> int:
    return max(int(m["seq"]) for m in messages if m["type"] == "text")


@pytest.mark.parametrize("pause_s", [0.0, 3.0])
async def test_ws_resume_after_drop_on_new_connection_gets_every_part_once(app: Stack, pause_s: float) -> None:
    app.upstream.scenario = Scenario.ok(*TOKENS, delay_s=0.015)
    stream_id, before = await chat_and_drop(app, 5)
    await asyncio.sleep(pause_s)
    after = await resume(app, stream_id, last_seq(before))
    assert_exactly_once(before, after, TOKENS)
    assert all(m["stream_id"] == stream_id for m in after)
    await app.record(stream_id, "complete")
    assert app.upstream.finished_count == 1 and app.upstream.closed_early_count == 0


async def test_ws_resume_after_the_worker_ended_replays_the_same_messages_from_the_log(app: Stack) -> None:
    app.upstream.scenario = Scenario.ok(*TOKENS[:60], delay_s=0.005)
    async with connect(app, "/?client_id=resumer") as ws:
        client = Client(ws)
        await client.send({"type": "chat", "message": "go", "provider": "openai"})
        full = await client.until_terminal(wait_s=20)
    stream_id = full[0]["stream_id"]
    await app.record(stream_id, "complete")
    await asyncio.sleep(0.5)  # the worker seals its message boundaries after its last post
    after = await resume(app, stream_id, 3)
    originals = [m for m in full if m["type"] == "text" and m["seq"] > 3]
    replayed = [m for m in after if m["type"] == "text"]
    assert [(m["seq"], m["content"], m["tokens"]) for m in replayed] == [
        (m["seq"], m["content"], m["tokens"]) for m in originals
    ]
    assert after[-1]["type"] == "done" and after[-1]["completion_tokens"] == 60


async def test_ws_drop_without_resume_closes_upstream_after_grace_as_disconnect(app: Stack) -> None:
    app.upstream.scenario = SLOW
    dropped = time.monotonic()
    stream_id, _ = await chat_and_drop(app, 2)
    assert not await asyncio.to_thread(app.upstream.wait_closed_early, 1, GRACE_S - 1.5)
    assert await asyncio.to_thread(app.upstream.wait_closed_early, 1, 5.0)
    assert time.monotonic() - dropped >= GRACE_S - 0.5
    record = await app.record(stream_id, "cancelled")
    assert record.cancel_reason == "disconnect"


async def test_ws_explicit_cancel_during_drop_stops_at_once(app: Stack) -> None:
    app.upstream.scenario = SLOW
    stream_id, _ = await chat_and_drop(app, 2)
    async with connect(app, "/?client_id=resumer") as ws:
        await Client(ws).send({"type": "cancel", "stream_id": stream_id})
        cancelled_at = time.monotonic()
        # Closed long before the upstream's natural end: the cancel closed it (no bound on the
        # latency itself: on a loaded machine that measures the machine, not the code).
        closed = await asyncio.to_thread(app.upstream.wait_closed_early, 1, 10.0)
        assert closed, f"the upstream was still open {time.monotonic() - cancelled_at:.1f} s after the cancel"
    record = await app.record(stream_id, "cancelled")
    assert record.cancel_reason == "client"


async def test_ws_resume_of_another_owners_stream_is_forbidden(app: Stack) -> None:
    app.upstream.scenario = Scenario.ok(*TOKENS[:200], delay_s=0.01)
    stream_id, _ = await chat_and_drop(app, 2, owner="alice")
    async with connect(app, "/?client_id=mallory") as ws:
        client = Client(ws)
        await client.send({"type": "resume", "stream_id": stream_id, "after_seq": 0})
        refused = await client.recv()
        await client.send({"type": "resume", "stream_id": "nope", "after_seq": 0})
        unknown = await client.recv()
        await client.send({"type": "resume", "stream_id": stream_id, "after_seq": -1})
        bad = await client.recv()
    assert refused["type"] == "error" and refused["code"] == "forbidden" and refused["stream_id"] == stream_id
    assert unknown["code"] == "stream_not_found"
    assert bad["code"] == "invalid_request" and bad["field"] == "after_seq"
    after = await resume(app, stream_id, 0, owner="alice")  # the owner still can
    assert after[-1]["type"] == "done"


async def test_ws_cancel_without_stream_id_reaches_a_stream_moved_to_this_connection(app: Stack) -> None:
    app.upstream.scenario = SLOW
    stream_id, before = await chat_and_drop(app, 2)
    async with connect(app, "/?client_id=resumer") as ws:
        client = Client(ws)
        await client.send({"type": "resume", "stream_id": stream_id, "after_seq": last_seq(before)})
        first = await client.recv()
        assert first["stream_id"] == stream_id and first["type"] in ("text", "usage")
        await client.send({"type": "cancel"})  # no stream id: every stream of this connection
        after = await client.until_terminal(wait_s=10)
    assert after[-1]["type"] == "cancelled" and after[-1]["reason"] == "client"
    assert await asyncio.to_thread(app.upstream.wait_closed_early, 1, 5.0)
    record = await app.record(stream_id, "cancelled")
    assert record.cancel_reason == "client"
