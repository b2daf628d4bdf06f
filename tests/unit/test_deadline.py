"""The Lambda deadline of an HTTP request: Web Adapter header, Mangum's context, neither."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mangum import Mangum

from tests.fakes.lambda_context import LambdaContext as Context
from tests.fakes.memory_store import MemoryStreamStore
from tests.unit.test_mangum_handler import parse_sse
from tokenrelay import Settings
from tokenrelay_http import create_app
from tokenrelay_http.deadline import remaining_s, stream_deadline_s

EVENTS = Path(__file__).parent.parent / "events"
NOW = 1_700_000_000.0


def header(value: Any) -> dict[str, Any]:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return {"headers": [(b"content-type", b"application/json"), (b"x-amzn-lambda-context", raw)]}


# The header as the Web Adapter sends it: aws-lambda-rust-runtime's Context, serialized.
ADAPTER_CONTEXT = {
    "request_id": "9f0c2b1e-0000-4000-8000-000000000001",
    "deadline": int((NOW + 42.5) * 1000),
    "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:tokenrelay-stream",
    "xray_trace_id": "Root=1-65f0c0de-0123456789abcdef01234567;Parent=1;Sampled=1",
    "client_context": None,
    "identity": None,
    "env_config": {"function_name": "tokenrelay-stream", "memory": 512, "version": "$LATEST", "log_stream": "s"},
}


def test_deadline_from_the_web_adapter_header_is_its_deadline_minus_now() -> None:
    assert remaining_s(header(ADAPTER_CONTEXT), now=lambda: NOW) == pytest.approx(42.5)
    assert stream_deadline_s(header(ADAPTER_CONTEXT), 5.0, now=lambda: NOW) == pytest.approx(37.5)


def test_deadline_from_mangums_context_wins_over_a_header() -> None:
    scope = {**header(ADAPTER_CONTEXT), "aws.context": Context(12_000)}
    assert remaining_s(scope, now=lambda: NOW) == 12.0


def test_deadline_already_past_the_margin_is_zero_not_negative() -> None:
    assert stream_deadline_s({"aws.context": Context(2_000)}, 5.0) == 0.0


@pytest.mark.parametrize(
    "value",
    [b"not json", b"[]", {"deadline": "soon"}, {"deadline": True}, {"request_id": "x"}, b"{" + b" " * 9000 + b"}"],
)
def test_deadline_unreadable_header_is_ignored(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert remaining_s(header(value)) is None
    assert "x-amzn-lambda-context" in caplog.text


def test_deadline_outside_lambda_is_none() -> None:
    assert stream_deadline_s({"headers": []}, 5.0) is None


async def test_deadline_header_ends_an_sse_stream_cancelled_timeout_before_lambda_would() -> None:
    store = MemoryStreamStore()
    app = create_app(Settings(echo_delay_s=0.05, deadline_margin_s=1.0), store=store)
    context = {**ADAPTER_CONTEXT, "deadline": int((time.time() + 1.3) * 1000)}  # 0.3 s for the stream
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        body = {"message": " ".join(["word"] * 200)}
        headers = {"x-amzn-lambda-context": json.dumps(context)}
        response = await client.post("/chat/stream", json=body, headers=headers, timeout=10)
    events = parse_sse(response.text)
    terminals = [(name, data) for name, data in events if name in ("done", "cancelled", "error")]
    assert terminals == [("cancelled", {"stream_id": events[0][1]["stream_id"], "reason": "timeout"})]
    assert store.records[events[0][1]["stream_id"]].cancel_reason == "timeout"


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
    loop.close()
    asyncio.set_event_loop(None)


def test_deadline_under_mangum_ends_the_buffered_stream_before_the_invocation_times_out(
    loop: asyncio.AbstractEventLoop,
) -> None:
    store = MemoryStreamStore()
    handler = Mangum(create_app(Settings(echo_delay_s=0.05, deadline_margin_s=1.0), store=store), lifespan="off")
    event = json.loads((EVENTS / "httpapi_post_chat_stream.json").read_text())
    event["body"] = json.dumps({"message": " ".join(["word"] * 200)})
    event["isBase64Encoded"] = False
    response = handler(event, Context(1_300))
    events = parse_sse(response["body"])
    assert [name for name, _ in events][-1] == "cancelled" and events[-1][1]["reason"] == "timeout"
    assert sum(name in ("done", "cancelled", "error") for name, _ in events) == 1
    assert store.records[events[0][1]["stream_id"]].status == "cancelled"
