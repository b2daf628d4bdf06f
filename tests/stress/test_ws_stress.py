"""WebSocket streams that drop and resume on a new connection, under CPU load, on a slow DynamoDB.

The local API Gateway (``scripts/devstack/gateway.py``) runs the real handlers and the worker in
this process; their DynamoDB clients get the stress suite's slow-store faults. Each client
chats, drops its socket after some text, and resumes (``{"type":"resume","after_seq":n}``) on a
new one: while the worker still runs (it moves the stream), or after it ended (a replay from
the output log). For each stream: seqs 1..n once, the requested text, one terminal event, the
record complete, the upstream closed, and the output log (read directly) holds the same text.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from scripts.devstack.gateway import Gateway, GatewayConfig, serving
from tests.e2e.test_websocket_e2e import TERMINAL, Client, Stack, connect, text
from tests.fakes.dynamo_chaos import Chaos
from tests.fakes.environ import environ
from tests.fakes.servers import free_port
from tests.fakes.upstream import FakeUpstream, Scenario
from tests.stress.sse_streams import final_record, prompt_of, words
from tests.stress.stack import APP_ENV, AWS, SLOW, TABLES
from tokenrelay.resume import follow
from tokenrelay.stores.dynamodb import DynamoOutputLog, DynamoStreamStore

pytestmark = pytest.mark.heavy

STREAMS = 12
TOKENS = 80


@pytest.fixture(scope="module")
def ws_stack(endpoint: str, upstream_server: FakeUpstream) -> Iterator[Stack]:
    port = free_port()
    here = f"http://127.0.0.1:{port}"
    env = {
        **AWS,
        **APP_ENV,
        **upstream_server.env,
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "WORKER_FUNCTION_NAME": "tokenrelay-worker",
        "WS_FLUSH_MS": "20",
        "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": here,
        "AWS_ENDPOINT_URL_LAMBDA": here,
    }
    with environ(env):
        from tokenrelay_ws import environment as common  # functions/websocket
        from tokenrelay_ws import resume as resume_ws

        common.reset()
        chaos = Chaos.from_spec(f"{SLOW},seed=7")
        chaos.install()  # on the default session, for the clients made now...
        try:
            svc = common.services()
            assert svc.streams.clients and resume_ws.deps(svc.settings) is not None  # every client made
        finally:  # ...and for no later client of this process (each client keeps its own copy)
            assert boto3.DEFAULT_SESSION is not None
            boto3.DEFAULT_SESSION.events.unregister("before-send.dynamodb", chaos._before_send)
        gateway = Gateway(GatewayConfig.from_env(port=port))
        with serving(gateway) as url:
            yield Stack(url, gateway, DynamoStreamStore(TABLES["STREAMS_TABLE"]), upstream_server)
        common.reset()


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
    ws_stack: Stack, upstream_server: FakeUpstream, hogs: list[int], rng: random.Random
) -> None:
    upstream_server.reset()
    upstream_server.scenario = Scenario(echo_prompt=True, delay_s=0.02)
    plans = [(f"w{i}", rng.randint(2, TOKENS - 10), 6.0 if i % 4 == 3 else rng.uniform(0, 1)) for i in range(STREAMS)]
    async with asyncio.timeout(150):
        results = await asyncio.gather(*(chat_drop_resume(ws_stack, *plan) for plan in plans))
    log = DynamoOutputLog(TABLES["OUTPUT_LOG_TABLE"])
    ddb = boto3.client("dynamodb", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"), **_region())
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
        record = await final_record(_Records(ddb), stream_id)  # type: ignore[arg-type]
        if record.get("status", {}).get("S") != "complete":
            out.append(f"record {record.get('status')}")
        exchanges = [x for x in upstream_server.requests if prompt_of(x.json).startswith(f"{tag}.0 ")]
        if len(exchanges) != 1 or not exchanges[0].ended.wait(10):
            out.append("upstream not closed")
    ddb.close()
    assert {tag: p for tag, p in problems.items() if p} == {}


class _Records:
    """What ``final_record`` reads (the streams table), without the stress stack's instances."""

    def __init__(self, ddb: Any) -> None:
        self.ddb = ddb


def _region() -> dict[str, str]:
    return {"region_name": AWS["AWS_REGION"]}
