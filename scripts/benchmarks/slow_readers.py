"""Slow readers: what a stream holds in memory when its client cannot keep up (docs/faults.md).

    .venv/bin/python scripts/benchmarks/slow_readers.py [--tokens 50000] [--readers 4]
                                                        [--seconds 30] [--root PATH]

The HTTP app runs under uvicorn in its own process (resume on, as deployed), on moto's
DynamoDB server, with the real OpenAI SDK against the lean fake upstream
(``upstream.py``) sending ``--tokens`` tokens per stream as fast as it is read. Two
rounds, each on a fresh app process, report its RSS (``/proc/<pid>/status``):

- ``fast`` (the baseline): ``--readers`` clients read their streams to the end at once;
- ``slow``: as many clients read 1 byte every 100 ms (a receive buffer of 4 KB) for
  ``--seconds``, then close; the RSS after they closed is reported too.

Before issue 14 the run queued everything the upstream sent for a slow reader (the issue
measured 155 MiB growing to 745-970 MiB with 4 readers); now a run holds at most
``STREAM_BUFFER_BYTES`` for its reader and pauses the upstream. ``--root`` runs the app of
another checkout (an older tree) for a before/after.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "layers" / "core", ROOT / "functions" / "http"):
    sys.path.insert(0, str(path))

import boto3  # noqa: E402
import httpx  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from scripts.devstack.tables import create_table, table_spec  # noqa: E402
from tests.fakes.servers import free_port  # noqa: E402
from tests.fakes.stacks import app_process  # noqa: E402

MIB = 1024 * 1024


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MIB
    return 0.0


class Sampler:
    """The peak RSS of a process, sampled every 50 ms while running."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mib(self.pid))


def request_bytes(port: int, tokens: int) -> bytes:
    body = json.dumps({"message": "bench", "provider": "openai", "max_tokens": tokens}).encode()
    head = (
        f"POST /chat/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def fast_reader(port: int, tokens: int) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_bytes(port, tokens))
        total = 0
        while chunk := sock.recv(1 << 16):
            total += len(chunk)
    return total


def slow_reader(port: int, tokens: int, until: float) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request_bytes(port, tokens))
    total = 0
    try:
        while time.monotonic() < until:
            total += len(sock.recv(1))
            time.sleep(0.1)
    finally:
        sock.close()
    return total


def in_threads(count: int, target: Callable[[], int]) -> list[int]:
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(target())) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def one_round(kind: str, args: argparse.Namespace, env: dict[str, str], log_dir: Path) -> dict[str, float]:
    procs: list[subprocess.Popen[bytes]] = []
    with app_process(env, log_dir / f"{kind}.log", root=args.root, on_start=procs) as url:
        pid, port = procs[0].pid, int(url.rsplit(":", 1)[1])
        httpx.post(f"{url}/chat/stream", json={"message": "warm", "max_tokens": 10}, timeout=30)  # imports, pools
        idle = rss_mib(pid)
        with Sampler(pid) as sampler:
            if kind == "fast":
                in_threads(args.readers, lambda: fast_reader(port, args.tokens))
            else:
                until = time.monotonic() + args.seconds
                in_threads(args.readers, lambda: slow_reader(port, args.tokens, until))
            during = rss_mib(pid)
        time.sleep(5)  # the runs stop (disconnect) and free what they held
        return {"idle": idle, "peak": sampler.peak, "end": during, "after": rss_mib(pid)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the slow readers read")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app runs (default: this one)")
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    aws = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_DYNAMODB": f"http://{host}:{port}",
    }
    os.environ.update(aws)
    ddb = boto3.client("dynamodb")
    create_table(ddb, table_spec("StreamsTable"), "tokenrelay-streams")
    create_table(ddb, table_spec("OutputLogTable"), "tokenrelay-output-log")
    upstream_port = free_port()
    script = str(ROOT / "scripts" / "benchmarks" / "upstream.py")
    command = [sys.executable, script, "--port", str(upstream_port), "--tokens", str(args.tokens), "--interval-ms", "0"]
    upstream = subprocess.Popen(command)
    env = {
        **aws,
        "DEFAULT_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
        "ALLOWED_MODELS": "openai:gpt-4o-mini",
        "MAX_TOKENS_LIMIT": str(args.tokens),
        "OUTPUT_LOG_TABLE": "tokenrelay-output-log",
        "RESUME_GRACE_S": "1",
        "UPSTREAM_MAX_RETRIES": "0",
        "LOG_LEVEL": "ERROR",
        "METRICS_ENABLED": "false",
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rounds = {kind: one_round(kind, args, env, Path(tmp)) for kind in ("fast", "slow")}
    finally:
        upstream.terminate()
        upstream.wait()
        ddb.close()
        moto.stop()
    print(f"app: {args.root}; {args.readers} readers of {args.tokens:,}-token streams")
    fast, slow = rounds["fast"], rounds["slow"]
    print(f"fast readers (baseline): idle {fast['idle']:6.1f} MiB  peak {fast['peak']:6.1f} MiB")
    print(
        f"slow readers, {args.seconds:g} s:    idle {slow['idle']:6.1f} MiB  peak {slow['peak']:6.1f} MiB"
        f"  at the end {slow['end']:6.1f} MiB  5 s after they closed {slow['after']:6.1f} MiB"
    )
    print(f"growth over idle, slow / fast: {slow['peak'] - slow['idle']:.1f} / {fast['peak'] - fast['idle']:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
