"""Gateway overhead, side by side: direct upstream, TokenRelay SSE, TokenRelay WebSocket, LiteLLM.

One run, one machine, targets one after another against the same lean fake
OpenAI upstream (``upstream.py``), which writes each token's emit time into its
text, so the client measures every token's latency from the moment the upstream
wrote it. Each server target is its own process; its CPU time (utime + stime,
children included) and RSS are read from /proc around each scenario.

    direct         the load client reads the upstream itself: the floor
    tokenrelay-sse functions/http app:app under uvicorn (as the Lambda Web Adapter runs it),
                   DynamoDB = moto server (a separate process, its CPU reported apart)
    tokenrelay-ws  the local API Gateway emulator (scripts/devstack/gateway.py) with the real
                   WebSocket handlers and worker; tokens coalesced every WS_FLUSH_MS (50)
    litellm        LiteLLM proxy (its own venv, .venv-litellm), model openai/bench at the upstream

Scenarios: concurrency 1, 50, 200 at 200 tokens x 5 ms; throughput: concurrency 50,
1,000 tokens, no interval. The load client is raw asyncio (HTTP/1.1 over a socket,
regex over the bytes; the ``websockets`` library for the WebSocket target).

    scripts/bench [--quick] [--targets direct,tokenrelay-sse,tokenrelay-ws,litellm] [--out docs/benchmarks]

Writes ``overhead.md`` (the table), ``overhead.json`` and ``overhead.png`` to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TOKEN = re.compile(rb"T(\d{6,}) ")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
STREAM_TIMEOUT_S = 60.0
SCENARIO_TIMEOUT_S = 150.0
ALL_TARGETS = ("direct", "tokenrelay-sse", "tokenrelay-ws", "litellm")
LITELLM_VERSION = "1.106.12"


# -- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def family(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(tree.get(p, []))
    return out


def cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError):
            pass
    return total / CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError):
            pass
    return total


class RssSampler:
    """Peak RSS of a process family, sampled every 20 ms from a thread."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.peak = pids, rss_bytes(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pids))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pids))


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path, cwd: Path = ROOT) -> None:
        self.name = name
        self.log = open(log_dir / f"{name}.log", "wb")
        self.p = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pids(self) -> list[int]:
        return family(self.p.pid)

    def wait_http(self, url: str, timeout_s: float = 60.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.p.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status < 500:
                        return time.monotonic() - t0
            except urllib.error.HTTPError as exc:  # any answer below 500 means it is up
                if exc.code < 500:
                    return time.monotonic() - t0
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout_s:.0f} s; see {self.log.name}")

    def stop(self) -> None:
        if self.p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.p.pid, signal.SIGTERM)  # our own session: the server and its children
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
        self.log.close()


# -- the load client ----------------------------------------------------------------------


@dataclass
class StreamResult:
    ok: bool
    tokens: int = 0
    ttft_ms: float | None = None
    latencies_us: list[int] = field(default_factory=list)
    error: str = ""


class _SSEProtocol(asyncio.Protocol):
    """Reads one HTTP response to EOF; collects token stamps as lines complete."""

    def __init__(self, t0: float, done: asyncio.Future[None]) -> None:
        self.t0, self.done = t0, done
        self.pending = b""
        self.head = b""
        self.tail = b""
        self.first: float | None = None
        self.stamps: list[int] = []
        self.lat: list[int] = []

    def data_received(self, data: bytes) -> None:
        now_us = time.monotonic_ns() // 1000
        if not self.head:
            self.head = data[:64]
        buf = self.pending + data if self.pending else data
        cut = buf.rfind(b"\n") + 1
        if cut:
            part, self.pending = buf[:cut], buf[cut:]
            found = TOKEN.findall(part)
            if found:
                if self.first is None:
                    self.first = time.perf_counter()
                self.lat += [now_us - int(s) for s in found]
            self.tail = (self.tail + part)[-400:]
        else:
            self.pending = buf

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def http_stream(port: int, path: str, body: bytes, terminal: bytes, n: int, headers: str = "") -> StreamResult:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    done: asyncio.Future[None] = loop.create_future()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nAccept: text/event-stream\r\nConnection: close\r\n{headers}\r\n"
    ).encode() + body
    try:
        transport, proto = await loop.create_connection(lambda: _SSEProtocol(t0, done), "127.0.0.1", port)
        transport.write(request)
        await asyncio.wait_for(done, STREAM_TIMEOUT_S)
        transport.close()
    except (OSError, TimeoutError) as exc:
        return StreamResult(False, error=type(exc).__name__)
    p: _SSEProtocol = proto
    ttft = (p.first - t0) * 1000 if p.first is not None else None
    if not p.head.startswith(b"HTTP/1.1 200"):
        return StreamResult(False, error=p.head[:12].decode("latin-1", "replace"))
    ok = terminal in p.tail and len(p.lat) == n
    error = "" if ok else f"tokens {len(p.lat)}/{n}, terminal {'seen' if terminal in p.tail else 'missing'}"
    return StreamResult(ok, len(p.lat), ttft, p.lat, error)


async def ws_stream(url: str, n: int) -> StreamResult:
    import websockets

    t0 = time.perf_counter()
    first: float | None = None
    lat: list[int] = []
    try:
        async with websockets.connect(url, open_timeout=STREAM_TIMEOUT_S, compression=None) as ws:
            await ws.send(json.dumps({"type": "chat", "message": "bench", "max_tokens": n}))
            async with asyncio.timeout(STREAM_TIMEOUT_S):
                async for raw in ws:
                    now_us = time.monotonic_ns() // 1000
                    data = raw.encode() if isinstance(raw, str) else raw
                    found = TOKEN.findall(data)
                    if found:
                        if first is None:
                            first = time.perf_counter()
                        lat += [now_us - int(s) for s in found]
                    elif b'"type":"done"' in data or b'"type": "done"' in data:
                        break
                    elif b'"type":"error"' in data or b'"type":"cancelled"' in data:
                        return StreamResult(False, len(lat), error=data[:120].decode())
                else:
                    return StreamResult(False, len(lat), error="closed before done")
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        return StreamResult(False, len(lat), error=type(exc).__name__)
    ttft = (first - t0) * 1000 if first is not None else None
    ok = len(lat) == n
    return StreamResult(ok, len(lat), ttft, lat, "" if ok else f"tokens {len(lat)}/{n}")


@dataclass
class Target:
    name: str
    label: str
    port: int
    path: str = ""
    terminal: bytes = b""
    body: str = ""  # format string with {n}
    headers: str = ""
    ws: bool = False
    proc: Proc | None = None  # the server process (None for direct: the upstream is measured)

    async def stream(self, n: int) -> StreamResult:
        if self.ws:
            return await ws_stream(f"ws://127.0.0.1:{self.port}", n)
        body = self.body.replace("{n}", str(n)).encode()
        return await http_stream(self.port, self.path, body, self.terminal, n, self.headers)


def pct(values: list[float] | list[int], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return float(s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))])


@dataclass
class Scenario:
    name: str
    concurrency: int
    tokens: int
    interval_ms: float
    rounds: int  # streams per concurrent worker


def scenarios(quick: bool) -> list[Scenario]:
    return [
        Scenario("c1", 1, 200, 5.0, 5 if quick else 15),
        Scenario("c50", 50, 200, 5.0, 1 if quick else 2),
        Scenario("c200", 200, 200, 5.0, 1 if quick else 2),
        Scenario("throughput", 50, 300 if quick else 1000, 0.0, 1),
    ]


def configure_upstream(port: int, tokens: int, interval_ms: float) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/_config",
        data=json.dumps({"tokens": tokens, "interval_ms": interval_ms}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5):
        pass


async def _run_load(target: Target, sc: Scenario) -> tuple[list[StreamResult], float]:
    results: list[StreamResult] = []

    async def worker() -> None:
        for _ in range(sc.rounds):
            results.append(await target.stream(sc.tokens))

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(sc.concurrency))), SCENARIO_TIMEOUT_S)
    return results, time.perf_counter() - t0


def run_scenario(target: Target, sc: Scenario, upstream: Proc, store: Proc | None) -> dict[str, Any]:
    configure_upstream(int(os.environ["BENCH_UPSTREAM_PORT"]), sc.tokens, sc.interval_ms)
    server = target.proc or upstream
    pids = server.pids
    up_pids = upstream.pids
    store_pids = store.pids if store is not None else []
    cpu0, up0, st0 = cpu_s(pids), cpu_s(up_pids), cpu_s(store_pids)
    client0 = time.process_time()
    rss_before = rss_bytes(pids)
    with RssSampler(pids) as sampler:
        try:
            results, wall = asyncio.run(_run_load(target, sc))
        except TimeoutError:
            results, wall = [StreamResult(False, error="scenario timeout")], SCENARIO_TIMEOUT_S
    client_cpu = time.process_time() - client0
    cpu, up_cpu, st_cpu = cpu_s(pids) - cpu0, cpu_s(up_pids) - up0, cpu_s(store_pids) - st0
    tokens = sum(r.tokens for r in results)
    lat = [x for r in results for x in r.latencies_us]
    ttft = [r.ttft_ms for r in results if r.ttft_ms is not None]
    errors = sorted({r.error for r in results if not r.ok})
    per_tok = 1e6 / tokens if tokens else float("nan")
    return {
        "scenario": sc.name,
        "concurrency": sc.concurrency,
        "tokens_per_stream": sc.tokens,
        "interval_ms": sc.interval_ms,
        "streams": len(results),
        "failures": sum(not r.ok for r in results),
        "errors": errors[:5],
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall if wall else 0.0,
        "server_cpu_us_per_token": cpu * per_tok,
        "upstream_cpu_us_per_token": up_cpu * per_tok,
        "store_cpu_us_per_token": st_cpu * per_tok,
        "client_cpu_us_per_token": client_cpu * per_tok,
        "ttft_ms_p50": pct(ttft, 50),
        "ttft_ms_p99": pct(ttft, 99),
        "token_latency_ms_p50": pct(lat, 50) / 1000,
        "token_latency_ms_p99": pct(lat, 99) / 1000,
        "rss_before_mb": rss_before / 2**20,
        "rss_peak_mb": sampler.peak / 2**20,
    }


# -- targets ------------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "AWS_", "LITELLM"))}
    env.pop("ALLOWED_MODELS", None)
    env.pop("DEFAULT_PROVIDER", None)
    return env


def relay_env(ddb: str, upstream_port: int) -> dict[str, str]:
    env = base_env()
    env.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL_DYNAMODB=ddb,
        OPENAI_API_KEY="sk-bench",
        OPENAI_BASE_URL=f"http://127.0.0.1:{upstream_port}/v1",
        DEFAULT_PROVIDER="openai",
        ALLOWED_MODELS="openai:bench",
        UPSTREAM_MAX_RETRIES="0",
        MAX_TOKENS_LIMIT="4096",
        WS_MAX_STREAMS="8",
        PYTHONPATH=f"{ROOT / 'layers/core'}:{ROOT / 'functions/http'}",
    )
    return env


def start_target(name: str, upstream_port: int, ddb: str, log_dir: Path) -> Target:
    py = sys.executable
    openai_body = (
        '{"model":"bench","messages":[{"role":"user","content":"bench"}],"stream":true,'
        '"stream_options":{"include_usage":true},"max_completion_tokens":{n}}'
    )
    if name == "direct":
        return Target(name, "direct (upstream)", upstream_port, "/v1/chat/completions", b"[DONE]", openai_body)
    port = free_port()
    if name == "tokenrelay-sse":
        argv = [py, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        argv += ["--log-level", "warning", "--app-dir", str(ROOT / "functions/http"), "app:app"]
        proc = Proc(name, argv, relay_env(ddb, upstream_port), log_dir)
        proc.wait_http(f"http://127.0.0.1:{port}/health")
        body = '{"message":"bench","max_tokens":{n}}'
        return Target(name, "TokenRelay SSE", port, "/chat/stream", b"event: done", body, proc=proc)
    if name == "tokenrelay-ws":
        argv = [py, str(ROOT / "scripts/devstack/gateway.py"), "--port", str(port)]
        env = relay_env(ddb, upstream_port)
        env["LOG_LEVEL"] = "WARNING"
        proc = Proc(name, argv, env, log_dir)
        proc.wait_http(f"http://127.0.0.1:{port}/@connections/ready-check")
        return Target(name, "TokenRelay WebSocket", port, ws=True, proc=proc)
    if name == "litellm":
        exe = ROOT / ".venv-litellm/bin/litellm"
        if not exe.exists():
            raise Unavailable(f"LiteLLM is not installed ({exe} missing; see {log_dir / 'litellm-install.log'})")
        cfg = log_dir / "litellm.yaml"
        cfg.write_text(
            "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench\n"
            f"      api_base: http://127.0.0.1:{upstream_port}/v1\n      api_key: sk-bench\n"
            "litellm_settings:\n  telemetry: false\n  drop_params: true\n"
        )
        env = base_env()
        key = "sk-" + secrets.token_hex(16)  # it refuses to start without one (and so it should)
        env.update(LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False", DISABLE_SCHEMA_UPDATE="true", LITELLM_MASTER_KEY=key)
        argv = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
        proc = Proc(name, argv, env, log_dir)
        try:
            proc.wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout_s=120)
        except RuntimeError as exc:
            proc.stop()
            raise Unavailable(str(exc)) from None
        auth = f"Authorization: Bearer {key}\r\n"
        label = f"LiteLLM proxy {LITELLM_VERSION}"
        return Target(name, label, port, "/v1/chat/completions", b"[DONE]", openai_body, auth, proc=proc)
    raise ValueError(name)


class Unavailable(Exception):
    pass


def install_litellm(log_dir: Path) -> str | None:
    """Create .venv-litellm with a pinned LiteLLM proxy; the reason if it cannot be installed."""
    venv = ROOT / ".venv-litellm"
    exe = venv / "bin/litellm"
    if exe.exists():
        return None
    log = log_dir / "litellm-install.log"
    with open(log, "wb") as f:
        try:
            if not (venv / "bin/python").exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=f, stderr=f)
            subprocess.run(
                [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 f"litellm[proxy]=={LITELLM_VERSION}"],
                check=True, stdout=f, stderr=f, timeout=600,
            )  # fmt: skip
        except (subprocess.SubprocessError, OSError) as exc:
            return f"pip install litellm[proxy]=={LITELLM_VERSION} failed ({exc}); see {log}"
    return None if exe.exists() else f"no litellm executable after install; see {log}"


# -- report -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_mb": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg()[0],
    }


def summarise(data: dict[str, Any]) -> None:
    """Ratios to direct, added latencies, RSS per extra stream: into data in place."""
    direct = {r["scenario"]: r for r in data["targets"].get("direct", {}).get("scenarios", [])}
    for t in data["targets"].values():
        if "scenarios" not in t:
            continue
        by = {r["scenario"]: r for r in t["scenarios"]}
        for r in t["scenarios"]:
            d = direct.get(r["scenario"])
            if d:
                r["throughput_ratio"] = r["tokens_per_s"] / d["tokens_per_s"] if d["tokens_per_s"] else None
                r["added_ttft_ms_p50"] = r["ttft_ms_p50"] - d["ttft_ms_p50"]
                r["added_ttft_ms_p99"] = r["ttft_ms_p99"] - d["ttft_ms_p99"]
                r["added_token_latency_ms_p50"] = r["token_latency_ms_p50"] - d["token_latency_ms_p50"]
                r["added_token_latency_ms_p99"] = r["token_latency_ms_p99"] - d["token_latency_ms_p99"]
        if "c1" in by and "c200" in by:
            t["rss_kb_per_extra_stream"] = (by["c200"]["rss_peak_mb"] - by["c1"]["rss_peak_mb"]) * 1024 / 199
        paced = [r for r in t["scenarios"] if r["interval_ms"] > 0 and r["tokens"]]
        if paced:
            tok = sum(r["tokens"] for r in paced)
            t["server_cpu_us_per_token"] = sum(r["server_cpu_us_per_token"] * r["tokens"] for r in paced) / tok


def _f(x: Any, fmt: str = "{:.0f}") -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    return fmt.format(x)


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    out = [
        f"Run {data['started']} on {m['cpu']}, {m['cores']} cores, {m['memory_mb']} MB, Linux {m['kernel']}, "
        f"Python {m['python']} (load average at start {m['loadavg_at_start']:.2f}). "
        f"Command: `{data['command']}`.",
        "",
        "**Summary** (server CPU per token: weighted over the paced scenarios; added = target minus direct; "
        "RSS per extra stream = (peak at c=200 − peak at c=1) / 199)",
        "",
        "| target | server CPU µs/token | tokens/s ratio c=200 | added TTFT p50 c=1 | added per-token p50 / p99 c=1 "
        "| RSS before → peak | RSS per extra stream | failures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in data["targets"].values():
        if "scenarios" not in t:
            out.append(f"| {t['label']} | unavailable: {t.get('unavailable', '?')} ||||||| ")
            continue
        by = {r["scenario"]: r for r in t["scenarios"]}
        c1, c200 = by.get("c1", {}), by.get("c200", {})
        peak = max(r["rss_peak_mb"] for r in t["scenarios"])
        before = t["scenarios"][0]["rss_before_mb"]
        out.append(
            f"| {t['label']} | {_f(t.get('server_cpu_us_per_token'))} | {_f(c200.get('throughput_ratio'), '{:.2f}×')} "
            f"| {_f(c1.get('added_ttft_ms_p50'), '{:+.2f} ms')} "
            f"| {_f(c1.get('added_token_latency_ms_p50'), '{:+.2f}')} / {_f(c1.get('added_token_latency_ms_p99'), '{:+.2f}')} ms "
            f"| {before:.0f} → {peak:.0f} MB | {_f(t.get('rss_kb_per_extra_stream'), '{:.1f} KB')} "
            f"| {sum(r['failures'] for r in t['scenarios'])} |"
        )
    out += [
        "",
        "**Per scenario** (c = concurrent streams; paced = 200 tokens × 5 ms; throughput = 1,000 tokens, no interval, c=50)",
        "",
        "| target | scenario | streams | tokens/s | ratio | server CPU µs/tok | client CPU µs/tok | upstream CPU µs/tok "
        "| TTFT p50 / p99 ms | added TTFT p50 | per-token latency p50 / p99 ms | added p50 / p99 | RSS peak MB | failures |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in data["targets"].values():
        for r in t.get("scenarios", []):
            out.append(
                f"| {t['label']} | {r['scenario']} | {r['streams']} | {r['tokens_per_s']:,.0f} "
                f"| {_f(r.get('throughput_ratio'), '{:.2f}')} | {_f(r['server_cpu_us_per_token'])} "
                f"| {_f(r['client_cpu_us_per_token'])} | {_f(r['upstream_cpu_us_per_token'])} "
                f"| {_f(r['ttft_ms_p50'], '{:.2f}')} / {_f(r['ttft_ms_p99'], '{:.2f}')} "
                f"| {_f(r.get('added_ttft_ms_p50'), '{:+.2f}')} "
                f"| {_f(r['token_latency_ms_p50'], '{:.2f}')} / {_f(r['token_latency_ms_p99'], '{:.2f}')} "
                f"| {_f(r.get('added_token_latency_ms_p50'), '{:+.2f}')} / {_f(r.get('added_token_latency_ms_p99'), '{:+.2f}')} "
                f"| {r['rss_peak_mb']:.0f} | {r['failures']}{' (' + '; '.join(r['errors']) + ')' if r['errors'] else ''} |"
            )
    if "tokenrelay-sse" in data["targets"] and "scenarios" in data["targets"]["tokenrelay-sse"]:
        st = [r["store_cpu_us_per_token"] for r in data["targets"]["tokenrelay-sse"]["scenarios"]]
        out += [
            "",
            f"DynamoDB (moto server, a separate process) CPU per token during the TokenRelay SSE scenarios: "
            f"{', '.join(_f(x) for x in st)} µs (not included in server CPU; in AWS it is not on your bill as CPU).",
        ]
    return "\n".join(out) + "\n"


def chart(data: dict[str, Any], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no chart"
    targets = [(n, t) for n, t in data["targets"].items() if "scenarios" in t]
    names = [s.name for s in scenarios(False)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(len(targets), 1)
    for i, (_, t) in enumerate(targets):
        by = {r["scenario"]: r for r in t["scenarios"]}
        ys = [by.get(s, {}).get("throughput_ratio") or 0 for s in names]
        ax1.bar([x + i * width for x in range(len(names))], ys, width, label=t["label"])
    ax1.set_xticks([x + width * (len(targets) - 1) / 2 for x in range(len(names))], names)
    ax1.axhline(0.6, color="grey", linestyle="--", linewidth=0.8)
    ax1.set_ylabel("tokens/s, ratio to direct")
    ax1.set_title("Throughput relative to direct upstream")
    ax1.legend(fontsize=8)
    labels = [t["label"] for _, t in targets]
    cpu = [t.get("server_cpu_us_per_token") or 0 for _, t in targets]
    ax2.barh(labels, cpu, color=[f"C{i}" for i in range(len(targets))])
    ax2.axvline(60, color="grey", linestyle="--", linewidth=0.8)
    ax2.set_xscale("log")
    ax2.set_xlabel("server CPU µs per token (log; dashed: 60 µs target)")
    ax2.set_title("Server CPU per token (paced scenarios)")
    for y, v in enumerate(cpu):
        ax2.text(v, y, f" {v:.0f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# -- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer streams per scenario (about 2 minutes)")
    parser.add_argument("--targets", default=",".join(ALL_TARGETS))
    parser.add_argument("--out", default=str(ROOT / "docs/benchmarks"))
    parser.add_argument("--tag", default="", help="suffix for the output files (overhead<tag>.md ...)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = set(names) - set(ALL_TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="tokenrelay-bench-"))
    started = time.monotonic()
    data: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "scripts/bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "targets": {},
    }
    litellm_problem = install_litellm(log_dir) if "litellm" in names else None

    upstream_port, ddb_port = free_port(), free_port()
    os.environ["BENCH_UPSTREAM_PORT"] = str(upstream_port)
    procs: list[Proc] = []
    try:
        upstream = Proc(
            "upstream", [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)], base_env(), log_dir
        )
        procs.append(upstream)
        store = None
        ddb = f"http://127.0.0.1:{ddb_port}"
        if any(n.startswith("tokenrelay") for n in names):
            moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
            store = Proc("dynamodb", [moto, "-H", "127.0.0.1", "-p", str(ddb_port)], base_env(), log_dir)
            procs.append(store)
            store.wait_http(f"{ddb}/moto-api/")
            env = relay_env(ddb, upstream_port)
            subprocess.run([sys.executable, str(ROOT / "scripts/devstack/tables.py"), "--endpoint", ddb], env=env,
                           check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        upstream.wait_http(f"http://127.0.0.1:{upstream_port}/health")
        for name in names:
            label = {"litellm": f"LiteLLM proxy {LITELLM_VERSION}"}.get(name, name)
            if name == "litellm" and litellm_problem:
                data["targets"][name] = {"label": label, "unavailable": litellm_problem}
                print(f"bench: {name}: unavailable: {litellm_problem}", file=sys.stderr)
                continue
            try:
                target = start_target(name, upstream_port, ddb, log_dir)
            except (Unavailable, RuntimeError) as exc:
                data["targets"][name] = {"label": label, "unavailable": str(exc)}
                print(f"bench: {name}: unavailable: {exc}", file=sys.stderr)
                continue
            try:
                configure_upstream(upstream_port, 20, 0)
                asyncio.run(_run_load(target, Scenario("warmup", 4, 20, 0.0, 3)))
                rows = []
                for sc in scenarios(args.quick):
                    time.sleep(0.5)  # let the previous scenario's tail (terminal writes, closes) settle
                    row = run_scenario(target, sc, upstream, store if name.startswith("tokenrelay") else None)
                    rows.append(row)
                    print(
                        f"bench: {name:15} {sc.name:10} {row['tokens_per_s']:9,.0f} tok/s  "
                        f"server {row['server_cpu_us_per_token']:6.1f} µs/tok  client {row['client_cpu_us_per_token']:5.1f}  "
                        f"TTFT p50 {row['ttft_ms_p50']:6.2f} ms  lat p50 {row['token_latency_ms_p50']:6.2f} ms  "
                        f"failures {row['failures']}",
                        file=sys.stderr,
                    )
                data["targets"][name] = {"label": target.label, "scenarios": rows}
            finally:
                if target.proc is not None:
                    target.proc.stop()
    finally:
        for proc in reversed(procs):
            proc.stop()
    data["elapsed_s"] = time.monotonic() - started
    summarise(data)
    table = markdown(data)
    stem = f"overhead{args.tag}"
    (out / f"{stem}.md").write_text(table)
    (out / f"{stem}.json").write_text(json.dumps(data, indent=1, default=lambda o: asdict(o)) + "\n")
    problem = chart(data, out / f"{stem}.png")
    print("\n" + table)
    print(f"bench: wrote {out / stem}.md, .json{', .png' if problem is None else ' (' + problem + ')'}; "
          f"logs in {log_dir}; {data['elapsed_s']:.0f} s", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
