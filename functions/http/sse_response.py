"""How a run's events reach an HTTP client: the SSE response of ``/chat/stream`` and
the raw-text body of ``/chat/stream-simple``.

Both end through ``finish_after_reader_left``, also the ``/v1`` routes' way out
(``openai_compat``): however the reader goes, the run stops (or, when resumable,
detaches for its grace period) and its terminal record is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from tokenrelay import Event, StreamRun, TextDelta, encode_comment, encode_sse

__all__ = [
    "STREAM_HEADERS",
    "SSEStreamResponse",
    "TextStreamResponse",
    "TimedSend",
    "WriteTimeout",
    "finish_after_reader_left",
    "text_body",
]

log = logging.getLogger("tokenrelay.http")

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CLEANUP_TIMEOUT_S = 120.0  # a safety net: the run bounds its own last writes (FINISH_TIMEOUT_S + one call)
_PING = encode_comment("ping")


async def finish_after_reader_left(run: StreamRun) -> None:
    """The reader is done with ``run``: it has the terminal event, or it went away.

    A run still going stops, or, when resumable, detaches for its grace period. A run
    that has ended is waited for until its last writes (the record, the output log's end)
    landed or were given up: the response stays open until then, because in Lambda the
    work left after a response closes may be frozen with the invocation.
    """
    run.reader_left()  # never hold the producer for this reader again (live_queue.py)
    if not run.done and run.detach():  # detach: a resumable run keeps generating for its grace period
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT_S):
        await run.wait()


class TimedSend:
    """``send`` that fails as a gone client does (``OSError``) when the client takes no bytes
    for ``timeout_s``: a reader that never drains is let go, never waited for forever."""

    def __init__(self, send: Send, timeout_s: float) -> None:
        self._send, self.timeout_s = send, timeout_s

    async def __call__(self, message: Message) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._send(message)
        except TimeoutError:
            raise WriteTimeout(self.timeout_s) from None


class WriteTimeout(OSError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the client took no bytes for {timeout_s:g} s")


class SSEStreamResponse(Response):
    """The SSE body of one run, straight onto the ASGI connection.

    Replaces sse-starlette's ``EventSourceResponse`` on the hot path (measured by
    ``scripts/bench``): one ``send`` per *batch* of queued events rather than one
    per event, no cancel scope per send, no per-event string/bytes conversion.
    What it keeps: a ``: ping`` comment after ``ping_s`` without a write, and a
    listener for ``http.disconnect`` (never a per-token ``is_disconnected()``)
    that stops the run as ``disconnect``. A client that takes no bytes for
    ``write_timeout_s`` (``SSE_WRITE_TIMEOUT_S``) is treated as gone: a watchdog
    (one timer a stream, not one a send) ends the write. However the body ends
    (done, client gone, send failed or timed out, task cancelled),
    ``finish_after_reader_left`` runs: the run's single terminal path closes the
    upstream and writes the record; the body is closed once those writes landed.
    """

    media_type = "text/event-stream"
    charset = "utf-8"

    def __init__(self, run: StreamRun, ping_s: float, write_timeout_s: float = 30.0) -> None:
        self.run = run
        self.ping_s = ping_s
        self.write_timeout_s = write_timeout_s
        self.status_code = 200
        self.background = None
        self.init_headers({**STREAM_HEADERS, "Connection": "keep-alive", "X-Stream-Id": run.stream_id})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        run = self.run
        loop = asyncio.get_running_loop()
        lock = asyncio.Lock()
        last_write = loop.time()
        sending_since: float | None = None  # a send in progress, since when

        async def write(body: bytes) -> None:
            nonlocal last_write, sending_since
            async with lock:
                sending_since = loop.time()
                await send({"type": "http.response.body", "body": body, "more_body": True})
                sending_since = None
                last_write = loop.time()

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            run.detach()

        async def ping() -> None:
            while True:
                await asyncio.sleep(max(last_write + self.ping_s - loop.time(), 0.01))
                if loop.time() - last_write >= self.ping_s and not lock.locked():
                    await write(_PING)

        async def body() -> bool:
            """Write every batch; True once the terminal event is written."""
            async with aclosing(run.batches()) as batches:
                async for batch in batches:
                    if len(batch) == 1:
                        await write(encode_sse(batch[0]))
                    else:
                        await write(b"".join([encode_sse(event) for event in batch]))
                    for event in reversed(batch):
                        if type(event) is TextDelta:
                            run.delivered = event.seq
                            break
                    if run.client_gone:
                        return False
            return True

        async def watchdog(writer: asyncio.Task[bool]) -> None:
            while True:
                await asyncio.sleep(self.write_timeout_s / 4)
                since = sending_since
                if since is not None and loop.time() - since >= self.write_timeout_s:
                    log.warning("stream %s: the client took no bytes for %g s", run.stream_id, self.write_timeout_s)
                    writer.cancel()
                    return

        helpers = [asyncio.create_task(listen())]
        complete = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            writer = asyncio.create_task(body())
            helpers += [writer, asyncio.create_task(ping()), asyncio.create_task(watchdog(writer))]
            await asyncio.wait([writer])
            if writer.cancelled():  # the watchdog: a client that never drains is gone
                run.detach()
            else:
                complete = writer.result()
        except OSError:  # the client went away mid-send (ASGI 2.4 servers raise it)
            run.detach()
        finally:
            for task in helpers:
                task.cancel()
            await finish_after_reader_left(run)
        if complete and not run.client_gone:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class TextStreamResponse(StreamingResponse):
    """``StreamingResponse`` whose writes time out (``TimedSend``) like the SSE body's."""

    def __init__(self, content: AsyncIterator[bytes], write_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.write_timeout_s = write_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, TimedSend(send, self.write_timeout_s))


async def text_body(run: StreamRun, first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    """``/chat/stream-simple``'s body: the text of ``first`` and of every later event, raw."""
    try:
        if isinstance(first, TextDelta):
            yield first.text.encode()
            run.delivered = first.seq
        async for event in rest:
            if isinstance(event, TextDelta):
                yield event.text.encode()
                run.delivered = event.seq
    finally:
        await finish_after_reader_left(run)
