"""The buffered API Gateway path: Mangum + the same app, as `sam local start-api` serves it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum

from tests.fakes.lambda_context import LambdaContext
from tests.fakes.memory_store import MemoryStreamStore
from tokenrelay import Settings
from tokenrelay_http import create_app

EVENTS = Path(__file__).parent.parent / "events"


def parse_sse(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "data" in fields:
            events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


@pytest.fixture
def store() -> MemoryStreamStore:
    return MemoryStreamStore()


@pytest.fixture
def handler(store: MemoryStreamStore) -> Iterator[Mangum]:
    # Mangum runs on the thread's current event loop, as in a Lambda process; give it
    # its own and close it afterwards (with the tasks sse-starlette leaves on it).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield Mangum(create_app(Settings(echo_delay_s=0.0), store=store), lifespan="off")
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
    loop.close()
    asyncio.set_event_loop(None)


def test_mangum_post_chat_stream_returns_whole_sse_body(handler: Mangum, store: MemoryStreamStore) -> None:
    response = handler(json.loads((EVENTS / "httpapi_post_chat_stream.json").read_text()), LambdaContext())
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/event-stream")
    events = parse_sse(response["body"])
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done" and names.count("done") == 1
    text = "".join(data["text"] for name, data in events if name == "message")
    assert text == "You said: three little words"
    stream_id = events[0][1]["stream_id"]
    assert response["headers"]["x-stream-id"] == stream_id
    assert store.records[stream_id].status == "complete"


def test_mangum_health_returns_version(handler: Mangum) -> None:
    response = handler(json.loads((EVENTS / "httpapi_get_health.json").read_text()), LambdaContext())
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["version"]
