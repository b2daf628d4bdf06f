"""The demo page survives a network drop mid-answer (PROTOCOL section 5), in headless Chromium.

WebSocket: the test closes the page's connection from the server side (the @connections
DELETE of the local gateway). SSE over fetch: the page reaches the app through a TCP proxy
that the test cuts. Either way the client resumes by itself, and the page ends ``done``
with the full answer, each part once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import Stack, save_screenshot
from tests.browser.test_demo import LONG_PROMPT, figure, status
from tests.fakes.servers import free_port

PROMPT = " ".join(LONG_PROMPT.split()[:120])  # about 4 s of echo at 30 ms a token
ANSWER = f"You said: {PROMPT}"


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 whose open connections the test can cut at once."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.port = target_port, free_port()
        self.loop = asyncio.new_event_loop()
        self.writers: set[asyncio.StreamWriter] = set()
        self.cuts = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(5)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", self.port))
        ready.set()
        self.loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.transport.abort()
                self.writers.discard(w)

    def cut(self) -> None:
        async def close_all() -> None:
            for writer in list(self.writers):
                writer.transport.abort()
            self.cuts += 1

        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(5)

    def close(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            for writer in list(self.writers):
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def proxy(stack: Stack) -> Iterator[CuttableProxy]:
    p = CuttableProxy(int(stack.http.rsplit(":", 1)[1]))
    yield p
    p.close()


def output(page: Any) -> str:
    return str(page.get_by_test_id("output").inner_text())


def wait_words(page: Any, words: int, wait_s: float = 10.0) -> None:
    deadline = time.monotonic() + wait_s
    while len(output(page).split()) < words:
        assert time.monotonic() < deadline, f"the answer did not grow: {output(page)!r}"
        page.wait_for_timeout(20)


def wait_status(page: Any, want: str, wait_s: float = 20.0) -> None:
    deadline = time.monotonic() + wait_s
    while not status(page).startswith(want):
        assert time.monotonic() < deadline, f"status {status(page)!r}, expected {want!r}: {output(page)!r}"
        page.wait_for_timeout(50)


@pytest.mark.timeout(60)
def test_demo_websocket_dropped_mid_answer_resumes_and_shows_the_full_answer(page: Any, stack: Stack) -> None:
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(stack.demo_url(transport="websocket"))
    page.get_by_test_id("prompt").fill(PROMPT)
    page.get_by_test_id("send").click()
    wait_words(page, 15)
    assert stack.gateway.connections, "the page has no WebSocket connection"
    for connection_id in list(stack.gateway.connections):  # close it from the server side
        stack.drop_connection(connection_id)
    wait_status(page, "done")
    assert " ".join(output(page).split()) == " ".join(ANSWER.split())
    stream_id = figure(page, "stream-id").removeprefix("stream ")
    assert stack.record(stream_id, "complete").transport == "websocket"
    assert len(sockets) == 2  # the page reconnected and resumed on a new connection
    save_screenshot(page, "demo-resumed-websocket.png")


@pytest.mark.timeout(60)
def test_demo_sse_dropped_mid_answer_resumes_and_shows_the_full_answer(
    page: Any, stack: Stack, proxy: CuttableProxy
) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(f"{request.method} {request.url}"))
    page.goto(stack.cross_origin_demo_url(transport="sse", api=f"http://127.0.0.1:{proxy.port}"))
    page.get_by_test_id("prompt").fill(PROMPT)
    page.get_by_test_id("send").click()
    wait_words(page, 15)
    proxy.cut()  # the network drops under the open response
    wait_status(page, "done")
    assert proxy.cuts == 1
    assert " ".join(output(page).split()) == " ".join(ANSWER.split())
    stream_id = figure(page, "stream-id").removeprefix("stream ")
    assert stack.record(stream_id, "complete").transport == "sse"
    assert f"GET http://127.0.0.1:{proxy.port}/chat/stream/{stream_id}" in requests  # the resume
    save_screenshot(page, "demo-resumed-sse.png")
