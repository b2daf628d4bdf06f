"""100 concurrent WebSocket streams of 200 tokens through the local API Gateway, on loopback only.

The gateway (scripts/devstack/gateway.py) runs the real ``functions/websocket``
handlers and one worker per stream (``WORKER_CONCURRENCY`` at once, as Lambda
would), on moto's DynamoDB server, with the echo provider at ``ECHO_DELAY_MS`` a
token. ``STREAMS`` clients connect at once and each starts one chat whose reply
is exactly ``TOKENS`` tokens. Every stream must have: ``start`` first, text
messages with ``seq`` 1..n without gap or repeat, the exact text (tokens are
coalesced into fewer messages, never lost or doubled), exactly one terminal
message and it is ``done``; its record ``complete`` with 200 tokens. No
integration error or timeout in the gateway, no unhandled exception logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from scripts.devstack.gateway import Gateway
from tests.fakes.stacks import TABLES, as_env, raise_fd_limit, ws_gateway
from tests.load.replies import TOKENS, prompt
from tokenrelay.stores.dynamodb import DynamoStreamStore

pytestmark = pytest.mark.heavy

STREAMS = int(os.environ.get("TOKENRELAY_LOAD_WS_STREAMS") or 100)
STREAM_WAIT_S = 180.0
TERMINAL = {"done", "cancelled", "error"}
WS_ENV = as_env(
    **TABLES,
    DEFAULT_PROVIDER="echo",
    ALLOWED_MODELS="echo:echo-1",
    ECHO_DELAY_MS=10,
    CANCEL_POLL_MS=250,
    WS_FLUSH_MS=50,
    RESUME_GRACE_S=0,
    WORKER_CONCURRENCY=STREAMS + 8,
    LOG_LEVEL="WARNING",
)


@pytest.fixture(scope="module")
def gateway(dynamodb_endpoint: str) -> Iterator[tuple[str, Gateway, DynamoStreamStore]]:
    raise_fd_limit(8 * STREAMS + 1024)
    with ws_gateway(WS_ENV) as stack:
        yield stack


async def _one(url: str, index: int) -> list[dict[str, Any]]:
    message, _ = prompt(index)
    messages: list[dict[str, Any]] = []
    async with websockets.connect(f"{url}/?client_id=load-{index}", open_timeout=30, close_timeout=5) as ws:
        await ws.send(json.dumps({"type": "chat", "message": message, "max_tokens": TOKENS, "request_id": f"r{index}"}))
        while not messages or messages[-1]["type"] not in TERMINAL:
            messages.append(json.loads(await ws.recv()))
    return messages


def _problem(index: int, messages: list[dict[str, Any]]) -> str:
    _, expected = prompt(index)
    kinds = [m["type"] for m in messages]
    if not kinds or kinds[0] != "start" or kinds[-1] != "done" or sum(k in TERMINAL for k in kinds) != 1:
        return f"messages {kinds[:3]}...{kinds[-3:]}: {messages[-1]}"
    if any(m.get("request_id") != f"r{index}" or m.get("stream_id") != messages[0]["stream_id"] for m in messages):
        return "a message of another stream or request"
    texts = [m for m in messages if m["type"] == "text"]
    if [m["seq"] for m in texts] != list(range(1, len(texts) + 1)):
        return f"seq {[m['seq'] for m in texts][:10]}..."
    if "".join(m["content"] for m in texts) != expected:
        return "text differs from the expected reply"
    if messages[-1].get("completion_tokens") != TOKENS:
        return f"done says {messages[-1].get('completion_tokens')} tokens"
    return ""


async def test_ws_100_concurrent_streams_of_200_tokens_lose_and_repeat_nothing(
    gateway: tuple[str, Gateway, DynamoStreamStore], caplog: pytest.LogCaptureFixture
) -> None:
    url, gw, store = gateway
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        results = await asyncio.wait_for(
            asyncio.gather(*(_one(url, i) for i in range(STREAMS)), return_exceptions=True), STREAM_WAIT_S
        )
        assert await gw.wait_idle(60.0)
    elapsed = time.monotonic() - started
    problems = [
        f"{i}: {r!r}" if isinstance(r, BaseException) else f"{i}: {_problem(i, r)}"
        for i, r in enumerate(results)
        if isinstance(r, BaseException) or _problem(i, r)
    ]
    texts = sum(len([m for m in r if m["type"] == "text"]) for r in results if not isinstance(r, BaseException))
    print(f"\nws load: {STREAMS} streams x {TOKENS} tokens in {elapsed:.1f} s ({texts} text messages), ", end="")
    print(f"{len(problems)} failed, {gw.stats.posts} posts")
    assert not problems, problems[:10]
    stream_ids = [r[0]["stream_id"] for r in results if not isinstance(r, BaseException)]
    records = await asyncio.gather(*(store.get(s) for s in stream_ids))
    incomplete = [r for r in records if r is None or r.status != "complete" or r.completion_tokens != TOKENS]
    assert not incomplete, incomplete[:5]
    assert gw.stats.integration_errors == 0 and gw.stats.integration_timeouts == 0
    unhandled = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not unhandled, [f"{r.name}: {r.getMessage()}" for r in unhandled[:10]]
