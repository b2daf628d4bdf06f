"""Where the cold path's time goes, at Lambda's CPU share: imports at init and at the first request.

    scripts/bench coldpath [--memory 512] [--runs 3]

1. The HTTP function and the WebSocket worker, each started cold as ``scripts/bench coldstart``
   starts them (the local stack's environments, cgroup-held), with ``PYTHONPROFILEIMPORTTIME=1``
   (``-X importtime``). Every import line the environment prints is split by when it arrived:
   before the environment was ready (init) or after (the first request, which should import
   nothing). Grouped by top-level package (self time, so each module counts once).
2. Each heavy dependency imported alone in a fresh interpreter held to the same CPU share: what
   importing it costs by itself (shared dependencies included), the most that dropping it from
   the import graph could save.

Import times are wall-clock under the share (``-X importtime`` adds its own few percent).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run as a script: scripts.* from the repo

from scripts.benchmarks import lambda_stack as ls  # noqa: E402

_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")
HEAVY = (  # what the functions import, each alone (the SDKs as the providers import them)
    "fastapi",
    "pydantic",
    "starlette",
    "uvicorn",
    "mangum",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.metrics",
    "aws_lambda_powertools.tracing",
    "aws_xray_sdk.core",
    "boto3",
    "httpx",
    "aiohttp",
    "openai",
    "anthropic",
    "tokenrelay",
)


@dataclass(frozen=True)
class Import:
    self_us: int
    cumulative_us: int
    depth: int
    module: str

    @property
    def package(self) -> str:
        return self.module.split(".", 1)[0]


def parse(lines: Iterable[str]) -> list[Import]:
    """The ``-X importtime`` lines among ``lines``."""
    out = []
    for line in lines:
        match = _LINE.search(line)
        if match:
            self_us, cumulative, indent, module = match.groups()
            out.append(Import(int(self_us), int(cumulative), (len(indent) - 1) // 2, module))
    return out


def by_package(imports: Iterable[Import]) -> dict[str, int]:
    """Self time per top-level package, in µs, largest first."""
    totals: dict[str, int] = defaultdict(int)
    for entry in imports:
        totals[entry.package] += entry.self_us
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def top_level(imports: Iterable[Import]) -> list[Import]:
    """The imports the code itself asked for (depth 0), largest cumulative first."""
    return sorted((i for i in imports if i.depth == 0), key=lambda i: -i.cumulative_us)


def import_alone(module: str, memory_mb: int) -> tuple[float, float]:
    """(wall s, CPU s) of ``import module`` in a fresh interpreter at ``memory_mb``'s CPU share."""
    from scripts.devstack.cpu_share import CpuShare

    cpu = CpuShare.for_memory("import", memory_mb)
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=cpu.enter if cpu else None,
        )
        return float(done.stdout.strip()), cpu.usage_s() if cpu else 0.0
    finally:
        if cpu:
            cpu.release()


def table(title: str, init: list[Import], first: list[Import], limit: int = 14) -> str:
    a, b = by_package(init), by_package(first)
    names = list(dict.fromkeys([*list(a)[:limit], *list(b)[:limit]]))
    rows = [
        f"**{title}** (self time by top-level package, ms)",
        "",
        "| package | init | first request |",
        "|---|---|---|",
    ]
    for name in names:
        rows.append(f"| {name} | {a.get(name, 0) / 1000:.0f} | {b.get(name, 0) / 1000:.0f} |")
    total_a, total_b = sum(a.values()) / 1000, sum(b.values()) / 1000
    rows.append(f"| **all imports** | **{total_a:.0f}** | **{total_b:.0f}** |")
    asked = ", ".join(f"`{i.module}` {i.cumulative_us / 1000:.0f}" for i in top_level(first)[:8])
    rows += ["", f"Imported by the first request (cumulative ms): {asked or 'nothing'}.", ""]
    return "\n".join(rows)


def http_imports(env: dict[str, str], memory_mb: int, token: str) -> tuple[list[Import], list[Import], float]:
    from scripts.benchmarks.coldstart import SINK, TOKENS, read_sse
    from scripts.devstack.frontdoor import FrontDoor
    from tests.fakes.servers import serve

    function_env = {**env, **ls.lambda_vars("tokenrelay-stream", memory_mb), "PYTHONPROFILEIMPORTTIME": "1"}
    SINK.keep_lines = True
    front = FrontDoor(function_env, code_dir=ls.ROOT / "functions" / "http", name="imports", sink=SINK,
                      max_envs=1, linger_s=0.0, memory_mb=memory_mb, cpu_share=True)  # fmt: skip
    starts = ls.Starts(front.pool)
    body, headers = {"message": "bench", "max_tokens": TOKENS}, {"authorization": f"Bearer {token}"}
    with serve(front, startup_timeout_s=30) as url:
        first = asyncio.run(read_sse(f"{url}/chat/stream", body, headers, lambda: None))
    start = starts.records[0]
    name = start.env.name
    init = parse(SINK.before(start.ready, name))
    request = [i for i in parse(SINK.since(start.ready, name))]
    return init, request, first - start.ready


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3, help="fresh interpreters per package, median")
    args = parser.parse_args(argv)
    from scripts.benchmarks.coldstart import WsBench, ws_samples
    from scripts.benchmarks.floors import code_dir
    from scripts.benchmarks.gateway_overhead import Proc, configure_upstream, free_port

    ls.quiet_logs()
    out = []
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tokenrelay-coldpath-") as tmp_dir:
        tmp = Path(tmp_dir)
        upstream = Proc(
            "upstream", [sys.executable, str(HERE / "upstream.py"), "--port", str(port)], dict(os.environ), tmp
        )
        try:
            upstream.wait_http(f"http://127.0.0.1:{port}/health")
            configure_upstream(port, 20, 5.0)
            with ls.local_aws() as aws:
                env = ls.stack_env(aws, port)
                template = ls.template_for_memory(args.memory, tmp)
                identities = ls.identities_for(aws, env, template, prefix="path-")
                token = ls.create_key(aws)
                from scripts.devstack.stack import front_door

                init, first, ttft = http_imports(front_door(identities, env, template=template).env, args.memory, token)
                out.append(table(f"HTTP function at {args.memory} MB (ready → first token {ttft:.2f} s)", init, first))
                env_ws = {**env, "PYTHONPROFILEIMPORTTIME": "1"}
                bench = WsBench(aws, env_ws, template, identities, {"worker-floor": code_dir("worker-floor", tmp)})
                del bench.variants["floor worker"]
                sample = ws_samples(bench, token, 1)[-1]
                start = bench.starts["tokenrelay worker"].records[-1]
                from scripts.benchmarks.coldstart import SINK

                w_init = parse(SINK.before(start.ready, start.env.name))
                w_first = parse(SINK.since(start.ready, start.env.name))
                title = f"WebSocket worker at {args.memory} MB (ready → first token {sample.ready_first_s:.2f} s)"
                out.append(table(title, w_init, w_first))
        finally:
            upstream.stop()
    rows = [f"**Each imported alone** at {args.memory} MB's CPU share (median of {args.runs} fresh interpreters)", "",
            "| module | wall | CPU-s |", "|---|---|---|"]  # fmt: skip
    for module in HEAVY:
        runs = [import_alone(module, args.memory) for _ in range(args.runs)]
        rows.append(
            f"| `{module}` | {statistics.median(r[0] for r in runs):.2f} s | {statistics.median(r[1] for r in runs):.2f} |"
        )
        print(f"coldpath: {rows[-1]}", file=sys.stderr)
    out.append("\n".join(rows) + "\n")
    print(f"\nRun {time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n" + "\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
