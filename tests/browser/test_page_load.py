"""Opening the demo page, and the app's base URL, as a newcomer does: nothing fails on the way."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Stack


@pytest.mark.timeout(60)
def test_demo_page_load_has_no_failed_request_and_no_console_error(page: Any, stack: Stack) -> None:
    """Issue 20: a 404 in the console on every load (the browser's /favicon.ico)."""
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("requestfailed", lambda r: failed.append(f"failed {r.url}"))
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.goto(stack.demo_url(), wait_until="networkidle")
    page.wait_for_function("document.querySelectorAll('[data-testid=provider] option').length > 1")
    assert failed == []
    assert console == []


@pytest.mark.timeout(60)
def test_base_url_leads_to_the_demo_page_where_it_is_served(page: Any, stack: Stack) -> None:
    response = page.goto(f"{stack.http}/")
    assert response is not None and response.ok
    assert page.url == f"{stack.http}/demo/"
    page.get_by_test_id("send").wait_for(state="visible")
