"""The one channel every streamed HTTP response goes through: body, ping and disconnect, raced
in one task group, under one lock (docs/architecture.md, "How a stream ends").

A route supplies only its body: an async iterator of bytes. The channel does the rest:

    body      writes each chunk; the status line waits for the first one, so a body may
              answer with a whole ``Response`` instead (an error before its first byte is a
              real HTTP status); once the body ends, the final ``more_body: False`` frame
              goes under the lock that pings take, after ``active`` is cleared
    ping      ``ping`` bytes (``: ping`` for SSE) after ``ping_s`` without a write, under the
              lock, only while ``active``: never before the status line, never after the end
    listen    ``http.disconnect`` (never a per-token check): the client left, the body is
              cancelled
    watchdog  a send that takes longer than ``write_timeout_s`` (``SSE_WRITE_TIMEOUT_S``): a
              client that takes no bytes is gone, the body is cancelled (one timer a stream,
              not one a send)

Whichever of them ends first ends the others (sse-starlette's ``cancel_on_finish``), and the
task group awaits every one. A body that is cancelled, or whose write failed (ASGI 2.4 servers
raise ``OSError`` for a closed connection), is closed (``aclose``): its ``finally`` (for a run,
leaving ``StreamRun.session``) decides what the run does. The channel never touches a run.

Why not sse-starlette's ``EventSourceResponse``: its ``send_timeout`` is a cancel scope per
send (measured: a third of the relay's own CPU a token), it cannot hold the status line for a
body that may still fail, and it patches uvicorn's signal handler at import
(docs/architecture.md compares the two).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["STREAM_HEADERS", "Body", "StreamChannel"]

log = logging.getLogger("tokenrelay.http")

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
Body = AsyncIterator["bytes | Response"]


class StreamChannel(Response):
    def __init__(
        self,
        body: Body,
        *,
        media_type: str,
        headers: Mapping[str, str],
        write_timeout_s: float,
        ping: bytes | None = None,
        ping_s: float = 15.0,
        status_code: int = 200,
    ) -> None:
        self.body_iterator = body
        self.media_type = media_type
        self.status_code = status_code
        self.background = None
        self.ping, self.ping_s, self.write_timeout_s = ping, ping_s, write_timeout_s
        self.init_headers(headers)
        self.active = True  # False once the final frame is under way: nothing is sent after it
        self.started = False  # the status line is sent
        self._lock = asyncio.Lock()
        self._last_write = 0.0
        self._sending_since: float | None = None  # a send in progress, since when
        self._error: Exception | None = None  # a bug in the body: raised once every task has ended

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        self._last_write = loop.time()
        tasks: list[asyncio.Task[None]] = []
        ended = False

        def first_to_finish(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
            async def run() -> None:  # the coroutine is made here: a task cancelled before it runs leaves none
                nonlocal ended
                try:
                    await work()
                finally:
                    if not ended:  # whoever ends first ends the others, each exactly once
                        ended = True
                        for task in tasks:
                            if task is not asyncio.current_task():
                                task.cancel()

            tasks.append(group.create_task(run()))

        async with asyncio.TaskGroup() as group:
            first_to_finish(lambda: self._stream(scope, send))
            first_to_finish(lambda: self._listen(receive))
            first_to_finish(self._watchdog)
            if self.ping is not None:
                ping = self.ping
                first_to_finish(lambda: self._ping(send, ping))
        if self._error is not None:
            raise self._error

    async def _stream(self, scope: Scope, send: Send) -> None:
        body = self.body_iterator
        try:
            async for chunk in body:
                if isinstance(chunk, Response):  # the whole answer, before the first byte
                    async with self._lock:
                        self.active = False
                        await chunk(scope, _no_receive, send)
                    return
                async with self._lock:
                    await self._write(send, chunk, more=True)
            async with self._lock:
                self.active = False
                await self._write(send, b"", more=False)
        except OSError:  # the client went away mid-send
            self.active = False
        except Exception as exc:  # a bug: the response cannot be completed
            self.active = False
            self._error = exc
        finally:
            await _close(body)

    async def _write(self, send: Send, data: bytes, *, more: bool) -> None:
        """One body frame (the status line first, if not sent yet); the caller holds the lock."""
        if not self.started:
            self.started = True
            start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            await self._send(send, start)
        await self._send(send, {"type": "http.response.body", "body": data, "more_body": more})

    async def _send(self, send: Send, message: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        self._sending_since = loop.time()
        await send(message)
        self._sending_since = None
        self._last_write = loop.time()

    async def _listen(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.active = False

    async def _ping(self, send: Send, ping: bytes) -> None:
        """Never ends by itself (it would end the others): the body's end or the client's does."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(self._last_write + self.ping_s - loop.time(), 0.01))
            if loop.time() - self._last_write < self.ping_s or self._lock.locked():
                continue
            async with self._lock:
                if self.active and self.started:
                    await self._send(send, {"type": "http.response.body", "body": ping, "more_body": True})

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.write_timeout_s / 4)
            since = self._sending_since
            if since is not None and loop.time() - since >= self.write_timeout_s:
                log.warning("the client took no bytes for %g s: it is gone", self.write_timeout_s)
                self.active = False
                return


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


async def _close(body: Body) -> None:
    aclose = getattr(body, "aclose", None)
    if aclose is not None:
        await aclose()


def answer_channel(
    stream: bool, body: Body, *, headers: Mapping[str, str], ping: bytes, ping_s: float, write_timeout_s: float
) -> StreamChannel:
    """A ``/v1`` answer: streamed as SSE (pings, the answer's ``headers``), or whole as the one JSON
    document ``body`` yields; either way a client that takes no bytes is let go (``write_timeout_s``)."""
    if not stream:
        return StreamChannel(body, media_type="application/json", headers={}, write_timeout_s=write_timeout_s)
    return StreamChannel(
        body,
        media_type="text/event-stream",
        headers={**STREAM_HEADERS, "Connection": "keep-alive", **headers},
        ping=ping,
        ping_s=ping_s,
        write_timeout_s=write_timeout_s,
    )
