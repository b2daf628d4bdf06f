"""The local stack for the heavy suites (tests/fuzz, tests/load): the HTTP app under real
uvicorn and the WebSocket gateway with the real handlers, both on moto's DynamoDB server
(the ``dynamodb_endpoint`` fixture of tests/e2e), on 127.0.0.1 only."""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from scripts.devstack.gateway import Gateway, GatewayConfig, serving
from tests.fakes.environ import environ
from tests.fakes.servers import free_port, serve
from tokenrelay import Settings
from tokenrelay.stores.dynamodb import DynamoStreamStore
from tokenrelay_http import create_app

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request at INFO

ROOT = Path(__file__).resolve().parents[2]

# Tables that ``dynamodb_endpoint`` creates (template.yaml's, default names, streams renamed).
TABLES = {"CONNECTIONS_TABLE": "tokenrelay-connections", "OUTPUT_LOG_TABLE": "tokenrelay-output-log"}


@contextmanager
def http_app(env: Mapping[str, str]) -> Iterator[tuple[str, DynamoStreamStore]]:
    """``create_app`` with settings from the environment plus ``env``, served by uvicorn."""
    with environ(dict(env)):
        settings = Settings.from_env(os.environ)
        store = DynamoStreamStore(settings.streams_table)
        with serve(create_app(settings, store=store)) as url:
            yield url, store


@contextmanager
def ws_gateway(env: Mapping[str, str]) -> Iterator[tuple[str, Gateway, DynamoStreamStore]]:
    """The local API Gateway (scripts/devstack/gateway.py) with ``functions/websocket``, as tests/e2e runs it."""
    port = free_port()
    here = f"http://127.0.0.1:{port}"
    full = {
        "WORKER_FUNCTION_NAME": "tokenrelay-worker",
        **env,
        "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": here,
        "AWS_ENDPOINT_URL_LAMBDA": here,
    }
    with environ(full):
        from tokenrelay_ws import (
            environment as common,  # functions/websocket, on sys.path once the gateway module is imported
        )

        common.reset()  # services are read from the environment set above
        gateway = Gateway(GatewayConfig.from_env(port=port))
        try:
            with serving(gateway) as url:
                yield url, gateway, DynamoStreamStore(os.environ["STREAMS_TABLE"])
        finally:
            common.reset()


@contextmanager
def app_process(
    env: Mapping[str, str],
    log_path: Path,
    startup_s: float = 30.0,
    *,
    module: str = "app:app",
    root: Path = ROOT,
    on_start: list[subprocess.Popen[bytes]] | None = None,
) -> Iterator[str]:
    """``functions/http/app.py`` under uvicorn in its own process (its own core and GIL), as
    ``run.sh`` serves it; its stderr (logs, tracebacks) goes to ``log_path``. ``module``: another
    ASGI app to serve (found on this repository's root too); ``root``: the checkout whose core
    and functions run (a benchmark's baseline); ``on_start`` gets the process (its pid)."""
    port = free_port()
    paths = [str(root / "layers" / "core"), str(root / "functions" / "http"), str(ROOT)]
    full_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(paths)}
    command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [*command, "--backlog", "4096", module],
            cwd=root / "functions" / "http",
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    if on_start is not None:
        on_start.append(proc)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (within the hard limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


def as_env(**values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in values.items()}
