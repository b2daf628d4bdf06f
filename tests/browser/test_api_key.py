"""The demo page against ``AUTH_MODE=api_key scripts/dev``, as the README has a newcomer try it.

The stack is ``scripts/dev`` itself (its own ports), the key is made with
``scripts/keys --local create`` (with ``DDB_PORT``, as the README says), and the page is the
one ``scripts/dev`` serves:

- with no key, or a wrong one, the WebSocket handshake is refused (401). A browser cannot see
  that status; the page ends with ``unauthorized`` within ``UNAUTHORIZED_BOUND_S`` after one
  handshake (the client asks the HTTP API whether it takes the key), not after 3 tries;
- a key typed into the "API key" field streams over every transport, and the stream's
  record names that key as its owner: the key went on each wire (Authorization, the
  ``access_token`` of EventSource, the WebSocket subprotocol). It is kept in the tab's
  sessionStorage only, and never reaches the console, the page URL or localStorage.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from tests.browser.conftest import ROOT
from tests.browser.test_demo import PROMPT, status
from tests.browser.test_failures import RECORD_PILLS, clean_env, doc_screenshot, error_card, pills, wait_until
from tests.fakes.servers import free_port

UNAUTHORIZED_BOUND_S = 5.0  # one handshake, one GET /v1/models: well under a second


@dataclass
class DevStack:
    http: str
    ws: str
    ddb: str
    token: str
    output: list[str]
    admin: dict[str, str]  # the operator's key (.dev/admin.json): moto refuses any other for the records

    @property
    def key_id(self) -> str:
        return self.token.split("_")[1]

    def demo_url(self, transport: str) -> str:
        return f"{self.http}/demo/?ws={self.ws}&transport={transport}"

    def owner(self, stream_id: str) -> str:
        client = boto3.client(
            "dynamodb",
            endpoint_url=self.ddb,
            region_name="us-east-1",
            aws_access_key_id=self.admin["access_key_id"],
            aws_secret_access_key=self.admin["secret_access_key"],
        )
        item = client.get_item(TableName="tokenrelay-streams", Key={"stream_id": {"S": stream_id}}, ConsistentRead=True)
        return str(item["Item"]["owner"]["S"])


@pytest.fixture(scope="module")
def dev() -> Iterator[DevStack]:
    """``AUTH_MODE=api_key scripts/dev`` on free ports, and a key made by ``scripts/keys --local``."""
    http_port, ddb_port, ws_port = free_port(), free_port(), free_port()
    ports = {"HTTP_PORT": str(http_port), "DDB_PORT": str(ddb_port), "WS_PORT": str(ws_port)}
    ports["HTTPAPI_PORT"] = str(free_port())
    env = clean_env(**ports, AUTH_MODE="api_key", ECHO_DELAY_MS="30")
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "dev")],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: stopped as a whole below
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while not any("Press Ctrl-C" in line for line in output):
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            except queue.Empty:
                pytest.fail(f"scripts/dev did not start in 120 s:\n{''.join(output)}", pytrace=False)
            if line is None:
                pytest.fail(f"scripts/dev exited ({proc.wait()}):\n{''.join(output)}", pytrace=False)
            output.append(line)
        banner = "".join(output)
        assert "AUTH_MODE=api_key" in banner and "scripts/keys --local create" in banner
        keys = subprocess.run(
            [str(ROOT / "scripts" / "keys"), "--local", "create", "--name", "browser"],
            cwd=ROOT,
            env={**env, "DDB_PORT": str(ddb_port)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        token = keys.stdout.strip()
        assert token.startswith("trk_"), keys
        local = "http://127.0.0.1"
        admin = json.loads((ROOT / ".dev" / "admin.json").read_text())["admin"]
        yield DevStack(f"{local}:{http_port}", f"ws://127.0.0.1:{ws_port}", f"{local}:{ddb_port}", token, output, admin)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # never leave the stack running behind the tests
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("key", ["none", "wrong"])
def test_demo_websocket_refused_key_says_unauthorized_after_one_handshake(page: Any, dev: DevStack, key: str) -> None:
    page.add_init_script(RECORD_PILLS)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(dev.demo_url("websocket"))
    page.get_by_test_id("needs-key").wait_for(state="visible")  # /health says auth is api_key
    if key == "wrong":
        page.get_by_test_id("api-key").fill(f"trk_{dev.key_id}_not-the-secret")
    page.get_by_test_id("prompt").fill("hello")
    page.get_by_test_id("send").click()
    took = wait_until(lambda: error_card(page) != "", UNAUTHORIZED_BOUND_S, "the error card")
    print(f"\nWebSocket 401 ({key} key): error card {took:.2f} s after Send")

    card = error_card(page)
    assert "The server needs a valid API key" in card
    assert "code unauthorized, HTTP 401" in card
    assert ("Check the key in the API key field" if key == "wrong" else "Enter a key in the API key field") in card
    assert "scripts/keys --local create" in card and "DDB_PORT" in card
    assert len(sockets) == 1, f"gave up after one refused handshake, not {len(sockets)}"
    assert "connecting, attempt 3 of 3" not in pills(page)
    assert status(page) == "error"
    if key == "none":
        doc_screenshot(page, "ws-unauthorized.png")


@pytest.mark.timeout(120)
def test_demo_key_typed_in_the_page_streams_over_every_transport_and_stays_in_the_tab(page: Any, dev: DevStack) -> None:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(dev.demo_url("sse"))
    page.get_by_test_id("api-key").fill(dev.token)
    page.get_by_test_id("prompt").fill(PROMPT)
    expected = f"You said: {PROMPT}"
    for transport in ("sse", "eventsource", "websocket"):
        page.get_by_test_id(f"transport-{transport}").check()
        page.get_by_test_id("send").click()
        wait_until(lambda: status(page) != "streaming", 30, f"the {transport} answer")
        assert status(page) == "done", (transport, error_card(page))
        assert page.get_by_test_id("output").inner_text() == expected
        stream_id = page.get_by_test_id("stream-id").inner_text().removeprefix("stream ")
        assert dev.owner(stream_id) == dev.key_id, f"{transport}: the stream is not the key's"
    doc_screenshot(page, "api-key.png")

    # kept for this tab: there after a reload, in sessionStorage only, never in a URL or the console
    assert page.evaluate("sessionStorage.getItem('tokenrelay-api-key')") == dev.token
    assert page.evaluate("JSON.stringify(localStorage)").find(dev.token) < 0
    assert dev.token not in page.url
    page.reload()
    assert page.get_by_test_id("api-key").input_value() == dev.token
    secret = dev.token.rsplit("_", 1)[1]
    assert not [line for line in console if secret in line]
    # only EventSource puts it in a URL (it cannot send headers): ?access_token=
    assert [url for url in requests if secret in url] == [u for u in requests if "access_token=" in u]
    other_tab = page.context.new_page()  # same browser, another tab: no key
    other_tab.goto(dev.demo_url("sse"))
    assert other_tab.get_by_test_id("api-key").input_value() == ""
    other_tab.close()
