"""500 concurrent SSE streams of 200 tokens through the real app, on loopback only.

The app (``functions/http/app.py``) runs under uvicorn in its own process, on
moto's DynamoDB server, with the echo provider at ``ECHO_DELAY_MS`` a token:
each request's reply is exactly ``TOKENS`` tokens. All ``STREAMS`` requests are
opened at once (one connection each) and read to their end. Every stream must
have: ``start`` first, message ids 1..200 without gap or repeat, the exact
expected text, exactly one terminal event and it is ``done``; and its DynamoDB
record must be ``complete`` with 200 completion tokens. The app's log must hold
no traceback. Every wait is bounded; nothing is timed as a pass condition.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.local_stack import LocalAws, function_stack
from tests.fakes.stacks import TABLES, app_process, as_env, raise_fd_limit
from tests.load.replies import TOKENS, prompt
from tokenrelay.stores.dynamodb import DynamoStreamStore

pytestmark = pytest.mark.heavy

STREAMS = int(os.environ.get("TOKENRELAY_LOAD_SSE_STREAMS") or 500)
STREAM_WAIT_S = 180.0
TERMINAL = {"done", "cancelled", "error"}
APP_ENV = as_env(
    **TABLES,
    DEFAULT_PROVIDER="echo",
    ALLOWED_MODELS="echo:echo-1",
    ECHO_DELAY_MS=5,
    CANCEL_POLL_MS=250,
    RESUME_GRACE_S=0,  # resume is covered elsewhere; here the stream path alone
    LOG_LEVEL="WARNING",
    METRICS_ENABLED="false",
)


@dataclass
class Stream:
    index: int
    status: int = 0
    stream_id: str = ""
    events: list[str] = field(default_factory=list)  # event names in order
    ids: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    error: str = ""


@pytest.fixture(scope="module")
def app_url(aws: LocalAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One process for every stream: more than Lambda ever gives one environment (it serves one
    request at a time), to load the code and the store; it runs with StreamFunction's own template
    role on the stack's DynamoDB (IAM enforced), as each environment would."""
    raise_fd_limit(4 * STREAMS + 1024)
    log_path = tmp_path_factory.mktemp("load") / "app.log"
    with function_stack(aws, APP_ENV, http=False, name="load") as stack:
        role = stack.identities["StreamFunction"].env()
        env = {**aws.env(), **APP_ENV, "STREAMS_TABLE": os.environ["STREAMS_TABLE"], **role}
        with app_process(env, log_path) as url:
            yield url, log_path


async def _one(client: httpx.AsyncClient, index: int) -> Stream:
    stream = Stream(index)
    message, _ = prompt(index)
    body = {"message": message, "max_tokens": TOKENS}
    try:
        async with client.stream("POST", "/chat/stream", json=body) as response:
            stream.status = response.status_code
            stream.stream_id = response.headers.get("x-stream-id", "")
            name, data, event_id = "message", "", None
            async for line in response.aiter_lines():
                if line == "":
                    if data:
                        _take(stream, name, data, event_id)
                    name, data, event_id = "message", "", None
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line.startswith("id: "):
                    event_id = line[4:]
    except (httpx.HTTPError, OSError) as exc:
        stream.error = repr(exc)
    return stream


def _take(stream: Stream, name: str, data: str, event_id: str | None) -> None:
    stream.events.append(name)
    if name == "message":
        stream.text.append(json.loads(data)["text"])
        stream.ids.append(int(event_id or -1))


async def test_sse_500_concurrent_streams_of_200_tokens_lose_and_repeat_nothing(
    app_url: tuple[str, Path],
) -> None:
    url, log_path = app_url
    limits = httpx.Limits(max_connections=STREAMS + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(60.0, connect=30.0, pool=60.0)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        streams = await asyncio.wait_for(asyncio.gather(*(_one(client, i) for i in range(STREAMS))), STREAM_WAIT_S)
    elapsed = time.monotonic() - started
    failures = [s for s in streams if _problem(s)]
    print(f"\nsse load: {STREAMS} streams x {TOKENS} tokens in {elapsed:.1f} s, {len(failures)} failed")
    assert not failures, [f"{s.index}: {_problem(s)}" for s in failures[:10]]
    records = await _records([s.stream_id for s in streams])
    incomplete = [r for r in records if r is None or r.status != "complete" or r.completion_tokens != TOKENS]
    assert not incomplete, incomplete[:5]
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


def _problem(stream: Stream) -> str:
    _, expected = prompt(stream.index)
    if stream.error or stream.status != 200:
        return f"status {stream.status} {stream.error}"
    terminals = [e for e in stream.events if e in TERMINAL]
    if not stream.events or stream.events[0] != "start" or terminals != ["done"] or stream.events[-1] != "done":
        return f"events {stream.events[:3]}...{stream.events[-3:]}, terminals {terminals}"
    if stream.ids != list(range(1, TOKENS + 1)):
        return f"message ids {stream.ids[:5]}... ({len(stream.ids)})"
    if "".join(stream.text) != expected:
        return "text differs from the expected reply"
    return ""


async def _records(stream_ids: list[str]) -> list[Any]:
    store = DynamoStreamStore(os.environ["STREAMS_TABLE"])
    try:
        return list(await asyncio.gather(*(store.get(s) for s in stream_ids)))
    finally:
        store.close()
