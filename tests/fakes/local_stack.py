"""The local stack for the end-to-end and browser tests, as ``scripts/dev`` runs it.

- ``local_aws()``: ``scripts/devstack/dynamodb.py`` in its own process: moto's server mode
  enforcing IAM per access key, its writes atomic, with the DynamoDB faults tests inject
  (``scripts/devstack/dynamodb_faults.py``). The tests' own clients (table set-up, reading
  records as an operator would) use its admin key; no product code runs with it.
- ``function_stack(aws, env, http=..., ws=..., http_api=...)``: one IAM identity per function
  with exactly its ``template.yaml`` policy, the template's tables (named from ``env``), the
  HTTP function behind the local Function URL (``frontdoor.py``: one request per process
  environment), the WebSocket gateway with each function and the worker in their own
  processes, and the HTTP API (``httpapi.py``: ApiFunction the same way), all with ``env`` on
  top of this process's environment. Every environment's output goes to a ``LogCapture``: the
  EMF metrics documents and the log lines tests read, and the ``AccessDenied`` lines that fail
  a test (``assert_no_access_denied``).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.devstack import stack as devstack
from scripts.devstack.gateway import Gateway, GatewayConfig, serving
from scripts.devstack.identities import Authorizer, Identity
from scripts.devstack.local_aws import LocalAws as LocalAws  # where the tests import it from
from scripts.devstack.local_aws import local_aws as local_aws
from scripts.devstack.stack import LambdaSettings, front_door, setup, websocket_functions
from scripts.devstack.tables import load_template
from tests.fakes.servers import free_port, serve

ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
# Tests reuse warm environments for the whole session; a cap that fits 2 cores and the tests' concurrency.
TEST_LAMBDAS = LambdaSettings(max_envs=8, queue_timeout_s=60.0, idle_timeout_s=900.0)
_stacks = itertools.count(1)


class LogCapture:
    """Every line the stack's environments print, in order (thread-safe); also in test-artifacts/."""

    def __init__(self, name: str) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        ARTIFACTS.mkdir(exist_ok=True)
        self._file = open(ARTIFACTS / f"stack-{name}.log", "w", encoding="utf-8")

    def __call__(self, env_name: str, line: str) -> None:
        with self._lock:
            self.lines.append(line)
            if not self._file.closed:  # an environment's last words may come as the stack closes
                self._file.write(f"[{env_name}] {line}\n")
                self._file.flush()

    def mark(self) -> int:
        with self._lock:
            return len(self.lines)

    def since(self, mark: int = 0) -> list[str]:
        with self._lock:
            return self.lines[mark:]

    def emf(self, since: int = 0) -> list[dict[str, Any]]:
        """The CloudWatch EMF documents printed since ``since``."""
        docs = []
        for line in self.since(since):
            if line.startswith("{") and '"_aws"' in line:
                docs.append(json.loads(line))
        return docs

    def access_denied(self, since: int = 0) -> list[str]:
        return [line for line in self.since(since) if "AccessDenied" in line]

    def close(self) -> None:
        self._file.close()


@dataclass
class FunctionStack:
    http: str  # the local Function URL ("" without http)
    ws: str  # the WebSocket API ("" without ws)
    gateway: Gateway | None
    front: Any  # frontdoor.FrontDoor
    logs: LogCapture
    identities: dict[str, Any]  # stack.Identity by function
    env: dict[str, str]  # the stack's environment: what every function runs with, besides its own
    lambdas: LambdaSettings
    template: Path | None = None
    admin: dict[str, str] = field(default_factory=dict)  # the operator's key (its calls to the gateway)
    http_api: str = ""  # the local HTTP API ("" without http_api)
    fronts: dict[str, Any] = field(default_factory=dict)  # more Function URLs (serve_front_door), by URL

    def assert_no_access_denied(self, since: int = 0) -> None:
        denied = self.logs.access_denied(since)
        assert not denied, f"a function was refused a call its template role should allow: {denied[:3]}"

    @contextmanager
    def serve_front_door(
        self, template: Path | None = None, lambdas: LambdaSettings | None = None, **overrides: str
    ) -> Iterator[str]:
        """Another Function URL on this stack's tables and identities: the StreamFunction of
        ``template`` (a changed copy of the stack's: ``changed_template``), with its variables
        ``overrides``, as a second deployment of it; its URL (its ``FrontDoor``: ``fronts[url]``)."""
        front = front_door(
            self.identities,
            {**self.env, **overrides},
            lambdas=lambdas or self.lambdas,
            sink=self.logs,
            template=template or self.template,
        )
        with serve(front) as url:
            self.fronts[url] = front
            try:
                yield url
            finally:
                del self.fronts[url]

    @contextmanager
    def serve_gateway(self, **overrides: str) -> Iterator[tuple[str, Gateway]]:
        """A WebSocket API on this stack's tables and identities, its functions with their variables
        ``overrides``, each function and the worker in their own environments; its URL and gateway."""
        port = free_port()
        here = f"http://127.0.0.1:{port}"
        env = {**self.env, **overrides}
        routes, functions = websocket_functions(
            self.identities, env, here, lambdas=self.lambdas, sink=self.logs, template=self.template
        )
        config = GatewayConfig.from_env(port=port)
        config.route_keys = tuple(k for k in routes if not k.startswith("$"))
        config.worker_function_name = next(iter(functions))
        key, secret = self.admin["access_key_id"], self.admin["secret_access_key"]
        admin = Identity("admin", "admin", key, secret, (ADMIN_POLICY,))
        authorizer = Authorizer([*self.identities.values(), admin])  # the tests' own calls are the operator's
        gateway = Gateway(config, routes=routes, functions=functions, authorizer=authorizer)
        with serving(gateway) as url:
            yield url, gateway

    @contextmanager
    def serve_http_api(self, template: dict[str, Any] | None = None, **overrides: str) -> Iterator[str]:
        """Another HTTP API on this stack's tables and identities: ``template`` (a changed copy of
        the stack's), its functions' variables ``overrides``; its URL."""
        from scripts.devstack.httpapi import build

        data = template if template is not None else load_template(self.template or devstack.template_path({}))
        api = build(data, self.identities, self.env, overrides, lambdas=self.lambdas, sink=self.logs)
        with serve(api) as url:
            yield url


class _GatewayDenials(logging.Handler):
    """The gateway's refusals (``identities.py`` logs them at ERROR in this process), into the stack's log."""

    def __init__(self, logs: LogCapture) -> None:
        super().__init__(logging.ERROR)
        self.logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        self.logs("gateway", record.getMessage())


def changed_template(directory: Path, function: str, **properties: Any) -> Path:
    """A copy of template.yaml in ``directory`` whose ``function`` has these ``properties``
    (``Timeout=2``): CloudFormation's long form, in JSON (which YAML reads)."""
    data = load_template()
    data["Resources"][function]["Properties"].update(properties)
    path = directory / f"template-{function}-{'-'.join(f'{k}{v}' for k, v in properties.items())}.json"
    path.write_text(json.dumps(data))
    return path


@contextmanager
def function_stack(
    aws: LocalAws,
    env: Mapping[str, str],
    *,
    http: bool = True,
    ws: bool = False,
    http_api: bool = False,
    name: str = "e2e",
    lambdas: LambdaSettings = TEST_LAMBDAS,
    template: Path | None = None,
    linger_s: float | None = None,
) -> Iterator[FunctionStack]:
    full = {**os.environ, **aws.env(), **env}
    if template is not None:
        full["TOKENRELAY_TEMPLATE"] = str(template)
    identities = setup(aws.endpoint, aws.admin, full, prefix=f"{name}-{next(_stacks)}-", template=template)
    logs = LogCapture(name)
    denials = _GatewayDenials(logs)
    logging.getLogger("tokenrelay.iam").addHandler(denials)
    with ExitStack() as stack:
        stack.callback(logs.close)
        stack.callback(logging.getLogger("tokenrelay.iam").removeHandler, denials)
        http_url, ws_url, gateway, front = "", "", None, None
        if http:
            front = front_door(identities, full, lambdas=lambdas, sink=logs, template=template, linger_s=linger_s)
            http_url = stack.enter_context(serve(front))
        made = FunctionStack(http_url, ws_url, gateway, front, logs, identities, full, lambdas, template, aws.admin)
        if ws:
            made.ws, made.gateway = stack.enter_context(made.serve_gateway())
        if http_api:
            made.http_api = stack.enter_context(made.serve_http_api())
        yield made
