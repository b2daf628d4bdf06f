"""Resume benchmark (PROTOCOL section 5, docs/resume.md): what the output log costs, all local.

    .venv/bin/python scripts/benchmarks/resume.py [--tokens 400] [--delay-ms 5] [--runs 5] [--resumes 10]

Runs moto's DynamoDB server and three instances of the HTTP app under uvicorn in this
process: ``off`` (no output log: RESUME_GRACE_S has no effect), ``on`` (output log, grace
30 s) and ``other`` (output log; where resumes land, as a second Lambda instance). A
provider stamps every token with its production time, so latency per token is arrival
at the client minus production, for ``off`` and ``on`` streams interleaved in the same run.
Reports:

- DynamoDB writes per 1,000 tokens (items in the output log table: one PutItem each);
- latency per token p50 / p99, logging off vs on, and the difference;
- time from a reconnect (GET /chat/stream/{id} with Last-Event-ID, on ``other``) to the
  first replayed event, for a live stream and for a finished one;
- log reads (Query) per resume.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "layers" / "core", ROOT / "functions" / "http"):
    sys.path.insert(0, str(path))

import boto3  # noqa: E402
import httpx  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from scripts.devstack.tables import create_table, create_tables, table_spec  # noqa: E402
from tests.e2e.sse_client import iter_sse  # noqa: E402
from tests.fakes.servers import serve  # noqa: E402
from tokenrelay import ChatRequest, Settings, Usage  # noqa: E402
from tokenrelay.providers.base import Finish, TextChunk  # noqa: E402
from tokenrelay.stores.dynamodb import DynamoOutputLog, DynamoStreamStore  # noqa: E402
from tokenrelay_http import create_app  # noqa: E402

LOG_TABLE = "tokenrelay-output-log-bench"
QUERIES = [0]  # output log reads (DynamoOutputLog.read calls) so far


class StampingProvider:
    """Every token is its own production time (perf_counter_ns), then a space."""

    def __init__(self, tokens: int, delay_s: float) -> None:
        self.tokens, self.delay_s = tokens, delay_s

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Any, None]:
        for _ in range(self.tokens):
            await asyncio.sleep(self.delay_s)
            yield TextChunk(f"{time.perf_counter_ns()} ")
        yield Usage(prompt_tokens=1, completion_tokens=self.tokens)
        yield Finish("stop")

    async def aclose(self) -> None:
        return None


class Registry:
    def __init__(self, provider: StampingProvider) -> None:
        self.provider = provider

    def get(self, name: str) -> StampingProvider:
        return self.provider

    async def aclose(self) -> None:
        return None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def stream_latencies(url: str) -> tuple[str, list[float]]:
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async with client.stream("POST", "/chat/stream", json={"message": "bench"}) as response:
            stream_id = response.headers["x-stream-id"]
            async for event in iter_sse(response):
                if event.event == "message":
                    latencies.append((time.perf_counter_ns() - int(event.data["text"])) / 1e6)
    return stream_id, latencies


async def reconnect_ms(producer: str, other: str, drop_after: int, finished: bool, pause_s: float = 0.0) -> float:
    async with httpx.AsyncClient(base_url=producer, timeout=60) as client:
        async with client.stream("POST", "/chat/stream", json={"message": "bench"}) as response:
            stream_id, seen = response.headers["x-stream-id"], 0
            async for event in iter_sse(response):
                seen += event.event == "message"
                if seen == drop_after and not finished:
                    break
    await asyncio.sleep(pause_s)
    async with httpx.AsyncClient(base_url=other, timeout=60) as client:
        started = time.perf_counter()
        headers = {"Last-Event-ID": str(drop_after)}
        async with client.stream("GET", f"/chat/stream/{stream_id}", headers=headers) as response:
            first = None
            async for _event in iter_sse(response):
                if first is None:
                    first = (time.perf_counter() - started) * 1000
            assert first is not None
            return first


async def main_async(args: argparse.Namespace, urls: dict[str, str], ddb: Any) -> None:
    off: list[float] = []
    on: list[float] = []
    items = tokens = 0
    for _ in range(args.runs):
        _, lat = await stream_latencies(urls["off"])
        off += lat
        stream_id, lat = await stream_latencies(urls["on"])
        on += lat
        await asyncio.sleep(0.3)
        response = ddb.query(
            TableName=LOG_TABLE,
            KeyConditionExpression="stream_id = :id",
            ExpressionAttributeValues={":id": {"S": stream_id}},
            Select="COUNT",
            ConsistentRead=True,
        )
        items += response["Count"]
        tokens += len(lat)
    print(
        f"tokens/stream {args.tokens} at {1000 / max(args.delay_ms, 0.001):.0f} tokens/s, {args.runs} streams per mode"
    )
    print(f"DynamoDB writes per 1,000 tokens (log on): {items * 1000 / tokens:.1f}  (off: 0)")
    for name, values in (("off", off), ("on", on)):
        print(f"latency per token, logging {name:3}: p50 {pct(values, 0.5):6.2f} ms  p99 {pct(values, 0.99):6.2f} ms")
    print(f"added by logging: p50 {pct(on, 0.5) - pct(off, 0.5):+.2f} ms  p99 {pct(on, 0.99) - pct(off, 0.99):+.2f} ms")
    reads_before = QUERIES[0]
    live = [await reconnect_ms(urls["on"], urls["other"], 20, False) for _ in range(args.resumes)]
    later = [await reconnect_ms(urls["on"], urls["other"], 20, False, 1.0) for _ in range(args.resumes)]
    done = [await reconnect_ms(urls["on"], urls["other"], 20, True) for _ in range(args.resumes)]
    reads = (QUERIES[0] - reads_before) / (3 * args.resumes)
    cases = (
        ("live, reconnect at once (nothing missed yet: the next token)", live),
        ("live, reconnect after 1 s (a backlog to replay)", later),
        ("finished stream", done),
    )
    for name, values in cases:
        print(
            f"reconnect -> first replayed event, {name}: p50 {statistics.median(values):6.1f} ms"
            f"  p99 {pct(values, 0.99):6.1f} ms"
        )
    print(f"output log reads (Query) per resume: {reads:.1f} (following a live stream, one per RESUME_POLL_MS)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--delay-ms", type=float, default=5.0, help="between tokens (5 ms = 200 tokens/s)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--resumes", type=int, default=10)
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL_DYNAMODB=f"http://{host}:{port}",
        STREAMS_TABLE="tokenrelay-streams-bench",
    )
    ddb = boto3.client("dynamodb")
    create_tables(ddb, env=os.environ)
    create_table(ddb, table_spec("OutputLogTable"), LOG_TABLE)

    original = DynamoOutputLog.read

    async def counted(self: DynamoOutputLog, stream_id: str, after_batch: int) -> Any:
        QUERIES[0] += 1
        return await original(self, stream_id, after_batch)

    DynamoOutputLog.read = counted  # type: ignore[method-assign]

    provider = StampingProvider(args.tokens, args.delay_ms / 1000)
    base = {**os.environ, "DEFAULT_PROVIDER": "echo", "CANCEL_POLL_MS": "250"}
    on_env = {**base, "OUTPUT_LOG_TABLE": LOG_TABLE, "RESUME_GRACE_S": "30"}
    stores = []
    try:
        urls: dict[str, str] = {}
        servers = []
        for name, env in (("off", base), ("on", on_env), ("other", on_env)):
            settings = Settings.from_env(env)
            store = DynamoStreamStore(settings.streams_table)
            stores.append(store)
            server = serve(create_app(settings, store=store, providers=Registry(provider)))  # type: ignore[arg-type]
            urls[name] = server.__enter__()
            servers.append(server)
        try:
            asyncio.run(main_async(args, urls, ddb))
        finally:
            for server in reversed(servers):
                server.__exit__(None, None, None)
    finally:
        for store in stores:
            store.close()
        ddb.close()
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
