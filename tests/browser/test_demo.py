"""The demo page in headless Chromium, against the local stack, over each transport.

SSE (fetch + ReadableStream), SSE (EventSource) and WebSocket run the same page
and the same client code: only the transport toggle differs.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.browser.conftest import Stack, save_screenshot

TRANSPORTS = ["sse", "eventsource", "websocket"]
PROMPT = (
    "Streaming one token at a time lets a reader start before the model has finished its whole answer,"
    " and lets the user stop a long answer as soon as it goes the wrong way."
)
LONG_PROMPT = " ".join(f"word{i}" for i in range(300))  # about 9 s of echo at 30 ms a token


def open_demo(page: Any, stack: Stack, transport: str, prompt: str, **query: str) -> None:
    page.goto(stack.demo_url(transport=transport, **query))
    page.get_by_test_id("prompt").fill(prompt)
    assert page.get_by_test_id(f"transport-{transport}").is_checked()


def status(page: Any) -> str:
    return str(page.get_by_test_id("status").inner_text())


def watch_output(page: Any, until: str, wait_s: float = 15.0) -> list[int]:
    """Observe the output's length every 40 ms until the status starts with ``until``; the distinct lengths seen."""
    lengths: list[int] = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        text = page.get_by_test_id("output").inner_text()
        current = status(page)
        if current != "streaming" and current.startswith(until):
            return lengths
        if current == "streaming" and (not lengths or lengths[-1] != len(text)):
            lengths.append(len(text))
        page.wait_for_timeout(40)
    raise AssertionError(f"status stayed {status(page)!r}, expected {until!r} (output: {lengths})")


def figure(page: Any, name: str) -> str:
    return str(page.get_by_test_id(name).inner_text())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_demo_tokens_appear_progressively_and_figures_fill_in(page: Any, stack: Stack, transport: str) -> None:
    open_demo(page, stack, transport, PROMPT)
    page.get_by_test_id("send").click()
    lengths = watch_output(page, "done")

    assert len(lengths) >= 5, f"the text should grow across several observations, saw lengths {lengths}"
    assert lengths == sorted(lengths)
    expected = f"You said: {PROMPT}"
    assert page.get_by_test_id("output").inner_text() == expected
    tokens = len(expected.split())
    assert re.fullmatch(r"\d+ ms", figure(page, "ttft"))
    assert figure(page, "tokens") == str(tokens)
    assert float(figure(page, "tps")) > 0
    assert figure(page, "usage-completion") == str(tokens)
    assert int(figure(page, "usage-total")) == int(figure(page, "usage-prompt")) + tokens
    assert figure(page, "finish-reason") == "stop"
    assert not page.get_by_test_id("error").is_visible()
    stream_id = figure(page, "stream-id").removeprefix("stream ")
    record = stack.record(stream_id, "complete")
    assert record.transport == ("websocket" if transport == "websocket" else "sse")
    save_screenshot(page, "demo.png" if transport == "sse" else f"demo-{transport}.png")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_demo_cancel_stops_the_stream_and_the_server_records_cancelled(page: Any, stack: Stack, transport: str) -> None:
    open_demo(page, stack, transport, LONG_PROMPT)
    page.get_by_test_id("send").click()
    page.wait_for_function("document.querySelector('[data-testid=output]').innerText.length > 40", timeout=10_000)
    page.wait_for_function("document.querySelector('[data-testid=stream-id]').innerText.length > 0", timeout=5_000)
    page.get_by_test_id("cancel").click()
    watch_output(page, "cancelled", wait_s=5)

    assert status(page) == "cancelled (client)"
    stream_id = figure(page, "stream-id").removeprefix("stream ")
    record = stack.record(stream_id, "cancelled")
    assert record.cancel_reason == "client"
    stopped_at = page.get_by_test_id("output").inner_text()
    assert len(stopped_at) < len(f"You said: {LONG_PROMPT}")
    page.wait_for_timeout(400)  # nothing more arrives
    assert page.get_by_test_id("output").inner_text() == stopped_at
    assert not page.get_by_test_id("cancel").is_enabled()
    save_screenshot(page, f"demo-cancelled-{transport}.png")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_demo_invalid_request_shows_the_error_in_words(page: Any, stack: Stack, transport: str) -> None:
    open_demo(page, stack, transport, "hello", model="no-such-model")
    page.get_by_test_id("send").click()
    page.get_by_test_id("error").wait_for(state="visible", timeout=10_000)

    assert status(page) == "error"
    message = page.get_by_test_id("error").inner_text()
    if transport == "eventsource":  # EventSource hides the status and body of a refused request
        assert "could not open the event stream" in message
    else:
        assert "The request was rejected: model: model 'no-such-model' is not allowed" in message
        assert "code invalid_request" in message
    assert page.get_by_test_id("output").inner_text() == "The answer appears here as it streams."
    save_screenshot(page, f"demo-error-{transport}.png")


@pytest.mark.timeout(60)
def test_demo_unreachable_server_is_reported_in_words(page: Any, stack: Stack) -> None:
    from tests.fakes.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    page.goto(stack.demo_url(api=dead))
    page.get_by_test_id("deployment-problem").wait_for(state="visible")
    page.get_by_test_id("send").click()
    page.get_by_test_id("error").wait_for(state="visible")
    assert "Could not reach the server" in page.get_by_test_id("error").inner_text()


@pytest.mark.timeout(60)
def test_demo_lists_the_deployment_providers(page: Any, stack: Stack) -> None:
    page.goto(stack.demo_url())
    page.wait_for_function("document.querySelectorAll('[data-testid=provider] option').length > 1")
    options = page.get_by_test_id("provider").locator("option").all_inner_texts()
    assert options == ["default (echo)", "echo"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_demo_on_another_origin_works_under_the_function_url_cors_policy(
    page: Any, stack: Stack, transport: str
) -> None:
    """The page hosted apart from the API (as against a deployed Function URL): base URLs from
    the query string; the app answers with the CORS policy of template.yaml's FunctionUrlConfig."""
    page.goto(stack.cross_origin_demo_url(transport=transport))
    assert page.get_by_test_id("api-url").input_value() == stack.http
    page.wait_for_function("document.querySelectorAll('[data-testid=provider] option').length > 1")
    page.get_by_test_id("prompt").fill(PROMPT)
    page.get_by_test_id("send").click()
    watch_output(page, "done")
    assert page.get_by_test_id("output").inner_text() == f"You said: {PROMPT}"

    page.get_by_test_id("prompt").fill(LONG_PROMPT)
    page.get_by_test_id("send").click()
    page.wait_for_function("document.querySelector('[data-testid=output]').innerText.length > 40")
    page.get_by_test_id("cancel").click()  # the cancel endpoint, cross-origin
    watch_output(page, "cancelled", wait_s=5)
    stack.record(figure(page, "stream-id").removeprefix("stream "), "cancelled")
