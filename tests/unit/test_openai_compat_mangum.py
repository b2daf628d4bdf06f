"""The OpenAI-compatible routes on the buffered API Gateway path (Mangum, HTTP API v2 events)."""

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


def event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    """An HTTP API v2 event, from the recorded POST /chat/stream one."""
    base = json.loads((EVENTS / "httpapi_post_chat_stream.json").read_text())
    base.update(routeKey=f"{method} {path}", rawPath=path, body=None if body is None else json.dumps(body))
    base["requestContext"].update(routeKey=f"{method} {path}")
    base["requestContext"]["http"].update(method=method, path=path)
    base["headers"].pop("content-length")
    return dict(base)


@pytest.fixture
def store() -> MemoryStreamStore:
    return MemoryStreamStore()


@pytest.fixture
def handler(store: MemoryStreamStore) -> Iterator[Mangum]:
    loop = asyncio.new_event_loop()  # Mangum runs on the thread's event loop, as in Lambda
    asyncio.set_event_loop(loop)
    yield Mangum(create_app(Settings(echo_delay_s=0.0), store=store), lifespan="off")
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.gather(*asyncio.all_tasks(loop), return_exceptions=True))
    loop.close()
    asyncio.set_event_loop(None)


HELLO = {"model": "echo/echo-1", "messages": [{"role": "user", "content": "three little words"}]}


def test_openai_mangum_non_streaming_returns_chat_completion(handler: Mangum, store: MemoryStreamStore) -> None:
    response = handler(event("POST", "/v1/chat/completions", HELLO), LambdaContext())

    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["object"] == "chat.completion" and body["model"] == "echo/echo-1"
    assert body["choices"][0]["message"]["content"] == "You said: three little words"
    stream_id = response["headers"]["x-stream-id"]
    assert body["id"] == f"chatcmpl-{stream_id}"
    assert store.records[stream_id].status == "complete" and store.records[stream_id].transport == "openai"


def test_openai_mangum_streaming_returns_whole_sse_body_ending_in_done(handler: Mangum) -> None:
    body = {**HELLO, "stream": True, "stream_options": {"include_usage": True}}
    response = handler(event("POST", "/v1/chat/completions", body), LambdaContext())

    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/event-stream")
    data = [block.removeprefix("data: ") for block in response["body"].split("\n\n") if block.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == (
        "You said: three little words"
    )
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5


def test_openai_mangum_models_lists_echo(handler: Mangum) -> None:
    response = handler(event("GET", "/v1/models"), LambdaContext())

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["data"] == [
        {
            "id": "echo/echo-1",
            "object": "model",
            "created": 0,
            "owned_by": "echo",
            "capabilities": {"images": True, "tools": True, "reasoning": True, "structured_output": True},
        }
    ]


def test_openai_mangum_unknown_model_is_404_in_openai_shape(handler: Mangum) -> None:
    response = handler(event("POST", "/v1/chat/completions", {**HELLO, "model": "openai/gpt-4o"}), LambdaContext())

    assert response["statusCode"] == 404
    error = json.loads(response["body"])["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model" and error["type"] == "invalid_request_error"
