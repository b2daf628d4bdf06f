"""Browser end-to-end fixtures: the whole local stack, and headless Chromium driven by Playwright.

The stack is what ``scripts/dev`` runs (``tests/fakes/local_stack.py``): moto's DynamoDB
server enforcing IAM per function (``aws`` from ``tests/e2e``), the HTTP function behind
the local Function URL, one request per process environment, with the built demo page
(``web/dist``) at ``/demo/``, and the local API Gateway WebSocket emulator with each
``functions/websocket`` function and the worker in their own processes. The echo
provider streams at ``ECHO_DELAY_MS=30``, so text grows visibly.

Chromium is Debian's ``/usr/bin/chromium`` (``scripts/web --browser-deps``
installs it); without it every test here is skipped, saying so.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from scripts.devstack.gateway import Gateway
from scripts.devstack.tables import load_template
from tests.e2e.conftest import aws, dynamodb_endpoint  # noqa: F401  (fixtures)
from tests.fakes.local_stack import LocalAws, function_stack
from tests.fakes.servers import free_port, serve
from tokenrelay.stores import StreamRecord
from tokenrelay.stores.dynamodb import DynamoStreamStore

ROOT = Path(__file__).resolve().parents[2]
WEB_DIST = ROOT / "web" / "dist"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PLAYWRIGHT_HINT = "pip install playwright (pinned in requirements-dev.txt), or run scripts/web --browser-deps"

STACK_ENV = {
    "CONNECTIONS_TABLE": "tokenrelay-connections-browser",
    "WORKER_FUNCTION_NAME": "tokenrelay-worker",
    "DEFAULT_PROVIDER": "echo",
    "ALLOWED_MODELS": "echo:echo-1,echo-2",
    "ECHO_DELAY_MS": "30",
    "CANCEL_POLL_MS": "50",
    "UPSTREAM_MAX_RETRIES": "0",
    # resume after a dropped connection (PROTOCOL section 5), as deployed
    "OUTPUT_LOG_TABLE": "tokenrelay-output-log-browser",
    "RESUME_GRACE_S": "10",
    "RESUME_POLL_MS": "100",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: end to end in headless Chromium (needs /usr/bin/chromium)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip = None
    if not CHROMIUM.exists():
        skip = pytest.mark.skip(reason=f"Chromium not found at {CHROMIUM}: run scripts/web --browser-deps")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            if skip is not None:
                item.add_marker(skip)


@dataclass
class Stack:
    http: str  # the HTTP app: what a Function URL serves
    ws: str  # the WebSocket API
    store: DynamoStreamStore
    gateway: Gateway
    static: str  # web/dist on another origin, as when the page is hosted apart from the Function URL

    def drop_connection(self, connection_id: str) -> None:
        """Close a connection from the server side, as API Gateway does: DELETE @connections (signed
        as the operator: the gateway checks execute-api:ManageConnections, as AWS does)."""
        client = boto3.client("apigatewaymanagementapi", endpoint_url=self.ws.replace("ws://", "http://"))
        try:
            client.delete_connection(ConnectionId=connection_id)
        finally:
            client.close()

    def demo_url(self, **query: str) -> str:
        return f"{self.http}/demo/?{urlencode({'ws': self.ws, **query})}"

    def cross_origin_demo_url(self, **query: str) -> str:
        return f"{self.static}/?{urlencode({'api': self.http, 'ws': self.ws, **query})}"

    def record(self, stream_id: str, status: str, wait_s: float = 5.0) -> StreamRecord:
        """The stream's DynamoDB record once it has ``status`` (bounded wait)."""

        async def poll() -> StreamRecord | None:
            deadline = asyncio.get_running_loop().time() + wait_s
            record = await self.store.get(stream_id)
            while (record is None or record.status != status) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
                record = await self.store.get(stream_id)
            return record

        # Playwright's sync API keeps an event loop on this thread: read from another one
        with ThreadPoolExecutor(1) as pool:
            record = pool.submit(asyncio.run, poll()).result(timeout=wait_s + 10)
        assert record is not None, f"no record for stream {stream_id}"
        assert record.status == status, f"stream {stream_id} is {record.status}, expected {status}: {record}"
        return record


def function_url_cors(allow_origin: str) -> dict[str, Any]:
    """CORSMiddleware settings equal to the Function URL's ``Cors`` in template.yaml (what AWS applies)."""
    resources = load_template()["Resources"]
    cors = next(
        r["Properties"]["FunctionUrlConfig"]["Cors"]
        for r in resources.values()
        if "Cors" in r.get("Properties", {}).get("FunctionUrlConfig", {})
    )
    return {
        "allow_origins": [allow_origin],
        "allow_methods": cors.get("AllowMethods", []),
        "allow_headers": cors.get("AllowHeaders", []),
        "expose_headers": cors.get("ExposeHeaders", []),
        "max_age": cors.get("MaxAge", 600),
    }


@pytest.fixture(scope="package")
def stack(aws: LocalAws) -> Iterator[Stack]:  # noqa: F811
    if not (WEB_DIST / "index.html").exists():
        pytest.fail(f"{WEB_DIST} has no demo page: run scripts/web first", pytrace=False)
    static_port = free_port()
    static = f"http://127.0.0.1:{static_port}"
    # The demo page at /demo/ and CORS for the page hosted on another origin: what scripts/dev
    # sets (DEMO_DIR, CORS_ALLOW_ORIGINS with the Function URL's CORS policy, dev_extras.py).
    env = {**STACK_ENV, "DEMO_DIR": str(WEB_DIST), "CORS_ALLOW_ORIGINS": static}
    pages = Starlette(routes=[Mount("/", StaticFiles(directory=WEB_DIST, html=True))])
    with function_stack(aws, env, http=True, ws=True, name="browser") as functions, serve(pages, port=static_port):
        assert functions.gateway is not None
        store = DynamoStreamStore(os.environ["STREAMS_TABLE"])
        yield Stack(functions.http, functions.ws, store, functions.gateway, static)
        store.close()
        functions.assert_no_access_denied()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Chromium for this package only: Playwright's sync API keeps an event loop running on
    the main thread while it is started, which would break every asyncio test after it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the playwright package is missing: {PLAYWRIGHT_HINT}", pytrace=False)
    with sync_playwright() as playwright:
        # launch() gives every run a fresh, temporary user-data-dir
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def save_screenshot(page: Any, name: str) -> Path:
    """Save to test-artifacts/; the README's copy (docs/demo.png) only when missing or UPDATE_SCREENSHOTS=1."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    readme_copy = ROOT / "docs" / "demo.png"
    if name == "demo.png" and (not readme_copy.exists() or os.environ.get("UPDATE_SCREENSHOTS") == "1"):
        shutil.copyfile(path, readme_copy)
    return path
