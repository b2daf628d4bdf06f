"""The fault matrix (issue #5): every upstream and AWS fault, on both transports, end to end.

Each case runs over SSE (the local Function URL) and over WebSocket (gateway, handlers,
worker), every function in its own process environments with its own IAM identity, against
the real SDKs, the fake upstream (behind ``ChaosProxy`` for OpenAI) and the stack's DynamoDB,
whose server injects the DynamoDB faults (``faults_stack.py``). For every case and transport:

- the client sees exactly one terminal event (none after a client went away), the
  text it got is the upstream's text or a prefix of it, never repeated, in order;
- the state record ends in the right status, error code or cancel reason;
- every upstream request ended, and the ones TokenRelay had to stop were closed early;
- exactly one metrics document, with the right outcome, retries and fallback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.faults_stack import WORKER_MARGIN_S, FaultStack, fault_stack
from tests.e2e.sse_client import iter_sse
from tests.fakes.local_stack import LocalAws
from tests.fakes.upstream import FakeUpstream, Scenario

TOKENS = tuple(f"t{i} " for i in range(6))
FULL = "".join(TOKENS)
FALLBACK_TOKENS = ("from ", "the ", "fallback")
FALLBACK = "".join(FALLBACK_TOKENS)
FALLBACK_MODEL = "claude-haiku-4-5"
OK, OK_FALLBACK = Scenario.ok(*TOKENS), Scenario.ok(*FALLBACK_TOKENS)
SLOW = Scenario.ok(*[f"s{i} " for i in range(300)], delay_s=0.02)  # 6 s unless stopped
TERMINAL = ("done", "cancelled", "error")


@dataclass(frozen=True)
class Case:
    name: str
    queue: tuple[Scenario, ...] = ()  # one-shot answers, in order, to whichever request comes first
    scenario: Scenario = OK  # every other OpenAI request
    fallback: Scenario = OK_FALLBACK  # the fallback model's requests
    proxy: str = ""  # "down": connections refused; "reset": the first request reset
    dynamo: tuple[str, int] | None = None  # (kind, count) of throttled DynamoDB calls
    action: str = ""  # "cancel" (from another instance), "disconnect", "deadline"
    end: str = "done"  # done | error | cancelled | refused (the stream never started)
    code: str | None = None  # error code, or cancel reason
    retryable: bool | None = None
    text: str | None = FULL  # exactly what the client gets; None: a prefix of upstream_text
    upstream_text: str = FULL
    requests: int | None = 1  # requests the fake upstream saw (None: not checked)
    closed_early: int | None = 0  # of which TokenRelay closed before their end (None: not checked)
    retries: int = 0
    fallback_used: bool = False


CASES = [
    Case("ok"),
    Case("503_then_ok", queue=(Scenario.http_error(503),), requests=2, retries=1),
    Case("429_retry_after_then_ok", queue=(Scenario.http_error(429, retry_after_ms=50),), requests=2, retries=1),
    Case("500_persistent_falls_back", scenario=Scenario.http_error(500), text=FALLBACK, requests=4, retries=2,
         fallback_used=True),
    Case("503_everywhere_fails", scenario=Scenario.http_error(503), fallback=Scenario.http_error(503), end="error",
         code="upstream_unavailable", retryable=True, text="", requests=6, retries=4, fallback_used=True),
    Case("400_rejected_not_retried", scenario=Scenario.http_error(400), end="error", code="upstream_rejected",
         retryable=False, text=""),
    Case("refused_falls_back", proxy="down", text=FALLBACK, retries=2, fallback_used=True),
    Case("reset_then_ok", proxy="reset", retries=1),
    Case("no_first_token_then_ok", queue=(Scenario.ok(*TOKENS, first_token_delay_s=30),), requests=2,
         closed_early=1, retries=1),
    Case("no_headers_then_ok", queue=(Scenario(headers_delay_s=30),), requests=2, closed_early=1, retries=1),
    Case("malformed_first_then_ok", queue=(Scenario.ok(*TOKENS, malformed_after=0),), requests=2,
         closed_early=None, retries=1),
    Case("error_frame_after_text", scenario=Scenario.error_frame(after=2, tokens=TOKENS), end="error",
         code="upstream_unavailable", retryable=True, text="t0 t1 ", closed_early=None),
    Case("drop_after_text", scenario=Scenario.truncated(after=2, tokens=TOKENS), end="error",
         code="upstream_unavailable", retryable=True, text="t0 t1 "),
    Case("malformed_after_text", scenario=Scenario.ok(*TOKENS, malformed_after=2), end="error",
         code="upstream_unavailable", retryable=True, text="t0 t1 ", closed_early=None),
    Case("stall_after_text", scenario=Scenario.ok(*TOKENS, stall_after=2), end="error", code="upstream_timeout",
         retryable=True, text="t0 t1 ", closed_early=1),
    Case("cancel", scenario=SLOW, action="cancel", end="cancelled", code="client", text=None,
         upstream_text="".join(SLOW.tokens), closed_early=1),
    Case("client_gone", scenario=SLOW, action="disconnect", end="cancelled", code="disconnect", text=None,
         upstream_text="".join(SLOW.tokens), closed_early=1),
    Case("deadline", scenario=SLOW, action="deadline", end="cancelled", code="timeout", text=None,
         upstream_text="".join(SLOW.tokens), closed_early=1),
    Case("ddb_create_throttled_once", dynamo=("create", 1)),
    Case("ddb_create_unavailable", scenario=SLOW, dynamo=("create", 50), end="refused", code="store_unavailable",
         retryable=True, text="", requests=None, closed_early=None),
    Case("ddb_watch_throttled_then_cancel", scenario=SLOW, dynamo=("read", 6), action="cancel", end="cancelled",
         code="client", text=None, upstream_text="".join(SLOW.tokens), closed_early=1),
    Case("ddb_finish_throttled_once", dynamo=("finish", 1)),
    # throttled past botocore's 3 attempts twice over: the engine's own retries still land the write
    Case("ddb_finish_throttled_past_botocore", dynamo=("finish", 7)),
]  # fmt: skip


@dataclass
class Seen:
    """What the client saw: its events (name, data), or the refusal before any stream."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stream_id: str | None = None
    refused: dict[str, Any] | None = None  # HTTP error body / WebSocket error without a stream
    gone: bool = False  # the client left on purpose
    transport: str = "sse"

    @property
    def text(self) -> str:
        return "".join(data["text"] for name, data in self.events if name == "text")

    @property
    def terminals(self) -> list[tuple[str, dict[str, Any]]]:
        return [(name, data) for name, data in self.events if name in TERMINAL]


@pytest.fixture(scope="module")
def stack(
    aws: LocalAws, upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultStack]:
    yield from fault_stack(aws, upstream_server, tmp_path_factory.mktemp("faults"))


@pytest.fixture
def faults(stack: FaultStack) -> Iterator[FaultStack]:
    stack.reset()
    yield stack
    assert stack.wait_idle(), "a worker or an upstream request outlived its case"
    stack.reset()


@pytest.mark.parametrize("transport", ["sse", "ws"])
@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
async def test_fault(faults: FaultStack, case: Case, transport: str) -> None:
    arrange(faults, case)
    seen = await (run_sse(faults, case) if transport == "sse" else run_ws(faults, case))
    await check(faults, case, seen)


def arrange(stack: FaultStack, case: Case) -> None:
    upstream = stack.upstream
    upstream.scenario = case.scenario
    upstream.by_model[FALLBACK_MODEL] = case.fallback
    upstream.enqueue(*case.queue)
    if case.proxy == "down":
        stack.proxy.down()
    elif case.proxy == "reset":
        stack.proxy.reset_next(1)
    if case.dynamo is not None:
        stack.dynamo.throttle(*case.dynamo)


async def on_first_text(stack: FaultStack, case: Case, stream_id: str) -> None:
    if case.action == "cancel":
        await stack.records.request_cancel(stream_id, "client")  # as a cancel landing on another instance


async def run_sse(stack: FaultStack, case: Case) -> Seen:
    seen = Seen()
    # the deadline: a function whose Timeout leaves 1.5 s after the margin (the Web Adapter's context)
    url = stack.short_sse_url if case.action == "deadline" else stack.sse_url
    body = {"message": "go", "provider": "openai"}
    async with (
        httpx.AsyncClient(base_url=url, timeout=20) as client,
        client.stream("POST", "/chat/stream", json=body) as response,
    ):
        if response.status_code != 200:
            await response.aread()
            seen.refused = {"status": response.status_code, **response.json()}
            return seen
        seen.stream_id = response.headers["x-stream-id"]
        async for event in iter_sse(response):
            name = "text" if event.event == "message" else event.event
            seen.events.append(
                (name, {**event.data, "seq": int(event.id or "no id")} if name == "text" else event.data)
            )
            if name == "text" and event.id == "1":
                if case.action == "disconnect":
                    seen.gone = True
                    break
                await on_first_text(stack, case, seen.stream_id)
    return seen


async def run_ws(stack: FaultStack, case: Case) -> Seen:
    seen = Seen(transport="ws")
    if case.action == "deadline":  # the worker's Lambda context: 0.8 s left after the margin
        stack.gateway.lambdas.timeout_s = WORKER_MARGIN_S + 0.8
    async with websockets.connect(stack.ws_url, open_timeout=5, close_timeout=2) as ws:
        await ws.send(json.dumps({"type": "chat", "message": "go", "provider": "openai", "request_id": "r-1"}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 20))
            kind = message["type"]
            if kind == "error" and "stream_id" not in message:
                seen.refused = message
                return seen
            seen.stream_id = message["stream_id"]
            assert message["request_id"] == "r-1"
            seen.events.append((kind, {**message, "text": message["content"]} if kind == "text" else message))
            if kind == "text" and message["seq"] == 1:
                if case.action == "disconnect":
                    seen.gone = True
                    break
                await on_first_text(stack, case, seen.stream_id)
            if kind in TERMINAL:
                break
        if not seen.gone:  # the worker is done: anything after the terminal message is already on its way
            await asyncio.to_thread(stack.wait_idle)
            with pytest.raises(TimeoutError):
                extra = await asyncio.wait_for(ws.recv(), 0.05)
                pytest.fail(f"a message after the terminal one: {extra!r}")
    return seen


async def check(stack: FaultStack, case: Case, seen: Seen) -> None:
    upstream = stack.upstream
    # The client: one terminal event, the upstream's text once, in order.
    if case.end == "refused":
        check_refused(case, seen)
        assert await asyncio.to_thread(stack.wait_idle), "an upstream request was left open"
        assert case.dynamo is not None and stack.dynamo.injected[case.dynamo[0]] >= 1
        # one failed stream's metrics on both transports (the WebSocket chat handler emits it)
        docs = await asyncio.to_thread(refused_metrics, stack, 1)
        assert [(d["ErrorCode"], metric(d, "StreamFailed")) for d in docs] == [(case.code, 1)], docs
        return
    assert seen.refused is None, seen.refused
    assert seen.stream_id is not None
    seqs = [data["seq"] for name, data in seen.events if name == "text"]
    assert seqs == list(range(1, len(seqs) + 1))
    if case.text is not None:
        assert seen.text == case.text
    else:  # stopped part-way: what it got is where the upstream text begins (the deadline may even beat it)
        assert case.upstream_text.startswith(seen.text)
        assert seen.text or case.action == "deadline"
    if seen.gone:
        assert seen.terminals == []
    else:
        (terminal,) = seen.terminals
        assert seen.events[-1] == terminal and terminal[0] == case.end, terminal
        if case.end == "error":
            assert (terminal[1]["code"], terminal[1]["retryable"]) == (case.code, case.retryable)
        elif case.end == "cancelled":
            assert terminal[1]["reason"] == case.code
    # The record.
    record = await stack.final_record(seen.stream_id, within_s=10.0)
    assert record is not None
    status = {"done": "complete", "error": "failed", "cancelled": "cancelled"}[case.end]
    assert record.status == status, record
    assert record.error_code == (case.code if case.end == "error" else None)
    assert record.cancel_reason == (case.code if case.end == "cancelled" else None)
    # The upstream: every request ended; the ones TokenRelay stopped were closed early.
    assert await asyncio.to_thread(stack.wait_idle), [x.scenario for x in upstream.requests if not x.ended.is_set()]
    if case.requests is not None:
        assert len(upstream.requests) == case.requests
    if case.closed_early is not None:
        assert upstream.closed_early_count == case.closed_early
    # One metrics document with the outcome.
    (doc,) = await asyncio.to_thread(stack.metrics.wait, seen.stream_id)
    flag = {"done": "StreamCompleted", "error": "StreamFailed", "cancelled": "StreamCancelled"}[case.end]
    assert metric(doc, flag) == 1 and metric(doc, "StreamStarted") == 1
    assert metric(doc, "StreamDisconnected") == (1 if case.code == "disconnect" else 0)
    assert doc.get("ErrorCode") == (case.code if case.end == "error" else None)
    assert doc.get("CancelReason") == (case.code if case.end == "cancelled" else None)
    assert metric(doc, "UpstreamRetries") == case.retries
    assert metric(doc, "UpstreamFallbacks") == (1 if case.fallback_used else 0)
    served = f"anthropic:{FALLBACK_MODEL}" if case.fallback_used else "openai:gpt-4o-mini"
    assert doc["ServedBy"] == served and doc["Provider"] == "openai"
    if case.dynamo is not None:
        assert stack.dynamo.injected[case.dynamo[0]] >= 1


def check_refused(case: Case, seen: Seen) -> None:
    """The stream could not be recorded: refused before it started (HTTP 503 / a WebSocket
    error with no stream), or, if the first text won the race with the failing create, one
    in-band error. No record either way."""
    if seen.refused is not None:
        assert seen.refused["code"] == case.code, seen.refused
        assert seen.refused.get("status", 503) == 503 and seen.refused.get("retryable", True) is True
        assert seen.events == []
    else:
        (terminal,) = seen.terminals
        assert terminal[0] == "error" and terminal[1]["code"] == case.code and terminal[1]["retryable"]


def refused_metrics(stack: FaultStack, expected: int, within_s: float = 5.0) -> list[dict[str, Any]]:
    """Every metrics document so far, once there are ``expected`` (blocking: call it in a thread)."""
    deadline = time.monotonic() + within_s
    while len(stack.metrics.docs) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return list(stack.metrics.docs)


def metric(doc: dict[str, Any], name: str) -> float:
    value = doc[name]
    return float(value[0] if isinstance(value, list) else value)
