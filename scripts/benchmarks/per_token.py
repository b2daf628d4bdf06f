"""CPU per token of the WebSocket worker and of the SSE app, each in its own Lambda environment,
apart from the emulator, and where it goes (py-spy).

    scripts/bench pertoken [--memory 512] [--streams 3] [--no-profile]

The local stack as ``scripts/bench coldstart`` runs it (cgroup-held environments, the template's
variables, IAM, an API key, the openai provider against the bench upstream). The CPU counted is
the environment's own cgroup (``cpuacct.usage``): the worker's process, or the app's (uvicorn),
never the gateway, the front door, moto or the upstream. One stream at a time, as Lambda runs
them; the environment warm. Scenarios (tokens x interval): 500 x 10 ms (100 tokens/s, the cost
scenario), 200 x 5 ms (the overhead benchmark's paced streams), 1,000 x 0 (as fast as it comes).
A stream's CPU / its tokens is the per-token cost; per second of stream and per stream are in
the table too, because most of it is per-second work (polls, flushes, posts), not per token;
so are the calls counted in the same run: ``@connections`` posts at the gateway, DynamoDB calls
at moto (every function's: ``$connect``, ``chat`` and ``$disconnect`` make some per stream).

The profile: ``py-spy record --gil`` (sampling, non-blocking; only the thread holding the GIL, so
Python's own CPU, not its waits) of the environment
during one stream of each scenario; each sample goes to the bucket (``BUCKETS``) of the leaf-most
frame of its stack that names one (a ``json.loads`` called by the provider is the provider's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run as a script: scripts.* from the repo

from scripts.benchmarks import lambda_stack as ls  # noqa: E402

SCENARIOS = ((500, 10.0), (200, 5.0), (1000, 0.0))
TOKEN = re.compile(rb"T\d{6,} ")
BUCKETS = (  # (label, substrings of a frame); a sample goes to the bucket of its leaf-most matching frame
    ("boto3 calls: sign, send, parse (in threads)", ("botocore/", "urllib3/", "http/client.py", "email/", "boto3/")),
    ("thread hand-off (asyncio.to_thread)", ("concurrent/futures/", "threading.py", "asyncio/threads.py")),
    ("provider read: aiohttp, SSE decode, SDK", ("aiohttp/", "providers/_sse.py", "providers/openai.py", "openai/", "yarl/", "multidict/")),
    ("engine, retries, silence watch", ("tokenrelay/stream/", "providers/resilient.py", "providers/_silence.py")),
    ("WebSocket sender, coalescing", ("transports/websocket.py", "transports/_coalescing.py", "transports/_resumable.py", "(poster.py")),
    ("output log (resume)", ("tokenrelay/resume/", "stores/dynamodb/output_log.py", "stores/dynamodb/attachments.py")),
    ("state store", ("stores/dynamodb/", "stores/connections.py", "tokenrelay/protection/")),
    ("SSE writing", ("tokenrelay_http/channel.py", "transports/sse.py", "sse_starlette/")),
    ("ASGI server, framework", ("uvicorn/", "starlette/", "fastapi/", "httptools", "anyio/", "uvloop")),
    ("X-Ray, logging, metrics", ("aws_xray_sdk/", "aws_lambda_powertools/", "logging/", "telemetry/")),
)  # fmt: skip


@dataclass
class Run:
    path: str  # "worker" or "sse"
    tokens: int
    interval_ms: float
    cpu_s: float
    wall_s: float
    posts: int = 0
    dynamodb: int = 0  # DynamoDB calls during the stream (all functions: the worker's are most)

    @property
    def us_per_token(self) -> float:
        return self.cpu_s / self.tokens * 1e6


def bucket(stack: str) -> str:
    """The bucket of a collapsed stack (``root;...;leaf``): its leaf-most frame that names one."""
    for frame in reversed(stack.split(";")):
        for label, patterns in BUCKETS:
            if any(p in frame for p in patterns):
                return label
    return "event loop, other"


def profile_table(raw: str) -> list[tuple[str, float]]:
    """Shares of samples per bucket from py-spy's raw (collapsed) output."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[bucket(stack)] += int(n)
    total = sum(counts.values()) or 1
    return [(label, n / total) for label, n in counts.most_common()]


class Spy:
    """``py-spy record`` of one process while the block runs (raw collapsed stacks)."""

    def __init__(self, pid: int, out: Path, enabled: bool) -> None:
        self.pid, self.out, self.enabled = (
            pid,
            out,
            enabled and shutil.which("py-spy", path=Path(sys.executable).parent) is not None,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Spy:
        if self.enabled:
            exe = shutil.which("py-spy", path=Path(sys.executable).parent)
            assert exe is not None
            argv = [exe, "record", "--pid", str(self.pid), "--rate", "1000", "--format", "raw", "--nonblocking", "--gil",
                    "--threads", "--output", str(self.out)]  # fmt: skip
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.3)  # attached
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)

    def table(self) -> list[tuple[str, float]]:
        return profile_table(self.out.read_text()) if self.enabled and self.out.exists() else []


async def ws_stream(bench: Any, url: str, token: str, tokens: int) -> float:
    """One chat on a new connection, read to its end (every token, then ``done``); when the worker finished."""
    import websockets

    seen = 0
    async with websockets.connect(f"{url}/?access_token={token}", open_timeout=60) as ws:
        await ws.send(json.dumps({"type": "chat", "message": "bench", "max_tokens": tokens}))
        async with asyncio.timeout(300):
            async for raw in ws:
                data = raw.encode() if isinstance(raw, str) else raw
                seen += len(TOKEN.findall(data))
                if b'"type":"done"' in data or b'"type": "done"' in data:
                    break
                if b'"type":"error"' in data or b'"type":"cancelled"' in data:
                    raise RuntimeError(data[:200].decode())
    if seen != tokens:
        raise RuntimeError(f"worker: {seen} tokens of {tokens}")
    await bench._in_gateway(bench.gateway.wait_idle(30))
    return time.monotonic()


def meter_lines(meter: Path) -> int:
    return len(meter.read_text().splitlines()) if meter.exists() else 0


def worker_runs(
    bench: Any, token: str, port: int, streams: int, spy: bool, tmp: Path, meter: Path
) -> tuple[list[Run], dict[str, Any]]:
    from scripts.benchmarks.gateway_overhead import configure_upstream
    from scripts.devstack.gateway import serving

    runs: list[Run] = []
    profiles: dict[str, Any] = {}

    async def all_runs(url: str) -> None:
        configure_upstream(port, 20, 0.0)
        await ws_stream(bench, url, token, 20)  # warm: every function's environment, the worker's clients
        env = bench.starts["tokenrelay worker"].records[-1].env
        for tokens, interval in SCENARIOS:
            configure_upstream(port, tokens, interval)
            for n in range(streams):
                posts, calls = bench.gateway.stats.posts, meter_lines(meter)
                cpu0, t0 = env.cpu.usage_s(), time.monotonic()
                with Spy(env.proc.pid, tmp / f"worker-{tokens}-{interval}.txt", spy and n == 0) as spied:
                    end = await ws_stream(bench, url, token, tokens)
                cpu = env.cpu.usage_s() - cpu0
                runs.append(Run("worker", tokens, interval, cpu, end - t0, bench.gateway.stats.posts - posts,
                                meter_lines(meter) - calls))  # fmt: skip
                if spied.enabled:
                    profiles[f"{tokens} tokens × {interval:g} ms"] = spied.table()
                print(
                    f"pertoken: worker {tokens} × {interval:g} ms: {runs[-1].us_per_token:.0f} µs/token",
                    file=sys.stderr,
                )

    with serving(bench.gateway, startup_timeout_s=30) as url:
        asyncio.run(all_runs(url))
    return runs, profiles


def sse_runs(
    env: dict[str, str], token: str, port: int, streams: int, spy: bool, tmp: Path, memory: int, meter: Path
) -> tuple[list[Run], dict[str, Any]]:
    import httpx

    from scripts.benchmarks.coldstart import SINK
    from scripts.benchmarks.gateway_overhead import configure_upstream
    from scripts.devstack.frontdoor import FrontDoor
    from tests.fakes.servers import serve

    function_env = {**env, **ls.lambda_vars("tokenrelay-stream", memory)}
    front = FrontDoor(function_env, code_dir=ls.ROOT / "functions" / "http", name="sse", sink=SINK, max_envs=1,
                      linger_s=0.0, memory_mb=memory, cpu_share=True)  # fmt: skip
    starts = ls.Starts(front.pool)
    runs: list[Run] = []
    profiles: dict[str, Any] = {}
    headers = {"authorization": f"Bearer {token}"}

    def one(url: str, tokens: int) -> float:
        with httpx.stream("POST", f"{url}/chat/stream", json={"message": "bench", "max_tokens": tokens},
                          headers=headers, timeout=300) as response:  # fmt: skip
            body = b"".join(response.iter_raw())
        if b"event: done" not in body or len(TOKEN.findall(body)) != tokens:
            raise RuntimeError(f"sse: {len(TOKEN.findall(body))} tokens of {tokens}, then {body[-300:]!r}")
        time.sleep(0.3)  # the terminal write and the run's end, after the last byte
        return time.monotonic()

    with serve(front, startup_timeout_s=30) as url:
        configure_upstream(port, 20, 0.0)
        one(url, 20)
        env_ = starts.records[-1].env
        for tokens, interval in SCENARIOS:
            configure_upstream(port, tokens, interval)
            for n in range(streams):
                cpu0, t0, calls = env_.cpu.usage_s(), time.monotonic(), meter_lines(meter)
                with Spy(env_.proc.pid, tmp / f"sse-{tokens}-{interval}.txt", spy and n == 0) as spied:
                    end = one(url, tokens)
                runs.append(
                    Run("sse", tokens, interval, env_.cpu.usage_s() - cpu0, end - t0, 0, meter_lines(meter) - calls)
                )
                if spied.enabled:
                    profiles[f"{tokens} tokens × {interval:g} ms"] = spied.table()
                print(
                    f"pertoken: sse {tokens} × {interval:g} ms: {runs[-1].us_per_token:.0f} µs/token", file=sys.stderr
                )
    return runs, profiles


def markdown(runs: list[Run], profiles: dict[str, dict[str, Any]]) -> str:
    out = ["| path | tokens × interval | µs CPU per token | CPU ms per second of stream | CPU ms per stream "
           "| @connections posts per stream (per s) | DynamoDB calls per stream (per s) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for path in dict.fromkeys(r.path for r in runs):
        for tokens, interval in SCENARIOS:
            mine = [r for r in runs if r.path == path and r.tokens == tokens and r.interval_ms == interval]
            if not mine:
                continue
            cpu = sum(r.cpu_s for r in mine) / len(mine)
            wall = sum(r.wall_s for r in mine) / len(mine)
            posts_n = sum(r.posts for r in mine) / len(mine)
            posts = f"{posts_n:.0f} ({posts_n / wall:.1f})" if path.startswith("worker") else "–"
            calls_n = sum(r.dynamodb for r in mine) / len(mine)
            calls = f"{calls_n:.0f} ({calls_n / wall:.1f})"
            out.append(f"| {path} | {tokens} × {interval:g} ms | {cpu / tokens * 1e6:.0f} | {cpu / wall * 1000:.1f} "
                       f"| {cpu * 1000:.0f} | {posts} | {calls} |")  # fmt: skip
    for path, tables in profiles.items():
        for scenario, shares in tables.items():
            out += ["", f"**Where the {path}'s CPU goes**, {scenario} (py-spy, share of active samples)", "",
                    "| part | share |", "|---|---|"]  # fmt: skip
            out += [f"| {label} | {share * 100:.0f} % |" for label, share in shares[:12]]
    return "\n".join(out) + "\n"


def variant(spec: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = spec.partition(":")
    return name, dict(kv.split("=", 1) for kv in assignments.split(",") if kv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", type=int, default=512)
    parser.add_argument("--streams", type=int, default=3, help="streams per scenario and path")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    parser.add_argument("--paths", default="worker,sse")
    parser.add_argument("--keep", default="", help="keep py-spy's raw stacks in this directory")
    parser.add_argument("--variant", type=variant, action="append", default=[],
                        help="also run with these variables: NAME:VAR=VALUE[,...] (repeat), a before/after in one run")  # fmt: skip
    args = parser.parse_args(argv)
    from scripts.benchmarks.coldstart import WsBench
    from scripts.benchmarks.floors import code_dir
    from scripts.benchmarks.gateway_overhead import Proc, free_port

    ls.quiet_logs()
    port = free_port()
    runs: list[Run] = []
    profiles: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tokenrelay-pertoken-") as tmp_dir:
        tmp = Path(args.keep or tmp_dir)
        tmp.mkdir(parents=True, exist_ok=True)
        upstream = Proc(
            "upstream", [sys.executable, str(HERE / "upstream.py"), "--port", str(port)], dict(os.environ), tmp
        )
        try:
            upstream.wait_http(f"http://127.0.0.1:{port}/health")
            meter = tmp / "dynamodb.jsonl"
            with ls.local_aws(meter) as aws:
                env = ls.stack_env(aws, port)
                template = ls.template_for_memory(args.memory, tmp)
                identities = ls.identities_for(aws, env, template, prefix="tok-")
                token = ls.create_key(aws)
                for name, overrides in [("", {}), *args.variant]:
                    label = f", {name}" if name else ""
                    spy = not args.no_profile and not name  # profile the product as configured only
                    if "worker" in args.paths:
                        bench = WsBench(aws, {**env, **overrides}, template, identities,
                                        {"worker-floor": code_dir("worker-floor", tmp)})  # fmt: skip
                        del bench.variants["floor worker"]
                        mine, prof = worker_runs(bench, token, port, args.streams, spy, tmp, meter)
                        runs += [replace(r, path=r.path + label) for r in mine]
                        profiles.setdefault("worker", prof)
                    if "sse" in args.paths:
                        from scripts.devstack.stack import front_door

                        fenv = {**front_door(identities, env, template=template).env, **overrides}
                        mine, prof = sse_runs(fenv, token, port, args.streams, spy, tmp, args.memory, meter)
                        runs += [replace(r, path=r.path + label) for r in mine]
                        profiles.setdefault("sse app", prof)
        finally:
            upstream.stop()
    from scripts.benchmarks.call_cost import measure

    calls = "\n".join(f"| {name} | {seconds * 1e6:.0f} |" for name, seconds in measure(300).items())
    print(f"\nRun {time.strftime('%Y-%m-%d %H:%M:%S %Z')} at {args.memory} MB, {args.streams} streams per row\n")
    print(markdown(runs, profiles))
    print(f"\n**CPU per AWS call** (call_cost.py, full speed)\n\n| call | CPU µs per call |\n|---|---|\n{calls}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
