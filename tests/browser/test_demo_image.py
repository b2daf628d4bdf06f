"""An image attached in the demo page reaches the model (docs/protocol.md §13): headless
Chromium, the built page, the local stack; the offline echo provider names each image it got
(``[image image/png, 70 bytes]``), so the output shows the bytes arrived whole."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Stack
from tests.browser.test_demo import open_demo, status, watch_output

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_an_attached_image_reaches_the_model(page: Any, stack: Stack, transport: str, tmp_path: Path) -> None:
    picture = tmp_path / "pixel.png"
    picture.write_bytes(PNG)
    open_demo(page, stack, transport, "What is this?")
    page.get_by_test_id("image").set_input_files(str(picture))
    page.get_by_test_id("image-attached").wait_for()
    assert "pixel.png, 70 bytes" in page.get_by_test_id("image-attached").inner_text()
    page.get_by_test_id("send").click()
    watch_output(page, "done")
    assert page.get_by_test_id("output").inner_text() == "You said: What is this? [image image/png, 70 bytes]"


@pytest.mark.timeout(60)
def test_a_file_that_is_not_an_image_is_refused_on_the_page_and_eventsource_cannot_carry_one(
    page: Any, stack: Stack, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    open_demo(page, stack, "eventsource", "What is this?")
    page.get_by_test_id("image").set_input_files(str(text))
    assert "not a PNG, JPEG, GIF or WebP image" in page.get_by_test_id("image-problem").inner_text()
    picture = tmp_path / "pixel.png"
    picture.write_bytes(PNG)
    page.get_by_test_id("image").set_input_files(str(picture))
    assert "EventSource sends a GET" in page.get_by_test_id("image-transport").inner_text()
    assert page.get_by_test_id("send").is_disabled() and status(page) == "idle"
