"""WebSocket coalescing benchmark: posts and added latency, coalesced vs one post per token.

Runs everything on 127.0.0.1 in this process: moto's DynamoDB server, the local
API Gateway (``scripts/devstack/gateway.py``) with the real handlers and worker,
and a real WebSocket client. The provider is the echo provider with its stream
replaced by a paced one (``--rate`` tokens/s on an absolute schedule) that notes
when each token was produced, so each token's latency is measured from its
production to its arrival at the client. Both modes run in the same process,
alternating, ``--runs`` times each:

    coalesced        WS_FLUSH_MS (default 50): one post in flight, tokens merged
    one per token    WS_COALESCE=0: every token is its own post

    scripts/bench [--tokens 500] [--rate 200] [--runs 3] [--post-delay-ms 0]

``--post-delay-ms`` makes each ``@connections`` post take that long at the
gateway, to mimic the tens of milliseconds a post takes in AWS.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "core")]

PRODUCED: dict[str, float] = {}  # token -> when the provider yielded it (time.perf_counter)
TOKEN = re.compile(r"t\d{5} ")


def install_paced_provider(rate: float) -> None:
    from tokenrelay.events import Usage
    from tokenrelay.providers import Finish, TextChunk
    from tokenrelay.providers.echo import EchoProvider

    async def stream(self: EchoProvider, request: object) -> AsyncIterator[object]:
        count = request.max_tokens  # type: ignore[attr-defined]
        started = time.perf_counter()
        for i in range(count):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            token = f"t{i:05d} "
            PRODUCED[token] = time.perf_counter()
            yield TextChunk(token)
        yield Usage(prompt_tokens=1, completion_tokens=count)
        yield Finish("stop")

    EchoProvider.stream = stream  # type: ignore[assignment,method-assign]


@dataclasses.dataclass
class Run:
    mode: str
    tokens: int
    posts: int
    text_messages: int
    latencies_ms: list[float]


async def one_stream(url: str, tokens: int) -> tuple[int, list[float]]:
    import websockets

    latencies: list[float] = []
    text_messages = 0
    async with websockets.connect(url, open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "chat", "message": "bench", "max_tokens": tokens}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            arrived = time.perf_counter()
            if message["type"] == "text":
                text_messages += 1
                latencies += [(arrived - PRODUCED[t]) * 1000 for t in TOKEN.findall(message["content"])]
            elif message["type"] in ("done", "cancelled", "error"):
                if message["type"] != "done":
                    raise RuntimeError(f"stream ended with {message}")
                return text_messages, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0, help="tokens per second")
    parser.add_argument("--runs", type=int, default=3, help="streams per mode")
    parser.add_argument("--flush-ms", type=float, default=float(os.environ.get("WS_FLUSH_MS") or 50))
    parser.add_argument("--post-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)

    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "DEFAULT_PROVIDER": "echo",
            "MAX_TOKENS_LIMIT": str(max(args.tokens, 4096)),
            "WS_FLUSH_MS": str(args.flush_ms),
        }
    )
    for name in ("AWS_PROFILE", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ALLOWED_MODELS"):
        os.environ.pop(name, None)

    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from scripts.devstack.gateway import Gateway, GatewayConfig, serving
    from scripts.devstack.tables import create_table, table_specs
    from tests.fakes.servers import free_port

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, moto_port = moto.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://{host}:{moto_port}"
    port = free_port()
    os.environ["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] = os.environ["AWS_ENDPOINT_URL_LAMBDA"] = (
        f"http://127.0.0.1:{port}"
    )
    ddb = boto3.client("dynamodb")
    for spec in table_specs():
        create_table(ddb, spec, spec.table_name())
    install_paced_provider(args.rate)

    from tokenrelay_ws import environment as common  # functions/websocket, on sys.path through the gateway module

    gateway = Gateway(GatewayConfig.from_env(port=port, post_delay_s=args.post_delay_ms / 1000))
    runs: list[Run] = []
    try:
        with serving(gateway) as url:
            svc = common.services()
            base_config = svc.config
            asyncio.run(one_stream(url, 20))  # warm up: imports, clients, connections
            for _ in range(args.runs):
                for mode, coalesce in (("coalesced", True), ("one per token", False)):
                    svc.config = dataclasses.replace(base_config, coalesce=coalesce)
                    posts_before = gateway.stats.posts
                    text_messages, latencies = asyncio.run(one_stream(url, args.tokens))
                    asyncio.run(gateway.wait_idle(5))
                    posts = gateway.stats.posts - posts_before
                    runs.append(Run(mode, len(latencies), posts, text_messages, latencies))
    finally:
        moto.stop()
    report(runs, args)
    return 0


def report(runs: list[Run], args: argparse.Namespace) -> None:
    print(
        f"\nWebSocket coalescing: {args.tokens} tokens at {args.rate:g} tokens/s through the local gateway, "
        f"{args.runs} streams per mode, flush interval {args.flush_ms:g} ms, post delay {args.post_delay_ms:g} ms\n"
    )
    print(f"{'mode':<14} {'posts/1k tok':>12} {'text msgs/1k':>12} {'latency p50':>12} {'latency p99':>12}")
    summary = {}
    for mode in ("coalesced", "one per token"):
        mine = [r for r in runs if r.mode == mode]
        tokens = sum(r.tokens for r in mine)
        latencies = [x for r in mine for x in r.latencies_ms]
        summary[mode] = (
            1000 * sum(r.posts for r in mine) / tokens,
            1000 * sum(r.text_messages for r in mine) / tokens,
            pct(latencies, 50),
            pct(latencies, 99),
        )
        posts, texts, p50, p99 = summary[mode]
        print(f"{mode:<14} {posts:>12.1f} {texts:>12.1f} {p50:>10.1f}ms {p99:>10.1f}ms")
    c, b = summary["coalesced"], summary["one per token"]
    print(
        f"\nposts: {b[0] / c[0]:.1f}x fewer with coalescing; added latency per token: "
        f"p50 {c[2] - b[2]:+.1f} ms, p99 {c[3] - b[3]:+.1f} ms (target: >= 5x fewer posts at <= 60 ms p50)"
    )


if __name__ == "__main__":
    sys.exit(main())
