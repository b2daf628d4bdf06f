"""HTTP app: process start to first /health, and request to first token (echo, zero pace).

Each figure comes with a baseline measured in the same run on the same machine:
  - start-up against a bare Starlette app under the same uvicorn;
  - first token against a bare sse-starlette endpoint that sends one event.
Runs against moto's DynamoDB server, as scripts/dev does. Prints a Markdown table.

    .venv/bin/python scripts/benchmarks/http_startup.py [--runs 7] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from sse_starlette import EventSourceResponse

async def health(request):
    return JSONResponse({"status": "ok"})

async def one(request):
    async def gen():
        yield {"event": "message", "data": '{"text":"x"}'}
    return EventSourceResponse(gen())

app = Starlette(routes=[Route("/health", health), Route("/chat/stream", one, methods=["POST"])])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(app: str, env: dict[str, str], app_dir: str) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            app_dir,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            app,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = t0 + 30
    while time.perf_counter() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url, time.perf_counter() - t0
        except httpx.TransportError:
            time.sleep(0.005)
    proc.kill()
    raise RuntimeError(f"{app} did not answer /health within 30 s")


async def first_token_ms(url: str, n: int) -> list[float]:
    out = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            async with client.stream("POST", "/chat/stream", json={"message": "hi"}) as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("data:") and '"text"' in line:
                        out.append((time.perf_counter() - t0) * 1000)
                        break
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="process starts per target")
    parser.add_argument("--requests", type=int, default=200, help="sequential streams per target")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    sys.path.insert(0, str(ROOT))
    from scripts.devstack.tables import create_tables

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "AWS_"))}
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        ECHO_DELAY_MS="0",
        STREAMS_TABLE="tokenrelay-bench",
        PYTHONPATH=f"{ROOT / 'layers/core'}:{ROOT / 'functions/http'}",
    )
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    env["AWS_ENDPOINT_URL_DYNAMODB"] = f"http://{host}:{port}"
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    create_tables(boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"]), env=env)

    with tempfile.TemporaryDirectory() as bare_dir:
        Path(bare_dir, "bare.py").write_text(BARE_APP)
        targets = {"bare starlette": ("bare:app", bare_dir), "TokenRelay": ("app:app", str(ROOT / "functions/http"))}
        startup: dict[str, list[float]] = {name: [] for name in targets}
        ttft: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for name, (app, app_dir) in targets.items():
                proc, _, seconds = start(app, env, app_dir)
                startup[name].append(seconds)
                proc.terminate()
                proc.wait()
        for name, (app, app_dir) in targets.items():
            proc, url, _ = start(app, env, app_dir)
            try:
                asyncio.run(first_token_ms(url, 10))  # warm up connections
                ttft[name] = asyncio.run(first_token_ms(url, args.requests))
            finally:
                proc.terminate()
                proc.wait()
    moto.stop()

    base_s = statistics.median(startup["bare starlette"])
    base_t = statistics.median(ttft["bare starlette"])
    print(
        f"\nHTTP app, {args.runs} process starts and {args.requests} sequential streams per target "
        f"(echo provider at zero pace, DynamoDB = moto server), {os.cpu_count()} cores\n"
    )
    print("| target | start to first /health, median | ratio | request to first token p50 | p99 | added p50 |")
    print("|---|---|---|---|---|---|")
    for name in targets:
        s, t = statistics.median(startup[name]), ttft[name]
        print(
            f"| {name} | {s * 1000:.0f} ms | {s / base_s:.2f}x | {pct(t, 50):.2f} ms | {pct(t, 99):.2f} ms "
            f"| {pct(t, 50) - base_t:+.2f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
