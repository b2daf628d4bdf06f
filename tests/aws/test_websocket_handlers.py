"""WebSocket handlers on API Gateway's own event shapes, with moto for DynamoDB and ``@connections``.

moto never answers ``GoneException`` and would try to run the worker on an async
invoke, so both are injected at botocore's ``before-send``: a 410 for connections
marked gone, a 202 (recorded) for ``lambda:Invoke``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import DEFAULT_ACCOUNT_ID

from tests.aws.conftest import REGION
from tests.aws.schema import create_table, table_spec
from tokenrelay import StreamOutcome
from tokenrelay.errors import ConnectionNotFound, TooManyStreams
from tokenrelay.stores.dynamodb import DynamoConnectionStore

ROOT = Path(__file__).resolve().parents[2]
WS_FUNCTIONS = str(ROOT / "functions" / "websocket")
if WS_FUNCTIONS not in sys.path:  # until pyproject's pythonpath lists functions/websocket
    sys.path.insert(0, WS_FUNCTIONS)

# The handlers' modules, not the Lambda entry modules beside them (connect.py...): those build
# the environment's services at import, as Lambda's init does, from variables set per test here.
from tokenrelay_ws import connect, disconnect, message, worker  # noqa: E402
from tokenrelay_ws import environment as common  # noqa: E402

EVENTS = ROOT / "tests" / "events"
CONNECTION = "UjXb5eIuoAMCJUw="
ENDPOINT = "https://abcdef1234.execute-api.us-east-1.amazonaws.com/prod"


def event(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / f"websocket_{name}.json").read_text())
    context = changes.pop("context", {})
    data["requestContext"].update(context)
    if "body" in changes and not isinstance(changes["body"], str):
        changes["body"] = json.dumps(changes["body"])
    data.update(changes)
    return data


def connections_spec() -> Any:
    return table_spec("ConnectionsTable")


class LambdaContext:
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def __init__(self, remaining_ms: int = 10_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Aws:
    svc: common.Services
    invokes: list[dict[str, Any]] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    gone_answers: int = 0  # moto records the post anyway: count the 410s instead
    invoke_status: int = 202

    def posted(self, connection_id: str = CONNECTION) -> list[dict[str, Any]]:
        """Every message posted to the connection (moto concatenates them)."""
        backend = apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID][REGION]
        raw = b"".join(
            backend.connections[k].data
            for k in {connection_id, quote(connection_id, safe="")}
            if k in backend.connections
        )
        text, out, i = raw.decode(), [], 0
        decoder = json.JSONDecoder()
        while i < len(text):
            obj, i = decoder.raw_decode(text, i)
            out.append(obj)
        return out

    def call(self, handler: Any, evt: dict[str, Any]) -> dict[str, Any]:
        return handler(evt, LambdaContext())  # type: ignore[no-any-return]

    def connect(self, connection_id: str = CONNECTION, client_id: str | None = "client-a") -> None:
        query = {"queryStringParameters": {"client_id": client_id}} if client_id else {"queryStringParameters": None}
        evt = event("connect", context={"connectionId": connection_id}, **query)
        assert self.call(connect.handler, evt) == {"statusCode": 200}

    def chat(self, body: dict[str, Any], connection_id: str = CONNECTION) -> str:
        """Send a chat message; the stream id handed to the worker."""
        before = len(self.invokes)
        self.call(
            message.handler,
            event("message_chat", body={"type": "chat", **body}, context={"connectionId": connection_id}),
        )
        assert len(self.invokes) == before + 1, self.posted(connection_id)
        return str(self.invokes[-1]["payload"]["stream_id"])

    def stream(self, stream_id: str) -> Any:
        return common.run(self.svc.streams.get(stream_id))

    def connection(self, connection_id: str = CONNECTION) -> Any:
        return common.run(self.svc.connections.get(connection_id))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for name in (
        "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI",
        "AWS_ENDPOINT_URL_LAMBDA",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        "STREAMS_TABLE": "streams-ws-test",
        "CONNECTIONS_TABLE": "connections-ws-test",
        "WORKER_FUNCTION_NAME": "tokenrelay-worker-test",
        "CANCEL_POLL_MS": "20",
        "ECHO_DELAY_MS": "1",
        "WS_FLUSH_MS": "10",
        "WS_MAX_STREAMS": "3",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_table(ddb, table_spec("StreamsTable"), env["STREAMS_TABLE"])
        create_table(ddb, connections_spec(), env["CONNECTIONS_TABLE"])
        common.reset()
        world = Aws(common.services())

        def on_invoke(request: Any, **_: Any) -> AWSResponse:
            headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
            world.invokes.append({"headers": headers, "payload": json.loads(request.body)})
            return AWSResponse(request.url, world.invoke_status, {}, MockRawResponse(b""))

        def on_post(request: Any, **_: Any) -> AWSResponse | None:
            if any(request.url.endswith(quote(c, safe="")) or request.url.endswith(c) for c in world.gone):
                world.gone_answers += 1
                return AWSResponse(request.url, 410, {"x-amzn-ErrorType": "GoneException"}, MockRawResponse(b"{}"))
            return None  # on to moto

        world.svc.invoker._client.meta.events.register_first("before-send.lambda.Invoke", on_invoke)
        poster = world.svc.poster(ENDPOINT)
        poster._client.meta.events.register_first("before-send.apigatewaymanagementapi.PostToConnection", on_post)  # type: ignore[attr-defined]
        try:
            yield world
        finally:
            common.reset()


# -- $connect -------------------------------------------------------------------------


def test_connect_records_connection_owned_by_client_id_with_ttl_past_two_hours(aws: Aws) -> None:
    assert aws.call(connect.handler, event("connect")) == {"statusCode": 200}
    record = aws.connection()
    assert record.owner == "client-a" and record.client_id == "client-a" and record.status == "connected"
    assert record.domain == "abcdef1234.execute-api.us-east-1.amazonaws.com" and record.stage == "prod"
    assert record.expires_at >= time.time() + 2 * 3600
    assert record.streams == {}


def test_connect_without_client_id_is_owned_by_the_connection(aws: Aws) -> None:
    aws.connect(client_id=None)
    assert aws.connection().owner == f"ws:{CONNECTION}"


@pytest.mark.parametrize("client_id", ["", "a b", "x" * 129, "ws:other"])
def test_connect_bad_client_id_refuses_the_connection(aws: Aws, client_id: str) -> None:
    result = aws.call(connect.handler, event("connect", queryStringParameters={"client_id": client_id}))
    assert result["statusCode"] == 400 and "client_id" in result["body"]
    assert aws.connection() is None


# -- chat -------------------------------------------------------------------------------


def test_chat_records_stream_and_hands_it_to_the_worker_asynchronously(aws: Aws) -> None:
    aws.connect()
    result = aws.call(message.handler, event("message_chat"))
    assert result == {"statusCode": 200}
    assert aws.posted() == []  # nothing on success: the worker posts start
    (invoke,) = aws.invokes
    assert invoke["headers"]["X-Amz-Invocation-Type"] == "Event"
    job = invoke["payload"]
    assert job["connection_id"] == CONNECTION and job["owner"] == "client-a" and job["request_id"] == "req-1"
    assert job["endpoint"] == ENDPOINT
    assert job["request"] == {
        "messages": [{"role": "user", "content": "Hello over the WebSocket"}],
        "provider": "echo",
        "model": "echo-1",
        "max_tokens": 1024,
    }
    record = aws.stream(job["stream_id"])
    assert record.owner == "client-a" and record.transport == "websocket" and record.status == "active"
    assert aws.connection().streams == {job["stream_id"]: "pending"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "message"),
        ({"message": "hi", "max_token": 5}, "max_token"),
        ({"message": "hi", "model": "gpt-9"}, "model"),
        ({"message": "hi", "provider": "openai"}, "provider"),
        ({"message": "hi", "max_tokens": 10**6}, "max_tokens"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"message": "hi", "request_id": 42}, "request_id"),
    ],
)
def test_chat_bad_request_posts_error_naming_the_field_and_starts_nothing(
    aws: Aws, body: dict[str, Any], field: str
) -> None:
    aws.connect()
    evt = event("message_chat", body={"type": "chat", **body, **({} if "request_id" in body else {"request_id": "r"})})
    assert aws.call(message.handler, evt) == {"statusCode": 200}
    (error,) = aws.posted()
    assert error["type"] == "error" and error["code"] == "invalid_request" and error["field"] == field
    assert error["retryable"] is False
    assert error.get("request_id") == (None if field == "request_id" else "r")
    assert aws.invokes == [] and aws.connection().streams == {}


def test_chat_worker_cannot_start_posts_retryable_error_and_releases_the_stream(aws: Aws) -> None:
    aws.connect()
    aws.invoke_status = 500
    aws.call(message.handler, event("message_chat"))
    (error,) = aws.posted()
    assert error["code"] == "worker_unavailable" and error["retryable"] is True and error["request_id"] == "req-1"
    stream_id = aws.invokes[-1]["payload"]["stream_id"]
    assert aws.stream(stream_id).status == "failed" and aws.stream(stream_id).error_code == "worker_unavailable"
    assert aws.connection().streams == {}


def test_chat_more_streams_than_allowed_is_refused(aws: Aws) -> None:
    aws.connect()
    for _ in range(3):
        aws.chat({"message": "hi"})
    aws.call(message.handler, event("message_chat"))
    (error,) = aws.posted()
    assert error["code"] == "too_many_streams" and error["retryable"] is True
    assert len(aws.connection().streams) == 3 and len(aws.invokes) == 3


# -- cancel -----------------------------------------------------------------------------


def test_cancel_with_stream_id_sets_the_flag_with_reason_client(aws: Aws) -> None:
    aws.connect()
    stream_id = aws.chat({"message": "hi"})
    aws.call(message.handler, event("message_cancel", body={"type": "cancel", "stream_id": stream_id}))
    assert aws.posted() == [], aws.posted()
    record = aws.stream(stream_id)
    assert record.cancel_requested and record.cancel_reason == "client"


def test_cancel_without_stream_id_flags_every_active_stream_of_the_connection(aws: Aws) -> None:
    aws.connect()
    mine = [aws.chat({"message": "one"}), aws.chat({"message": "two"})]
    aws.connect("OtherConnXXXXX=", client_id="client-b")
    theirs = aws.chat({"message": "three"}, connection_id="OtherConnXXXXX=")
    aws.call(message.handler, event("message_cancel"))
    assert [aws.stream(s).cancel_requested for s in mine] == [True, True]
    assert not aws.stream(theirs).cancel_requested


def test_cancel_someone_elses_stream_is_refused(aws: Aws) -> None:
    aws.connect("OtherConnXXXXX=", client_id="client-b")
    theirs = aws.chat({"message": "mine"}, connection_id="OtherConnXXXXX=")
    aws.connect()
    aws.call(message.handler, event("message_cancel", body={"type": "cancel", "stream_id": theirs, "request_id": "c1"}))
    (error,) = aws.posted()
    assert error["code"] == "forbidden" and error["stream_id"] == theirs and error["request_id"] == "c1"
    assert not aws.stream(theirs).cancel_requested


def test_cancel_unknown_or_finished_stream_answers_with_an_error(aws: Aws) -> None:
    aws.connect()
    aws.call(message.handler, event("message_cancel", body={"type": "cancel", "stream_id": "nope"}))
    stream_id = aws.chat({"message": "hi"})
    common.run(aws.svc.streams.finish(stream_id, StreamOutcome(status="complete", completion_tokens=1)))
    aws.call(message.handler, event("message_cancel", body={"type": "cancel", "stream_id": stream_id}))
    missing, finished = aws.posted()
    assert missing["code"] == "stream_not_found" and missing["stream_id"] == "nope"
    assert finished["code"] == "stream_finished" and finished["status"] == "complete"


def test_cancel_unknown_field_is_named(aws: Aws) -> None:
    aws.connect()
    aws.call(message.handler, event("message_cancel", body={"type": "cancel", "streamId": "x"}))
    (error,) = aws.posted()
    assert error["code"] == "invalid_request" and error["field"] == "streamId"


# -- $default -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({}, "invalid_json"),  # the fixture's body: "hello?"
        ({"body": "[1, 2]"}, "invalid_json"),
        ({"body": "eyJ0eXBlIjoiY2hhdCJ9", "isBase64Encoded": True}, "invalid_json"),
        ({"body": {"message": "no type"}}, "invalid_request"),
        ({"body": {"type": 7}}, "invalid_request"),
        ({"body": {"type": "subscribe", "request_id": "q"}}, "unknown_type"),
    ],
)
def test_default_route_answers_bad_frames_with_an_error(aws: Aws, changes: dict[str, Any], code: str) -> None:
    aws.connect()
    assert aws.call(message.handler, event("message_default", **changes)) == {"statusCode": 200}
    (error,) = aws.posted()
    assert error["type"] == "error" and error["code"] == code
    if code == "unknown_type":
        assert error["request_id"] == "q"


def test_reply_to_a_connection_already_gone_is_dropped_quietly(aws: Aws) -> None:
    aws.connect()
    aws.gone.add(CONNECTION)
    assert aws.call(message.handler, event("message_default")) == {"statusCode": 200}
    assert aws.gone_answers == 1


# -- $disconnect --------------------------------------------------------------------------


def test_disconnect_marks_connection_gone_and_cancels_its_streams_with_reason_disconnect(aws: Aws) -> None:
    aws.connect()
    streams = [aws.chat({"message": "one"}), aws.chat({"message": "two"})]
    assert aws.call(disconnect.handler, event("disconnect")) == {"statusCode": 200}
    assert aws.connection().status == "gone" and aws.connection().disconnected_at is not None
    for stream_id in streams:
        record = aws.stream(stream_id)
        assert record.cancel_requested and record.cancel_reason == "disconnect"


def test_disconnect_of_an_unknown_connection_is_harmless(aws: Aws) -> None:
    assert aws.call(disconnect.handler, event("disconnect")) == {"statusCode": 200}


# -- worker, through moto ------------------------------------------------------------------


def test_worker_streams_to_the_connection_through_the_management_api(aws: Aws) -> None:
    aws.connect()
    stream_id = aws.chat({"message": "one two three four five six", "request_id": "r-7"})
    summary = worker.handler(aws.invokes[-1]["payload"], LambdaContext(60_000))
    assert summary["status"] == "done"
    messages = aws.posted()
    assert [messages[0]["type"], *[m["type"] for m in messages[-2:]]] == ["start", "usage", "done"]
    assert all(m["stream_id"] == stream_id and m["request_id"] == "r-7" for m in messages)
    text = "".join(m["content"] for m in messages if m["type"] == "text")
    assert text == "You said: one two three four five six"
    assert aws.stream(stream_id).status == "complete" and aws.connection().streams == {}


def test_worker_gone_exception_ends_stream_as_cancelled_disconnect(aws: Aws) -> None:
    aws.connect()
    aws.chat({"message": "word " * 500})
    job = aws.invokes[-1]["payload"]
    aws.gone.add(CONNECTION)
    started = time.monotonic()
    summary = worker.handler(job, LambdaContext(60_000))
    assert time.monotonic() - started < 2  # 500 tokens at 1 ms would not stop early by themselves
    assert summary["status"] == "cancelled" and summary["reason"] == "disconnect" and summary["posts"] == 0
    assert aws.gone_answers == 1  # the first post (start) got the 410; nothing was tried after it
    record = aws.stream(job["stream_id"])
    assert record.status == "cancelled" and record.cancel_reason == "disconnect"


# -- the connection store itself -------------------------------------------------------------


def test_connection_store_claims_a_stream_once_and_refuses_after_disconnect(aws: Aws) -> None:
    store: DynamoConnectionStore = aws.svc.connections  # type: ignore[assignment]

    async def scenario() -> None:
        await store.add_stream(CONNECTION, "s-1", 2)
        await store.add_stream(CONNECTION, "s-2", 2)
        with pytest.raises(TooManyStreams):
            await store.add_stream(CONNECTION, "s-3", 2)
        assert await store.claim_stream(CONNECTION, "s-1") == "claimed"
        assert await store.claim_stream(CONNECTION, "s-1") == "unknown"  # a second delivery
        record = await store.disconnect(CONNECTION)
        assert record is not None and record.status == "gone" and record.active_streams == ["s-1", "s-2"]
        assert await store.claim_stream(CONNECTION, "s-2") == "gone"
        with pytest.raises(ConnectionNotFound):
            await store.add_stream(CONNECTION, "s-4", 2)
        await store.remove_stream(CONNECTION, "s-1")
        await store.remove_stream("never-connected", "s-1")
        assert (await store.get(CONNECTION)).streams == {"s-2": "pending"}  # type: ignore[union-attr]
        assert await store.get("never-connected") is None

    aws.connect()
    asyncio.run(scenario())
