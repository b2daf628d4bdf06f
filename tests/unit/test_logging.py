"""JSON logs through Powertools Logger, each line carrying the stream's context fields."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tokenrelay import ProviderRegistry, Settings
from tokenrelay.telemetry import logging as tlog
from tokenrelay_http import create_app


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    tlog.configure(Settings(log_json=True, log_level="DEBUG", service_name="tokenrelay-test"), stream=out)
    yield out
    parent = logging.getLogger("tokenrelay")
    parent.handlers.clear()
    parent.propagate = True
    parent.setLevel(logging.NOTSET)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_logging_bound_fields_appear_on_json_lines_and_unbind_after_block(json_logs: io.StringIO) -> None:
    log = logging.getLogger("tokenrelay.test")
    with tlog.bound(stream_id="s1", connection_id="c1", transport="websocket", provider="echo", model="echo-1"):
        log.info("inside")
    log.info("outside")
    inside, outside = lines(json_logs)
    assert inside["message"] == "inside" and inside["service"] == "tokenrelay-test" and inside["level"] == "INFO"
    fields = ("stream_id", "connection_id", "transport", "provider", "model")
    assert {k: inside[k] for k in fields} == {
        "stream_id": "s1",
        "connection_id": "c1",
        "transport": "websocket",
        "provider": "echo",
        "model": "echo-1",
    }
    assert not set(outside) & {"stream_id", "connection_id"}


def test_logging_bind_unknown_field_raises_value_error() -> None:
    with pytest.raises(ValueError, match="api_key"):
        tlog.bind(api_key="x")


async def test_logging_concurrent_tasks_keep_their_own_context(json_logs: io.StringIO) -> None:
    log = logging.getLogger("tokenrelay.test")

    async def one(stream_id: str, provider: str) -> None:
        tlog.bind(stream_id=stream_id, provider=provider)
        await asyncio.sleep(0.01)
        log.info("tick")

    await asyncio.gather(one("a", "openai"), one("b", "anthropic"))
    assert sorted((d["stream_id"], d["provider"]) for d in lines(json_logs)) == [("a", "openai"), ("b", "anthropic")]


async def test_logging_sse_stream_logs_carry_stream_fields(json_logs: io.StringIO) -> None:
    settings = Settings(echo_delay_s=0.0)
    registry = ProviderRegistry(settings)

    class Broken:
        name = "echo"

        async def stream(self, request: Any) -> Any:
            raise RuntimeError("boom")
            yield  # pragma: no cover

        async def aclose(self) -> None:
            return None

    registry._providers["echo"] = Broken()
    app = create_app(settings, store=MemoryStreamStore(), providers=registry)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/chat/stream", json={"message": "hi"})
    assert "event: error" in response.text
    stream_id = response.headers["x-stream-id"]
    errors = [d for d in lines(json_logs) if d["level"] == "ERROR"]
    assert errors, json_logs.getvalue()
    assert all(
        (d["stream_id"], d["transport"], d["provider"], d["model"]) == (stream_id, "sse", "echo", "echo-1")
        for d in errors
    )
