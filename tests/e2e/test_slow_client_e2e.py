"""Clients that are slow on purpose, against the app under real uvicorn (issue 14, items 3 and 6).

- An SSE client that never reads: the run pauses its upstream once ``STREAM_BUFFER_BYTES`` of
  text wait for it, and after ``SSE_WRITE_TIMEOUT_S`` without a byte taken the client is let
  go: the stream ends ``cancelled``/``disconnect`` with the upstream closed.
- A request body that never completes (shorter than its ``Content-Length``, or one byte at a
  time): 408 ``request_timeout`` after ``BODY_READ_TIMEOUT_S``, and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.servers import serve
from tokenrelay import ChatRequest, Settings
from tokenrelay.providers.base import Finish, TextChunk
from tokenrelay_http import create_app

TOKEN = "x" * 1000
TOKENS = 100_000  # 100 MB if nothing held it back


class Firehose:
    """A provider as fast as it is read: counts how many tokens were taken from it."""

    name = "echo"

    def __init__(self) -> None:
        self.sent = 0
        self.closed_early = False

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Any, None]:
        try:
            for _ in range(TOKENS):
                self.sent += 1
                yield TextChunk(TOKEN)
                await asyncio.sleep(0)
            yield Finish("stop")
        except BaseException:
            self.closed_early = True
            raise


class Registry:
    def __init__(self, provider: Firehose) -> None:
        self.provider = provider

    def get(self, name: str) -> Firehose:
        return self.provider

    async def aclose(self) -> None:
        return None


SETTINGS = Settings(
    sse_write_timeout_s=1.0,
    stream_buffer_bytes=16_384,
    body_read_timeout_s=1.0,
    cancel_poll_s=0.05,
    max_tokens_limit=10,
)


@pytest.fixture
def served() -> Iterator[tuple[str, MemoryStreamStore, Firehose]]:
    store, provider = MemoryStreamStore(), Firehose()
    with serve(create_app(SETTINGS, store=store, providers=Registry(provider))) as url:  # type: ignore[arg-type]
        yield url, store, provider


def raw(url: str, head: str, body: bytes = b"", rcvbuf: int | None = None) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    sock.sendall(head.encode() + body)
    return sock


async def wait_for(predicate: Any, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_sse_client_that_never_reads_pauses_the_upstream_then_is_let_go(
    served: tuple[str, MemoryStreamStore, Firehose],
) -> None:
    url, store, provider = served
    body = json.dumps({"message": "firehose"}).encode()
    head = "POST /chat/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    sock = raw(url, head, body, rcvbuf=4096)  # reads nothing, ever
    try:
        ended = await wait_for(lambda: any(r.status != "active" for r in store.records.values()), within_s=20)
        assert ended, f"the stream is still running after 20 s; {provider.sent} tokens taken"
        (record,) = store.records.values()
        assert (record.status, record.cancel_reason) == ("cancelled", "disconnect")
        assert provider.closed_early
        # Paused, not buffered: what was taken fits the kernel's socket buffers (up to 4 MB each way on
        # loopback), the app's 16 KB queue and its 64 KB transport buffer; not the 100 MB on offer.
        assert provider.sent < 10_000, f"{provider.sent} tokens of 1 KB taken for a client that read nothing"
    finally:
        sock.close()


@pytest.mark.parametrize("how", ["short_body", "trickle"])
async def test_request_body_that_never_completes_is_408_and_the_connection_closed(
    served: tuple[str, MemoryStreamStore, Firehose], how: str
) -> None:
    url, store, _ = served
    head = "POST /chat/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    sock = raw(url, head, b'{"message":' if how == "short_body" else b"")
    sock.settimeout(10)
    started = time.monotonic()

    def trickle() -> None:  # a byte every 0.3 s (the answer comes long before the 100th)
        for byte in b'{"message": "hi"}'.ljust(100):
            try:
                sock.send(bytes([byte]))
            except OSError:
                return
            time.sleep(0.3)

    feeder = asyncio.create_task(asyncio.to_thread(trickle)) if how == "trickle" else None
    try:
        answer = await asyncio.to_thread(_read_all, sock)
    finally:
        sock.close()
        if feeder is not None:
            await feeder
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout", answer[:200]
    assert b"connection: close" in rest.lower()
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["code"] == "request_timeout"
    assert time.monotonic() - started < 9  # answered, and the server closed the connection (no hang)
    assert store.records == {}  # nothing started


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):  # until the server closes (a timeout raises: a hang)
        chunks.append(chunk)
    return b"".join(chunks)
