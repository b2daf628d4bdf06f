"""``StreamChannel`` at the ASGI level: ``receive`` and ``send`` driven directly, no server.

Each test names the race it pins: a disconnect mid-body, a ping racing the end, a send that
never returns, a failure before the first byte (a real status), a send that fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import JSONResponse, Response

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.providers import ScriptedProvider
from tokenrelay import ChatRequest, Message, Settings, StreamRun, StreamServices
from tokenrelay.events import StreamCancelled
from tokenrelay_http.channel import StreamChannel
from tokenrelay_http.routers.chat import PING, sse_body

SCOPE: dict[str, Any] = {"type": "http", "method": "GET", "path": "/chat/stream", "headers": []}
FINAL = {"type": "http.response.body", "body": b"", "more_body": False}


class Client:
    """The other end of the connection: records what is sent; ``gone`` makes ``receive`` say so."""

    def __init__(self, send_delay_s: float = 0.0, fail_after: int | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.send_delay_s, self.fail_after = send_delay_s, fail_after

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise OSError("connection reset by peer")
        if self.send_delay_s:
            await asyncio.sleep(self.send_delay_s)
        self.sent.append(message)

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


class Body:
    """A route's body: ``chunks`` every ``gap_s``, then ends; records how it was closed."""

    def __init__(self, chunks: int, gap_s: float = 0.0) -> None:
        self.chunks, self.gap_s = chunks, gap_s
        self.closed = False
        self.finished = False

    async def __call__(self) -> AsyncIterator[bytes | Response]:
        try:
            for i in range(self.chunks):
                if self.gap_s:
                    await asyncio.sleep(self.gap_s)
                yield f"chunk {i}\n".encode()
            self.finished = True
        finally:
            self.closed = True


def channel(body: AsyncIterator[bytes | Response], *, ping_s: float = 15.0, write_timeout_s: float = 30.0) -> Any:
    return StreamChannel(
        body, media_type="text/event-stream", headers={}, ping=PING, ping_s=ping_s, write_timeout_s=write_timeout_s
    )


async def test_channel_body_to_its_end_sends_start_each_chunk_then_one_final_frame() -> None:
    client, body = Client(), Body(3)
    await channel(body())(SCOPE, client.receive, client.send)
    assert client.sent[0]["type"] == "http.response.start" and client.sent[0]["status"] == 200
    assert client.bodies == [b"chunk 0\n", b"chunk 1\n", b"chunk 2\n", b""]
    assert client.sent[-1] == FINAL and body.finished and body.closed


async def test_channel_disconnect_mid_body_closes_the_body_and_sends_nothing_more() -> None:
    client, body = Client(), Body(1000, gap_s=0.01)

    async def leave() -> None:
        await asyncio.sleep(0.1)
        client.gone.set()

    leaving = asyncio.create_task(leave())
    started = time.monotonic()
    await asyncio.wait_for(channel(body())(SCOPE, client.receive, client.send), 2)
    await leaving
    sent_at_disconnect = len(client.sent)
    await asyncio.sleep(0.05)
    assert time.monotonic() - started < 1.0 and body.closed and not body.finished
    assert FINAL not in client.sent and len(client.sent) == sent_at_disconnect  # nothing after the end


async def test_channel_ping_racing_the_end_never_follows_the_final_frame() -> None:
    for _ in range(50):  # pings due at every moment of a body that ends at once
        client, body = Client(send_delay_s=0.001), Body(5, gap_s=0.002)
        await channel(body(), ping_s=0.001)(SCOPE, client.receive, client.send)
        assert client.sent[-1] == FINAL and client.sent.count(FINAL) == 1
        assert client.sent[0]["type"] == "http.response.start"  # no ping before the status line


async def test_channel_idle_body_gets_pings_between_chunks() -> None:
    client, body = Client(), Body(2, gap_s=0.3)
    await channel(body(), ping_s=0.1)(SCOPE, client.receive, client.send)
    assert PING in client.bodies and client.sent[-1] == FINAL


async def test_channel_slow_send_past_the_write_timeout_lets_the_client_go() -> None:
    client, body = Client(send_delay_s=3600), Body(10)
    started = time.monotonic()
    await asyncio.wait_for(channel(body(), write_timeout_s=0.2)(SCOPE, client.receive, client.send), 3)
    assert time.monotonic() - started < 1.5 and body.closed and not body.finished


async def test_channel_send_that_fails_closes_the_body_without_raising() -> None:
    client, body = Client(fail_after=2), Body(100, gap_s=0.001)
    await asyncio.wait_for(channel(body())(SCOPE, client.receive, client.send), 2)
    assert body.closed and not body.finished and FINAL not in client.sent


async def test_channel_body_answering_before_its_first_byte_sends_that_response_only() -> None:
    async def refused() -> AsyncIterator[bytes | Response]:
        yield JSONResponse({"error": "slow down", "code": "rate_limited"}, status_code=429)

    client = Client()
    await channel(refused(), ping_s=0.001)(SCOPE, client.receive, client.send)
    assert client.sent[0]["status"] == 429 and client.sent[0]["type"] == "http.response.start"
    assert [m["type"] for m in client.sent] == ["http.response.start", "http.response.body"]


async def test_channel_disconnect_during_a_write_that_never_returns_stops_the_run() -> None:
    store = MemoryStreamStore()
    request = ChatRequest(messages=(Message("user", "hi"),), provider="echo", model="echo-1", max_tokens=100)
    provider = ScriptedProvider(["x "] * 1000, delay_s=0.005)
    run = StreamRun(
        request,
        provider,
        StreamServices(Settings(cancel_poll_s=0.02), store),
        stream_id="s-1",
        owner="t",
        transport="sse",
    )
    await run.open()
    client = Client(send_delay_s=3600)  # the client takes nothing: its first write never returns...

    async def leave() -> None:
        await asyncio.sleep(0.1)
        client.gone.set()  # ...and then it leaves

    leaving = asyncio.create_task(leave())
    await asyncio.wait_for(channel(sse_body(run))(SCOPE, client.receive, client.send), 3)
    await leaving
    assert run.terminal == StreamCancelled("s-1", "disconnect") and provider.closed_early == 1
    assert store.records["s-1"].status == "cancelled" and run.summary().client_gone
