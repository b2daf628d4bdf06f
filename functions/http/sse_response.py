"""How a run's events reach an HTTP client: the SSE response of ``/chat/stream`` and
the raw-text body of ``/chat/stream-simple``.

Both end through ``finish_after_reader_left``, also the ``/v1`` routes' way out
(``openai_compat``): however the reader goes, the run stops (or, when resumable,
detaches for its grace period) and its terminal record is written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tokenrelay import Event, StreamRun, TextDelta, encode_comment, encode_sse

__all__ = ["STREAM_HEADERS", "SSEStreamResponse", "finish_after_reader_left", "text_body"]

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CLEANUP_TIMEOUT_S = 10.0
_PING = encode_comment("ping")


async def finish_after_reader_left(run: StreamRun) -> None:
    """The reader went away: stop the stream and wait for its terminal record."""
    if run.done or run.detach():  # detach: a resumable run keeps generating for its grace period
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT_S):
        await run.wait()


class SSEStreamResponse(Response):
    """The SSE body of one run, straight onto the ASGI connection.

    Replaces sse-starlette's ``EventSourceResponse`` on the hot path (measured by
    ``scripts/bench``): one ``send`` per *batch* of queued events rather than one
    per event, no cancel scope per send, no per-event string/bytes conversion.
    What it keeps: a ``: ping`` comment after ``ping_s`` without a write, and a
    listener for ``http.disconnect`` (never a per-token ``is_disconnected()``)
    that stops the run as ``disconnect``. However the body ends (done, client
    gone, send failed, task cancelled), ``finish_after_reader_left`` runs: the
    run's single terminal path closes the upstream and writes the record.
    """

    media_type = "text/event-stream"
    charset = "utf-8"

    def __init__(self, run: StreamRun, ping_s: float) -> None:
        self.run = run
        self.ping_s = ping_s
        self.status_code = 200
        self.background = None
        self.init_headers({**STREAM_HEADERS, "Connection": "keep-alive", "X-Stream-Id": run.stream_id})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        run = self.run
        loop = asyncio.get_running_loop()
        lock = asyncio.Lock()
        last_write = loop.time()

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            run.detach()

        async def ping() -> None:
            nonlocal last_write
            while True:
                await asyncio.sleep(max(last_write + self.ping_s - loop.time(), 0.01))
                if loop.time() - last_write >= self.ping_s:
                    async with lock:
                        await send({"type": "http.response.body", "body": _PING, "more_body": True})
                        last_write = loop.time()

        helpers = [asyncio.create_task(listen())]
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            helpers.append(asyncio.create_task(ping()))
            async with aclosing(run.batches()) as batches:
                async for batch in batches:
                    if len(batch) == 1:
                        body = encode_sse(batch[0])
                    else:
                        body = b"".join([encode_sse(event) for event in batch])
                    async with lock:
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                        last_write = loop.time()
                    for event in reversed(batch):
                        if type(event) is TextDelta:
                            run.delivered = event.seq
                            break
                    if run.client_gone:
                        break
            if not run.client_gone:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the client went away mid-send (ASGI 2.4 servers raise it)
            run.detach()
        finally:
            for task in helpers:
                task.cancel()
            await finish_after_reader_left(run)


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
