"""The local Function URL: one request per execution environment of the HTTP function.

On AWS each request to the StreamFunction's URL is one invocation, served by an execution
environment that serves nothing else meanwhile; the Lambda Web Adapter in it passes the
request to uvicorn and streams the answer back. This front door does the same on
``HTTP_PORT``: each request takes an idle environment of the function's ``Pool``
(``environments.py``), or starts a new one, a real cold start: ``functions/http/run.sh``
in a child process, with the function's environment variables and its own IAM identity's
credentials, ready once its ``/health`` answers (``AWS_LWA_READINESS_CHECK_PATH``). The
request body is read whole (Function URLs buffer requests; over 6 MB is 413, as Lambda
answers); the response streams through as it arrives, byte for byte, never buffered.

- Concurrency: at most ``max_envs`` environments. A request beyond that waits up to
  ``queue_timeout_s`` for one to free up, then gets Lambda's throttle, 429
  ``TooManyRequestsException`` ``{"Message": "Rate Exceeded."}`` (AWS answers 429 at once:
  ``LAMBDA_QUEUE_S=0``).
- A client that leaves mid-response: the environment's connection is closed, so the app
  sees the disconnect; the environment may go on working (the resume grace period), so it
  is handed no other request until that work is done (its stream's record ended:
  ``abandoned.py``), and retires instead if that takes more than ``linger_s``.
- Environments idle for ``idle_timeout_s`` retire.
- Each request carries the invocation's context as the Web Adapter passes it:
  ``x-amzn-lambda-context`` (JSON; ``deadline`` in epoch ms: the invocation's start plus the
  function's ``Timeout``), replacing any such header from the client, so a stream ends before
  its invocation would, as on AWS (``functions/http/deadline.py``). An invocation still running
  at its ``Timeout`` is ended as Lambda ends it: the response stops, the environment is stopped
  (``Task timed out``) and the next request gets a new one.

    python scripts/devstack/frontdoor.py --port 8000 --identities .dev/identities.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: scripts.devstack.* from the repo
    sys.path.insert(0, str(ROOT))

from scripts.devstack.abandoned import StreamRecords  # noqa: E402
from scripts.devstack.environments import LogSink, Pool, ProcessEnv, Throttled, print_sink, python_path  # noqa: E402

MAX_REQUEST_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
# Lambda gives the init phase 10 s, then retries it within the first invocation, bounded by the
# function's Timeout (AWS docs, "Lambda execution environment lifecycle", Init phase): a slow
# start on a loaded machine is slow, not an error, until that Timeout.
READY_POLL_S = 0.01  # the Web Adapter retries its readiness check every 10 ms (its docs, "Readiness Check")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailer", "proxy-connection"}
CONTEXT_HEADER = b"x-amzn-lambda-context"
NOT_RELAYED = HOP_BY_HOP | {CONTEXT_HEADER.decode()}  # the adapter sets the context itself
NOT_FORWARDED = {"PORT", "AWS_LAMBDA_EXEC_WRAPPER"}  # the adapter's own: this front door is the adapter
log = logging.getLogger("tokenrelay.frontdoor")


class HttpEnv(ProcessEnv):
    """One environment of the HTTP function: ``run.sh`` (uvicorn serving ``app:app``)."""

    url = ""

    async def start(self, port: int, client: httpx.AsyncClient, timeout_s: float) -> None:
        self.url = f"http://127.0.0.1:{port}"
        await self.spawn()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if (await client.get(f"{self.url}/health", timeout=2)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if not self.alive or time.monotonic() > deadline:
                await self.stop(0)
                raise RuntimeError(f"{self.name} did not become ready; its last lines: {list(self.last_lines)[-10:]}")
            await asyncio.sleep(READY_POLL_S)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FrontDoor:
    """An ASGI app: the proxy in front of the HTTP function's environments."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        code_dir: Path = ROOT / "functions" / "http",
        name: str = "stream",
        sink: LogSink = print_sink,
        max_envs: int = 10,
        idle_timeout_s: float = 300.0,
        queue_timeout_s: float = 10.0,
        linger_s: float = 35.0,
        memory_mb: int = 512,
        cpu_share: bool = False,
        timeout_s: float = 900.0,
        function_name: str = "tokenrelay-stream",
    ) -> None:
        self.env = {k: v for k, v in env.items() if k not in NOT_FORWARDED}
        self.timeout_s, self.function_name = timeout_s, function_name
        self.records = StreamRecords(self.env)
        self.code_dir, self.sink, self.linger_s = code_dir, sink, linger_s
        self.memory_mb, self.cpu_share = memory_mb, cpu_share
        self.client: httpx.AsyncClient | None = None
        self.pool: Pool[HttpEnv] = Pool(
            name, self._start, max_envs=max_envs, idle_timeout_s=idle_timeout_s, queue_timeout_s=queue_timeout_s
        )

    def _client(self) -> httpx.AsyncClient:
        if self.client is None:
            # no keep-alive: uvicorn closes an idle connection after 5 s, which could race its reuse
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
            # the connect is to the environment's own uvicorn on loopback: slow only when the machine
            # is loaded, and never a reason to fail an invocation the Web Adapter would have served
            self.client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=60), limits=limits)
        return self.client

    async def _start(self, name: str) -> HttpEnv:
        port = _free_port()
        python_dir = str(Path(sys.executable).parent)
        env = {
            **self.env,
            "PORT": str(port),
            "PATH": python_dir + os.pathsep + self.env.get("PATH", os.defpath),  # run.sh's `python`
            "PYTHONPATH": python_path(self.env, ROOT / "layers" / "core"),  # the layer, /opt/python on AWS
            "LAMBDA_TASK_ROOT": str(self.code_dir),
        }
        cpu = None
        if self.cpu_share:
            from scripts.devstack.cpu_share import CpuShare

            cpu = CpuShare.for_memory(name, self.memory_mb)
        argv = ["bash", str(self.code_dir / "run.sh")]
        environment = HttpEnv(name, argv, env=env, cwd=str(self.code_dir), sink=self.sink, cpu=cpu)
        await environment.start(port, self._client(), self.timeout_s)
        return environment

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_REQUEST_BYTES:
                await _answer(send, 413, "RequestEntityTooLargeException", "Request must be smaller than 6291456 bytes")
                return
            if not message.get("more_body"):
                break
        try:
            environment = await self.pool.acquire()
        except Throttled:
            await _answer(send, 429, "TooManyRequestsException", "Rate Exceeded.")
            return
        except Exception as exc:
            log.error("%s: could not start an environment: %s", self.pool.name, exc)
            await _answer(send, 502, "ServiceException", "Internal Server Error")
            return
        cut, stream_id = False, ""
        try:
            relay = self._relay(environment, scope, bytes(body), receive, send)
            cut, stream_id = await asyncio.wait_for(relay, self.timeout_s)
        except TimeoutError:  # Lambda ends the invocation, and the environment with it
            log.error("%s: Task timed out after %.2f seconds", environment.name, self.timeout_s)
            await environment.stop(0)
        finally:
            until = self.records.ended(stream_id) if cut and stream_id else None
            await self.pool.release(environment, linger_s=self.linger_s if cut else 0.0, until=until)

    async def _relay(
        self, environment: HttpEnv, scope: dict[str, Any], body: bytes, receive: Any, send: Any
    ) -> tuple[bool, str]:
        """Send the request to ``environment`` and stream its answer: whether the client left first,
        and the stream it started or read (``X-Stream-Id``), if any."""
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = environment.url + path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        # A value's surrounding whitespace is not part of it (RFC 9110 §5.5); the Function URL hands the
        # function trimmed values, and h11 refuses to send an untrimmed one ("Bearer " was a 500).
        headers = [(k, v.strip(b" \t")) for k, v in scope["headers"] if k.decode("latin-1").lower() not in NOT_RELAYED]
        headers.append((CONTEXT_HEADER, self._context()))
        client = self._client()
        delivered = asyncio.Event()  # an invocation, once started, gets its whole request even if the client left

        async def content() -> Any:
            yield body
            delivered.set()

        if body:  # the headers as the client sent them (a generator would otherwise be sent chunked)
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        else:
            delivered.set()
        request = client.build_request(scope["method"], url, headers=headers, content=content() if body else None)

        stream_id = ""
        started = False

        async def relay() -> None:
            nonlocal stream_id, started
            response = await client.send(request, stream=True)
            stream_id = response.headers.get("x-stream-id", "")
            started = True
            try:
                out = [
                    (k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in response.headers.multi_items()
                    if k.lower() not in HOP_BY_HOP and k.lower() not in ("date", "server")  # ours, not twice
                ]
                await send({"type": "http.response.start", "status": response.status_code, "headers": out})
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                await response.aclose()

        async def client_left() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            try:
                await asyncio.wait_for(delivered.wait(), 5.0)
            except TimeoutError:
                pass

        relaying = asyncio.ensure_future(relay())
        watching = asyncio.ensure_future(client_left())
        try:
            done, _ = await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relaying, watching):
                task.cancel()
            await asyncio.gather(relaying, watching, return_exceptions=True)
        if relaying in done and relaying.exception() is not None:
            log.error("%s: request failed: %r", environment.name, relaying.exception())
            if not started:  # the function's answer never began: Lambda's error, not a bare 500
                await _answer(send, 502, "ServiceException", "Internal Server Error")
            return True, stream_id
        return relaying not in done, stream_id

    def _context(self) -> bytes:
        """The invocation's context, as the adapter serializes the Lambda runtime's (its ``Context``)."""
        now_ms = int(time.time() * 1000)
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        context = {
            "request_id": str(uuid.uuid4()),
            "deadline": now_ms + int(self.timeout_s * 1000),
            "invoked_function_arn": arn,
            "env_config": {"function_name": self.function_name, "version": "$LATEST"},
        }
        return json.dumps(context, separators=(",", ":")).encode()

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        await self.pool.close()
        self.records.close()
        if self.client is not None:
            await self.client.aclose()
            self.client = None


async def _answer(send: Any, status: int, error_type: str, message: str) -> None:
    body = json.dumps({"Message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"x-amzn-errortype", error_type.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("HTTP_PORT") or 8000))
    parser.add_argument("--identities", required=True, help="identities.json written by scripts/devstack/stack.py")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    from scripts.devstack.stack import front_door_from_env

    front = front_door_from_env(args.identities)
    import uvicorn

    print(f"frontdoor: the HTTP function on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    uvicorn.run(front, host=args.host, port=args.port, log_level="warning", lifespan="on", timeout_graceful_shutdown=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
