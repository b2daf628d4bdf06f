"""A TCP proxy in front of the fake upstream that refuses or resets connections on demand.

The fake upstream is a uvicorn app: it can answer badly, stall or drop a stream,
but it cannot refuse a connection (it is listening) nor reset one before a
response. This proxy, a plain asyncio byte forwarder on ``127.0.0.1`` in its own
thread, can:

- ``down()``: stop listening, so connecting fails with ECONNREFUSED, and reset
  the connections it holds (a pooled keep-alive connection fails too); ``up()``
  listens again on the same port.
- ``reset_next(n)``: answer each of the next ``n`` requests with a TCP RST (no
  status, no headers). A request is recognised by its first bytes (``POST `` or
  ``GET ``), so it works on new and reused keep-alive connections alike.

Closing either side closes the other, so the fake upstream still sees a client
that goes away (``closed_early``). Control calls are thread-safe and wait (bounded)
until the proxy's loop has applied them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

__all__ = ["ChaosProxy"]

_METHODS = (b"POST ", b"GET ")
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class ChaosProxy:
    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._path = parts.path
        self.port = 0
        self.reset_count = 0  # requests answered with a reset
        self._resets = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self._path}"

    @classmethod
    @contextlib.contextmanager
    def running(cls, target_url: str) -> Iterator[ChaosProxy]:
        proxy = cls(target_url)
        proxy._thread.start()
        try:
            proxy._call(proxy._listen())
            yield proxy
        finally:
            proxy._call(proxy._shutdown())
            proxy._loop.call_soon_threadsafe(proxy._loop.stop)
            proxy._thread.join(timeout=5)
            proxy._loop.close()

    # -- control (any thread) -----------------------------------------------------------------

    def down(self) -> None:
        self._call(self._shutdown())

    def up(self) -> None:
        self._call(self._listen())

    def reset_next(self, count: int = 1) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "_resets", count)

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=5)  # type: ignore[arg-type]

    # -- the proxy (its loop) -------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._serve, sock=sock)

    async def _shutdown(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for writer in list(self._writers):
            _reset(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            self._writers.discard(writer)
            _reset(writer)
            return
        back = asyncio.create_task(self._pipe(up_reader, writer))
        try:
            while data := await reader.read(65536):
                if data.startswith(_METHODS) and self._resets > 0:
                    self._resets -= 1
                    self.reset_count += 1
                    _reset(writer)
                    break
                up_writer.write(data)
                await up_writer.drain()
        except OSError:
            pass
        finally:
            self._writers.discard(writer)
            back.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await back
            up_writer.close()
            if not writer.is_closing():
                writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            if not writer.is_closing():
                writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()
