"""The demo page shows reasoning (collapsible) and tool calls as they stream, over each transport,
in headless Chromium against the local stack, with the offline ``echo`` provider (docs/protocol.md §11)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.browser.conftest import Stack, save_screenshot

PROMPT = "What is the weather in Paris? Use get_weather, please."


def wait_status(page: Any, want: str, wait_s: float = 20.0) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if page.get_by_test_id("status").inner_text().startswith(want):
            return
        page.wait_for_timeout(40)
    raise AssertionError(f"status stayed {page.get_by_test_id('status').inner_text()!r}, expected {want!r}")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["sse", "eventsource", "websocket"])
def test_demo_shows_reasoning_and_a_tool_call_as_they_stream(page: Any, stack: Stack, transport: str) -> None:
    page.goto(stack.demo_url(transport=transport, provider="echo"))
    page.get_by_test_id("prompt").fill(PROMPT)
    page.get_by_test_id("want-reasoning").check()
    page.get_by_test_id("want-tools").check()
    page.get_by_test_id("send").click()

    # While it streams: the reasoning is open and grows, then the call's arguments grow.
    reasoning = page.get_by_test_id("reasoning-text")
    reasoning.wait_for(state="visible", timeout=10_000)
    seen_args: list[str] = []
    deadline = time.monotonic() + 20
    while not page.get_by_test_id("status").inner_text().startswith("done") and time.monotonic() < deadline:
        calls = page.get_by_test_id("tool-call-args")
        if calls.count() and (not seen_args or seen_args[-1] != calls.first.inner_text()):
            seen_args.append(calls.first.inner_text())
        page.wait_for_timeout(30)
    wait_status(page, "done")

    assert page.get_by_test_id("reasoning").is_visible()
    assert page.get_by_test_id("reasoning-text").text_content() == f"Thinking about: {PROMPT}"  # folded: not rendered
    assert page.get_by_test_id("tool-call-name").inner_text() == "get_weather"
    assert json.loads(page.get_by_test_id("tool-call-args").inner_text()) == {"city": PROMPT}
    assert page.get_by_test_id("tool-call-state").inner_text() == "call call_echo_0"
    assert len(seen_args) >= 3, f"the arguments should grow while they stream, saw {seen_args}"
    assert page.get_by_test_id("finish-reason").inner_text() == "tool_calls"
    # Collapsible: closed once the answer is done, opened by a click.
    details = page.get_by_test_id("reasoning")
    assert details.get_attribute("open") is None
    details.locator("summary").click()
    assert details.get_attribute("open") is not None
    if transport == "sse":
        save_screenshot(page, "demo-parts.png")
