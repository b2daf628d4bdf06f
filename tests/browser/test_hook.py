"""useStreamingChat in real React (web/test-pages/hook.tsx, built to /demo/test/hook.html)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Stack

LONG_PROMPT = " ".join(f"w{i}" for i in range(300))


@pytest.fixture
def hook_page(page: Any, stack: Stack) -> Any:
    page.goto(f"{stack.http}/demo/test/hook.html")
    page.wait_for_function("document.title === 'hook test ready'")
    return page


@pytest.mark.timeout(30)
def test_hook_batches_tokens_into_animation_frames(hook_page: Any) -> None:
    tokens, chunks = 3000, 60
    result = hook_page.evaluate(f"window.hookTest.runFake({tokens}, {chunks})")
    stats = hook_page.evaluate("window.hookTest.stats()")

    assert result["type"] == "done" and stats["status"] == "done"
    assert stats["content"] == "".join(f"t{i} " for i in range(1, tokens + 1))
    assert len(stats["lengths"]) >= 4, "the text should be published in several steps"
    assert stats["lengths"] == sorted(stats["lengths"])
    # one commit per animation frame at most, not one per token
    assert stats["commits"] <= chunks + 5 and stats["commits"] < tokens / 20, stats
    assert stats["framesRequested"] <= chunks + 5, stats


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_hook_unmount_mid_stream_stops_updates_and_cancels_the_stream(
    hook_page: Any, stack: Stack, transport: str
) -> None:
    hook_page.evaluate(
        "([options, prompt]) => { window.hookTest.mount(options); window.hookTest.send(prompt); }",
        [{"transport": transport, "baseUrl": stack.http, "wsUrl": stack.ws}, LONG_PROMPT],
    )
    hook_page.wait_for_function("window.hookTest.stats().content.length > 30 && window.hookTest.stats().streamId")
    stream_id = hook_page.evaluate("window.hookTest.stats().streamId")
    before = hook_page.evaluate("(() => { window.hookTest.unmount(); return window.hookTest.stats(); })()")
    hook_page.wait_for_timeout(500)  # the server would have sent about 15 more tokens by now
    after = hook_page.evaluate("window.hookTest.stats()")

    assert after["framesRequested"] == before["framesRequested"], "a frame was scheduled after unmount"
    assert after["commits"] == before["commits"] and after["lengths"] == before["lengths"]
    assert after["status"] == "streaming" and not after["mounted"]
    stack.record(stream_id, "cancelled")
