"""SSE end to end: real uvicorn, real HTTP client, real SDK against the fake upstream, moto server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.conftest import LocalApp
from tests.e2e.sse_client import TERMINALS, SSEEvent, iter_sse, text_of
from tests.fakes.upstream import Scenario

TOKENS = tuple(f"tok{i} " for i in range(40))


async def read_all(client: httpx.AsyncClient, body: dict[str, object]) -> tuple[httpx.Response, list[SSEEvent]]:
    async with client.stream("POST", "/chat/stream", json=body) as response:
        events = [e async for e in iter_sse(response)]
    return response, events


async def wait_record(app: LocalApp, stream_id: str, status: str, within_s: float = 5.0) -> object:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        record = await app.record(stream_id)
        if record is not None and record.status == status:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"record {stream_id} never reached {status}: {await app.record(stream_id)}")


@pytest.fixture
async def client(app: LocalApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as c:
        yield c


async def test_sse_openai_stream_arrives_incrementally_with_exact_text(
    app: LocalApp, client: httpx.AsyncClient
) -> None:
    app.upstream.scenario = Scenario.ok(*TOKENS, delay_s=0.02)
    response, events = await read_all(client, {"message": "count", "provider": "openai"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache" and response.headers["x-accel-buffering"] == "no"
    assert events[0].event == "start"
    assert events[0].data == {
        "stream_id": response.headers["x-stream-id"],
        "provider": "openai",
        "model": "gpt-4o-mini",
    }
    assert text_of(events) == "".join(TOKENS)
    messages = [e for e in events if e.event == "message"]
    assert [m.id for m in messages] == [str(i) for i in range(1, len(messages) + 1)]
    # not buffered: the first token arrives long before the last (40 tokens x 20 ms upstream)
    assert messages[-1].at - messages[0].at > 0.4
    assert [e.event for e in events if e.event in TERMINALS] == ["done"] and events[-1].event == "done"
    usage = next(e for e in events if e.event == "usage").data
    assert usage["completion_tokens"] == len(TOKENS) and usage["total_tokens"] == usage["prompt_tokens"] + len(TOKENS)
    done = events[-1].data
    assert done["status"] == "complete" and done["completion_tokens"] == len(TOKENS) and done["ttft_ms"] >= 0
    record = await wait_record(app, done["stream_id"], "complete")
    assert record.completion_tokens == len(TOKENS) and record.provider == "openai"  # type: ignore[attr-defined]
    assert app.upstream.last.json["stream"] is True


async def test_sse_anthropic_stream_text_and_usage(app: LocalApp, client: httpx.AsyncClient) -> None:
    app.upstream.scenario = Scenario.ok("Bonjour", " le", " monde", delay_s=0.01)
    _, events = await read_all(client, {"message": "hi", "provider": "anthropic", "system": "be kind"})
    assert text_of(events) == "Bonjour le monde"
    assert events[-1].event == "done" and events[-1].data["finish_reason"] == "stop"
    assert app.upstream.last.json["system"] == "be kind"


async def test_sse_get_for_eventsource_streams_echo(client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/chat/stream", params={"message": "query string works"}) as response:
        events = [e async for e in iter_sse(response)]
    assert text_of(events) == "You said: query string works"
    assert events[-1].event == "done"


async def test_sse_cancel_from_another_connection_stops_stream_and_closes_upstream(
    app: LocalApp, client: httpx.AsyncClient
) -> None:
    app.upstream.scenario = Scenario.ok(*[f"w{i} " for i in range(500)], delay_s=0.02)
    events: list[SSEEvent] = []
    async with client.stream("POST", "/chat/stream", json={"message": "long", "provider": "openai"}) as response:
        stream_id = response.headers["x-stream-id"]
        async for event in iter_sse(response):
            events.append(event)
            if event.event == "message" and len([e for e in events if e.event == "message"]) == 3:
                # a separate connection, as a second Lambda instance would receive it
                async with httpx.AsyncClient(base_url=app.url) as other:
                    cancel = await other.post(f"/chat/stream/{stream_id}/cancel")
                assert cancel.status_code == 200 and cancel.json() == {"status": "cancelled", "stream_id": stream_id}, (
                    cancel.text,
                    events,
                )
    assert events[-1].event == "cancelled" and events[-1].data == {"stream_id": stream_id, "reason": "client"}
    assert [e.event for e in events].count("cancelled") == 1
    assert app.upstream.wait_closed_early(1, timeout=5)
    record = await wait_record(app, stream_id, "cancelled")
    assert record.cancel_reason == "client"  # type: ignore[attr-defined]
    assert record.completion_tokens == len([e for e in events if e.event == "message"])  # type: ignore[attr-defined]
    # a second cancel is a conflict that names the final status
    again = await client.post(f"/chat/stream/{stream_id}/cancel")
    assert again.status_code == 409 and again.json()["status"] == "cancelled"


async def test_sse_cancel_through_dynamodb_flag_when_stream_is_elsewhere(
    app: LocalApp, client: httpx.AsyncClient
) -> None:
    """The cancel lands on an instance that does not hold the stream: only the DynamoDB flag stops it."""
    app.upstream.scenario = Scenario.ok(*[f"w{i} " for i in range(500)], delay_s=0.02)
    async with client.stream("POST", "/chat/stream", json={"message": "long", "provider": "openai"}) as response:
        stream_id = response.headers["x-stream-id"]
        events = []
        async for event in iter_sse(response):
            events.append(event)
            if event.event == "message" and event.id == "2":
                await app.store.request_cancel(stream_id, "client")  # what another instance's route does
    assert events[-1].event == "cancelled"
    assert app.upstream.wait_closed_early(1, timeout=5)


async def test_sse_client_disconnect_closes_upstream_and_records_disconnect(
    app: LocalApp, client: httpx.AsyncClient
) -> None:
    app.upstream.scenario = Scenario.ok(*[f"w{i} " for i in range(500)], delay_s=0.02)
    async with client.stream("POST", "/chat/stream", json={"message": "bye", "provider": "openai"}) as response:
        stream_id = response.headers["x-stream-id"]
        seen = 0
        async for event in iter_sse(response):
            seen += event.event == "message"
            if seen == 3:
                break  # leaving the block closes the connection
    assert app.upstream.wait_closed_early(1, timeout=5)
    record = await wait_record(app, stream_id, "cancelled")
    assert record.cancel_reason == "disconnect"  # type: ignore[attr-defined]
    assert app.upstream.finished_count == 0


async def test_sse_upstream_error_midstream_ends_with_one_error_event(app: LocalApp, client: httpx.AsyncClient) -> None:
    app.upstream.scenario = Scenario.error_frame(after=3)
    _, events = await read_all(client, {"message": "x", "provider": "openai"})
    terminal = [e for e in events if e.event in TERMINALS]
    assert len(terminal) == 1 and terminal[0] is events[-1] and events[-1].event == "error"
    assert set(events[-1].data) == {"error", "code", "retryable"}
    assert "sk-test" not in str(events[-1].data) and "UPSTREAM-BODY-DETAIL" not in str(events[-1].data)
    await wait_record(app, events[0].data["stream_id"], "failed")


async def test_sse_upstream_429_before_first_token_is_in_band_rate_limited(
    app: LocalApp, client: httpx.AsyncClient
) -> None:
    app.upstream.scenario = Scenario.http_error(429)
    _, events = await read_all(client, {"message": "x", "provider": "openai"})
    assert [e.event for e in events] == ["start", "error"]
    assert events[-1].data["code"] == "upstream_rate_limited" and events[-1].data["retryable"] is True


async def test_sse_simple_streams_raw_text(app: LocalApp, client: httpx.AsyncClient) -> None:
    app.upstream.scenario = Scenario.ok(*TOKENS, delay_s=0.005)
    async with client.stream("POST", "/chat/stream-simple", json={"message": "x", "provider": "openai"}) as response:
        assert response.headers["content-type"].startswith("text/plain")
        body = "".join([chunk async for chunk in response.aiter_text()])
    assert body == "".join(TOKENS)


async def test_sse_simple_upstream_429_before_text_is_http_429(app: LocalApp, client: httpx.AsyncClient) -> None:
    app.upstream.scenario = Scenario.http_error(429)
    response = await client.post("/chat/stream-simple", json={"message": "x", "provider": "openai"})
    assert response.status_code == 429 and response.json()["code"] == "upstream_rate_limited"


async def test_health_reports_version_and_dynamodb(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["dependencies"]["dynamodb"] == "ok" and body["version"]
    assert "echo" in body["providers"]


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"json": {}}, 400, "message"),
        ({"json": {"message": ""}}, 400, "message"),
        ({"json": {"message": "a", "messages": [{"role": "user", "content": "a"}]}}, 400, "exactly one"),
        ({"json": {"message": "a", "provider": "bogus"}}, 400, "provider"),
        ({"json": {"message": "a", "model": "gpt-5-ultra"}}, 400, "model"),
        ({"json": {"message": "x" * 2001}}, 400, "too long"),
        ({"content": b'{"message": "a"', "headers": {"content-type": "application/json"}}, 400, "invalid JSON"),
        ({"content": b"message=a", "headers": {"content-type": "text/plain"}}, 415, "content-type"),
        ({"content": b"{}"}, 415, "content-type"),
        ({"json": {"message": "a", "max_tokens": "lots"}}, 400, "max_tokens"),
        ({"json": "just a string"}, 400, "body"),
    ],
)
async def test_sse_bad_input_is_4xx_naming_the_problem(
    client: httpx.AsyncClient, kwargs: dict[str, object], status: int, words: str
) -> None:
    response = await client.post("/chat/stream", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


async def test_sse_get_bad_query_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/chat/stream", params={"message": "a", "max_tokens": "ten"})
    assert response.status_code == 400 and "max_tokens" in response.json()["error"]
    response = await client.get("/chat/stream", params={"message": "a", "colour": "red"})
    assert response.status_code == 400 and "colour" in response.json()["error"]


async def test_cancel_unknown_stream_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/stream/does-not-exist/cancel")
    assert response.status_code == 404 and response.json()["code"] == "stream_not_found"


async def test_cancel_finished_stream_is_409_with_its_status(client: httpx.AsyncClient) -> None:
    _, events = await read_all(client, {"message": "short"})
    stream_id = events[0].data["stream_id"]
    response = await client.post(f"/chat/stream/{stream_id}/cancel")
    assert response.status_code == 409
    assert response.json()["status"] == "complete" and response.json()["code"] == "stream_finished"
