"""API keys and per-key limits over HTTP, end to end, as deployed: the local Function URL (one
request per StreamFunction environment, its own IAM identity) with AUTH_MODE=api_key, keys and
limits in the stack's DynamoDB, the fake upstream, real HTTP clients. The limiter's clock is
frozen mid-minute in every environment (the test layer), so no window rolls over mid-test."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.e2e.protection import LIMITS_TABLE, ProtectionTables, protected_env, refusal_docs
from tests.e2e.sse_client import iter_sse
from tests.fakes.local_stack import FunctionStack, LocalAws, function_stack
from tests.fakes.upstream import FakeUpstream, Scenario
from tokenrelay.stores.dynamodb import DynamoStreamStore

STREAMS = "tokenrelay-streams-protect-e2e"
SLOW = Scenario.ok(*[f"s{i} " for i in range(2000)], delay_s=0.01)  # 20 s unless stopped
CHAT = {"message": "hello", "provider": "openai"}
MESSAGE = {"role": "user", "content": "x"}
UI_CHAT = {  # useChat's body (docs/ai-sdk.md)
    "id": "chat-protect",
    "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello"}]}],
    "provider": "openai",
}


@dataclass
class Served:
    url: str  # the Function URL, STREAM_TIMEOUT_S=840
    short_url: str  # another on the same tables, STREAM_TIMEOUT_S=1 (the deadline path)
    tables: ProtectionTables
    upstream: FakeUpstream
    stack: FunctionStack

    def refusals(self, since: int) -> list[dict[str, Any]]:
        """The Refusals metric's documents both Function URLs printed since ``since`` (a log mark)."""
        return refusal_docs(self.stack.logs.since(since))


@pytest.fixture(scope="module")
def served(aws: LocalAws, upstream_server: FakeUpstream) -> Iterator[Served]:
    tables = ProtectionTables.create(aws.endpoint, STREAMS)
    env = {
        **upstream_server.env,
        **protected_env(STREAMS),
        "OUTPUT_LOG_TABLE": "tokenrelay-output-log-protect",  # resume on, as deployed
        "RESUME_GRACE_S": "1",
        "STREAM_TIMEOUT_S": "840",
    }
    with (
        function_stack(aws, env, name="protect-http") as stack,
        stack.serve_front_door(STREAM_TIMEOUT_S="1") as short,
    ):
        yield Served(stack.http, short, tables, upstream_server, stack)
        stack.assert_no_access_denied()


@pytest.fixture
def app(served: Served, upstream: FakeUpstream) -> Served:
    return served  # ``upstream`` resets the fake for each test


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Reader:
    """One SSE response, read a part at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events = iter_sse(response)


async def first_message(reader: Reader) -> str:
    """Read until the first text message; the stream id."""
    stream_id = ""
    async for event in reader.events:
        if event.event == "start":
            stream_id = event.data["stream_id"]
        if event.event == "message":
            return stream_id
    raise AssertionError("the stream ended before any text")


async def terminal(reader: Reader | httpx.Response) -> Any:
    events = reader.events if isinstance(reader, Reader) else iter_sse(reader)
    async for event in events:
        if event.event in ("done", "cancelled", "error"):
            return event
    raise AssertionError("no terminal event")


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["none", "malformed", "wrong_secret", "unknown", "revoked", "basic_scheme"])
async def test_protected_routes_refuse_missing_or_invalid_keys_and_start_nothing(app: Served, kind: str) -> None:
    token, _ = await app.tables.key()
    revoked, _ = await app.tables.key(revoked=True)
    headers = {
        "none": {},
        "malformed": bearer("trk_nope"),
        "wrong_secret": bearer(token[:-6] + "AAAAAA"),
        "unknown": bearer("trk_0123456789abcdef_" + "x" * 43),
        "revoked": bearer(revoked),
        "basic_scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
    }[kind]
    before = app.tables.count(STREAMS)
    routes = [
        ("POST", "/chat/stream", CHAT),
        ("GET", "/chat/stream?message=hi&provider=openai", None),
        ("POST", "/chat/stream-simple", CHAT),
        ("POST", "/chat/stream/some-id/cancel", None),
        ("GET", "/chat/stream/some-id", None),
        (
            "POST",
            "/v1/chat/completions",
            {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        ),
        ("GET", "/v1/models", None),
        ("POST", "/api/chat", UI_CHAT),
        ("GET", "/api/chat/some-chat/stream", None),
        ("POST", "/v1/messages", {"model": "openai/gpt-4o-mini", "max_tokens": 8, "messages": [MESSAGE]}),
    ]
    if kind != "basic_scheme":  # the Anthropic SDKs' header, on /v1/messages only
        anthropic_headers = {"x-api-key": headers["Authorization"][7:]} if headers else {}
        routes.append(("POST", "/v1/messages", routes[-1][2]))
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        answers = [await client.request(m, path, json=body, headers=headers) for m, path, body in routes]
        if kind != "basic_scheme":
            answers[-1] = await client.post("/v1/messages", json=routes[-1][2], headers=anthropic_headers)
        assert (await client.get("/health")).status_code == 200  # open
    bodies = set()
    for (_, path, _), response in zip(routes, answers, strict=True):
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"].startswith('Bearer realm="tokenrelay"')
        error = response.json()["error"]
        if path == "/v1/messages":  # Anthropic's error object
            assert response.json()["type"] == "error" and error["type"] == "authentication_error"
            bodies.add(error["message"])
        elif path.startswith("/v1/"):  # OpenAI's error object
            assert error["type"] == "invalid_request_error" and error["code"] == "unauthorized"
            bodies.add(error["message"])
        else:
            assert response.json()["code"] == "unauthorized"
            bodies.add(error)
    assert len(bodies) == 1  # the same answer everywhere: no hint which part was wrong
    if kind in ("wrong_secret", "unknown", "revoked", "malformed"):
        assert bodies == {"invalid API key"}
    assert app.upstream.requests == [] and app.tables.count(STREAMS) == before  # no stream, no upstream call


async def test_an_empty_bearer_with_trailing_space_is_a_401_not_a_500(app: Served) -> None:
    """``Authorization: Bearer `` as curl sends it with an empty ``$KEY`` (httpx refuses to)."""
    host, port = app.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b'{"message": "hi"}'
    writer.write(
        b"POST /chat/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    async with asyncio.timeout(30):
        answer = await reader.read()
    writer.close()
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 401"), answer[:300]
    assert b'"code":"unauthorized"' in rest and b"www-authenticate: bearer" in rest.lower()


async def test_messages_api_takes_the_key_as_x_api_key_or_bearer(app: Served) -> None:
    token, key = await app.tables.key()
    by_header = anthropic.AsyncAnthropic(base_url=app.url, api_key=token, max_retries=0, timeout=10)
    by_bearer = anthropic.AsyncAnthropic(base_url=app.url, auth_token=token, max_retries=0, timeout=10)
    wrong = anthropic.AsyncAnthropic(base_url=app.url, api_key=token[:-6] + "AAAAAA", max_retries=0, timeout=10)
    before = app.tables.count(STREAMS)
    try:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            await wrong.messages.create(
                model="openai/gpt-4o-mini", max_tokens=8, messages=[{"role": "user", "content": "x"}]
            )
        assert app.upstream.requests == [] and app.tables.count(STREAMS) == before
        for client in (by_header, by_bearer):
            async with client.messages.stream(
                model="echo/echo-1", max_tokens=64, messages=[{"role": "user", "content": "hello"}]
            ) as stream:
                final = await stream.get_final_message()
                stream_id = stream.response.headers["x-stream-id"]
            assert [b.text for b in final.content if b.type == "text"] == ["You said: hello"]
            record = await DynamoStreamStore(STREAMS).get(stream_id)
            assert record is not None and record.owner == key.key_id and record.transport == "anthropic"
    finally:
        for client in (by_header, by_bearer, wrong):
            await client.close()
    assert refused.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid API key"},
    }


async def test_valid_key_streams_owned_by_the_key_and_access_token_works_on_get_only(app: Served) -> None:
    token, key = await app.tables.key()
    app.upstream.scenario = Scenario.ok("Hel", "lo")
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        async with client.stream("POST", "/chat/stream", json=CHAT, headers=bearer(token)) as response:
            assert response.status_code == 200
            done = await terminal(response)
        assert done.event == "done"
        record = await DynamoStreamStore(STREAMS).get(done.data["stream_id"])
        assert record is not None and record.owner == key.key_id
        async with client.stream("GET", f"/chat/stream?message=hi&access_token={token}") as response:
            assert response.status_code == 200 and (await terminal(response)).event == "done"
        refused = await client.post(f"/chat/stream?access_token={token}", json=CHAT)
        assert refused.status_code == 401  # a POST takes the key from the header only
        models = await client.get(f"/v1/models?access_token={token}")
        assert models.status_code == 200 and models.json()["object"] == "list"


async def test_model_not_allowed_for_the_key_is_403_before_any_upstream_call(app: Served) -> None:
    token, _ = await app.tables.key(models=["openai:gpt-4.1-mini", "echo:*"])
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        refused = await client.post("/chat/stream", json=CHAT, headers=bearer(token))  # gpt-4o-mini: the default
        assert refused.status_code == 403 and refused.json()["code"] == "model_not_allowed"
        assert refused.json()["field"] == "model"
        echo = await client.post("/chat/stream-simple", json={"message": "hi"}, headers=bearer(token))
        assert echo.status_code == 200 and echo.text == "You said: hi"
    sdk = openai.AsyncOpenAI(base_url=f"{app.url}/v1", api_key=token, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        await sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    bad = openai.AsyncOpenAI(base_url=f"{app.url}/v1", api_key="trk_0123456789abcdef_" + "z" * 43, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await bad.models.list()
    claude = anthropic.AsyncAnthropic(base_url=app.url, api_key=token, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        await claude.messages.create(model="openai/gpt-4o-mini", max_tokens=8, messages=[MESSAGE])  # type: ignore[list-item]
    assert denied.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    await sdk.close()
    await bad.close()
    await claude.close()
    assert app.upstream.requests == []


async def test_v1_models_lists_only_the_models_the_key_may_use(app: Served) -> None:
    limited, _ = await app.tables.key(models=["openai:gpt-4.1-mini", "echo:*"])
    anything, _ = await app.tables.key()
    sdk = openai.AsyncOpenAI(base_url=f"{app.url}/v1", api_key=limited, max_retries=0)
    full = openai.AsyncOpenAI(base_url=f"{app.url}/v1", api_key=anything, max_retries=0)
    assert [m.id async for m in sdk.models.list()] == ["echo/echo-1", "openai/gpt-4.1-mini"]
    assert [m.id async for m in full.models.list()] == ["echo/echo-1", "openai/gpt-4o-mini", "openai/gpt-4.1-mini"]
    assert (await sdk.models.retrieve("openai/gpt-4.1-mini")).owned_by == "openai"
    with pytest.raises(openai.NotFoundError) as hidden:  # as OpenAI: "does not exist or you do not have access"
        await sdk.models.retrieve("openai/gpt-4o-mini")
    assert hidden.value.code == "model_not_found"
    assert (await full.models.retrieve("openai/gpt-4o-mini")).id == "openai/gpt-4o-mini"
    await sdk.close()
    await full.close()
    assert app.upstream.requests == []


async def test_cancel_and_resume_of_another_keys_stream_are_refused_403(app: Served) -> None:
    owner, _ = await app.tables.key()
    other, _ = await app.tables.key()
    app.upstream.scenario = SLOW
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        async with client.stream("POST", "/chat/stream", json=CHAT, headers=bearer(owner)) as response:
            reader = Reader(response)
            stream_id = await first_message(reader)
            cancel = await client.post(f"/chat/stream/{stream_id}/cancel", headers=bearer(other))
            resume = await client.get(f"/chat/stream/{stream_id}", headers=bearer(other))
            assert cancel.status_code == resume.status_code == 403
            assert cancel.json()["code"] == resume.json()["code"] == "forbidden"
            unknown = await client.post("/chat/stream/no-such-stream/cancel", headers=bearer(other))
            assert unknown.status_code == 404
            ok = await client.post(f"/chat/stream/{stream_id}/cancel", headers=bearer(owner))
            assert ok.status_code == 200
            assert (await terminal(reader)).event == "cancelled"


async def test_an_ai_sdk_chat_resumes_for_its_own_key_only(app: Served) -> None:
    """The chat id -> stream pointer is kept per key: another key's resume of the same chat id finds nothing."""
    owner, key = await app.tables.key()
    other, _ = await app.tables.key()
    app.upstream.scenario = SLOW
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        async with client.stream("POST", "/api/chat", json=UI_CHAT, headers=bearer(owner)) as response:
            assert response.status_code == 200
            stream_id = response.headers["x-stream-id"]
            record = await DynamoStreamStore(STREAMS).get(stream_id)
            assert record is not None and record.owner == key.key_id and record.transport == "ai-sdk"
            stranger = await client.get("/api/chat/chat-protect/stream", headers=bearer(other))
            assert stranger.status_code == 204
            async with client.stream("GET", "/api/chat/chat-protect/stream", headers=bearer(owner)) as resumed:
                assert resumed.status_code == 200 and resumed.headers["x-stream-id"] == stream_id
            ok = await client.post(f"/chat/stream/{stream_id}/cancel", headers=bearer(owner))
            assert ok.status_code == 200
            assert (await response.aread()).endswith(b'data: {"type":"abort","reason":"client"}\n\ndata: [DONE]\n\n')


async def test_each_refusal_is_counted_once_by_reason_and_nothing_else_is(app: Served) -> None:
    owner, _ = await app.tables.key()
    limited, _ = await app.tables.key(models=["echo:*"], rpm=1)
    mark = app.stack.logs.mark()
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        assert (await client.post("/chat/stream-simple", json=CHAT)).status_code == 401
        assert (await client.get("/v1/models", headers=bearer("trk_nope"))).status_code == 401
        assert (await client.post("/chat/stream-simple", json=CHAT, headers=bearer(limited))).status_code == 403
        echo = {"message": "hi"}
        assert (await client.post("/chat/stream-simple", json=echo, headers=bearer(limited))).status_code == 200
        assert (await client.post("/chat/stream-simple", json=echo, headers=bearer(limited))).status_code == 429
        async with client.stream("POST", "/chat/stream", json=echo, headers=bearer(owner)) as response:
            stream_id = response.headers["x-stream-id"]
            assert (await terminal(response)).event == "done"
        assert (await client.post(f"/chat/stream/{stream_id}/cancel", headers=bearer(limited))).status_code == 403
        assert (await client.get(f"/chat/stream/{stream_id}", headers=bearer(limited))).status_code == 403
        assert (await client.post("/chat/stream/no-such/cancel", headers=bearer(limited))).status_code == 404
        assert (await client.post("/chat/stream", json={}, headers=bearer(owner))).status_code == 400
    docs = app.refusals(mark)
    assert [d["Reason"] for d in docs] == [
        "unauthorized",
        "unauthorized",
        "model_not_allowed",
        "rate_limited",
        "forbidden",
        "forbidden",
    ]
    assert all(d["Refusals"] == [1.0] and d["Transport"] == "http" for d in docs)
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Reason", "service"]] for d in docs)
    said = "".join(app.stack.logs.since(mark))
    assert limited not in said and "trk_nope" not in said  # no key in a metric, nor in any log line


# -- rate limits -----------------------------------------------------------------------------


async def test_fifty_parallel_requests_against_rpm_ten_admit_exactly_ten(app: Served) -> None:
    token, key = await app.tables.key(rpm=10)
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=app.url, timeout=180, limits=limits) as client:
        answers = await asyncio.gather(
            *(client.post("/chat/stream-simple", json={"message": "hi"}, headers=bearer(token)) for _ in range(50))
        )
    statuses = Counter(r.status_code for r in answers)
    count = app.tables.client.get_item(TableName=LIMITS_TABLE, Key={"pk": {"S": f"rpm#{key.key_id}#30000000"}})
    counted = int(count["Item"]["count"]["N"])
    # Nothing here depends on time (the minute is frozen in every environment): any failure is a bug.
    assert statuses[200] <= 10, f"the limit let {statuses[200]} of 50 through (counter {counted}): a real bug"
    assert statuses == {200: 10, 429: 40}, f"{dict(statuses)}, counter {counted}: {[r.text for r in answers][:3]}"
    for refused in (r for r in answers if r.status_code == 429):
        assert refused.json()["code"] == "rate_limited" and refused.json()["retry_after"] == 30
        assert refused.headers["retry-after"] == "30"  # seconds to the end of the (frozen) minute
    assert all(r.text == "You said: hi" for r in answers if r.status_code == 200)
    assert counted == 10


async def test_rpm_limit_on_v1_is_openai_rate_limit_error_with_retry_after(app: Served) -> None:
    token, _ = await app.tables.key(rpm=1)
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        body = {"model": "echo/echo-1", "messages": [{"role": "user", "content": "x"}]}
        assert (await client.post("/v1/chat/completions", json=body, headers=bearer(token))).status_code == 200
        refused = await client.post("/v1/chat/completions", json=body, headers=bearer(token))
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert refused.json()["error"]["type"] == "rate_limit_error" and refused.json()["error"]["code"] == "rate_limited"


async def test_rpm_limit_on_messages_is_anthropic_rate_limit_error_the_sdk_raises(app: Served) -> None:
    token, _ = await app.tables.key(rpm=1)
    client = anthropic.AsyncAnthropic(base_url=app.url, api_key=token, max_retries=0, timeout=10)
    try:
        await client.messages.create(model="echo/echo-1", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(anthropic.RateLimitError) as refused:
            await client.messages.create(model="echo/echo-1", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    finally:
        await client.close()
    assert refused.value.response.headers["retry-after"] == "30"
    assert refused.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


async def _end_by(how: str, client: httpx.AsyncClient, reader: Reader, stream_id: str) -> None:
    if how == "cancel":
        token = reader.response.request.headers["authorization"]
        answer = await client.post(f"/chat/stream/{stream_id}/cancel", headers={"Authorization": token})
        assert answer.status_code == 200
        assert (await terminal(reader)).data["reason"] == "client"
    elif how in ("complete", "upstream_error", "deadline"):
        expected = {"complete": "done", "upstream_error": "error", "deadline": "cancelled"}[how]
        end = await terminal(reader)
        assert end.event == expected and (how != "deadline" or end.data["reason"] == "timeout")
    # "disconnect": the caller leaves the response unread; closing it is the disconnect


@pytest.mark.parametrize("how", ["cancel", "disconnect", "upstream_error", "deadline", "complete"])
async def test_concurrency_slot_comes_back_however_the_stream_ends(app: Served, how: str) -> None:
    token, key = await app.tables.key(concurrency=1)
    app.upstream.scenario = {
        "upstream_error": Scenario.error_frame(after=3, tokens=tuple(f"e{i} " for i in range(10)), delay_s=0.05),
        "complete": Scenario.ok(*[f"c{i} " for i in range(10)], delay_s=0.05),
    }.get(how, SLOW)
    url = app.short_url if how == "deadline" else app.url
    async with httpx.AsyncClient(base_url=url, timeout=15) as client:
        async with client.stream("POST", "/chat/stream", json=CHAT, headers=bearer(token)) as response:
            assert response.status_code == 200
            reader = Reader(response)
            stream_id = await first_message(reader)
            assert app.tables.slot_holder(key.key_id) == stream_id  # held while it runs
            if how in ("cancel", "disconnect"):  # still running: a second stream is refused
                refused = await client.post("/chat/stream-simple", json=CHAT, headers=bearer(token))
                assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
                assert refused.json() == {
                    "error": "at most 1 streams may run at once for this key",
                    "code": "rate_limited",
                    "retry_after": 1,
                }
            await _end_by(how, client, reader, stream_id)
        await app.tables.wait_slot_free(key.key_id)
        app.upstream.scenario = Scenario.ok("again")
        again = await client.post("/chat/stream-simple", json=CHAT, headers=bearer(token))
        assert again.status_code == 200 and again.text == "again"
