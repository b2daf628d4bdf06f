"""WebSocket failures on the demo page end in a visible error or a visible recovery, within a bound.

Each state of issue 20 that used to leave the pill on "streaming" forever:

- a WebSocket URL where nothing listens: "connecting, attempt n of 3", then the error card
  (``connect_failed``) with the URL to check, within ``WRONG_URL_BOUND_S``;
- the gateway killed mid-answer: "reconnecting, attempt n of 6" within ``RECONNECTING_BOUND_S``;
  brought back as ``scripts/dev`` brings it back (empty tables: a restart), the resumed stream
  is unknown and the card says why (``stream_not_found``); brought back with its tables
  (only the gateway restarted: the stream's worker died with it), nothing comes for the
  resumed stream and the card says so (``resume_timeout``). Each within its bound after the
  gateway is back.

The gateway here is its own process (``scripts/devstack/gateway.py``, as ``scripts/dev`` runs
it: each function in its own processes, with its own IAM identity) on its own DynamoDB process
(``scripts/devstack/dynamodb.py``), so the test can kill it with SIGKILL and start it again on
the same port; DynamoDB too, for a restart (empty tables, new identities). A 401 on connect is in
``test_api_key.py``. Screenshots of each state are copied to docs/frontend/
(docs/frontend.md) when missing, or with ``UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import ROOT, Stack, save_screenshot
from tests.browser.test_demo import LONG_PROMPT, status
from tests.fakes.servers import free_port

WRONG_URL_BOUND_S = 10.0  # 3 tries, 0.5 s and 1 s apart: about 1.5 s; the rest is slack for a loaded machine
RECONNECTING_BOUND_S = 5.0  # a killed process's sockets close at once: the pill changes within ~0.1 s
RESTARTED_BOUND_S = 15.0  # once the gateway is back: the next try (at most 8 s away) + the resume's answer
RESUME_TIMEOUT_BOUND_S = 30.0  # the same, + the client's 15 s resume watchdog
DOCS_SHOTS = ROOT / "docs" / "frontend"
# What a process started here inherits: the user's basics, none of the settings other fixtures
# put in this process's environment (table names, AWS endpoints, ECHO_DELAY_MS...).
BASE_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TERM", "TMPDIR", "PYENV_ROOT", "PYENV_VERSION")


def clean_env(**settings: str) -> dict[str, str]:
    return {**{k: os.environ[k] for k in BASE_ENV if k in os.environ}, **settings}


# Every text the status pill shows, in order, and when (recorded in the page itself).
RECORD_PILLS = """
  window.__pills = [];
  new MutationObserver(() => {
    const pill = document.querySelector('[data-testid=status]');
    const text = pill ? pill.textContent : null;
    const last = window.__pills[window.__pills.length - 1];
    if (text !== null && (!last || last[0] !== text)) window.__pills.push([text, performance.now()]);
  }).observe(document, { subtree: true, childList: true, characterData: true });
"""


def doc_screenshot(page: Any, name: str) -> Path:
    """test-artifacts/<name>, copied to docs/frontend/ when missing or UPDATE_SCREENSHOTS=1."""
    path = save_screenshot(page, name)
    target = DOCS_SHOTS / name
    if not target.exists() or os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return path


def pills(page: Any) -> list[str]:
    return [text for text, _ in page.evaluate("window.__pills")]


def wait_until(check: Any, bound_s: float, what: str) -> float:
    """Poll ``check()`` every 50 ms until it is true; the seconds it took (fails past ``bound_s``)."""
    started = time.monotonic()
    while not check():
        elapsed = time.monotonic() - started
        assert elapsed < bound_s, f"{what}: not within {bound_s} s"
        time.sleep(0.05)
    return time.monotonic() - started


def error_card(page: Any) -> str:
    card = page.get_by_test_id("error")
    return str(card.inner_text()) if card.count() else ""


def in_order(seen: list[str], wanted: list[str]) -> bool:
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)


@pytest.mark.timeout(90)
def test_demo_websocket_wrong_url_says_so_within_the_bound(page: Any, stack: Stack) -> None:
    page.add_init_script(RECORD_PILLS)
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    dead = f"ws://127.0.0.1:{free_port()}"
    page.goto(stack.demo_url(transport="websocket", ws=dead))
    page.get_by_test_id("prompt").fill("hello over a WebSocket that is not there")
    page.get_by_test_id("send").click()
    took = wait_until(lambda: error_card(page) != "", WRONG_URL_BOUND_S, "the error card")
    print(f"\nwrong WebSocket URL: error card {took:.2f} s after Send")

    card = error_card(page)
    assert "Could not open the WebSocket connection" in card
    assert f"Check the WebSocket URL ({dead})" in card
    assert "code connect_failed" in card
    assert status(page) == "error"
    assert in_order(pills(page), ["connecting, attempt 2 of 3", "connecting, attempt 3 of 3", "error"]), pills(page)
    assert len(sockets) == 3, sockets  # the budget: three tries, then it stops
    doc_screenshot(page, "ws-wrong-url.png")


# -- the gateway killed mid-answer ------------------------------------------------------


class Gateway:
    """``scripts/devstack/gateway.py`` as its own process on a fixed port, as ``scripts/dev`` runs it:
    each WebSocket function and the worker in their own process environments, each with its
    own IAM identity (``--identities``, made by ``stack.py setup`` with the tables)."""

    def __init__(self, dynamodb: LocalDynamo) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.dynamodb = dynamodb
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait_s: float = 60.0) -> None:
        script = ROOT / "scripts" / "devstack" / "gateway.py"
        identities = str(self.dynamodb.identities)  # the DynamoDB's current ones (new after a restart)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--port", str(self.port), "--identities", identities],
            cwd=ROOT,
            env=self.dynamodb.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = f"http://127.0.0.1:{self.port}/@connections/ready-check"

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "the gateway exited"
            try:
                httpx.get(probe, timeout=1)
                return True
            except httpx.HTTPError:
                return False

        wait_until(up, wait_s, "the gateway to start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


class LocalDynamo:
    """The stack's DynamoDB as its own process on a fixed port, as ``scripts/dev`` runs it
    (``dynamodb.py``: IAM enforced, writes atomic), then ``stack.py setup``: the tables of
    template.yaml and one identity per function. Not in this process: moto's state is global
    to a process, and the package's stack keeps its tables in the one of this process."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.admin, self.identities = workdir / "admin.json", workdir / "identities.json"
        self.env = clean_env(
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_ENDPOINT_URL_DYNAMODB=self.endpoint,
            STREAMS_TABLE="tokenrelay-streams",
            CONNECTIONS_TABLE="tokenrelay-connections",
            OUTPUT_LOG_TABLE="tokenrelay-output-log",
            AUTH_MODE="off",
            DEFAULT_PROVIDER="echo",
            ECHO_DELAY_MS="30",
            CANCEL_POLL_MS="50",
            LOG_LEVEL="WARNING",
            PYTHONPATH=f"{ROOT / 'layers' / 'core'}:{ROOT / 'functions' / 'http'}",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.admin.unlink(missing_ok=True)
        script = ROOT / "scripts" / "devstack" / "dynamodb.py"
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--port", str(self.port), "--credentials-out", str(self.admin)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, "DynamoDB exited"
            return self.admin.exists() and self.admin.stat().st_size > 0

        wait_until(up, 60, "DynamoDB to start")
        setup = [sys.executable, str(ROOT / "scripts" / "devstack" / "stack.py"), "setup"]
        setup += ["--admin", str(self.admin), "--out", str(self.identities)]
        subprocess.run(setup, env=self.env, cwd=ROOT, check=True, capture_output=True, timeout=60)

    def restart(self) -> None:
        """As a ``scripts/dev`` restart: a new DynamoDB, empty, then the tables and identities again."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def dynamodb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDynamo]:
    server = LocalDynamo(tmp_path_factory.mktemp("failures"))
    yield server
    server.stop()


@pytest.fixture
def gateway(dynamodb: LocalDynamo) -> Iterator[Gateway]:
    gw = Gateway(dynamodb)
    gw.start()
    yield gw
    gw.kill()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("state", ["lost", "kept"])
def test_demo_gateway_killed_mid_answer_reconnects_visibly_then_says_what_happened(
    page: Any, stack: Stack, dynamodb: LocalDynamo, gateway: Gateway, state: str
) -> None:
    """``lost``: back as after a ``scripts/dev`` restart (empty tables); ``kept``: only the gateway
    restarted (its tables kept, the stream's worker gone with the old process)."""
    page.add_init_script(RECORD_PILLS)
    page.goto(stack.demo_url(transport="websocket", ws=gateway.url))
    page.get_by_test_id("prompt").fill(LONG_PROMPT)
    page.get_by_test_id("send").click()
    wait_until(lambda: len(page.get_by_test_id("output").inner_text().split()) >= 15, 20, "the answer to start")

    gateway.kill()
    took = wait_until(lambda: status(page).startswith("reconnecting, attempt"), RECONNECTING_BOUND_S, "reconnecting")
    print(f"\ngateway killed: pill '{status(page)}' after {took:.2f} s")
    assert status(page) == "reconnecting, attempt 1 of 6"
    partial = page.get_by_test_id("output").inner_text()
    if state == "lost":
        wait_until(lambda: status(page) == "reconnecting, attempt 2 of 6", 10, "the second attempt")
        doc_screenshot(page, "ws-reconnecting.png")

    if state == "lost":
        dynamodb.restart()
    gateway.start()
    bound = RESTARTED_BOUND_S if state == "lost" else RESUME_TIMEOUT_BOUND_S
    took = wait_until(lambda: error_card(page) != "", bound, "the error card after the gateway came back")
    print(f"gateway back ({state} state): error card after {took:.2f} s")

    card = error_card(page)
    assert status(page) == "error"
    assert page.get_by_test_id("output").inner_text().startswith(partial[:40])  # what came stays shown
    if state == "lost":
        assert "A local stack (scripts/dev) keeps no state across a restart" in card
        assert "code stream_not_found" in card
        doc_screenshot(page, "ws-restarted.png")
    else:
        assert "the answer did not go on" in card
        assert "code resume_timeout" in card
        doc_screenshot(page, "ws-resume-timeout.png")
    # the page had reconnected before the answer: "reconnecting" gave way to the resumed stream
    assert in_order(pills(page), ["streaming", "reconnecting, attempt 1 of 6", "error"]), pills(page)
