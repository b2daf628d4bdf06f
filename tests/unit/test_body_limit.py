"""The request body cap is enforced while the body is read, not after; a body that never
completes is refused (408) after the read timeout.

Each test drives the real app over raw ASGI with a ``receive`` that counts the
chunks it hands out, so it can tell a cap applied while reading from one applied
after buffering the whole body.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import MutableMapping
from dataclasses import replace
from typing import Any

import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tokenrelay import Settings
from tokenrelay_http import create_app

SETTINGS = Settings.from_env(
    {"DEFAULT_PROVIDER": "echo", "ALLOWED_MODELS": "echo:echo-1", "MAX_MESSAGE_CHARS": "1000", "MAX_IMAGE_BYTES": "0"}
)  # images off: the cap follows from the text alone (with images on it is the Function URL's 6 MB)
LIMIT = 1000 * 6 + 16_384  # api.py: worst-case JSON escaping of MAX_MESSAGE_CHARS, plus the other fields
CHUNK = 1024


class Exchange:
    def __init__(self, chunks: int, content_length: int | None) -> None:
        self.chunks, self.content_length = chunks, content_length
        self.pulled = 0
        self.sent: list[MutableMapping[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.pulled >= self.chunks:
            return {"type": "http.disconnect"}
        self.pulled += 1
        return {"type": "http.request", "body": b" " * CHUNK, "more_body": self.pulled < self.chunks}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


async def post(path: str, chunks: int, content_length: int | None) -> Exchange:
    app = create_app(SETTINGS, store=MemoryStreamStore())
    exchange = Exchange(chunks, content_length)
    await app(scope_for(path, content_length), exchange.receive, exchange.send)
    return exchange


def scope_for(path: str, content_length: int | None) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8000),
    }


@pytest.mark.parametrize("path", ["/chat/stream", "/chat/stream-simple"])
async def test_body_over_the_cap_without_length_is_refused_after_reading_only_the_cap(path: str) -> None:
    exchange = await post(path, chunks=10_000, content_length=None)  # 10 MB, chunked
    assert exchange.status == 413
    assert exchange.body == {
        "error": f"body: larger than {LIMIT} bytes",
        "code": "payload_too_large",
        "limit": LIMIT,
    }
    assert exchange.pulled == LIMIT // CHUNK + 1  # stopped at the first chunk past the cap


async def test_declared_length_over_the_cap_is_refused_before_reading_any_of_it() -> None:
    exchange = await post("/chat/stream", chunks=10_000, content_length=10_000 * CHUNK)
    assert exchange.status == 413 and exchange.body["code"] == "payload_too_large"
    assert exchange.pulled == 0


async def test_openai_route_over_the_cap_answers_in_openai_shape() -> None:
    exchange = await post("/v1/chat/completions", chunks=10_000, content_length=None)
    assert exchange.status == 413
    assert exchange.body == {
        "error": {
            "message": f"The request body is larger than {LIMIT} bytes.",
            "type": "invalid_request_error",
            "param": None,
            "code": "payload_too_large",
        }
    }
    assert exchange.pulled == LIMIT // CHUNK + 1


async def test_body_at_the_cap_is_read_and_judged_as_json() -> None:
    exchange = await post("/chat/stream", chunks=LIMIT // CHUNK, content_length=None)
    assert exchange.status == 400 and exchange.body["code"] == "invalid_request"  # spaces only: not JSON


class Trickle(Exchange):
    """A client that sends ``chunks`` chunks, ``gap_s`` apart, then nothing more."""

    def __init__(self, chunks: int, gap_s: float) -> None:
        super().__init__(chunks, None)
        self.gap_s = gap_s

    async def receive(self) -> dict[str, Any]:
        if self.pulled >= self.chunks:
            await asyncio.sleep(3600)  # the rest never comes
        await asyncio.sleep(self.gap_s)
        self.pulled += 1
        return {"type": "http.request", "body": b" ", "more_body": True}


@pytest.mark.parametrize(("path", "openai"), [("/chat/stream", False), ("/v1/chat/completions", True)])
async def test_body_that_never_completes_is_refused_408_after_the_read_timeout(path: str, openai: bool) -> None:
    settings = Settings.from_env({"DEFAULT_PROVIDER": "echo", "ALLOWED_MODELS": "echo:echo-1"})
    app = create_app(replace(settings, body_read_timeout_s=0.3), store=MemoryStreamStore())
    exchange = Trickle(chunks=1000, gap_s=0.05)  # a byte every 50 ms: 20 bytes a second, for ever
    started = time.monotonic()
    await asyncio.wait_for(app(scope_for(path, None), exchange.receive, exchange.send), 5)
    assert 0.25 < time.monotonic() - started < 2.0
    assert exchange.status == 408 and (b"connection", b"close") in exchange.sent[0]["headers"]
    code = exchange.body["error"]["code"] if openai else exchange.body["code"]
    assert code == "request_timeout"
    if not openai:
        assert exchange.body["error"].startswith("body: not received within 0.3 s")
