"""Failures before a stream's first byte over plain HTTP, in process (httpx ASGITransport):
the 503 when the state record cannot be created (retryable, with a failed stream's
metrics), and the statuses of ``/chat/stream-simple``, the same as ``/v1`` gives."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.providers import ScriptedProvider
from tokenrelay import (
    ProviderError,
    RateLimited,
    Rejected,
    Settings,
    StoreUnavailable,
    StreamError,
    StreamRecord,
    Unavailable,
)
from tokenrelay.errors import UpstreamTimeout
from tokenrelay.providers import ProviderRegistry
from tokenrelay.telemetry.metrics import StreamMetrics
from tokenrelay.transports.openai import from_terminal, status_for
from tokenrelay_http import create_app

SETTINGS = Settings(echo_delay_s=0.0)


class UnrecordableStore(MemoryStreamStore):
    """DynamoDB down: every create fails the way the DynamoDB store reports it."""

    async def create(self, record: StreamRecord) -> None:
        raise StoreUnavailable("could not reach the stream table")


class OneProvider(ProviderRegistry):  # its get() and aclose() only
    """Every provider name streams from ``provider``."""

    def __init__(self, provider: ScriptedProvider) -> None:
        self.provider = provider

    def get(self, name: str) -> ScriptedProvider:
        return self.provider

    async def aclose(self) -> None:
        return None


def metric(doc: dict[str, Any], name: str) -> float:
    value = doc[name]  # EMF: a value or a list of values
    return float(value[0] if isinstance(value, list) else value)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test")


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_chat_stream_record_create_failing_is_503_retryable_and_counted_as_failed(method: str) -> None:
    lines: list[str] = []
    provider = ScriptedProvider(["never"], first_delay_s=5.0)
    app = create_app(
        SETTINGS,
        store=UnrecordableStore(),
        providers=OneProvider(provider),
        metrics=StreamMetrics("TokenRelay", "svc", sink=lines.append),
    )
    async with client(app) as http:
        if method == "POST":
            answer = await http.post("/chat/stream", json={"message": "hi"})
        else:
            answer = await http.get("/chat/stream", params={"message": "hi"})
    assert answer.status_code == 503
    assert answer.json() == {
        "error": "could not reach the stream table",
        "code": "store_unavailable",
        "retryable": True,
    }
    assert provider.opened == 1 and provider.closed_early == 1  # the upstream call started, and was closed
    (doc,) = [json.loads(line) for line in lines]
    assert (doc["Transport"], doc["Provider"], doc["ErrorCode"]) == ("sse", "echo", "store_unavailable")
    counts = {name: metric(doc, name) for name in ("StreamStarted", "StreamFailed", "StreamCompleted", "OutputTokens")}
    assert counts == {"StreamStarted": 1.0, "StreamFailed": 1.0, "StreamCompleted": 0.0, "OutputTokens": 0.0}
    assert "TimeToFirstToken" not in doc


async def test_chat_stream_record_create_failing_without_metrics_is_still_503() -> None:
    app = create_app(SETTINGS, store=UnrecordableStore(), providers=OneProvider(ScriptedProvider(["x"], 1.0)))
    async with client(app) as http:
        answer = await http.post("/chat/stream", json={"message": "hi"})
    assert answer.status_code == 503 and answer.json()["retryable"] is True


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RateLimited("slow down"), 429),
        (Rejected("no such model"), 502),
        (Unavailable("overloaded"), 503),
        (UpstreamTimeout("no first chunk in 60 s"), 504),
    ],
    ids=lambda v: v if isinstance(v, int) else type(v).__name__,
)
async def test_simple_failure_before_text_has_the_status_v1_gives(error: ProviderError, status: int) -> None:
    app = create_app(
        SETTINGS, store=MemoryStreamStore(), providers=OneProvider(ScriptedProvider(["x"], fail_after=0, error=error))
    )
    async with client(app) as http:
        simple = await http.post("/chat/stream-simple", json={"message": "hi"})
        v1 = await http.post(
            "/v1/chat/completions",
            json={"model": "echo/echo-1", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        )
    assert simple.status_code == v1.status_code == status
    # ...and the error's own fields (none for the provider's errors: the code says whose limit it is)
    assert simple.json() == {"error": error.message, "code": error.code, "retryable": error.retryable, **error.fields()}
    assert v1.json()["error"]["code"] == error.code


@pytest.mark.parametrize(
    "code",
    [
        "rate_limited",
        "upstream_rate_limited",
        "upstream_error",
        "upstream_rejected",
        "upstream_unavailable",
        "upstream_timeout",
        "store_unavailable",
        "internal_error",
    ],
)
def test_status_of_each_stream_error_code_is_the_one_v1_sends(code: str) -> None:
    assert status_for(code) == from_terminal(StreamError("x", code, False)).status
