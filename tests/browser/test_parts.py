"""The demo page shows reasoning (collapsible) and tool calls as they stream, over each transport,
in headless Chromium against the local stack, with the offline ``echo`` provider (docs/protocol.md §11)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.browser.conftest import Stack, save_screenshot

PROMPT = (  # about 40 words: the reasoning streams for over a second at ECHO_DELAY_MS=30
    "What is the weather in Paris today? Use get_weather, please, and tell me whether I should take an umbrella,"
    " a coat or sunglasses when I walk from the Louvre to the Eiffel Tower this afternoon, and whether the"
    " terraces along the river will be pleasant enough for lunch outside."
)


def wait_status(page: Any, want: str, wait_s: float = 20.0) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if page.get_by_test_id("status").inner_text().startswith(want):
            return
        page.wait_for_timeout(40)
    raise AssertionError(f"status stayed {page.get_by_test_id('status').inner_text()!r}, expected {want!r}")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_demo_shows_reasoning_and_a_tool_call_as_they_stream(page: Any, stack: Stack, transport: str) -> None:
    page.goto(stack.demo_url(transport=transport, provider="echo"))
    page.get_by_test_id("prompt").fill(PROMPT)
    page.get_by_test_id("want-reasoning").check()
    page.get_by_test_id("want-tools").check()
    page.get_by_test_id("send").click()

    # While it streams: the reasoning grows (open while it is all there is), then the call's arguments.
    reasoning = page.get_by_test_id("reasoning-text")
    reasoning.wait_for(state="attached", timeout=10_000)
    seen_reasoning: list[str] = []
    seen_args: list[str] = []
    deadline = time.monotonic() + 20
    while not page.get_by_test_id("status").inner_text().startswith("done") and time.monotonic() < deadline:
        text = reasoning.text_content() or ""
        if not seen_reasoning or seen_reasoning[-1] != text:
            seen_reasoning.append(text)
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
    assert len(seen_reasoning) >= 2, f"the reasoning should grow while it streams, saw {seen_reasoning}"
    assert len(seen_args) >= 3, f"the arguments should grow while they stream, saw {seen_args}"
    assert page.get_by_test_id("finish-reason").inner_text() == "tool_calls"
    # Collapsible: closed once the answer is done, opened by a click.
    details = page.get_by_test_id("reasoning")
    assert details.get_attribute("open") is None
    details.locator("summary").click()
    assert details.get_attribute("open") is not None
    if transport == "sse":
        save_screenshot(page, "demo-parts.png")


@pytest.mark.timeout(60)
def test_demo_over_eventsource_says_tools_cannot_go_in_a_query_string(page: Any, stack: Stack) -> None:
    """EventSource sends a GET: tools and reasoning cannot travel in it. Said, never dropped."""
    page.goto(stack.demo_url(transport="eventsource", provider="echo"))
    page.get_by_test_id("prompt").fill(PROMPT)
    page.get_by_test_id("want-tools").check()
    page.get_by_test_id("send").click()

    wait_status(page, "error")
    assert "tools: not supported by EventSource" in page.get_by_test_id("error").inner_text()
    assert page.get_by_test_id("tool-calls").count() == 0
