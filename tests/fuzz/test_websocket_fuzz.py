"""Random and malformed frames through the local API Gateway (scripts/devstack/gateway.py),
with a real WebSocket client, the real handlers and worker, each function in its own
execution environments with its own template role (``function_stack``), on the stack's
DynamoDB (IAM enforced).

``CONNECTIONS`` clients each send ``FRAMES_PER_CONNECTION`` frames from a seeded
generator (``frames.py``; the seed is printed, ``TOKENRELAY_WS_FUZZ_SEED`` replays
one): random bytes, text that is not JSON, truncated JSON, non-objects, the strict
JSON rules, wrong types, unknown types, unknown streams, huge strings, frames over
128 KB, binary frames, and valid chats mixed in. Each client waits for the answer
to a frame before the next, so every malformed frame is matched to its ``error``
(with the expected ``code``); every valid chat must stream its exact text with
``seq`` 1..n and one ``done``. At the end: no integration error, timeout or
unhandled-exception log in the gateway or the functions (their environments' output),
no call refused by IAM, and the gateway still serves a chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from scripts.devstack.gateway import Gateway
from scripts.devstack.stack import LambdaSettings
from tests.fakes.local_stack import FunctionStack, LocalAws, function_stack
from tests.fakes.stacks import TABLES, as_env
from tests.fuzz.frames import Frame, frame

pytestmark = pytest.mark.heavy

SEED = int(os.environ.get("TOKENRELAY_WS_FUZZ_SEED") or 20261125)
CONNECTIONS = 8
FRAMES_PER_CONNECTION = 140
REPLY_WAIT_S = 10.0
TERMINAL = {"done", "cancelled", "error"}
WS_ENV = as_env(
    **TABLES,
    DEFAULT_PROVIDER="echo",
    ALLOWED_MODELS="echo:echo-1",
    ECHO_DELAY_MS=1,
    MAX_MESSAGE_CHARS=2000,
    MAX_TOKENS_LIMIT=256,
    CANCEL_POLL_MS=100,
    WS_FLUSH_MS=10,
    WS_MAX_STREAMS=64,
    RESUME_GRACE_S=1,
)


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)
    closed_1009: int = 0
    chats: dict[str, Frame] = field(default_factory=dict)  # request_id -> the valid chat
    abandoned: set[str] = field(default_factory=set)  # chats whose connection an oversize frame closed
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # request_id -> its messages
    problems: list[str] = field(default_factory=list)


# One environment per concurrent invocation: the connections' messages and the workers.
FUZZ_LAMBDAS = LambdaSettings(max_envs=CONNECTIONS * 3, queue_timeout_s=60.0, idle_timeout_s=900.0)


@pytest.fixture(scope="module")
def gateway(aws: LocalAws) -> Iterator[tuple[str, Gateway, FunctionStack]]:
    with function_stack(aws, WS_ENV, http=False, ws=True, name="ws-fuzz", lambdas=FUZZ_LAMBDAS) as stack:
        assert stack.gateway is not None
        yield stack.ws, stack.gateway, stack


class Client:
    """One connection: sends frames one at a time, files every message it receives."""

    def __init__(self, url: str, index: int, tally: Tally) -> None:
        self.url, self.index, self.tally = url, index, tally
        self.ws: Any = None
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None
        self.terminal = asyncio.Event()  # a stream of this client ended
        self.pending: list[str] = []  # chats sent on the current connection

    async def connect(self) -> None:
        self.ws = await websockets.connect(
            f"{self.url}/?client_id=fuzz-{self.index}", open_timeout=10, close_timeout=2, max_size=None
        )
        self.reader = asyncio.create_task(self._read(self.ws))

    async def _read(self, ws: Any) -> None:
        try:
            async for raw in ws:
                message = json.loads(raw)
                rid = message.get("request_id")
                if rid in self.tally.chats and "stream_id" in message:
                    self.tally.streams.setdefault(rid, []).append(message)
                    if message["type"] in TERMINAL:
                        self.terminal.set()
                else:
                    await self.replies.put(message)
        except ConnectionClosed:
            pass

    async def send(self, item: Frame) -> None:
        self.tally.sent[item.kind] += 1
        if item.expect is None:
            assert item.request_id is not None
            self.tally.chats[item.request_id] = item
            self.pending.append(item.request_id)
        await self.ws.send(item.data)
        if item.expect is None:
            return
        if item.expect == "close":
            await self._expect_close(item)
            return
        try:
            reply = await asyncio.wait_for(self.replies.get(), REPLY_WAIT_S)
        except TimeoutError:
            self.tally.problems.append(f"{item.kind}: no answer to {item.data[:80]!r}")
            return
        if reply.get("type") != "error" or reply.get("code") != item.expect:
            self.tally.problems.append(f"{item.kind}: expected {item.expect}, got {reply} for {item.data[:80]!r}")
        elif item.request_id is not None and reply.get("request_id") != item.request_id:
            self.tally.problems.append(f"{item.kind}: request_id not echoed: {reply}")
        else:
            self.tally.answered[item.kind] += 1

    async def _expect_close(self, item: Frame) -> None:
        try:
            await asyncio.wait_for(self.ws.wait_closed(), REPLY_WAIT_S)
        except TimeoutError:
            self.tally.problems.append("oversize frame: the connection stayed open")
            return
        if self.ws.close_code == 1009:
            self.tally.closed_1009 += 1
            self.tally.answered[item.kind] += 1
        else:
            self.tally.problems.append(f"oversize frame: closed with {self.ws.close_code}")
        self.tally.abandoned.update(self.pending)  # their connection is gone: not checked
        self.pending = []
        await self.connect()

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            await asyncio.wait_for(self.reader, 5)


async def _run_client(url: str, index: int, tally: Tally) -> None:
    rng = random.Random(SEED * 1000 + index)
    client = Client(url, index, tally)
    await client.connect()
    for n in range(FRAMES_PER_CONNECTION):
        await client.send(frame(rng, index * 10_000 + n))
    mine = client.pending
    deadline = time.monotonic() + 60
    while not all(_ended(tally.streams.get(r, [])) for r in mine) and time.monotonic() < deadline:
        client.terminal.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(client.terminal.wait(), 1.0)
    await client.close()


def _ended(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and messages[-1]["type"] in TERMINAL


async def test_ws_malformed_frames_get_errors_and_valid_chats_stream_exactly(
    gateway: tuple[str, Gateway, FunctionStack], caplog: pytest.LogCaptureFixture
) -> None:
    url, gw, stack = gateway
    mark = stack.logs.mark()
    tally = Tally()
    print(f"\nws fuzz: seed {SEED} (TOKENRELAY_WS_FUZZ_SEED={SEED} replays it)")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        await asyncio.gather(*(_run_client(url, i, tally) for i in range(CONNECTIONS)))
        assert await gw.wait_idle(30.0)  # every frame handled, every worker done
    elapsed = time.monotonic() - started
    sent = sum(tally.sent.values())
    print(f"ws fuzz: {sent} frames in {elapsed:.1f} s; by kind {dict(tally.sent)}; closed 1009: {tally.closed_1009}")
    assert not tally.problems, "\n".join(tally.problems[:20])
    assert sent >= 1000
    malformed = {k: v for k, v in tally.sent.items() if k != "valid_chat"}
    assert dict(tally.answered) == malformed  # every malformed frame got its error (or its 1009 close)
    _check_chats(tally)
    assert gw.stats.integration_errors == 0 and gw.stats.integration_timeouts == 0
    unhandled = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not unhandled, [f"{r.name}: {r.getMessage()}" for r in unhandled[:10]]
    in_functions = [line for line in stack.logs.since(mark) if '"level":"ERROR"' in line or "Traceback" in line]
    assert not in_functions, in_functions[:10]
    stack.assert_no_access_denied(mark)
    await _still_serves(url)


def _check_chats(tally: Tally) -> None:
    completed = 0
    for rid, chat in tally.chats.items():
        messages = tally.streams.get(rid, [])
        if rid in tally.abandoned:
            continue
        kinds = [m["type"] for m in messages]
        assert kinds and kinds[0] == "start" and kinds[-1] == "done", (rid, kinds)
        assert sum(k in TERMINAL for k in kinds) == 1, (rid, kinds)
        texts = [m for m in messages if m["type"] == "text"]
        assert "".join(m["content"] for m in texts) == chat.text, rid
        assert [m["seq"] for m in texts] == list(range(1, len(texts) + 1)), rid
        completed += 1
    print(f"ws fuzz: {completed} valid chats streamed exactly ({len(tally.abandoned)} on connections closed by 1009)")
    assert completed == len(tally.chats) - len(tally.abandoned) and completed >= 20


async def _still_serves(url: str) -> None:
    async with websockets.connect(f"{url}/?client_id=fuzz-after", open_timeout=10, close_timeout=2) as ws:
        await ws.send(json.dumps({"type": "chat", "message": "still here", "request_id": "after"}))
        kinds: list[str] = []
        while not kinds or kinds[-1] not in TERMINAL:
            kinds.append(json.loads(await asyncio.wait_for(ws.recv(), 10))["type"])
        assert kinds[0] == "start" and kinds[-1] == "done"
