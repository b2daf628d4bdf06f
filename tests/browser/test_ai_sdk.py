"""The Vercel AI SDK's ``useChat`` against ``/api/chat`` (docs/ai-sdk.md), in headless Chromium.

The page (web/test-pages/ai-sdk.tsx) runs the real ``ai`` and ``@ai-sdk/react`` packages with their
``DefaultChatTransport``, hosted on another origin than the local Function URL (CORS as the
template sets it), against the whole local stack: send and stream, stop (the explicit cancel
reaches the record), reload mid-stream and resume by chat id, and a tool call with its result
sent back by ``useChat`` itself (``sendAutomaticallyWhen``)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.browser.conftest import Stack

LONG = " ".join(f"word{i}" for i in range(250))  # 252 tokens at ECHO_DELAY_MS=30: about 7.5 s


def open_chat(page: Any, stack: Stack, chat_id: str, *, resume: bool = False) -> None:
    query = {"api": stack.http, "chat": chat_id, **({"resume": "1"} if resume else {})}
    page.goto(f"{stack.static}/test/ai-sdk.html?{urlencode(query)}")
    page.get_by_test_id("status").wait_for()


def send(page: Any, text: str) -> None:
    page.get_by_test_id("prompt").fill(text)
    page.get_by_test_id("send").click()


def answer_text(page: Any) -> str:
    messages = page.get_by_test_id("message-assistant")
    return "".join(messages.last.get_by_test_id("text").all_text_contents()) if messages.count() else ""


def wait_for(page: Any, check: Any, what: str, wait_s: float = 20.0) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if check():
            return
        page.wait_for_timeout(30)
    raise AssertionError(f"{what}: not within {wait_s} s (status {page.get_by_test_id('status').inner_text()!r})")


def status(page: Any) -> str:
    return str(page.get_by_test_id("status").inner_text())


@pytest.mark.timeout(60)
def test_use_chat_streams_an_answer_token_by_token(page: Any, stack: Stack) -> None:
    open_chat(page, stack, f"c-{uuid.uuid4().hex[:10]}")
    prompt = " ".join(f"w{i}" for i in range(40))
    send(page, prompt)

    seen: list[int] = []

    def done() -> bool:
        seen.append(len(answer_text(page)))
        return status(page) == "ready" and seen[-1] > 0

    wait_for(page, done, "the answer")
    assert answer_text(page) == f"You said: {prompt}"
    assert len(set(seen)) >= 5, f"the text should grow while it streams: {sorted(set(seen))}"
    assert page.get_by_test_id("message-user").count() == 1 and page.get_by_test_id("message-assistant").count() == 1
    stream_id = page.evaluate("window.aiSdk.streamId()")
    assert page.get_by_test_id("message-assistant").get_attribute("data-id") == f"msg-{stream_id}"
    record = stack.record(stream_id, "complete")
    assert record.transport == "ai-sdk"


@pytest.mark.timeout(60)
def test_stop_aborts_and_the_explicit_cancel_reaches_the_record(page: Any, stack: Stack) -> None:
    open_chat(page, stack, f"c-{uuid.uuid4().hex[:10]}")
    send(page, LONG)
    wait_for(page, lambda: len(answer_text(page)) > 40, "some text")
    page.get_by_test_id("stop").click()

    wait_for(page, lambda: page.evaluate("window.aiSdk.cancels.length") == 1, "the cancel's answer")
    cancel = page.evaluate("window.aiSdk.cancels[0]")
    assert cancel["ok"] is True and cancel["httpStatus"] == 200, cancel
    wait_for(page, lambda: status(page) == "ready", "ready after stop")
    stream_id = page.evaluate("window.aiSdk.streamId()")
    record = stack.record(stream_id, "cancelled")
    assert record.cancel_reason == "client"
    stopped = answer_text(page)
    assert f"You said: {LONG}".startswith(stopped) and len(stopped) < len(f"You said: {LONG}")
    page.wait_for_timeout(500)
    assert answer_text(page) == stopped  # nothing arrives after the stop


@pytest.mark.timeout(90)
def test_reload_mid_stream_resumes_by_chat_id_nothing_lost_or_repeated(page: Any, stack: Stack) -> None:
    chat_id = f"c-{uuid.uuid4().hex[:10]}"
    resumes: list[int] = []
    page.on("response", lambda r: resumes.append(r.status) if r.url.endswith(f"/api/chat/{chat_id}/stream") else None)
    open_chat(page, stack, chat_id, resume=True)
    wait_for(page, lambda: resumes == [204], "useChat's resume on mount: 204, a new chat has nothing to resume")
    send(page, LONG)
    wait_for(page, lambda: len(answer_text(page)) > 60, "some text before the reload")
    stream_id = page.evaluate("window.aiSdk.streamId()")

    page.reload()
    page.get_by_test_id("status").wait_for()
    wait_for(page, lambda: status(page) == "ready" and answer_text(page).endswith("word249"), "the resumed answer")
    assert resumes == [204, 200]
    assert answer_text(page) == f"You said: {LONG}"
    assert page.get_by_test_id("message-user").count() == 1
    assistants = page.get_by_test_id("message-assistant")
    assert assistants.count() == 1 and assistants.get_attribute("data-id") == f"msg-{stream_id}"
    assert page.evaluate("window.aiSdk.streamId()") == stream_id  # the resume's X-Stream-Id
    stack.record(stream_id, "complete")


@pytest.mark.timeout(60)
def test_a_tool_call_runs_in_the_page_and_its_result_goes_back(page: Any, stack: Stack) -> None:
    open_chat(page, stack, f"c-{uuid.uuid4().hex[:10]}")
    prompt = "What is the weather in Paris? Use get_weather."
    page.get_by_test_id("want-tools").check()
    send(page, prompt)

    wait_for(page, lambda: "returned" in answer_text(page) and status(page) == "ready", "the answer to the tool result")
    assert page.evaluate("window.aiSdk.toolCalls") == 1
    assistant = page.get_by_test_id("message-assistant")
    assert assistant.count() == 1  # the continuation writes into the same message
    assert assistant.get_by_test_id("reasoning").first.inner_text() == f"Thinking about: {prompt}"
    tool = assistant.get_by_test_id("tool")
    assert tool.get_attribute("data-name") == "get_weather" and tool.get_attribute("data-state") == "output-available"
    assert json.loads(tool.get_by_test_id("tool-input").inner_text()) == {"city": prompt}
    output = {"sky": "sunny", "city": prompt}
    assert json.loads(tool.get_by_test_id("tool-output").inner_text()) == output
    assert answer_text(page) == f"Tool get_weather returned: {json.dumps(output)}"


@pytest.mark.timeout(90)
def test_after_a_reload_stop_cancels_the_resumed_stream(page: Any, stack: Stack) -> None:
    """The resume's X-Stream-Id is remembered too: a page that reloaded can still stop the stream."""
    chat_id = f"c-{uuid.uuid4().hex[:10]}"
    open_chat(page, stack, chat_id, resume=True)
    send(page, LONG)
    wait_for(page, lambda: len(answer_text(page)) > 40, "some text before the reload")
    stream_id = page.evaluate("window.aiSdk.streamId()")

    page.reload()
    wait_for(page, lambda: page.evaluate("window.aiSdk.streamId()") == stream_id, "the resumed stream's id")
    wait_for(page, lambda: status(page) == "streaming" and len(answer_text(page)) > 80, "the resumed answer")
    page.get_by_test_id("stop").click()
    wait_for(page, lambda: page.evaluate("window.aiSdk.cancels.length") == 1, "the cancel's answer")
    assert page.evaluate("window.aiSdk.cancels[0].httpStatus") == 200
    record = stack.record(stream_id, "cancelled")
    assert record.cancel_reason == "client"
    wait_for(page, lambda: status(page) == "ready", "ready after stop")
    assert f"You said: {LONG}".startswith(answer_text(page)) and not answer_text(page).endswith("word249")
