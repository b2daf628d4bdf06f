"""CPU per AWS call from inside a function, as the product makes it and as a leaner client would.

The worker and the app spend most of their per-second CPU on AWS calls (``@connections`` posts,
DynamoDB polls and writes), each a boto3 call run in a thread. This measures the caller's own
CPU per call (``time.thread_time`` of the calling thread: the server answering runs in another
thread, its CPU is not counted) against a local HTTP server that answers like the service:

    boto3, sync          client.post_to_connection(...) / client.get_item(...): botocore's whole
                         path (events, SigV4, urllib3, parsing)
    boto3, to_thread     the same through asyncio.to_thread, as the product calls it (the thread
                         hand-off counted too: process CPU of the loop thread and the worker)
    signed aiohttp       a lean prototype: botocore's SigV4Auth on an AWSRequest, sent on the event
                         loop by a kept-alive aiohttp session (no thread, no botocore pipeline)

    .venv/bin/python scripts/benchmarks/call_cost.py [--calls 500]

At full speed (no cgroup); at a memory size's CPU share the wall time scales, the CPU does not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CREDS = {"aws_access_key_id": "AKIDBENCH", "aws_secret_access_key": "bench", "region_name": "us-east-1"}


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b"{}"
        self.send_response(200)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def serve() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def per_call(fn: Callable[[], Any], calls: int, clock: Callable[[], float] = time.thread_time) -> float:
    for _ in range(20):  # warm: connection, caches
        fn()
    t0 = clock()
    for _ in range(calls):
        fn()
    return (clock() - t0) / calls


def measure(calls: int) -> dict[str, float]:
    import aiohttp
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    server, url = serve()
    data = json.dumps({"type": "text", "content": "T1234567 " * 5}).encode()
    api = boto3.client("apigatewaymanagementapi", endpoint_url=url, **CREDS)
    ddb = boto3.client("dynamodb", endpoint_url=url, **CREDS)
    key = {"stream_id": {"S": "3f0c6f3e-8f0b-4b8e-9d1e-3c2a1b0c9d8e"}}
    out = {
        "post, boto3 sync": per_call(lambda: api.post_to_connection(ConnectionId="abc123=", Data=data), calls),
        "GetItem, boto3 sync": per_call(lambda: ddb.get_item(TableName="tokenrelay-streams", Key=key), calls),
    }
    credentials = Credentials("AKIDBENCH", "bench")

    async def threaded() -> float:
        async def one() -> None:
            await asyncio.to_thread(api.post_to_connection, ConnectionId="abc123=", Data=data)

        for _ in range(20):
            await one()
        t0 = time.process_time()  # both threads: the loop's and the pool's
        for _ in range(calls):
            await one()
        return (time.process_time() - t0) / calls

    async def lean() -> float:
        async with aiohttp.ClientSession() as session:

            async def one() -> None:
                request = AWSRequest("POST", f"{url}/@connections/abc123%3D", data=data)
                SigV4Auth(credentials, "execute-api", "us-east-1").add_auth(request)
                async with session.post(request.url, data=data, headers=dict(request.headers.items())) as answer:
                    await answer.read()

            for _ in range(20):
                await one()
            t0 = time.thread_time()
            for _ in range(calls):
                await one()
            return (time.thread_time() - t0) / calls

    out["post, boto3 via asyncio.to_thread (as the product)"] = asyncio.run(threaded())
    out["post, signed aiohttp on the loop (prototype)"] = asyncio.run(lean())
    server.shutdown()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args(argv)
    print("| call | CPU µs per call |\n|---|---|")
    for name, seconds in measure(args.calls).items():
        print(f"| {name} | {seconds * 1e6:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
