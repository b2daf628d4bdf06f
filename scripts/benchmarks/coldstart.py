"""Cold start to first token at Lambda's CPU share, against a floor measured in the same run.

    scripts/bench coldstart [--memory 512 ...] [--runs 5] [--baseline REF] [--no-ws] [--out docs/benchmarks]

For each memory size, every environment is a process of the local stack (``scripts/devstack``)
held by a cgroup to Lambda's CPU share for that size (memory / 1,769 MB of one vCPU), with the
function's template variables, its own IAM identity, moto's DynamoDB and an API key (the
template's default ``AuthMode``), and the openai provider against the bench upstream
(``upstream.py``, its own process, not held).

HTTP function: a request to the local Function URL (``frontdoor.py``) starts a new environment
exactly as ``functions/http/run.sh`` starts it, ready at the first answer of its readiness check
(``/health``, polled every 10 ms as the Web Adapter does). Timed: spawn -> ready (init),
ready -> first SSE token of that first request, spawn -> first token; the environment's
CPU-seconds (its cgroup's ``cpuacct.usage``) at each point; and a second request in the same,
now warm, environment (what the first request should cost). Targets, one after another in
each run:

    floor       a bare Starlette + httpx relay (floors.py), same run.sh, same share
    tokenrelay  functions/http as deployed
    before      with --baseline REF: the same function from that commit's tree (``git archive``:
                its functions/ and layers/core), so a change is measured before and after in one run

WebSocket worker (the local API Gateway, ``gateway.py``, with every function in its own
environments): a chat starts a new worker environment (the previous one is stopped first;
``$connect`` and ``chat`` stay warm). Timed from the worker's invocation: spawn -> ready,
ready -> its first ``@connections`` post (the ``start`` message) and its first token. The
floor worker (floors.py) and the baseline's worker are invoked the same way for the same connection.

Prints Markdown and writes ``coldstart.json`` (and with ``--out``, ``coldstart.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run as a script: scripts.* from the repo

from scripts.benchmarks import lambda_stack as ls  # noqa: E402  (puts layers/core on sys.path)
from scripts.benchmarks.floors import code_dir  # noqa: E402
from scripts.benchmarks.gateway_overhead import Proc, configure_upstream, free_port, machine  # noqa: E402
from scripts.devstack.environments import TEST_LAYER  # noqa: E402

TOKEN = re.compile(rb"T(\d{6,}) ")
TOKENS = 20
SINK = ls.LogMeter(keep_lines=True)  # what the environments print: shown when one fails


def failed(what: str) -> str:
    tail = "\n".join(f"    [{name}] {line}" for _, name, line in SINK.timed[-15:])
    return f"{what}; the environments' last lines:\n{tail}"


@dataclass
class Sample:
    target: str
    memory_mb: int
    spawn_ready_s: float
    ready_first_s: float  # ready -> first token (the first request's own work)
    spawn_first_s: float
    cpu_ready_s: float  # CPU-seconds from spawn to ready
    cpu_first_s: float  # CPU-seconds from spawn to first token
    warm_first_s: float | None = None  # a second request in the same environment: request -> first token
    first_post_s: float | None = None  # WebSocket: ready -> the first @connections post


async def read_sse(url: str, body: dict[str, Any], headers: dict[str, str], on_first: Any) -> float:
    """POST ``body`` and read the SSE answer; calls ``on_first()`` at the first token; its time."""
    import httpx

    first = 0.0
    async with httpx.AsyncClient(timeout=httpx.Timeout(120, connect=120)) as client:
        async with client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(failed(f"{url}: {response.status_code} {(await response.aread())[:200]!r}"))
            async for chunk in response.aiter_raw():
                if not first and TOKEN.search(chunk):
                    first = time.monotonic()
                    on_first()
    if not first:
        raise RuntimeError(f"{url}: no token in the answer")
    return first


def http_sample(target: str, directory: Path, env: dict[str, str], memory_mb: int, token: str) -> Sample:
    from scripts.devstack.frontdoor import FrontDoor
    from tests.fakes.servers import serve

    function_env = {**env, **ls.lambda_vars(f"tokenrelay-{target}", memory_mb)}
    if target == "before":  # the baseline tree's core, found before this tree's (as a test layer is)
        function_env[TEST_LAYER] = str(directory.parents[1] / "layers" / "core")
    front = FrontDoor(function_env, code_dir=directory, name=target, sink=SINK, max_envs=1,
                      linger_s=0.0, memory_mb=memory_mb, cpu_share=True)  # fmt: skip
    starts = ls.Starts(front.pool)
    cpu_first: list[float] = []
    body, headers = {"message": "bench", "max_tokens": TOKENS}, {"authorization": f"Bearer {token}"}

    def note() -> None:
        env_ = starts.records[0].env
        cpu_first.append(env_.cpu.usage_s() if env_.cpu else 0.0)

    with serve(front, startup_timeout_s=30) as url:
        first = asyncio.run(read_sse(f"{url}/chat/stream", body, headers, note))
        start = starts.records[0]
        sent = time.monotonic()
        warm = asyncio.run(read_sse(f"{url}/chat/stream", body, headers, lambda: None)) - sent
    return Sample(target, memory_mb, start.ready - start.spawned, first - start.ready, first - start.spawned,
                  start.cpu_at_ready, cpu_first[0], warm)  # fmt: skip


class WsBench:
    """The local WebSocket API at one memory size; the worker (and variants) timed, with the floor worker."""

    def __init__(
        self, aws: ls.LocalAws, env: dict[str, str], template: Path, identities: Any, dirs: dict[str, Path]
    ) -> None:
        from scripts.devstack.gateway import Gateway, GatewayConfig
        from scripts.devstack.identities import Authorizer, Identity
        from scripts.devstack.local_functions import ProcessFunction
        from scripts.devstack.stack import websocket_functions

        self.port = free_port()
        here = f"http://127.0.0.1:{self.port}"
        routes, functions = websocket_functions(identities, env, here, lambdas=ls.BENCH_LAMBDAS, sink=SINK,
                                                template=template)  # fmt: skip
        worker = next(iter(functions.values()))
        self.name, spec = worker.spec.name, worker.spec
        for function in {*routes.values(), *functions.values()}:
            function.env.update(ls.lambda_vars(function.spec.name, spec.memory_mb))
        self.variants: dict[str, Any] = {"tokenrelay worker": worker}
        for target, (directory, handler) in {"floor worker": (dirs["worker-floor"], "floor_worker.handler"),
                                             "before worker": (dirs.get("worker-before"), spec.handler)}.items():  # fmt: skip
            if directory is not None:
                variant = replace(spec, code_dir=directory, handler=handler, logical_id=target.replace(" ", "-"))
                variant_env = dict(worker.env)
                if target == "before worker":
                    variant_env[TEST_LAYER] = str(directory.parents[1] / "layers" / "core")  # found first
                self.variants[target] = ProcessFunction(variant, variant_env, sink=SINK, cpu_share=True)
        self.starts = {target: ls.Starts(f.pool) for target, f in self.variants.items()}
        self.gateway_loop: asyncio.AbstractEventLoop | None = None  # where invoked workers' environments live
        for function in self.variants.values():
            self._note_loop(function)
        config = GatewayConfig.from_env(port=self.port)
        config.route_keys = tuple(k for k in routes if not k.startswith("$"))
        config.worker_function_name = self.name
        admin = Identity("admin", "admin", aws.admin["access_key_id"], aws.admin["secret_access_key"], ())
        self.gateway = Gateway(config, routes=routes, functions=functions,
                               authorizer=Authorizer([*identities.values(), admin]))  # fmt: skip

    def _note_loop(self, function: Any) -> None:
        invoke = function.invoke

        async def noted(event: dict[str, Any], timeout_s: float | None = None) -> Any:
            self.gateway_loop = asyncio.get_running_loop()
            return await invoke(event, timeout_s)

        function.invoke = noted

    async def _in_gateway(self, coro: Any) -> Any:
        if self.gateway_loop is None:
            coro.close()
            return None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.gateway_loop))

    async def stream(self, url: str, token: str, target: str) -> Sample:
        import websockets

        await self._in_gateway(self.gateway.wait_idle(30))
        for function in self.variants.values():  # the next invocation starts a new environment
            await self._in_gateway(function.pool.close())
        floor = target == "floor worker"
        if not floor:
            self.gateway.lambdas.functions[self.name] = self.variants[target]
        starts = self.starts[target]
        times: dict[str, float] = {}
        cpu: list[float] = []
        async with websockets.connect(f"{url}/?access_token={token}", open_timeout=60) as ws:
            if floor:
                connection = next(iter(self.gateway.connections))
                event = {"connection_id": connection, "endpoint": f"http://127.0.0.1:{self.port}/local",
                         "max_tokens": TOKENS}  # fmt: skip
                running = asyncio.ensure_future(self.variants[target].invoke(event, 60))
            else:
                await ws.send(json.dumps({"type": "chat", "message": "bench", "max_tokens": TOKENS}))
            async with asyncio.timeout(120):
                async for raw in ws:
                    now, data = time.monotonic(), raw.encode() if isinstance(raw, str) else raw
                    times.setdefault("post", now)
                    if "token" not in times and TOKEN.search(data):
                        times["token"] = now
                        env_ = starts.records[-1].env
                        cpu.append(env_.cpu.usage_s() if env_.cpu else 0.0)
                    if b'"done"' in data or b'"error"' in data:
                        break
            if floor:
                await running
        if "token" not in times:
            raise RuntimeError(failed(f"{target}: no token"))
        start = starts.records[-1]
        return Sample(target, start.env.cpu.memory_mb if start.env.cpu else 0, start.ready - start.spawned,
                      times["token"] - start.ready, times["token"] - start.spawned, start.cpu_at_ready, cpu[0],
                      first_post_s=times["post"] - start.ready)  # fmt: skip


def ws_samples(bench: WsBench, token: str, runs: int) -> list[Sample]:
    from scripts.devstack.gateway import serving

    out: list[Sample] = []

    async def all_runs(url: str) -> None:
        try:
            await bench.stream(url, token, "tokenrelay worker")  # $connect and chat warm; discarded
            for _ in range(runs):
                for target in bench.variants:
                    out.append(await bench.stream(url, token, target))
                    print(f"coldstart: {fmt_sample(out[-1])}", file=sys.stderr)
        finally:
            await bench._in_gateway(bench.gateway.wait_idle(30))
            bench.gateway.lambdas.functions[bench.name] = bench.variants["tokenrelay worker"]
            for target, function in bench.variants.items():
                if target != "tokenrelay worker":
                    await bench._in_gateway(function.close())

    with serving(bench.gateway, startup_timeout_s=30) as url:
        asyncio.run(all_runs(url))
    return out


def fmt_sample(s: Sample) -> str:
    return (f"{s.memory_mb} MB {s.target:18} spawn→ready {s.spawn_ready_s:5.2f} s  ready→token {s.ready_first_s:5.2f} s"
            f"  spawn→token {s.spawn_first_s:5.2f} s  CPU {s.cpu_first_s:5.2f} s")  # fmt: skip


def baseline_tree(ref: str, parent: Path) -> Path:
    """``ref``'s tree (its committed files), written under ``parent``: what ``before`` runs."""
    import subprocess

    out = parent / "baseline"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(ls.ROOT), "archive", ref, "functions", "layers/core"],
                             check=True, capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def run(memories: list[int], runs: int, baseline: str, ws: bool) -> list[Sample]:
    samples: list[Sample] = []
    upstream_port = free_port()
    with tempfile.TemporaryDirectory(prefix="tokenrelay-coldstart-") as tmp_dir:
        tmp = Path(tmp_dir)
        upstream = Proc("upstream", [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)],
                        {**os.environ}, tmp)  # fmt: skip
        try:
            upstream.wait_http(f"http://127.0.0.1:{upstream_port}/health")
            configure_upstream(upstream_port, TOKENS, 5.0)
            with ls.local_aws() as aws:
                env = ls.stack_env(aws, upstream_port)
                token = ""
                dirs = {"floor": code_dir("floor", tmp), "tokenrelay": ls.ROOT / "functions" / "http"}
                before = baseline_tree(baseline, tmp) if baseline else None
                if before is not None:
                    dirs["before"] = before / "functions" / "http"
                for n, memory in enumerate(memories):
                    template = ls.template_for_memory(memory, tmp)
                    identities = ls.identities_for(aws, env, template, prefix=f"cold{n}-")
                    token = token or ls.create_key(aws)  # the tables exist now
                    from scripts.devstack.stack import front_door

                    function_env = front_door(identities, env, template=template).env
                    for _ in range(runs):
                        for target, directory in dirs.items():
                            samples.append(http_sample(target, directory, function_env, memory, token))
                            print(f"coldstart: {fmt_sample(samples[-1])}", file=sys.stderr)
                    if ws:
                        ws_dirs = {"worker-floor": code_dir("worker-floor", tmp)}
                        if before is not None:
                            ws_dirs["worker-before"] = before / "functions" / "websocket"
                        bench = WsBench(aws, env, template, identities, ws_dirs)
                        samples += ws_samples(bench, token, runs)
        finally:
            upstream.stop()
    return samples


def median(values: list[float | None]) -> float:
    return statistics.median(v for v in values if v is not None)


def markdown(samples: list[Sample]) -> str:
    out = [
        "| memory (vCPU) | target | spawn → ready | CPU-s | ready → first token | CPU-s | spawn → first token "
        "| CPU-s | ratio to floor | warm request → token | ready → first @connections post |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for memory in dict.fromkeys(s.memory_mb for s in samples):
        groups: dict[str, list[Sample]] = {}
        for s in samples:
            if s.memory_mb == memory:
                groups.setdefault(s.target, []).append(s)
        floors = {"http": groups.get("floor"), "ws": groups.get("floor worker")}
        for target, group in groups.items():
            floor = floors["ws" if "worker" in target else "http"] or group
            spawn_first = median([s.spawn_first_s for s in group])
            ready_first = median([s.ready_first_s for s in group])
            ratio = f"{spawn_first / median([s.spawn_first_s for s in floor]):.1f}× (ready → token " \
                    f"{ready_first / median([s.ready_first_s for s in floor]):.1f}×)"  # fmt: skip
            warm = [s.warm_first_s for s in group if s.warm_first_s is not None]
            cpu_ready = median([s.cpu_ready_s for s in group])
            cpu_first = median([s.cpu_first_s for s in group])
            posts = [s.first_post_s for s in group if s.first_post_s is not None]
            out.append(
                f"| {memory} MB ({memory / 1769:.2f}) | {target} | {median([s.spawn_ready_s for s in group]):.2f} s "
                f"| {cpu_ready:.2f} | {ready_first:.2f} s | {cpu_first - cpu_ready:.2f} | {spawn_first:.2f} s "
                f"| {cpu_first:.2f} | {ratio} | {f'{median(list(warm)) * 1000:.0f} ms' if warm else '–'} "
                f"| {f'{median(list(posts)):.2f} s' if posts else '–'} |"
            )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", type=int, action="append", help="MB (repeat; default 256, 512, 1024)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", default="", help="also run this commit's functions (target 'before')")
    parser.add_argument("--no-ws", action="store_true", help="skip the WebSocket worker")
    parser.add_argument("--out", default="", help="also write coldstart.md and coldstart.json here")
    parser.add_argument("--report", default="", help="only print the tables of an earlier run's coldstart.json")
    args = parser.parse_args(argv)
    if args.report:
        data = json.loads(Path(args.report).read_text())
        print(markdown([Sample(**s) for s in data["samples"]]))
        return 0
    from scripts.devstack.cpu_share import available

    if not available():
        sys.exit("coldstart: needs root and cgroup v1's cpu controller (/sys/fs/cgroup/cpu) for Lambda's CPU share")
    ls.quiet_logs()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    info = machine()
    samples = run(args.memory or [256, 512, 1024], args.runs, args.baseline, not args.no_ws)
    table = markdown(samples)
    head = (f"Run {started} on {info['cpu']}, {info['cores']} cores, Python {info['python']} (load average at start "
            f"{info['loadavg_at_start']:.2f}); medians of {args.runs} runs.\n\n")  # fmt: skip
    print("\n" + head + table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "coldstart.md").write_text(head + table)
        data = {"started": started, "machine": info, "samples": [asdict(s) for s in samples]}
        (out / "coldstart.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
