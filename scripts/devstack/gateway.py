"""A local API Gateway WebSocket API, so the WebSocket path runs on a laptop.

SAM CLI cannot run WebSocket APIs. This one asyncio process (Starlette under
uvicorn) stands in for API Gateway and for Lambda, on one port:

- ``ws://127.0.0.1:8001`` (``WS_PORT``): real WebSocket connections. Connecting,
  each frame and disconnecting become the events API Gateway sends (routeKey,
  eventType, connectionId, domainName, stage...; body; query string), routed by
  ``$request.body.type``, and are handed to the route's function: by default
  (``stack.py``) each function of ``functions/websocket`` runs in its own process
  environments, one invocation at a time, with its template environment variables and its
  own IAM identity (``local_functions.py``); in the single-process mode (no functions given)
  the handlers run in threads of this process. A handler that raises, or that
  outlives the integration timeout (``INTEGRATION_TIMEOUT_S``, 29 s as in AWS),
  makes the client receive API Gateway's ``{"message": "Internal server error" |
  "Endpoint request timed out", "connectionId", "requestId"}``. A refused
  ``$connect`` refuses the handshake with the handler's status code; an accepted one
  answers with the ``Sec-WebSocket-Protocol`` its handler returned, if any. Client
  messages over 128 KB close the connection (1009), as in AWS.
- ``/@connections/{id}`` (also under ``/{stage}/``): the management API
  (``management.py``); ``POST /2015-03-31/functions/{name}/invocations``:
  Lambda's Invoke API for the worker (``lambdas.py``), whose context counts
  down from ``WORKER_TIMEOUT_S`` (900). Given an ``Authorizer`` (``identities.py``),
  both check the caller's IAM grant, as AWS does: ``execute-api:ManageConnections`` on
  the connection, ``lambda:InvokeFunction`` on the function.

The functions reach it through boto3 unchanged: ``AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI``
and ``AWS_ENDPOINT_URL_LAMBDA`` are set to this server unless already set.

    .venv/bin/python scripts/devstack/gateway.py [--port 8001] [--stage local]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT / "layers" / "core", ROOT / "functions" / "websocket", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from starlette.applications import Starlette  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route, WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket, WebSocketDisconnect  # noqa: E402
from typing_extensions import TypeIs  # noqa: E402  (typing.TypeIs is 3.13)

from scripts.devstack.apigw_events import (  # noqa: E402
    Api,
    Peer,
    connect_event,
    disconnect_event,
    message_event,
    new_id,
    select_route,
)
from scripts.devstack.lambdas import LocalLambda  # noqa: E402
from scripts.devstack.local_functions import Function, Handler, InProcessFunction  # noqa: E402
from scripts.devstack.management import MAX_PAYLOAD, Connection, ManagementApi  # noqa: E402

log = logging.getLogger("tokenrelay.gateway")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw else default


@dataclass
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8001
    stage: str = "local"
    api_id: str = "local"
    route_keys: tuple[str, ...] = ("chat", "cancel")
    integration_timeout_s: float = 29.0
    handler_timeout_s: float = 30.0
    worker_timeout_s: float = 900.0
    worker_function_name: str = "tokenrelay-worker"
    worker_concurrency: int = 64  # workers streaming at once (WORKER_CONCURRENCY)
    post_delay_s: float = 0.0

    @classmethod
    def from_env(cls, **overrides: Any) -> GatewayConfig:
        config = cls(
            port=int(os.environ.get("WS_PORT") or cls.port),
            integration_timeout_s=_env_float("INTEGRATION_TIMEOUT_S", cls.integration_timeout_s),
            worker_timeout_s=_env_float("WORKER_TIMEOUT_S", cls.worker_timeout_s),
            worker_function_name=os.environ.get("WORKER_FUNCTION_NAME") or cls.worker_function_name,
            worker_concurrency=int(os.environ.get("WORKER_CONCURRENCY") or cls.worker_concurrency),
            post_delay_s=_env_float("GATEWAY_POST_DELAY_MS", 0.0) / 1000,
        )
        for name, value in overrides.items():
            setattr(config, name, value)
        return config

    @property
    def domain(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Stats:
    """What the gateway saw; tests and the benchmark read it."""

    posts: int = 0
    posted_bytes: int = 0
    max_post_bytes: int = 0
    gone: int = 0
    integration_timeouts: int = 0
    integration_errors: int = 0
    route_calls: list[tuple[str, float]] = field(default_factory=list)  # (route key, seconds)


def default_functions(config: GatewayConfig) -> tuple[dict[str, Function], dict[str, Function]]:
    """The single-process mode: ``functions/websocket``'s handlers in threads of this process,
    wired as the template wires them (no IAM identity of their own: tests/load and tests/fuzz)."""
    import connect
    import disconnect
    import message
    from tokenrelay_ws import worker

    on_message = InProcessFunction("tokenrelay-message", message.handler, config.handler_timeout_s)
    routes: dict[str, Function] = {
        "$connect": InProcessFunction("tokenrelay-connect", connect.handler, config.handler_timeout_s),
        "$disconnect": InProcessFunction("tokenrelay-disconnect", disconnect.handler, config.handler_timeout_s),
        "$default": on_message,
        "chat": on_message,
        "cancel": on_message,
    }
    name = config.worker_function_name
    return routes, {name: InProcessFunction(name, worker.handler, config.worker_timeout_s, config.worker_concurrency)}


class Gateway:
    def __init__(
        self,
        config: GatewayConfig | None = None,
        *,
        routes: Mapping[str, Function | Handler] | None = None,
        functions: Mapping[str, Function] | None = None,
        authorizer: Any = None,
    ) -> None:
        self.config = config or GatewayConfig.from_env()
        if routes is None or functions is None:
            default_routes, default_fns = default_functions(self.config)
            routes, functions = routes or default_routes, functions or default_fns
        self.routes: dict[str, Function | Handler] = dict(routes)  # a test may put a plain callable here
        self.in_process = all(isinstance(f, InProcessFunction) for f in functions.values())
        self.lambdas = LocalLambda(dict(functions), self.config.worker_timeout_s, authorizer)
        self.api = Api(self.config.api_id, self.config.domain, self.config.stage)
        self.connections: dict[str, Connection] = {}
        self.stats = Stats()
        self._tasks: set[asyncio.Task[None]] = set()
        manage = ManagementApi(self.connections, self.stats, self.config, authorizer)
        self.app = Starlette(
            routes=[
                Route("/@connections/{connection_id}", manage.handle, methods=["POST", "GET", "DELETE"]),
                Route("/{stage}/@connections/{connection_id}", manage.handle, methods=["POST", "GET", "DELETE"]),
                Route("/2015-03-31/functions/{function}/invocations", self.lambdas.invoke, methods=["POST"]),
                WebSocketRoute("/{path:path}", self.websocket),
            ],
            lifespan=self._lifespan,
        )

    # -- client sockets -> route integrations ----------------------------------

    async def websocket(self, websocket: WebSocket) -> None:
        client, agent = websocket.client, websocket.headers.get("user-agent", "")
        peer = Peer(new_id(), int(time.time() * 1000), client.host if client else "127.0.0.1", agent)
        event = connect_event(self.api, peer, websocket.headers.items(), websocket.query_params.multi_items())
        result, failure = await self._integrate("$connect", event)
        status = int(result.get("statusCode", 200)) if isinstance(result, dict) else (500 if failure else 200)
        if failure or not 200 <= status < 300:
            await websocket.send_denial_response(Response(status_code=500 if failure else status))
            return
        connection = self.connections[peer.connection_id] = Connection(websocket, peer)
        await websocket.accept(subprotocol=_response_header(result, "sec-websocket-protocol"))
        connection.open = True
        code, reason = 1006, ""
        try:
            while True:
                frame = await websocket.receive()
                if frame["type"] == "websocket.disconnect":
                    code, reason = frame.get("code", 1005), frame.get("reason") or ""
                    break
                connection.last_active = time.time()
                self._spawn(self._on_frame(connection, frame.get("text"), frame.get("bytes")))
        except WebSocketDisconnect as exc:
            code, reason = exc.code, exc.reason or ""
        finally:
            connection.open = False
            self.connections.pop(peer.connection_id, None)
            headers = {"Host": self.api.domain, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
            await self._integrate("$disconnect", disconnect_event(self.api, peer, code, reason, headers))

    async def _on_frame(self, connection: Connection, text: str | None, data: bytes | None) -> None:
        route_key = select_route(text, self.config.route_keys)
        event = message_event(self.api, connection.peer, route_key, text, data)
        _, failure = await self._integrate(route_key, event)
        if failure and connection.open:
            answer = {"message": failure, "connectionId": connection.peer.connection_id}
            answer["requestId"] = event["requestContext"]["requestId"]
            await connection.send(json.dumps(answer).encode())

    async def _integrate(self, route_key: str, event: dict[str, Any]) -> tuple[Any, str | None]:
        """Call the route's handler as API Gateway would: (result, None) or (None, the client's error)."""
        handler = self.routes.get(route_key) or self.routes.get("$default")
        if handler is None:
            return None, None
        if not _is_function(handler):  # a plain callable (a test's): run it in a thread of this process
            handler = InProcessFunction(route_key, handler, self.config.handler_timeout_s, threads=4)
        started = time.monotonic()
        future = asyncio.ensure_future(handler.invoke(event))
        try:
            result = await asyncio.wait_for(asyncio.shield(future), self.config.integration_timeout_s)
        except TimeoutError:
            self.stats.integration_timeouts += 1
            log.warning("%s: integration timed out after %.1f s", route_key, self.config.integration_timeout_s)
            return None, "Endpoint request timed out"
        except Exception:
            self.stats.integration_errors += 1
            log.exception("%s: handler failed", route_key)
            return None, "Internal server error"
        finally:
            self.stats.route_calls.append((route_key, time.monotonic() - started))
        return result, None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- lifecycle -------------------------------------------------------------------

    async def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until no frame is being handled and no function is running; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.lambdas.busy or self._tasks:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def aclose(self) -> None:
        for connection in list(self.connections.values()):
            connection.open = False
            await connection.websocket.close(1001)
        await self.wait_idle(10.0)
        await self.lambdas.aclose()
        await asyncio.gather(*(f.close() for f in set(self.routes.values()) if hasattr(f, "close")))
        if self.in_process:
            from tokenrelay_ws import environment as common

            await asyncio.to_thread(common.reset)

    @asynccontextmanager
    async def _lifespan(self, _: Starlette) -> Any:
        yield
        await self.aclose()


def _is_function(handler: Function | Handler) -> TypeIs[Function]:
    return hasattr(handler, "invoke")


def _response_header(result: Any, name: str) -> str | None:
    """A header of the ``$connect`` integration's response: API Gateway passes them to the
    handshake answer (``Sec-WebSocket-Protocol`` is the one that matters to clients)."""
    headers = result.get("headers") if isinstance(result, dict) else None
    if not isinstance(headers, dict):
        return None
    return next((str(v) for k, v in headers.items() if k.lower() == name), None)


def uvicorn_config(gateway: Gateway) -> Any:
    import uvicorn

    return uvicorn.Config(
        gateway.app,
        host=gateway.config.host,
        port=gateway.config.port,
        ws="websockets-sansio",
        ws_max_size=MAX_PAYLOAD,  # larger client messages close the connection with 1009, as in AWS
        log_level="warning",
        lifespan="on",
    )


@contextmanager
def serving(gateway: Gateway, startup_timeout_s: float = 10.0) -> Iterator[str]:
    """Serve ``gateway`` from a background thread until the block exits; yields its ws:// URL."""
    from scripts.devstack.threaded import threaded_server

    with threaded_server(uvicorn_config(gateway), startup_timeout_s):
        yield f"ws://{gateway.config.host}:{gateway.config.port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local API Gateway WebSocket API for TokenRelay")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("WS_PORT") or 8001))
    parser.add_argument("--stage", default="local")
    parser.add_argument("--identities", help="identities.json (stack.py): run each function in its own processes")
    args = parser.parse_args(argv)
    here = f"http://{args.host}:{args.port}"
    os.environ.setdefault("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", here)
    os.environ.setdefault("AWS_ENDPOINT_URL_LAMBDA", here)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    import uvicorn

    config = GatewayConfig.from_env(host=args.host, port=args.port, stage=args.stage)
    if args.identities:
        from scripts.devstack.stack import gateway_from_env

        gateway = gateway_from_env(args.identities, config)
    else:
        gateway = Gateway(config)
    print(f"gateway: WebSocket API at ws://{args.host}:{args.port} (stage {args.stage})", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn_config(gateway)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
