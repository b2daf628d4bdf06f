"""Metrics from the SSE transport: one EMF document per stream, with the right outcome."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api import create_app
from tests.e2e.sse_client import iter_sse
from tests.fakes.environ import environ
from tests.fakes.servers import serve
from tests.fakes.upstream import FakeUpstream, Scenario
from tokenrelay import Settings
from tokenrelay.stores.dynamodb import DynamoStreamStore
from tokenrelay.telemetry.metrics import StreamMetrics


class Captured:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def docs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    def wait(self, count: int, within_s: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within_s
        while len(self.lines) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.docs()


def metric(doc: dict[str, Any], name: str) -> float:
    value = doc[name]
    return float(value[0] if isinstance(value, list) else value)


@pytest.fixture(scope="module")
def metered(dynamodb_endpoint: str, upstream_server: FakeUpstream) -> Iterator[tuple[str, Captured]]:
    captured = Captured()
    env = {**os.environ, **upstream_server.env, "CANCEL_POLL_MS": "50", "UPSTREAM_MAX_RETRIES": "0"}
    settings = Settings.from_env({**env, "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini;anthropic:claude-haiku-4-5"})
    app = create_app(
        settings,
        store=DynamoStreamStore(settings.streams_table),
        metrics=StreamMetrics("TokenRelay", "tokenrelay-e2e", sink=captured.lines.append),
    )
    with environ(upstream_server.env), serve(app) as url:
        yield url, captured


@pytest.fixture
def setup(metered: tuple[str, Captured], upstream_server: FakeUpstream) -> tuple[str, Captured, FakeUpstream]:
    upstream_server.reset()
    metered[1].lines.clear()
    return metered[0], metered[1], upstream_server


async def test_metrics_sse_complete_cancel_fail_and_disconnect(setup: tuple[str, Captured, FakeUpstream]) -> None:
    url, captured, upstream = setup
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        upstream.scenario = Scenario.ok("a ", "b ", "c ")
        async with client.stream("POST", "/chat/stream", json={"message": "x", "provider": "openai"}) as r:
            _ = [e async for e in iter_sse(r)]
        (done,) = captured.wait(1)
        assert (done["Transport"], done["Provider"]) == ("sse", "openai")
        assert metric(done, "StreamCompleted") == 1 and metric(done, "OutputTokens") == 3
        assert metric(done, "TimeToFirstToken") >= 0 and metric(done, "StreamDuration") >= metric(
            done, "TimeToFirstToken"
        )

        upstream.scenario = Scenario.error_frame(after=1)
        async with client.stream("POST", "/chat/stream", json={"message": "x", "provider": "anthropic"}) as r:
            _ = [e async for e in iter_sse(r)]
        failed = captured.wait(2)[1]
        assert failed["Provider"] == "anthropic" and metric(failed, "StreamFailed") == 1 and failed["ErrorCode"]

        upstream.scenario = Scenario.ok(*["w "] * 400, delay_s=0.02)
        async with client.stream("POST", "/chat/stream", json={"message": "x", "provider": "openai"}) as r:
            async for event in iter_sse(r):
                if event.event == "message":
                    await client.post(f"/chat/stream/{r.headers['x-stream-id']}/cancel")
        cancelled = captured.wait(3)[2]
        assert metric(cancelled, "StreamCancelled") == 1 and metric(cancelled, "StreamDisconnected") == 0

        async with client.stream("POST", "/chat/stream", json={"message": "x", "provider": "openai"}) as r:
            async for event in iter_sse(r):
                if event.event == "message" and event.id == "2":
                    break
        gone = captured.wait(4)[3]
        assert metric(gone, "StreamCancelled") == 1 and metric(gone, "StreamDisconnected") == 1
        assert gone["CancelReason"] == "disconnect" and metric(gone, "TokensAfterDisconnect") >= 0
    assert len(captured.lines) == 4  # exactly one document per stream
