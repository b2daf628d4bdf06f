"""Check a running TokenRelay end to end: one line per check, exit 1 if any fails.

    scripts/smoke --stack NAME [--region R] --key trk_...   a deployed stack (its CloudFormation outputs)
    scripts/smoke --local [--key trk_...]                   scripts/dev (HTTP_PORT, WS_PORT, HTTPAPI_PORT)

Checks, in order: health; an SSE stream whose tokens arrive one by one; a cancel sent on a
second connection, which ends the stream within 3 s with the record ``cancelled`` (a second
cancel answers 409 with the final status); a resume with ``Last-Event-ID`` after a dropped
connection; the HTTP API path (buffered stream, resume, API Gateway's 404); a WebSocket chat;
a WebSocket cancel; the OpenAI SDK on ``/v1``; and that each stream's metrics arrived
(CloudWatch for a stack, the EMF lines in ``.dev/*.log`` locally).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable

import httpx

from . import checks_http, checks_openai, checks_ws, metrics, target
from .run import CheckFailed, Run

Check = Callable[[Run], Awaitable[str]]
CHECK_TIMEOUT_S = 120.0


def checks(args: argparse.Namespace, started: float) -> dict[str, Check]:
    async def arrived(run: Run) -> str:
        if run.target.log_dir is not None:
            return await metrics.local(run, args.metrics_wait or metrics.LOCAL_WAIT_S)
        return await metrics.cloudwatch(run, started, args.metrics_wait or 300.0)

    return {
        "health": checks_http.health,
        "sse": checks_http.sse_stream,
        "cancel": checks_http.cancel,
        "resume": checks_http.resume,
        "http-api": checks_http.http_api,
        "ws-chat": checks_ws.ws_chat,
        "ws-cancel": checks_ws.ws_cancel,
        "openai": checks_openai.openai_sdk,
        "metrics": arrived,
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/smoke", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", metavar="NAME", help="a deployed stack: its outputs name the endpoints")
    where.add_argument("--local", action="store_true", help="scripts/dev on this machine")
    parser.add_argument("--region", help="the stack's region (default: your AWS configuration's)")
    parser.add_argument(
        "--key", default=os.environ.get("TOKENRELAY_KEY"), help="an API key, trk_... (or TOKENRELAY_KEY)"
    )
    parser.add_argument("--only", help="comma-separated checks to run (default: all)")
    parser.add_argument("--metrics-wait", type=float, help="seconds to wait for metrics (stack: 300, local: 15)")
    return parser.parse_args(argv)


async def main(argv: list[str]) -> int:
    args = parse(argv)
    started = time.time()
    where = target.local(key=args.key) if args.local else target.stack(args.stack, args.region, args.key)
    everything = checks(args, started)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(everything)
    unknown = set(names) - set(everything)
    if unknown:
        print(f"smoke: no check {', '.join(sorted(unknown))} (checks: {', '.join(everything)})", file=sys.stderr)
        return 2
    print(f"smoke: {where.name}: {where.function_url}", flush=True)
    failed = 0
    async with httpx.AsyncClient(headers=where.headers(), timeout=httpx.Timeout(60, connect=10)) as http:
        run = Run(where, http)
        if "health" not in names:  # the others need the provider it names
            await _quiet(checks_http.health(run))
        for name in names:
            began = time.monotonic()
            try:
                detail, ok = await asyncio.wait_for(everything[name](run), CHECK_TIMEOUT_S), True
            except CheckFailed as exc:
                detail, ok = str(exc), False
            except TimeoutError:
                detail, ok = f"no answer within {CHECK_TIMEOUT_S:.0f} s", False
            except Exception as exc:  # a refused connection, a protocol error: say which, go on
                detail, ok = f"{type(exc).__name__}: {exc}", False
            failed += not ok
            print(f"{'PASS' if ok else 'FAIL'}  {name:<9} {time.monotonic() - began:6.2f} s  {detail}", flush=True)
    total = time.time() - started
    print(f"smoke: {len(names) - failed} of {len(names)} checks passed in {total:.1f} s", flush=True)
    return 1 if failed else 0


async def _quiet(check: Awaitable[str]) -> None:
    try:
        await check
    except Exception:  # health is reported when it is one of the checks
        pass


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
