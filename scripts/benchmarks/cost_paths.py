"""The three paths of ``scripts/bench cost``, each run through the local stack with its calls counted.

    sse        the local Function URL (frontdoor.py): one request per environment of StreamFunction
    httpapi    the local HTTP API (httpapi.py): ApiFunction through Mangum, buffered
    websocket  the local WebSocket API (gateway.py): $connect, chat, the worker, $disconnect

Every environment is a process held to its function's CPU share, with its template variables,
its IAM identity and the stack's API key. What a run counts (``Counts``): each invocation's
duration per function (and each cold start's init), each DynamoDB call (moto's meter), each
``@connections`` post and client message (the gateway), every log line each environment
printed, the bytes each client received, the tokens it received and the tokens the upstream
generated (its ``/_stats``): the difference is what was generated after clients left.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import re
import sys
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.benchmarks import lambda_stack as ls

TOKEN = re.compile(rb"T(\d{6,}) ")
STREAM_ID = re.compile(rb'"stream_id":\s*"([0-9a-f-]{36})"')


@dataclass
class Counts:
    path: str
    label: str
    streams: int = 0
    left_early: int = 0
    failures: int = 0
    tokens_received: int = 0
    tokens_generated: int = 0
    invocations: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # function -> seconds
    inits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    dynamodb: list[dict[str, Any]] = field(default_factory=list)  # metered_dynamodb.py records
    log_lines: dict[str, int] = field(default_factory=dict)
    log_bytes: dict[str, int] = field(default_factory=dict)
    emf_bytes: dict[str, int] = field(default_factory=dict)
    ws_posts: int = 0
    ws_post_bytes: int = 0
    ws_max_post: int = 0
    ws_client_messages: int = 0
    connection_s: list[float] = field(default_factory=list)
    http_api_bytes: list[int] = field(default_factory=list)  # request + response of each HTTP API call
    egress_bytes: int = 0
    ttft_ms: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)  # each token: upstream write -> client read
    window_ms: float | None = None  # WebSocket flush window of this run (just after the first text)
    window_max_ms: float | None = None  # ... and once the stream flows (adaptive; None: fixed)
    memory_mb: int = 512  # every function's (the template's Globals)
    extra_s: float = 0.0  # SSE: how long environments went on with streams whose client had left


@dataclass
class Client:
    """One stream's client: what it read, when, and whether it left early."""

    leave_after: int | None  # tokens; None: reads to the end
    tokens: int = 0
    bytes: int = 0
    started: float = 0.0
    first: float | None = None
    left: float | None = None
    stream_id: str = ""
    latencies: list[float] = field(default_factory=list)

    def read(self, data: builtins.bytes) -> bool:  # builtins: ``bytes`` is a field here
        """Note ``data``; True once the client wants to leave."""
        now_us = time.monotonic_ns() // 1000
        self.bytes += len(data)
        stamps = TOKEN.findall(data)
        if stamps and self.first is None:
            self.first = time.monotonic()
        self.latencies += [(now_us - int(s)) / 1000 for s in stamps]
        self.tokens += len(stamps)
        if not self.stream_id and (found := STREAM_ID.search(data)):
            self.stream_id = found.group(1).decode()
        if self.leave_after is not None and self.tokens >= self.leave_after:
            self.left = time.monotonic()
            return True
        return False


def upstream_stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=5) as answer:
        stats: dict[str, int] = json.loads(answer.read())
    return stats


async def settle(port: int, timeout_s: float = 90.0) -> dict[str, int]:
    """Wait until the upstream streams nothing more (streams left behind run to their end)."""
    deadline = time.monotonic() + timeout_s
    last = upstream_stats(port)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = upstream_stats(port)
        if now["open"] == 0 and now["tokens"] == last["tokens"]:
            return now
        last = now
    return last


def timed_leases(pool: Any, function: str, counts_of: Any) -> ls.Starts:
    """Each invocation's duration, from the environment handed out to it given back (a cold start's
    init excluded: ``Starts`` has those), into ``counts_of().invocations[function]``."""
    acquire, release = pool.acquire, pool.release
    held: dict[int, float] = {}

    async def timed_acquire() -> Any:
        env = await acquire()
        held[id(env)] = time.monotonic()
        return env

    async def timed_release(env: Any, **how: Any) -> None:  # linger_s, until: as the pool's
        counts_of().invocations[function].append(time.monotonic() - held.pop(id(env)))
        await release(env, **how)

    pool.acquire, pool.release = timed_acquire, timed_release
    return ls.Starts(pool)


async def quiet(pools: list[Any], timeout_s: float = 60.0) -> None:
    """Until no environment of ``pools`` is busy (an invocation started by the last clients ended)."""
    deadline = time.monotonic() + timeout_s
    while any(pool.busy for pool in pools) and time.monotonic() < deadline:  # noqa: ASYNC110 (another thread's pools)
        await asyncio.sleep(0.2)


def emf_durations(lines: list[str]) -> dict[str, float]:
    """``{stream_id: StreamDuration s}`` from the EMF documents among ``lines``."""
    out = {}
    for line in lines:
        if line.startswith("{") and '"_aws"' in line:
            doc = json.loads(line)
            if "stream_id" in doc and "StreamDuration" in doc:
                value = doc["StreamDuration"]  # Powertools writes a metric's values as a list
                out[doc["stream_id"]] = float(value[0] if isinstance(value, list) else value) / 1000
    return out


def meter_since(meter: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    lines = meter.read_text().splitlines() if meter.exists() else []
    return [json.loads(line) for line in lines[offset:]], len(lines)


class Snapshot:
    """The stack's counters before a path's run; ``finish`` puts the differences into ``counts``."""

    def __init__(self, meter: Path, sink: ls.LogMeter, port: int, gateway: Any = None) -> None:
        self.meter, self.sink, self.port, self.gateway = meter, sink, port, gateway
        _, self.offset = meter_since(meter, 0)
        self.lines, self.bytes, self.emf = dict(sink.lines), dict(sink.bytes), dict(sink.emf_bytes)
        self.upstream = upstream_stats(port)
        self.stats = (gateway.stats.posts, gateway.stats.posted_bytes) if gateway else (0, 0)
        self.routes = len(gateway.stats.route_calls) if gateway else 0
        self.started = time.monotonic()

    async def finish(self, counts: Counts) -> None:
        upstream = await settle(self.port)
        counts.tokens_generated = upstream["tokens"] - self.upstream["tokens"]
        counts.dynamodb, _ = meter_since(self.meter, self.offset)
        for name in self.sink.lines:
            counts.log_lines[name] = self.sink.lines[name] - self.lines.get(name, 0)
            counts.log_bytes[name] = self.sink.bytes[name] - self.bytes.get(name, 0)
            counts.emf_bytes[name] = self.sink.emf_bytes[name] - self.emf.get(name, 0)
        if self.gateway is not None:
            stats = self.gateway.stats
            counts.ws_posts, counts.ws_post_bytes = stats.posts - self.stats[0], stats.posted_bytes - self.stats[1]
            counts.ws_max_post = stats.max_post_bytes
            routes = [key for key, _ in stats.route_calls[self.routes :]]
            counts.ws_client_messages = sum(1 for key in routes if not key.startswith("$"))


def leavers(streams: int, share: float) -> set[int]:
    """Which streams' clients leave early: ``share`` of them, spread evenly."""
    n = round(streams * share)
    return {round(i * streams / n) for i in range(n)} if n else set()


async def run_clients(streams: int, concurrency: int, one: Any) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def bounded(i: int) -> None:
        async with gate:
            await one(i)

    await asyncio.gather(*(bounded(i) for i in range(streams)))


def record(counts: Counts, client: Client, ok: bool) -> None:
    counts.streams += 1
    counts.left_early += client.left is not None
    counts.failures += not ok
    counts.tokens_received += client.tokens
    counts.egress_bytes += client.bytes
    counts.latency_ms += client.latencies
    if client.first is not None:
        counts.ttft_ms.append((client.first - client.started) * 1000)


async def sse_clients(url: str, token: str, counts: Counts, streams: int, concurrency: int,
                      tokens: int, leave: set[int], leave_after: int) -> list[Client]:  # fmt: skip
    import httpx

    clients: list[Client] = []
    body = {"message": "bench", "max_tokens": tokens}
    headers = {"authorization": f"Bearer {token}"}

    async def one(i: int) -> None:
        client = Client(leave_after if i in leave else None, started=time.monotonic())
        clients.append(client)
        ok = False
        async with httpx.AsyncClient(timeout=httpx.Timeout(120, connect=60)) as http:
            async with http.stream("POST", url, json=body, headers=headers) as response:
                async for chunk in response.aiter_raw():
                    if client.read(chunk):
                        break
                else:
                    ok = response.status_code == 200 and client.tokens == tokens
        if not ok and client.left is None:
            print(f"cost: SSE stream {i} failed: HTTP {response.status_code}, {client.tokens} of {tokens} tokens",
                  file=sys.stderr)  # fmt: skip
        record(counts, client, ok or client.left is not None)

    await run_clients(streams, concurrency, one)
    return clients


async def httpapi_clients(url: str, token: str, counts: Counts, streams: int, concurrency: int,
                          tokens: int, leave: set[int], leave_s: float) -> None:  # fmt: skip
    import httpx

    body = json.dumps({"message": "bench", "max_tokens": tokens}).encode()
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    async def one(i: int) -> None:
        client = Client(None, started=time.monotonic())
        ok = False
        async with httpx.AsyncClient(timeout=httpx.Timeout(120, connect=60)) as http:
            try:
                async with asyncio.timeout(leave_s if i in leave else None):
                    response = await http.post(url, content=body, headers=headers)
                client.read(response.content)
                ok = response.status_code == 200 and client.tokens == tokens
                counts.http_api_bytes.append(len(body) + len(response.content))
            except TimeoutError:  # the client left; API Gateway and the function go on
                client.left = time.monotonic()
                counts.http_api_bytes.append(len(body))
        record(counts, client, ok or client.left is not None)

    await run_clients(streams, concurrency, one)


async def ws_clients(url: str, token: str, counts: Counts, streams: int, concurrency: int,
                     tokens: int, leave: set[int], leave_after: int) -> None:  # fmt: skip
    import websockets

    async def one(i: int) -> None:
        client = Client(leave_after if i in leave else None, started=time.monotonic())
        ok = False
        async with websockets.connect(f"{url}/?access_token={token}", open_timeout=60, compression=None) as ws:
            client.started = time.monotonic()
            await ws.send(json.dumps({"type": "chat", "message": "bench", "max_tokens": tokens}))
            async with asyncio.timeout(120):
                async for raw in ws:
                    data = raw.encode() if isinstance(raw, str) else raw
                    if client.read(data):
                        break
                    if b'"type":"done"' in data:
                        ok = client.tokens == tokens
                        break
                    if b'"type":"error"' in data or b'"type":"cancelled"' in data:
                        break
        counts.connection_s.append(time.monotonic() - client.started)
        record(counts, client, ok or client.left is not None)

    await run_clients(streams, concurrency, one)
