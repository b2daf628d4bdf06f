"""A lean fake OpenAI Chat Completions upstream for the overhead benchmark.

Raw asyncio (no framework), HTTP/1.1 keep-alive, chunked bodies, frames built
from pre-encoded pieces. Every token's text is ``T<emit time> `` where the emit
time is ``time.monotonic_ns() // 1000`` (CLOCK_MONOTONIC is system-wide on
Linux, so a client in another process can subtract it from its own clock):
the client computes each token's latency from the moment the upstream wrote it.

Pacing: with an interval, one shared ticker writes the next token of every open
stream on each tick (as a batching inference server does: one decode step, one
token for every sequence); the first token goes out with the response headers.
With interval 0, each stream writes all its frames as fast as the socket drains.

    POST /v1/chat/completions   streaming only; ``max_completion_tokens`` / ``max_tokens``
                                tokens (capped by the configured count); usage chunk if
                                ``stream_options.include_usage``; then ``data: [DONE]``
    POST /_config               {"tokens": N, "interval_ms": X}: the current scenario
    GET  /_stats                {"tokens": written, "streams": started, "open": still streaming}: what
                                was generated, whether or not anyone still read it (scripts/bench cost)

    python scripts/benchmarks/upstream.py --port 9100 [--tokens 200] [--interval-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

_PREFIX = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"bench","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":'
)
_TOKEN_A = _PREFIX + b'{"content":"T'
_TOKEN_B = b' "},"logprobs":null,"finish_reason":null}]}\n\n'
_ROLE = _PREFIX + b'{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n'
_STOP = _PREFIX + b'{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
_DONE = b"data: [DONE]\n\n"
_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
_END = b"0\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _token() -> bytes:
    return _chunk(_TOKEN_A + b"%d" % (time.monotonic_ns() // 1000) + _TOKEN_B)


def _usage(n: int) -> bytes:
    body = (
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench",'
        b'"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":%d,"total_tokens":%d}}\n\n' % (n, n + 8)
    )
    return _chunk(body)


class Upstream:
    def __init__(self, tokens: int, interval_ms: float) -> None:
        self.tokens = tokens
        self.interval_s = interval_ms / 1000
        self._paced: dict[asyncio.StreamWriter, list[int]] = {}  # writer -> [remaining]
        self._waiters: dict[asyncio.StreamWriter, asyncio.Future[None]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self.written = 0  # tokens written to any stream
        self.started = 0
        self.open = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if path == "/_config":
                    cfg = json.loads(body)
                    self.tokens, self.interval_s = int(cfg["tokens"]), float(cfg["interval_ms"]) / 1000
                    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                elif path.endswith("/chat/completions") and method == "POST":
                    await self._stream(json.loads(body), writer)
                elif path == "/_stats":
                    stats = json.dumps({"tokens": self.written, "streams": self.started, "open": self.open}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(stats), stats))
                elif path in ("/health", "/health/liveliness"):
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._paced.pop(writer, None)
            writer.close()

    async def _stream(self, body: dict[str, object], writer: asyncio.StreamWriter) -> None:
        asked = body.get("max_completion_tokens") or body.get("max_tokens") or self.tokens
        n = min(int(asked), self.tokens)  # type: ignore[call-overload]
        usage = bool((body.get("stream_options") or {}).get("include_usage"))  # type: ignore[attr-defined]
        self.started += 1
        self.open += 1
        try:
            await self._stream_tokens(n, usage, writer)
        finally:
            self.open -= 1

    async def _stream_tokens(self, n: int, usage: bool, writer: asyncio.StreamWriter) -> None:
        writer.write(_HEAD + _chunk(_ROLE) + _token())
        self.written += 1
        if self.interval_s > 0:
            if n > 1:
                done = asyncio.get_running_loop().create_future()
                self._paced[writer] = [n - 1]
                self._waiters[writer] = done
                if self._ticker is None or self._ticker.done():
                    self._ticker = asyncio.create_task(self._tick())
                try:
                    await done
                finally:
                    self._paced.pop(writer, None)
                    self._waiters.pop(writer, None)
        else:
            for i in range(1, n):
                writer.write(_token())
                self.written += 1
                if i % 16 == 0:
                    await writer.drain()
        writer.write(_chunk(_STOP) + (_usage(n) if usage else b"") + _chunk(_DONE) + _END)
        await writer.drain()

    async def _tick(self) -> None:
        """One token for every paced stream per interval, on an absolute schedule."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self._paced:
            next_at += self.interval_s
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = loop.time()  # fell behind: do not burst to catch up
            for writer, left in list(self._paced.items()):
                if writer.is_closing():
                    self._paced.pop(writer, None)
                    waiter = self._waiters.get(writer)
                    if waiter is not None and not waiter.done():
                        waiter.set_exception(ConnectionResetError())
                    continue
                writer.write(_token())
                self.written += 1
                left[0] -= 1
                if left[0] <= 0:
                    del self._paced[writer]
                    waiter = self._waiters.get(writer)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)


async def serve(port: int, tokens: int, interval_ms: float) -> None:
    upstream = Upstream(tokens, interval_ms)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.tokens, args.interval_ms))


if __name__ == "__main__":
    main()
