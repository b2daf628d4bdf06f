"""WebSocket streams that drop and resume on a new connection, under CPU load, on a slow DynamoDB.

The local API Gateway (``scripts/devstack/gateway.py``) runs the WebSocket functions and the
worker each in their own environments with their own identities; DynamoDB is slow for them
(the stress suite's slow-store faults, at the server). Each client chats, drops its socket after
some text, and resumes (``{"type":"resume","after_seq":n}``) on a new one: while the worker still
runs (it moves the stream), or after it ended (a replay from the output log). For each stream:
seqs 1..n once, the requested text, one terminal event, the record complete, the upstream
closed, and the output log (read directly) holds the same text.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import websockets

from tests.e2e.test_websocket_e2e import TERMINAL, Client, Stack, text
from tests.fakes.environ import environ
from tests.fakes.local_stack import FunctionStack, LocalAws
from tests.fakes.upstream import FakeUpstream, Scenario
from tests.stress.sse_streams import final_record, prompt_of, words
from tests.stress.stack import SLOW, TABLES, Instances, instances
from tokenrelay.resume import follow
from tokenrelay.stores.dynamodb import DynamoOutputLog, DynamoStreamStore

pytestmark = pytest.mark.heavy

STREAMS = 12
TOKENS = 80


@pytest.fixture
def ws_stack(
    aws: LocalAws, stress_stack: FunctionStack, upstream_server: FakeUpstream, rng: random.Random
) -> Iterator[tuple[Stack, Instances]]:
    with (
        # a grace longer than the 6 s pause before a late resume: the stream ends on its own first
        stress_stack.serve_gateway(RESUME_GRACE_S="15") as (url, gateway),
        environ(aws.env()),  # the test's own reads: the operator's, with no faults
        instances(aws, stress_stack, SLOW, seed=rng.randrange(1 << 30)) as stack,
    ):
        boto3.setup_default_session()  # it keeps the credentials it first read: these, not an earlier test's
        store = DynamoStreamStore(TABLES["STREAMS_TABLE"])
        try:
            yield Stack(url, gateway, store, upstream_server, stress_stack), stack
        finally:
            store.close()
            boto3.DEFAULT_SESSION = None


def connect(stack: Stack, query: str) -> Any:
    """A WebSocket handshake that allows for $connect's cold starts on a loaded machine (API
    Gateway waits up to 29 s for its integration)."""
    return websockets.connect(stack.url + query, open_timeout=30, close_timeout=2)


async def chat_drop_resume(stack: Stack, tag: str, drop_after: int, pause_s: float) -> dict[str, Any]:
    owner = f"/?client_id=ws-{tag}"
    async with connect(stack, owner) as ws:
        client = Client(ws)
        body = " ".join(words(tag, TOKENS))
        await client.send({"type": "chat", "message": body, "provider": "openai", "request_id": tag})
        before = [await client.recv(30)]
        while sum(m["type"] == "text" for m in before) < drop_after and before[-1]["type"] not in TERMINAL:
            before.append(await client.recv(30))
    stream_id = before[0]["stream_id"]
    await asyncio.sleep(pause_s)
    after: list[dict[str, Any]] = []
    if before[-1]["type"] not in TERMINAL:
        last = max(m["seq"] for m in before if m["type"] == "text")
        async with connect(stack, owner) as ws:
            client = Client(ws)
            await client.send({"type": "resume", "stream_id": stream_id, "after_seq": last})
            after = await client.until_terminal(wait_s=60)
    return {"tag": tag, "stream_id": stream_id, "messages": before + after}


async def test_stress_websocket_drops_and_resumes_lose_nothing_and_end_once(
    ws_stack: tuple[Stack, Instances], upstream_server: FakeUpstream, hogs: list[int], rng: random.Random
) -> None:
    gateway, stack = ws_stack
    upstream_server.reset()
    upstream_server.scenario = Scenario(echo_prompt=True, delay_s=0.02)
    plans = [(f"w{i}", rng.randint(2, TOKENS - 10), 6.0 if i % 4 == 3 else rng.uniform(0, 1)) for i in range(STREAMS)]
    async with asyncio.timeout(150):
        results = await asyncio.gather(*(chat_drop_resume(gateway, *plan) for plan in plans))
    stack.chaos(None)  # the output log, read directly below, as it is
    log = DynamoOutputLog(TABLES["OUTPUT_LOG_TABLE"])
    problems: dict[str, list[str]] = {}
    for result in results:
        tag, stream_id, messages = result["tag"], result["stream_id"], result["messages"]
        out = problems.setdefault(tag, [])
        seqs = [m["seq"] for m in messages if m["type"] == "text"]
        if seqs != list(range(1, len(seqs) + 1)):
            out.append(f"seqs {seqs[:5]}...")
        if text(messages) != "".join(f"{w} " for w in words(tag, TOKENS)):
            out.append(f"text of {len(text(messages))} chars")
        if [m["type"] for m in messages if m["type"] in TERMINAL] != ["done"]:
            out.append(f"terminals {[m['type'] for m in messages if m['type'] in TERMINAL]}")
        async with asyncio.timeout(60):
            logged = [e async for e in follow(log, stream_id, 0, poll_s=0.2)]
        if "".join(getattr(e, "text", "") for e in logged) != text(messages):
            out.append("the output log's text differs")
        record = await final_record(stack, stream_id)
        if record.get("status", {}).get("S") != "complete":
            out.append(f"record {record.get('status')}")
        exchanges = [x for x in upstream_server.requests if prompt_of(x.json).startswith(f"{tag}.0 ")]
        if len(exchanges) != 1 or not exchanges[0].ended.wait(10):
            out.append("upstream not closed")
    assert {tag: p for tag, p in problems.items() if p} == {}
    assert "Traceback" not in stack.log_text()
