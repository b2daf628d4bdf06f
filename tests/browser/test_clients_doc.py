"""docs/clients.md's JavaScript snippets, run as written against the local stack.

Each section's first code block is taken from the markdown, its URL pointed at the stack (the
only change), then run where it is meant to run: in Node (the TypeScript client, the OpenAI
SDK), or bundled with esbuild (as an app's bundler would, ``@tokenrelay/client`` resolved to
``web/src``) into a page on another origin in Chromium (EventSource, the React hook,
``useChat``). Each must show the echo provider's answer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import ROOT, WEB_DIST, Stack

DOC = ROOT / "docs" / "clients.md"
WEB = ROOT / "web"
SNIPPETS = WEB / ".snippets"  # inside the package: `@tokenrelay/client` resolves to it (package self-reference)
URL = "http://127.0.0.1:8000"
REACT_ENTRY = """import { createElement } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./NAME";
createRoot(document.getElementById("root")!).render(createElement(App));
"""


def snippet(section: str) -> tuple[str, str]:
    """(language, code) of the first fenced block under ``## section``."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n(.*?)^```(\w+)\n(.*?)^```", text, re.M | re.S)
    assert match is not None, f"docs/clients.md has no code block under '## {section}'"
    return match.group(2), match.group(3)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    SNIPPETS.mkdir(exist_ok=True)
    (WEB_DIST / "snippets").mkdir(exist_ok=True)
    yield SNIPPETS
    shutil.rmtree(SNIPPETS, ignore_errors=True)
    shutil.rmtree(WEB_DIST / "snippets", ignore_errors=True)


def run_node(workdir: Path, name: str, section: str, stack: Stack) -> str:
    language, code = snippet(section)
    assert language == "js"
    path = workdir / f"{name}.mjs"
    path.write_text(code.replace(URL, stack.http), encoding="utf-8")
    done = subprocess.run(["node", str(path)], cwd=WEB, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def open_bundled(page: Any, workdir: Path, name: str, section: str, stack: Stack) -> None:
    language, code = snippet(section)
    source = workdir / f"{name}.{language}"
    source.write_text(code.replace(URL, stack.http), encoding="utf-8")
    entry = source
    if language == "tsx":
        entry = workdir / f"{name}-entry.tsx"
        entry.write_text(REACT_ENTRY.replace("NAME", name), encoding="utf-8")
    out = WEB_DIST / "snippets"
    esbuild = WEB / "node_modules" / ".bin" / "esbuild"
    command = [
        str(esbuild),
        str(entry.relative_to(WEB)),
        "--bundle",
        "--format=esm",
        "--jsx=automatic",
        "--alias:@tokenrelay/client=./src",
        '--define:process.env.NODE_ENV="production"',
        f"--outfile={out / name}.js",
        "--log-level=warning",
    ]
    built = subprocess.run(command, cwd=WEB, capture_output=True, text=True, timeout=120, check=False)
    assert built.returncode == 0, built.stderr
    html = (
        f'<!doctype html><meta charset="utf-8"><div id="root"></div><script type="module" src="./{name}.js"></script>'
    )
    (out / f"{name}.html").write_text(html, encoding="utf-8")
    page.goto(f"{stack.static}/snippets/{name}.html")


def wait_text(page: Any, text: str, wait_s: float = 20.0) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if text in page.locator("body").inner_text():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"{text!r} never showed; the page says {page.locator('body').inner_text()!r}")


@pytest.mark.timeout(90)
def test_eventsource_snippet(page: Any, stack: Stack, workdir: Path) -> None:
    open_bundled(page, workdir, "eventsource", "EventSource", stack)
    wait_text(page, "You said: Hello from EventSource")


@pytest.mark.timeout(90)
def test_typescript_client_snippet_in_node(stack: Stack, workdir: Path) -> None:
    assert (WEB / "dist" / "lib" / "index.js").exists(), "web/dist is not built: run scripts/web"
    out = run_node(workdir, "client", "TypeScript client", stack)
    assert out.strip() == "You said: Hello from the TypeScript client (done)"


@pytest.mark.timeout(90)
def test_react_hook_snippet(page: Any, stack: Stack, workdir: Path) -> None:
    open_bundled(page, workdir, "hook", "React hook", stack)
    page.get_by_role("button", name="Send").click()
    wait_text(page, "You said: Hello from the React hook")


@pytest.mark.timeout(90)
def test_use_chat_snippet(page: Any, stack: Stack, workdir: Path) -> None:
    open_bundled(page, workdir, "usechat", "useChat", stack)
    page.get_by_role("button", name="Send").click()
    wait_text(page, "assistant: You said: Hello from useChat")


@pytest.mark.timeout(90)
def test_openai_js_snippet_in_node(stack: Stack, workdir: Path) -> None:
    out = run_node(workdir, "openai", "OpenAI SDK (JS)", stack)
    assert out.strip() == "You said: Hello from the OpenAI SDK"


def test_node_runs_the_snippets_it_is_given() -> None:
    """The harness itself: a failing snippet fails its test (no silent pass)."""
    bad = subprocess.run(["node", "-e", "throw new Error('x')"], capture_output=True, text=True, check=False)
    assert bad.returncode != 0 and os.path.exists(WEB / "node_modules" / ".bin" / "esbuild")
