"""SSE resume end to end (PROTOCOL section 5): drop, reconnect on another process, exact text once."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.resume_stack import FLUSH_MS, GRACE_S, ResumeStack, resume_stack
from tests.e2e.sse_client import TERMINALS, SSEEvent, iter_sse, text_of
from tests.fakes.local_stack import LocalAws
from tests.fakes.upstream import FakeUpstream, Scenario
from tokenrelay.catalog import DEFAULT_PRICES

TOKENS = tuple(f"t{i} " for i in range(300))  # 300 x 20 ms: 6 s, longer than the grace period


@pytest.fixture(scope="module")
def stack(aws: LocalAws, upstream_server: FakeUpstream) -> Iterator[ResumeStack]:
    with resume_stack(aws, upstream_server) as s:
        yield s


@pytest.fixture
def resume(stack: ResumeStack) -> Iterator[ResumeStack]:
    stack.upstream.reset()
    mark = stack.stack.logs.mark()
    yield stack
    stack.stack.assert_no_access_denied(mark)


async def start_and_drop(url: str, k: int, body: dict[str, object]) -> tuple[str, list[SSEEvent]]:
    """Start a stream, read ``k`` messages, then close the connection."""
    events: list[SSEEvent] = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        async with client.stream("POST", "/chat/stream", json=body) as response:
            stream_id = response.headers["x-stream-id"]
            async for event in iter_sse(response):
                events.append(event)
                if sum(e.event == "message" for e in events) == k:
                    break
    return stream_id, events


async def resume_from(url: str, stream_id: str, last_id: str, **headers: str) -> list[SSEEvent]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        hdrs = {"Last-Event-ID": last_id, **headers}
        async with client.stream("GET", f"/chat/stream/{stream_id}", headers=hdrs) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            return [e async for e in iter_sse(response)]


async def wait_record(stack: ResumeStack, stream_id: str, status: str, within_s: float) -> object:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        record = await stack.store.get(stream_id)
        if record is not None and record.status == status:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"record {stream_id} never reached {status}: {await stack.store.get(stream_id)}")


def assert_exactly_once(before: list[SSEEvent], after: list[SSEEvent], tokens: tuple[str, ...]) -> None:
    ids = [int(e.id or 0) for e in [*before, *after] if e.event == "message"]
    assert ids == list(range(1, len(ids) + 1))  # each part once, in order
    assert text_of(before) + text_of(after) == "".join(tokens)
    terminals = [e for e in [*before, *after] if e.event in TERMINALS]
    assert [t.event for t in terminals] == ["done"] and terminals[0] is after[-1]


@pytest.mark.parametrize("pause_s", [0.0, 3.0])
async def test_sse_resume_after_drop_on_other_process_gets_every_part_once(resume: ResumeStack, pause_s: float) -> None:
    resume.upstream.scenario = Scenario.ok(*TOKENS, delay_s=0.02)
    stream_id, before = await start_and_drop(resume.producer, 7, {"message": "x", "provider": "openai"})
    await asyncio.sleep(pause_s)
    after = await resume_from(resume.other, stream_id, before[-1].id or "0")
    assert_exactly_once(before, after, TOKENS)
    assert [e.event for e in after if e.event == "usage"] == ["usage"]
    assert after[-1].data["completion_tokens"] == len(TOKENS)
    await wait_record(resume, stream_id, "complete", 5)
    assert resume.upstream.finished_count == 1 and resume.upstream.closed_early_count == 0


async def test_sse_resume_with_query_param_after_finish_replays_to_end(resume: ResumeStack) -> None:
    async with httpx.AsyncClient(base_url=resume.producer, timeout=10) as client:
        async with client.stream("POST", "/chat/stream", json={"message": "the whole thing"}) as response:
            events = [e async for e in iter_sse(response)]
    stream_id = events[0].data["stream_id"]
    async with httpx.AsyncClient(base_url=resume.other, timeout=10) as client:
        async with client.stream("GET", f"/chat/stream/{stream_id}", params={"last_event_id": "2"}) as response:
            after = [e async for e in iter_sse(response)]
    messages = [e for e in events if e.event == "message"]
    assert text_of(after) == "".join(e.data["text"] for e in messages[2:])
    assert after[-1].event == "done" and after[-1].data == events[-1].data


async def test_sse_resume_unknown_stream_is_404(resume: ResumeStack) -> None:
    async with httpx.AsyncClient(base_url=resume.other) as client:
        response = await client.get("/chat/stream/no-such-stream", headers={"Last-Event-ID": "3"})
    assert response.status_code == 404 and response.json()["code"] == "stream_not_found"


async def test_sse_resume_of_another_clients_stream_is_403(resume: ResumeStack) -> None:
    headers = {"X-Client-Id": "alice"}
    async with httpx.AsyncClient(base_url=resume.producer, timeout=10, headers=headers) as client:
        async with client.stream("POST", "/chat/stream", json={"message": "mine"}) as response:
            events = [e async for e in iter_sse(response)]
    stream_id = events[0].data["stream_id"]
    async with httpx.AsyncClient(base_url=resume.other) as client:
        mallory = await client.get(f"/chat/stream/{stream_id}", headers={"X-Client-Id": "mallory"})
        anonymous = await client.get(f"/chat/stream/{stream_id}")
        bad = await client.get(f"/chat/stream/{stream_id}", headers={"X-Client-Id": "alice", "Last-Event-ID": "x"})
    assert mallory.status_code == 403 and mallory.json()["code"] == "forbidden"
    assert anonymous.status_code == 403
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]
    after = await resume_from(resume.other, stream_id, "0", **headers)
    assert text_of(after) == text_of(events)


async def test_sse_drop_without_resume_closes_upstream_after_grace_as_disconnect(resume: ResumeStack) -> None:
    resume.upstream.scenario = Scenario.ok(*[f"w{i} " for i in range(2000)], delay_s=0.02)
    dropped = time.monotonic()
    stream_id, _ = await start_and_drop(resume.producer, 3, {"message": "x", "provider": "openai"})
    # generation goes on during the grace period...
    assert not await asyncio.to_thread(resume.upstream.wait_closed_early, 1, GRACE_S - 1.5)
    # ...and stops soon after it
    assert await asyncio.to_thread(resume.upstream.wait_closed_early, 1, 5.0)
    assert time.monotonic() - dropped >= GRACE_S - 0.5
    record = await wait_record(resume, stream_id, "cancelled", 5)
    assert record.cancel_reason == "disconnect"  # type: ignore[attr-defined]
    # a late resume replays what was produced, then the terminal event
    after = await resume_from(resume.other, stream_id, "0")
    assert after[-1].event == "cancelled" and after[-1].data["reason"] == "disconnect"
    assert sum(e.event in TERMINALS for e in after) == 1


async def test_sse_explicit_cancel_during_drop_stops_at_once(resume: ResumeStack) -> None:
    resume.upstream.scenario = Scenario.ok(*[f"w{i} " for i in range(2000)], delay_s=0.02)
    stream_id, before = await start_and_drop(resume.producer, 3, {"message": "x", "provider": "openai"})
    async with httpx.AsyncClient(base_url=resume.other) as client:
        cancelled_at = time.monotonic()
        assert (await client.post(f"/chat/stream/{stream_id}/cancel")).status_code == 200
    # The upstream would send for 40 s: closed within 10 s, it was the cancel that closed it. (No
    # bound on the latency itself: on a loaded machine that measures the machine, not the code.)
    closed = await asyncio.to_thread(resume.upstream.wait_closed_early, 1, 10.0)
    assert closed, f"the upstream was still open {time.monotonic() - cancelled_at:.1f} s after the cancel"
    record = await wait_record(resume, stream_id, "cancelled", 5)
    assert record.cancel_reason == "client"  # type: ignore[attr-defined]
    after = await resume_from(resume.other, stream_id, before[-1].id or "0")
    assert [e.event for e in after if e.event in TERMINALS] == ["cancelled"]
    assert after[-1].data["reason"] == "client"


async def test_sse_output_log_writes_stay_within_batching_bound(resume: ResumeStack) -> None:
    resume.upstream.scenario = Scenario.ok(*TOKENS, delay_s=0.02)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=resume.producer, timeout=20) as client:
        async with client.stream("POST", "/chat/stream", json={"message": "x", "provider": "openai"}) as response:
            events = [e async for e in iter_sse(response)]
    elapsed = time.monotonic() - started
    stream_id = events[0].data["stream_id"]
    await wait_record(resume, stream_id, "complete", 5)
    await asyncio.sleep(0.3)
    items = resume.log_items(stream_id)
    bound = math.ceil(elapsed / (FLUSH_MS / 1000)) + 2  # one per flush window, the last partial one, the end
    assert len(items) <= bound, (len(items), bound)
    assert len(items) < len(TOKENS) / 5  # never one write per token
    batches = sorted(int(i["batch"]["N"]) for i in items)
    assert batches == list(range(1, len(items) + 1))
    texts = [t["S"] for i in sorted(items, key=lambda i: int(i["batch"]["N"])) for t in i.get("texts", {"L": []})["L"]]
    assert texts == list(TOKENS)
    record_expiry = (await resume.store.get(stream_id)).expires_at  # type: ignore[union-attr]
    assert all(abs(int(i["expires_at"]["N"]) - record_expiry) <= 2 for i in items)


async def test_a_stream_that_ends_after_its_client_left_records_what_it_cost(resume: ResumeStack) -> None:
    # billed upstream whether anyone read it: the record has the exact cost from the provider's usage
    tokens = tuple(f"c{i} " for i in range(60))  # 60 x 20 ms: ends well inside the grace period
    resume.upstream.scenario = Scenario.ok(*tokens, delay_s=0.02, prompt_tokens=1000, cached_tokens=2000)
    stream_id, _ = await start_and_drop(resume.producer, 3, {"message": "cost", "provider": "openai"})
    record = await wait_record(resume, stream_id, "complete", within_s=GRACE_S + 5)
    price = DEFAULT_PRICES[("openai", "gpt-4o-mini")]
    expected = (1000 * price.input + 2000 * price.cached_input + len(tokens) * price.output) / 1_000_000
    assert record.cost_usd == pytest.approx(expected, rel=1e-9) and not record.cost_estimated  # type: ignore[attr-defined]
