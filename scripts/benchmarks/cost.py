"""The AWS bill per 1,000 streams on each path, counted in the local stack (issue 19, items 4 and 5).

    scripts/bench cost [--streams 20] [--concurrency 10] [--leave-share 0.2] [--windows 0,25,50,100,200,500,50-200]
                       [--paths sse,httpapi,websocket] [--out docs/benchmarks]

Each path streams 500 output tokens at 100 tokens/s (the bench upstream, ``upstream.py``) through
the local stack (``cost_paths.py``: every function in its own cgroup-held environments, the
template's variables, IAM, an API key), first a warm-up round (cold starts, reported apart), then
``--streams`` streams, ``--concurrency`` at a time; ``--leave-share`` of the clients leave after
100 tokens. What it counted becomes a bill at us-east-1 list prices (``cost_model.py``, sources in
docs/cost.md); ``cost_report.py`` prints it, with the tokens generated after clients left.

Then the WebSocket flush window, the cost lever of per-message billing: the same streams (nobody
leaving) at each of ``--windows``: a fixed window (``WS_FLUSH_MS`` = ``WS_FLUSH_MAX_MS``; 0: one post
per token, ``WS_COALESCE=0``) or an adaptive one, ``START-MAX`` (the template's default, 50-200: 50 ms
just after the first text, widening to 200 ms over the first second), each window's cost against its
token latency (upstream write -> client read).

Writes ``cost.md``, ``cost.json`` and ``cost.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run as a script: scripts.* from the repo

from scripts.benchmarks import cost_model, cost_report  # noqa: E402
from scripts.benchmarks import cost_paths as cp  # noqa: E402
from scripts.benchmarks import lambda_stack as ls  # noqa: E402
from scripts.benchmarks.gateway_overhead import Proc, configure_upstream, free_port, machine  # noqa: E402

TOKENS, INTERVAL_MS, LEAVE_AFTER = 500, 10.0, 100
DEPLOYED_WINDOW = (50.0, 200.0)  # template.yaml: WebSocketFlushMs, WebSocketFlushMaxMs


def parse_window(spec: str) -> tuple[float, float]:
    """``"50"``: a fixed 50 ms window; ``"50-200"``: 50 ms after the first text, widening to 200."""
    start, _, widest = spec.strip().partition("-")
    return float(start), float(widest or start)


class Bench:
    def __init__(self, args: argparse.Namespace, aws: ls.LocalAws, port: int, meter: Path) -> None:
        self.args, self.aws, self.port, self.meter = args, aws, port, meter
        self.env = ls.stack_env(aws, port)
        self.identities = ls.identities_for(aws, self.env, ls.ROOT / "template.yaml", prefix="cost-")
        self.token = ls.create_key(aws)
        self.sink = ls.LogMeter(keep_lines=True)
        self.current: cp.Counts | None = None
        self.leave = cp.leavers(args.streams, args.leave_share)

    def counts(self) -> cp.Counts:
        assert self.current is not None
        return self.current

    async def measured(self, counts: cp.Counts, clients: Any, pools: list[Any], gateway: Any = None) -> cp.Counts:
        """Run ``clients(counts, leave, n)`` once to warm up (discarded), then for real, counting."""
        self.current = cp.Counts(counts.path, "warm-up")
        await clients(self.current, set(), self.args.concurrency)
        await cp.settle(self.port)
        await asyncio.sleep(1.0)  # $disconnect, and the invocations' last writes after the last token
        await cp.quiet(pools)
        warm = self.current
        self.current = counts
        before = cp.Snapshot(self.meter, self.sink, self.port, gateway)
        await clients(counts, self.leave if counts.window_ms is None or counts.label.endswith("(as deployed)") else set(),
                      self.args.streams)  # fmt: skip
        await before.finish(counts)
        await asyncio.sleep(1.0)
        await cp.quiet(pools)
        counts.inits = warm.inits
        print(f"cost: {counts.label}: {counts.streams} streams, {counts.failures} failed", file=sys.stderr)
        return counts

    def sse(self, variant: dict[str, str] | None = None) -> cp.Counts:
        """The Function URL path; ``variant``: variables set on top of the template's (a before/after)."""
        from scripts.devstack.stack import front_door
        from tests.fakes.servers import serve

        front = front_door(self.identities, self.env, lambdas=ls.BENCH_LAMBDAS, sink=self.sink)
        front.env.update(ls.lambda_vars("tokenrelay-stream", 512))
        front.env.update(variant or {})
        starts = cp.timed_leases(front.pool, "StreamFunction", self.counts)
        label = "Function URL, SSE" + "".join(f", {k}={v}" for k, v in (variant or {}).items())
        counts = cp.Counts("sse", label)
        with serve(front, startup_timeout_s=30) as url:

            async def clients(c: cp.Counts, leave: set[int], streams: int) -> None:
                done = await cp.sse_clients(f"{url}/chat/stream", self.token, c, streams, self.args.concurrency,
                                            TOKENS, leave, LEAVE_AFTER)  # fmt: skip
                c.inits["StreamFunction"] = [s.ready - s.spawned for s in starts.records]
                self.clients = done

            asyncio.run(self.measured(counts, clients, []))  # (its lingering environments are not busy)
        durations = cp.emf_durations([line for _, _, line in self.sink.timed])
        counts.extra_s = sum(  # environments go on with a stream its client left (the resume grace)
            max(0.0, durations.get(c.stream_id, 0.0) - (c.left - c.started)) for c in self.clients if c.left
        )
        return counts

    def httpapi(self) -> cp.Counts:
        from scripts.devstack.httpapi import HttpApi
        from scripts.devstack.httpapi_config import cors_of
        from scripts.devstack.httpapi_routes import routes_from_template
        from scripts.devstack.local_functions import ProcessFunction, template_functions
        from scripts.devstack.stack import function_env, local_names
        from scripts.devstack.tables import load_template
        from tests.fakes.servers import serve

        template = load_template(ls.ROOT / "template.yaml")
        spec = template_functions(template, local_names(self.env))["ApiFunction"]
        env = {**function_env(spec, self.identities["ApiFunction"], self.env), **ls.lambda_vars(spec.name, 512)}
        target = ProcessFunction(spec, env, sink=self.sink, max_envs=64, queue_timeout_s=120, cpu_share=True)
        api_starts = cp.timed_leases(target.pool, "ApiFunction", self.counts)
        api = HttpApi(routes_from_template(template, "HttpApi"), {"ApiFunction": target},
                      cors=cors_of(template, "HttpApi"))  # fmt: skip
        counts = cp.Counts("httpapi", "HTTP API, buffered")
        with serve(api, startup_timeout_s=30) as url:

            async def clients(c: cp.Counts, leave: set[int], streams: int) -> None:
                await cp.httpapi_clients(f"{url}/chat/stream", self.token, c, streams, self.args.concurrency,
                                         TOKENS, leave, LEAVE_AFTER * INTERVAL_MS / 1000)  # fmt: skip
                c.inits["ApiFunction"] = [s.ready - s.spawned for s in api_starts.records]

            asyncio.run(self.measured(counts, clients, [target.pool]))
        return counts

    def websocket(self, windows: list[tuple[float, float]]) -> list[cp.Counts]:
        from scripts.benchmarks.coldstart import WsBench
        from scripts.benchmarks.floors import code_dir
        from scripts.devstack.gateway import serving

        with tempfile.TemporaryDirectory() as tmp:
            bench = WsBench(self.aws, self.env, ls.ROOT / "template.yaml", self.identities,
                            {"worker-floor": code_dir("worker-floor", Path(tmp))})  # fmt: skip
        del bench.variants["floor worker"]
        functions = {*bench.gateway.routes.values(), *bench.gateway.lambdas.functions.values()}
        starts = {}
        for function in functions:
            function.sink = self.sink
            starts[function.spec.logical_id] = cp.timed_leases(function.pool, function.spec.logical_id, self.counts)
        worker = bench.variants["tokenrelay worker"]
        runs: list[cp.Counts] = []
        with serving(bench.gateway, startup_timeout_s=30) as url:

            async def clients(c: cp.Counts, leave: set[int], streams: int) -> None:
                await cp.ws_clients(url, self.token, c, streams, self.args.concurrency, TOKENS, leave, LEAVE_AFTER)
                for name, started in starts.items():
                    c.inits[name] = [s.ready - s.spawned for s in started.records]

            async def all_windows() -> None:
                for window, widest in windows:
                    await bench._in_gateway(bench.gateway.wait_idle(60))
                    await bench._in_gateway(worker.pool.close())  # new environments read the window
                    worker.env.update(WS_FLUSH_MS=str(window or 50), WS_FLUSH_MAX_MS=str(widest or 50),
                                      WS_COALESCE="0" if window == 0 else "1")  # fmt: skip
                    deployed = (window, widest) == DEPLOYED_WINDOW
                    name = f"{window:g} ms" if widest == window else f"{window:g}-{widest:g} ms"
                    label = "WebSocket" + (" (as deployed)" if deployed else f", {name} window")
                    counts = cp.Counts("websocket", label, window_ms=window,
                                       window_max_ms=widest if widest != window else None)  # fmt: skip
                    pools = [f.pool for f in functions]
                    runs.append(await self.measured(counts, clients, pools, bench.gateway))

            asyncio.run(all_windows())
        return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--leave-share", type=float, default=0.2)
    parser.add_argument("--windows", default="0,25,50,100,200,500,50-200",
                        help="WebSocket flush windows, ms (0: per token; START-MAX: adaptive)")  # fmt: skip
    parser.add_argument("--paths", default="sse,httpapi,websocket")
    parser.add_argument("--sse-variant", action="append", default=[],
                        help="also the SSE path with these variables, NAME=VALUE[,...] (repeat): a before/after")  # fmt: skip
    parser.add_argument("--out", default=str(ls.ROOT / "docs" / "benchmarks"))
    args = parser.parse_args(argv)
    windows = [parse_window(w) for w in args.windows.split(",") if w.strip()]
    if DEPLOYED_WINDOW not in windows:
        windows.append(DEPLOYED_WINDOW)  # the template's default: the WebSocket row of the bill
    ls.quiet_logs()
    started, info = time.strftime("%Y-%m-%d %H:%M:%S %Z"), machine()
    port = free_port()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tokenrelay-cost-") as tmp_dir:
        tmp = Path(tmp_dir)
        upstream = Proc(
            "upstream", [sys.executable, str(HERE / "upstream.py"), "--port", str(port)], dict(os.environ), tmp
        )
        try:
            upstream.wait_http(f"http://127.0.0.1:{port}/health")
            configure_upstream(port, TOKENS, INTERVAL_MS)
            meter = tmp / "dynamodb.jsonl"
            with ls.local_aws(meter) as aws:
                bench = Bench(args, aws, port, meter)
                counts: list[cp.Counts] = []
                if "sse" in args.paths:
                    counts.append(bench.sse())
                    for variant in args.sse_variant:
                        counts.append(bench.sse(dict(kv.split("=", 1) for kv in variant.split(","))))
                if "httpapi" in args.paths:
                    counts.append(bench.httpapi())
                if "websocket" in args.paths:
                    counts += bench.websocket(windows)
                rows = [cost_report.summary_row(c) for c in counts]
        finally:
            upstream.stop()
    head = (f"Run {started} on {info['cpu']}, {info['cores']} cores (load average at start {info['loadavg_at_start']:.2f}); "
            f"{args.streams} streams per path, {args.concurrency} at a time, {TOKENS} tokens at {1000 / INTERVAL_MS:g} tokens/s, "
            f"{args.leave_share:.0%} of clients leaving after {LEAVE_AFTER} tokens; prices of {cost_model.PRICES_CHECKED}.\n\n")  # fmt: skip
    table = cost_report.markdown(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cost.md").write_text(head + table)
    (out / "cost.json").write_text(
        json.dumps({"started": started, "machine": info, "rows": rows}, indent=1, default=str) + "\n"
    )
    problem = cost_report.chart(rows, out / "cost.png")
    print("\n" + head + table)
    print(
        f"cost: wrote {out}/cost.md, cost.json{', cost.png' if problem is None else ' (' + problem + ')'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
