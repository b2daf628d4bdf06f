"""Mutation tests of the local stack's IAM: take one action out of one function's policy in a
copy of ``template.yaml``, run the stack from the copy, and the behaviour that needs it breaks,
loudly, exactly as it would on AWS.

- StreamFunction without ``dynamodb:BatchGetItem`` (the grant issue 13 found missing): the
  cancel poller's reads are refused, so no producer ever sees a cancel sent to another
  environment: it is answered 202 ``cancelling`` (recorded, not confirmed: docs/protocol.md)
  while generation goes on to the last token (the record's cancel flag only makes the end
  ``cancelled``); an AccessDenied is logged. With the real template the same cancel stops the
  stream within a few tokens, and is answered 200 ``cancelled`` (``cancel_from_another_environment``).
- WorkerFunction without ``execute-api:ManageConnections``: the gateway refuses its posts, so
  the client gets no text, and the refusal is logged at ERROR.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.e2e.conftest import APP_ENV
from tests.e2e.sse_client import TERMINALS, iter_sse
from tests.fakes.local_stack import LocalAws, function_stack

ROOT = Path(__file__).resolve().parents[2]
LONG = {"message": " ".join(f"w{i}" for i in range(300))}  # echo at 20 ms a token: 6 s unless stopped
FULL = 302  # its tokens: "You said: " and the 300 words


def mutated(tmp_path: Path, function: str, old: str, new: str) -> Path:
    """A copy of template.yaml with ``old`` replaced by ``new`` once, inside ``function``'s resource."""
    text = (ROOT / "template.yaml").read_text()
    start = text.index(f"\n  {function}:\n")
    next_resource = re.search(r"\n  \w+:\n", text[start + 1 :])
    at = text.index(old, start)
    assert next_resource is not None and at < start + 1 + next_resource.start(), f"{old!r} is not in {function}"
    copy = tmp_path / "template.yaml"
    copy.write_text(text[:at] + new + text[at + len(old) :])
    return copy


async def cancel_from_another_environment(url: str) -> tuple[int, str, int]:
    """Start a long stream, cancel it with a second request (another environment, as on AWS):
    the cancel's status, the stream's terminal event and how many text messages came."""
    status, texts = 0, 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        async with client.stream("POST", "/chat/stream", json=LONG) as response:
            async for event in iter_sse(response):
                texts += event.event == "message"
                if event.event == "message" and event.id == "3":
                    cancel = await client.post(f"/chat/stream/{response.headers['x-stream-id']}/cancel")
                    status = cancel.status_code
                if event.event in TERMINALS:
                    return status, event.event, texts
    raise AssertionError("the stream ended without a terminal event")


@pytest.fixture
def no_batch_get(tmp_path: Path) -> Path:
    old = "dynamodb:GetItem, dynamodb:BatchGetItem, dynamodb:PutItem"
    return mutated(tmp_path, "StreamFunction", old, "dynamodb:GetItem, dynamodb:PutItem")


def test_stream_function_without_batch_get_item_cannot_see_a_cancel(
    aws: LocalAws, upstream_server: Any, no_batch_get: Path
) -> None:
    env = {**upstream_server.env, **APP_ENV}
    with function_stack(aws, env, name="mutant-batchget", template=no_batch_get) as stack:
        # recorded but never confirmed (202), and generation went on to the last of its 302 tokens
        assert asyncio.run(cancel_from_another_environment(stack.http)) == (202, "cancelled", FULL)
        denied = stack.logs.access_denied()
        assert denied and "BatchGetItem" in denied[0] and "ERROR" in denied[0], denied  # loud, at ERROR
        assert any("cancel poll" in line and "failed" in line for line in stack.logs.lines)
    with function_stack(aws, env, name="real-batchget") as stack:  # the real template: the cancel lands
        status, end, texts = asyncio.run(cancel_from_another_environment(stack.http))
        assert (status, end) == (200, "cancelled") and texts < FULL // 2, (status, end, texts)
        stack.assert_no_access_denied()


@pytest.fixture
def worker_cannot_post(tmp_path: Path) -> Iterator[Path]:
    yield mutated(tmp_path, "WorkerFunction", "Action: [execute-api:ManageConnections]", "Action: [execute-api:Invoke]")


def test_worker_without_manage_connections_cannot_post_to_the_client(
    aws: LocalAws, upstream_server: Any, worker_cannot_post: Path
) -> None:
    env = {**upstream_server.env, **APP_ENV, "CONNECTIONS_TABLE": "tokenrelay-connections-mutant"}

    async def chat(url: str) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async with websockets.connect(url, open_timeout=30) as ws:
            await ws.send(json.dumps({"type": "chat", "message": "hello there"}))
            try:
                async with asyncio.timeout(8):
                    while not got or got[-1]["type"] not in ("done", "error", "cancelled"):
                        got.append(json.loads(await ws.recv()))
            except TimeoutError:
                pass
        return got

    with function_stack(aws, env, http=False, ws=True, name="mutant-post", template=worker_cannot_post) as stack:
        got = asyncio.run(chat(stack.ws))
        assert not [m for m in got if m["type"] == "text"], got  # not one token reached the client
        denied = stack.logs.access_denied()
        assert any("execute-api:ManageConnections" in line and "WorkerFunction" in line for line in denied), denied
