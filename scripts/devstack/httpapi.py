"""A local API Gateway HTTP API: the buffered path of ``template.yaml``, as strict as AWS.

``sam local start-api`` needs Docker; this needs nothing. It reads the template's
``HttpApi`` events and answers only those routes (``httpapi_routes.py``): anything else
gets API Gateway's ``404 {"message":"Not Found"}``, whatever the app behind it could
serve. A matched route becomes a payload format 2.0 event for its function (the
template's ``Handler``, ``handler.handler``: Mangum), run in a local Lambda execution
environment, one invocation at a time per environment (any ``Invocable``: ``httpapi_envs.py``
has the thinnest, the local stack's process functions fit as they are). The
function's environment is this process's, plus the template's literal variables for it
(``STREAM_TIMEOUT_S: "25"``), ``AWS_LAMBDA_FUNCTION_NAME`` and ``--env`` overrides.

The limits hold as on AWS:

    request body over 10 MB (HTTP API)            413 {"message":"Request Entity Too Large"}
    event over 6 MB (Lambda's invoke payload)      413 {"message":"Request Entity Too Large"}
    the function raised, or could not start        500 {"message":"Internal Server Error"}
    result over 6 MB (Lambda's response payload)   500 {"message":"Internal Server Error"}
    the function's Timeout (ApiFunction: 29 s)     500 {"message":"Internal Server Error"}
    the integration timeout (30 s, HTTP API's max) 503 {"message":"Service Unavailable"}

CORS follows the API's ``CorsConfiguration``: preflight requests are answered here, and
responses to an allowed ``Origin`` carry the allow and expose headers.

    .venv/bin/python scripts/devstack/httpapi.py [--port 8002] [--env KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:  # run as a script: scripts.devstack.* from the repo
    sys.path.insert(0, str(ROOT))

from scripts.devstack.environments import LogSink, print_sink  # noqa: E402
from scripts.devstack.httpapi_config import Cors, cors_of  # noqa: E402
from scripts.devstack.httpapi_routes import HttpRoute, Request, event, response, routes_from_template, select  # noqa: E402
from scripts.devstack.identities import Identity  # noqa: E402
from scripts.devstack.local_functions import Function, ProcessFunction, template_functions  # noqa: E402
from scripts.devstack.tables import load_template  # noqa: E402

log = logging.getLogger("tokenrelay.httpapi")
MAX_BODY = 10 * 1024 * 1024  # HTTP API's request payload
MAX_INVOKE_PAYLOAD = 6_291_556  # Lambda's synchronous request and response payload
INTEGRATION_TIMEOUT_S = 30.0  # an HTTP API integration's maximum
Answer = tuple[int, list[tuple[str, str]], bytes]


def gateway_error(status: int, message: str) -> Answer:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return status, [("content-type", "application/json")], body


@dataclass
class HttpApi:
    """The ASGI app: route, invoke, answer."""

    routes: list[HttpRoute]
    functions: dict[str, Function]  # by logical id
    api_id: str = "local"
    cors: Cors | None = None
    integration_timeout_s: float = INTEGRATION_TIMEOUT_S
    max_body: int = MAX_BODY
    max_payload: int = MAX_INVOKE_PAYLOAD
    invocations: int = field(default=0)
    _running: set[asyncio.Future[Any]] = field(default_factory=set)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, headers, body = await self.answer(scope, receive)
        headers = [h for h in headers if h[0] not in ("content-length", "transfer-encoding", "connection")]
        headers += [("content-length", str(len(body))), ("apigw-requestid", os.urandom(8).hex())]
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: dict[str, Any], receive: Any) -> Answer:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        lower = {k.lower(): v for k, v in headers}
        method = scope["method"]
        if self.cors is not None and method == "OPTIONS" and "access-control-request-method" in lower:
            return self.cors.preflight(lower.get("origin"))
        body = await self._body(receive, lower.get("content-length"))
        if body is None:
            return gateway_error(413, "Request Entity Too Large")
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        found = select(self.routes, method, path)  # the raw path: %2F stays inside its segment
        if found is None:
            return gateway_error(404, "Not Found")
        route, params = found
        client = scope.get("client") or ("127.0.0.1", 0)
        request = Request(method, path, scope.get("query_string", b"").decode("latin-1"), headers, body, client[0])
        answer = await self._invoke(route, event(route, params, request, self.api_id))
        if self.cors is not None:
            origin = self.cors.origin_header(lower.get("origin"))
            names = {name for name, _ in origin}
            answer = answer[0], [h for h in answer[1] if h[0] not in names] + origin, answer[2]
        return answer

    async def _invoke(self, route: HttpRoute, payload: dict[str, Any]) -> Answer:
        if len(json.dumps(payload).encode()) > self.max_payload:
            return gateway_error(413, "Request Entity Too Large")
        function = self.functions[route.function]
        self.invocations += 1
        call = asyncio.ensure_future(function.invoke(payload))  # up to the function's own Timeout
        done, _ = await asyncio.wait({call}, timeout=self.integration_timeout_s)
        if not done:  # API Gateway stops waiting; the invocation runs on to its own timeout
            log.error("%s: %s: no answer within the integration timeout", route.function, route.key)
            self._running.add(call)
            call.add_done_callback(_forget(self._running))
            return gateway_error(503, "Service Unavailable")
        try:
            result = call.result()
        except Exception as exc:  # raised, timed out (Lambda's timeout came first), or could not start
            log.error("%s: %s: %s", route.function, route.key, exc)
            return gateway_error(500, "Internal Server Error")
        size = len(json.dumps(result).encode())
        if size > self.max_payload:
            log.error("%s: response of %d bytes is over Lambda's %d", route.function, size, self.max_payload)
            return gateway_error(500, "Internal Server Error")
        try:
            return response(result)
        except (TypeError, ValueError) as exc:  # API Gateway cannot read the result
            log.error("%s: malformed result: %s", route.function, exc)
            return gateway_error(500, "Internal Server Error")

    async def _body(self, receive: Any, declared: str | None) -> bytes | None:
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return None
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def close(self) -> None:
        for function in self.functions.values():
            await function.close()


def _forget(running: set[asyncio.Future[Any]]) -> Any:
    def done(call: asyncio.Future[Any]) -> None:
        running.discard(call)
        if not call.cancelled() and call.exception() is not None:
            log.error("an invocation API Gateway stopped waiting for failed: %s", call.exception())

    return done


def build(
    template: Mapping[str, Any],
    identities: Mapping[str, Identity] | None,
    env: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    *,
    lambdas: Any = None,  # stack.LambdaSettings; from ``env`` if None
    sink: LogSink = print_sink,
    api_id: str = "HttpApi",
) -> HttpApi:
    """The HTTP API ``api_id`` of ``template``, each of its functions with its own identity
    (``identities``: None only for a function that never calls AWS, as in a test)."""
    from scripts.devstack.stack import LambdaSettings, function_env, local_names

    routes = routes_from_template(template, api_id)
    stack_env = {**env, **(overrides or {})}
    lambdas = lambdas or LambdaSettings.from_env(stack_env)
    specs = template_functions(template, local_names(stack_env))
    functions: dict[str, Function] = {}
    for name in sorted({r.function for r in routes}):
        spec = specs[name]
        credentials = identities[name] if identities is not None else None
        functions[name] = ProcessFunction(
            spec,
            function_env(spec, credentials, stack_env),
            sink=sink,
            max_envs=lambdas.max_envs,
            idle_timeout_s=lambdas.idle_timeout_s,
            queue_timeout_s=lambdas.queue_timeout_s,
            cpu_share=lambdas.cpu_share,
        )
    return HttpApi(routes, functions, cors=cors_of(template, api_id))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("HTTPAPI_PORT", "8002")))
    parser.add_argument("--template", default=os.environ.get("TOKENRELAY_TEMPLATE") or str(ROOT / "template.yaml"))
    parser.add_argument("--identities", required=True, help="identities.json written by scripts/devstack/stack.py")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="set in every function")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s httpapi %(levelname)s %(message)s")
    overrides = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env {item!r}: expected KEY=VALUE")
        overrides[key] = value
    from scripts.devstack.identities import load

    template = load_template(args.template)
    app = build(template, load(args.identities), dict(os.environ), overrides)
    for route in app.routes:
        log.info("route %s -> %s", route.key, route.function)
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
