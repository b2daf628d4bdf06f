"""Plumbing shared by the SDK-backed providers: an incremental SSE decoder over the
raw response body (the SDKs' typed streams cost 4-7x more CPU per token and hide
truncation), the body error list, and timeouts.

The SDKs stay in charge of auth, base URL, retries (before the first byte only)
and HTTP error statuses; only the body of a 200 is parsed here.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Protocol

import anyio
import httpx2

from ..errors import Unavailable
from .base import ALIVE, Chunk

# Errors raised while reading the body, after the SDK handed the response over
# (the SDK's own list: httpx2 errors, plus TLS failures that escape unmapped).
BODY_ERRORS: tuple[type[BaseException], ...] = (httpx2.HTTPError, httpx2.StreamError, ssl.SSLError, anyio.EndOfStream)
_DRAIN_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *BODY_ERRORS)
_DRAIN_S = 0.1
_MAX_EVENT_BYTES = 1 << 20
CONNECT_S = 5.0


def timeout(timeout_s: float, connect_s: float = CONNECT_S) -> httpx2.Timeout:
    """``timeout_s`` for each read, write and pool wait (a backstop: ``providers.resilient``
    times out a silent stream first); at most ``connect_s`` to connect, so a dead endpoint
    fails (and is retried) fast."""
    return httpx2.Timeout(timeout_s, connect=min(timeout_s, connect_s))


def aiohttp_client(factory: Callable[[], httpx2.AsyncClient]) -> httpx2.AsyncClient | None:
    """The SDK's aiohttp transport (``DefaultAioHttpClient``), or None for the SDK's default.

    Both SDKs read responses through httpx2 (h11, pure Python) unless given their aiohttp
    transport, whose C HTTP parser reads a streamed body for less than half the CPU per
    chunk (``scripts/bench``: about 6 against 14 us per chunk for the OpenAI SDK). The
    SDK keeps building requests, timeouts and errors either way. Without the ``aiohttp``
    package (the SDKs' ``[aiohttp]`` extra) the factory raises and the default stays.
    """
    try:
        return factory()
    except RuntimeError:
        return None


def connect_failed(exc: BaseException) -> bool:
    """True if a refused or reset connection (not a timeout) is somewhere in ``exc``'s causes.

    The SDKs' aiohttp transport reports a refused connection as a connect *timeout*
    (its exception map picks ``ConnectTimeout`` for every ``ClientConnectionError``);
    the cause chain still holds the ``ConnectionRefusedError``.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """The delay an error response asks for: ``retry-after-ms`` (what OpenAI and Anthropic
    send), else ``retry-after`` in seconds or as an HTTP date; None if absent or unreadable."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if not raw:
            continue
        try:
            value = float(raw) * scale
        except ValueError:
            if scale != 1.0:
                continue
            try:
                value = parsedate_to_datetime(raw).timestamp() - time.time()
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
        if math.isfinite(value):
            return max(value, 0.0)
    return None


async def drain(body: AsyncIterator[bytes]) -> None:
    """Read what follows the terminal marker (normally just the end of the body), briefly,
    so the connection goes back to the pool."""
    try:
        async with asyncio.timeout(_DRAIN_S):
            async for _ in body:
                pass
    except _DRAIN_ERRORS:
        pass


class StreamState(Protocol):
    """A provider's pure accumulator over decoded SSE events (``OpenAIStreamState``...)."""

    out: list[Chunk]  # what the events handled so far give, in order
    done: bool  # saw the terminal marker

    def handle(self, event: bytes, data: bytes) -> None: ...

    def at_eof(self) -> None:
        """The body ended without the terminal marker: settle what is still open."""


async def relay(body: AsyncIterator[bytes], decoder: SSEDecoder, state: StreamState) -> AsyncGenerator[Chunk, None]:
    """The chunks ``state`` makes of ``body``, each read's as soon as it is decoded (an error
    frame later in the same read must not lose them), ``ALIVE`` for a read with nothing to
    relay (a ping, a block boundary: a sign of life), up to the terminal marker (the rest of
    the body is drained, so the connection goes back to the pool) or the end of the body."""
    out = state.out
    async for data in body:
        relayed = False
        for event, payload in decoder.feed(data):
            state.handle(event, payload)
            if out:
                relayed = True
                for chunk in out:
                    yield chunk
                out.clear()
        if not relayed:
            yield ALIVE
        if state.done:
            await drain(body)
            return
    for event, payload in decoder.close():
        state.handle(event, payload)
    state.at_eof()
    for chunk in out:
        yield chunk
    out.clear()


class SSEDecoder:
    """Incremental ``text/event-stream`` decoder (WHATWG): bytes in, ``(event, data)`` out.

    Lines end in LF, CRLF or CR; a line that ends a read with CR is held back
    in case the next read starts with its LF. The ``data`` lines of one event
    are joined with LF; comments and other fields are ignored; an event still
    open when the body ends is dropped, as the spec says. Works on bytes (LF
    and CR never occur inside a UTF-8 sequence); ``json.loads`` takes bytes.
    """

    __slots__ = ("_data", "_event", "_label", "_size", "_tail")

    def __init__(self, label: str) -> None:
        self._label = label
        self._tail = b""
        self._event = b""
        self._data: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        if self._tail:
            chunk = self._tail + chunk
        lines = chunk.splitlines(keepends=True)
        if lines and lines[-1][-1:] != b"\n":
            self._tail = lines.pop()
            if len(self._tail) > _MAX_EVENT_BYTES:
                raise Unavailable(f"{self._label} sent an oversized stream event")
        else:
            self._tail = b""
        return self._lines(lines)

    def close(self) -> list[tuple[bytes, bytes]]:
        """At the end of the body: a held-back line ending in CR is complete."""
        tail, self._tail = self._tail, b""
        return self._lines([tail]) if tail.endswith(b"\r") else []

    def _lines(self, lines: list[bytes]) -> list[tuple[bytes, bytes]]:
        events: list[tuple[bytes, bytes]] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line:
                data = self._data
                if data:
                    events.append((self._event, data[0] if len(data) == 1 else b"\n".join(data)))
                    self._data = []
                    self._size = 0
                self._event = b""
            elif line[0] != 58:  # ":" starts a comment
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    self._data.append(value)
                    self._size += len(value)
                    if self._size > _MAX_EVENT_BYTES:
                        raise Unavailable(f"{self._label} sent an oversized stream event")
                elif name == b"event":
                    self._event = value
        return events
