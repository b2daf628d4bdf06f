"""Metrics from the SSE transport: one EMF document per stream, with the right outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.sse_client import iter_sse
from tests.fakes.local_stack import LocalAws, LogCapture, function_stack
from tests.fakes.upstream import FakeUpstream, Scenario


class Captured:
    """The EMF documents the function's environments print (what CloudWatch turns into metrics)."""

    def __init__(self, logs: LogCapture) -> None:
        self.logs = logs
        self.start = logs.mark()

    def clear(self) -> None:
        self.start = self.logs.mark()

    def docs(self) -> list[dict[str, Any]]:
        return [d for d in self.logs.emf(self.start) if "StreamStarted" in d]

    def wait(self, count: int, within_s: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within_s
        while len(self.docs()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.docs()


def metric(doc: dict[str, Any], name: str) -> float:
    value = doc[name]
    return float(value[0] if isinstance(value, list) else value)


@pytest.fixture(scope="module")
def metered(aws: LocalAws, upstream_server: FakeUpstream) -> Iterator[tuple[str, Captured]]:
    env = {
        **upstream_server.env,
        "CANCEL_POLL_MS": "50",
        "UPSTREAM_MAX_RETRIES": "0",
        "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini;anthropic:claude-haiku-4-5",
        "METRICS_ENABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "TokenRelay",
        "POWERTOOLS_SERVICE_NAME": "tokenrelay-e2e",
    }
    with function_stack(aws, env, name="metrics") as functions:
        yield functions.http, Captured(functions.logs)
        functions.assert_no_access_denied()


@pytest.fixture
def setup(metered: tuple[str, Captured], upstream_server: FakeUpstream) -> tuple[str, Captured, FakeUpstream]:
    upstream_server.reset()
    metered[1].clear()
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
    await asyncio.sleep(0.3)  # a second document for a stream would be a bug: give it a chance to show
    assert len(captured.docs()) == 4  # exactly one document per stream


async def test_metrics_of_the_wire_formats_carry_their_transport(setup: tuple[str, Captured, FakeUpstream]) -> None:
    """``/v1/chat/completions`` counts as ``openai``, ``/v1/messages`` as ``anthropic``, streaming or not."""
    url, captured, upstream = setup
    messages = {"model": "anthropic/claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "x"}]}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        upstream.scenario = Scenario.ok("a ", "b ")
        assert (await client.post("/v1/messages", json=messages)).status_code == 200
        async with client.stream("POST", "/v1/messages", json={**messages, "stream": True}) as r:
            assert r.status_code == 200
            _ = [line async for line in r.aiter_lines()]
        completion = {"model": "echo/echo-1", "messages": [{"role": "user", "content": "x"}]}
        assert (await client.post("/v1/chat/completions", json=completion)).status_code == 200
        docs = captured.wait(3)

    assert [(d["Transport"], d["Provider"]) for d in docs] == [
        ("anthropic", "anthropic"),
        ("anthropic", "anthropic"),
        ("openai", "echo"),
    ]
    assert all(metric(d, "StreamCompleted") == 1 for d in docs) and metric(docs[0], "OutputTokens") == 2


async def test_metrics_of_the_ai_sdk_route_carry_transport_ai_sdk(setup: tuple[str, Captured, FakeUpstream]) -> None:
    """``POST /api/chat`` (docs/ai-sdk.md) is counted as its own wire format."""
    url, captured, upstream = setup
    upstream.scenario = Scenario.ok("a ", "b ")
    body = {"id": "metrics-chat", "messages": [{"id": "u", "role": "user", "parts": [{"type": "text", "text": "x"}]}]}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.post("/api/chat", json={**body, "provider": "openai"})
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    (done,) = captured.wait(1)
    assert (done["Transport"], done["Provider"]) == ("ai-sdk", "openai")
    assert metric(done, "StreamCompleted") == 1 and metric(done, "OutputTokens") == 2
