"""A fake Amazon Bedrock Runtime: ``ConverseStream`` over real HTTP, in the AWS event-stream encoding.

It serves ``POST /model/{modelId}/converse-stream`` on ``127.0.0.1`` (a real uvicorn
server in a background thread), so boto3 runs unchanged through
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``. A stream is ``application/vnd.amazon.eventstream``
frames, as Bedrock sends them (with its ``p`` padding field)::

    messageStart, contentBlockDelta*, contentBlockStop, messageStop, metadata (usage)

botocore decodes event streams but has no encoder: ``encode_frame`` writes one
(prelude, string headers, payload, two CRC32s); the tests check that botocore's
``EventStreamBuffer`` reads it back.

``BedrockScenario`` (constructors ``ok``, ``http_error``, ``stream_error``,
``truncated``): ``tokens``, ``delay_s`` (before each token), ``stop_reason``,
``input_tokens``; ``status`` + ``error_code`` answer with an AWS JSON error
(``x-amzn-ErrorType``) instead of a stream; ``error_after=n`` sends an exception
frame (``exception``, default ``throttlingException``) after ``n`` tokens;
``truncate_after=n`` ends the body after ``n`` tokens with no ``messageStop``.
The fake refuses what Bedrock refuses and a provider must not send (a request
that is not SigV4-signed, a ``system`` role in ``messages``, a temperature above 1)
with a ``ValidationException``.

Every request is a ``BedrockExchange`` (model id, headers, JSON body) with
thread-safe ``finished`` / ``closed_early`` (the client went away mid-stream) /
``ended`` events. Error messages carry ``UPSTREAM_DETAIL`` so tests can check it never leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import threading
from binascii import crc32
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.fakes import parts
from tests.fakes.servers import serve
from tests.fakes.upstream import UPSTREAM_DETAIL

__all__ = ["BedrockExchange", "BedrockScenario", "FakeBedrock", "bedrock", "bedrock_server", "encode_frame"]

EVENTSTREAM = "application/vnd.amazon.eventstream"
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def encode_frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message: ``[total][headers_len][prelude_crc] headers payload [message_crc]``."""
    encoded = b""
    for name, value in headers.items():
        key, raw = name.encode(), value.encode()
        encoded += struct.pack("!B", len(key)) + key + b"\x07" + struct.pack("!H", len(raw)) + raw  # 7: string
    prelude = struct.pack("!II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack("!I", crc32(prelude)) + encoded + payload
    return message + struct.pack("!I", crc32(message))


def event_frame(event_type: str, body: Mapping[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_frame(headers, json.dumps(body, separators=(",", ":")).encode())


def exception_frame(exception_type: str, message: str) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_frame(headers, json.dumps({"message": message}).encode())


@dataclass(frozen=True)
class BedrockScenario:
    tokens: tuple[str, ...] = ("Hello", ",", " world", "!")
    delay_s: float = 0.0
    stop_reason: str = "end_turn"
    input_tokens: int = 11
    cache_read_tokens: int = 0  # cacheReadInputTokens / cacheWriteInputTokens (sent when not 0, as Bedrock does)
    cache_write_tokens: int = 0
    status: int | None = None
    error_code: str = "ThrottlingException"
    error_after: int | None = None
    exception: str = "throttlingException"
    truncate_after: int | None = None
    parts: tuple[tuple[Any, ...], ...] | None = None  # reasoning/tool call script (tests/fakes/parts.py)

    @classmethod
    def ok(cls, *tokens: str, delay_s: float = 0.0, **kw: Any) -> BedrockScenario:
        return cls(tokens=tokens or cls.tokens, delay_s=delay_s, **kw)

    @classmethod
    def http_error(cls, status: int = 429, code: str = "ThrottlingException") -> BedrockScenario:
        return cls(status=status, error_code=code)

    @classmethod
    def stream_error(cls, after: int = 2, exception: str = "throttlingException", **kw: Any) -> BedrockScenario:
        return cls(error_after=after, exception=exception, **kw)

    @classmethod
    def truncated(cls, after: int = 2, **kw: Any) -> BedrockScenario:
        return cls(truncate_after=after, **kw)


@dataclass(eq=False)
class BedrockExchange:
    model_id: str
    headers: dict[str, str]
    json: Any
    finished: threading.Event = field(default_factory=threading.Event)
    closed_early: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)


class FakeBedrock:
    def __init__(self) -> None:
        self.url = ""
        self.scenario = BedrockScenario()
        self._queue: deque[BedrockScenario] = deque()
        self._requests: list[BedrockExchange] = []
        self._changed = threading.Condition()
        self.app = Starlette(routes=[Route("/model/{model_id:path}/converse-stream", self._converse, methods=["POST"])])

    @property
    def env(self) -> dict[str, str]:
        """Environment that points boto3's ``bedrock-runtime`` client at this fake."""
        return {**AWS_TEST_ENV, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.url}

    def enqueue(self, *scenarios: BedrockScenario) -> None:
        with self._changed:
            self._queue.extend(scenarios)

    def reset(self) -> None:
        with self._changed:
            self.scenario = BedrockScenario()
            self._queue.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[BedrockExchange]:
        with self._changed:
            return list(self._requests)

    @property
    def last(self) -> BedrockExchange:
        return self.requests[-1]

    def wait_ended(self, count: int = 1, timeout: float = 5.0, *, closed_early: bool = False) -> bool:
        def enough() -> bool:
            flags = [x.closed_early if closed_early else x.ended for x in self._requests]
            return sum(f.is_set() for f in flags) >= count

        with self._changed:
            return bool(self._changed.wait_for(enough, timeout))

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[FakeBedrock]:
        fake = cls()
        with serve(fake.app) as url:
            fake.url = url
            yield fake

    def _end(self, exchange: BedrockExchange, *, finished: bool = False, closed_early: bool = False) -> None:
        with self._changed:
            if finished:
                exchange.finished.set()
            if closed_early:
                exchange.closed_early.set()
            exchange.ended.set()
            self._changed.notify_all()

    async def _converse(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        exchange = BedrockExchange(request.path_params["model_id"], dict(request.headers), body)
        with self._changed:
            self._requests.append(exchange)
            sc = self._queue.popleft() if self._queue else self.scenario
            self._changed.notify_all()
        problem = _problem(request, body)
        status, code = (400, "ValidationException") if problem else (sc.status, sc.error_code)
        if status is not None:
            self._end(exchange, finished=True)
            message = f"{problem or 'Too many requests, please wait before trying again.'} [{UPSTREAM_DETAIL}]"
            headers = {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
            return JSONResponse({"message": message}, status_code=status, headers=headers)
        return _FrameStream(self, exchange, _frames(sc))


def _problem(request: Request, body: Any) -> str | None:
    if not request.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 Credential="):
        return "The request is not signed."
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        return "messages: a non-empty list is required"
    for m in body["messages"]:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            return "A conversation must alternate between user and assistant roles."
    if float((body.get("inferenceConfig") or {}).get("temperature", 0)) > 1:
        return "inferenceConfig.temperature: must be less than or equal to 1"
    return None


def _usage(sc: BedrockScenario, output: int) -> dict[str, int]:
    cache = {"cacheReadInputTokens": sc.cache_read_tokens, "cacheWriteInputTokens": sc.cache_write_tokens}
    usage = {"inputTokens": sc.input_tokens, "outputTokens": output, **{k: v for k, v in cache.items() if v}}
    return {**usage, "totalTokens": sum(usage.values())}


def _frames(sc: BedrockScenario) -> list[tuple[float, bytes]]:
    pad = {"p": "abcdefghijk"}  # Bedrock pads events to hide token lengths
    frames = [(0.0, event_frame("messageStart", {**pad, "role": "assistant"}))]
    if sc.parts is not None:
        frames += parts.bedrock_frames(sc.parts, sc.delay_s, lambda kind, body: event_frame(kind, {**body, **pad}))
        count = parts.output_tokens(sc.parts)
        reason = "tool_use" if parts.has_calls(sc.parts) and sc.stop_reason == "end_turn" else sc.stop_reason
        usage = _usage(sc, count)
        return [
            *frames,
            (0.0, event_frame("messageStop", {**pad, "stopReason": reason})),
            (0.0, event_frame("metadata", {"metrics": {"latencyMs": 42}, **pad, "usage": usage})),
        ]
    stop = min(x for x in (sc.error_after, sc.truncate_after, len(sc.tokens)) if x is not None)
    for token in sc.tokens[:stop]:
        delta = {"contentBlockIndex": 0, "delta": {"text": token}, **pad}
        frames.append((sc.delay_s, event_frame("contentBlockDelta", delta)))
    if sc.error_after is not None:
        return [*frames, (sc.delay_s, exception_frame(sc.exception, f"Too many tokens [{UPSTREAM_DETAIL}]"))]
    if sc.truncate_after is not None:
        return frames
    usage = _usage(sc, stop)
    return [
        *frames,
        (0.0, event_frame("contentBlockStop", {"contentBlockIndex": 0, **pad})),
        (0.0, event_frame("messageStop", {**pad, "stopReason": sc.stop_reason})),
        (0.0, event_frame("metadata", {"metrics": {"latencyMs": 42}, **pad, "usage": usage})),
    ]


class _FrameStream(Response):
    """Writes ``(delay_s, frame)`` pairs; notices a client that goes away (``http.disconnect``)."""

    def __init__(self, fake: FakeBedrock, exchange: BedrockExchange, frames: list[tuple[float, bytes]]) -> None:
        self.status_code = 200
        self.media_type = EVENTSTREAM
        self.background = None
        self.init_headers({"x-amzn-requestid": "fake-request-id"})
        self.fake, self.exchange, self.frames = fake, exchange, frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            for delay_s, frame in self.frames:
                if delay_s > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(gone.wait(), delay_s)
                if gone.is_set():
                    break
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            if gone.is_set():
                self.fake._end(self.exchange, closed_early=True)
            else:
                self.fake._end(self.exchange, finished=True)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if not self.exchange.ended.is_set():
                self.fake._end(self.exchange)


@pytest.fixture(scope="session")
def bedrock_server() -> Iterator[FakeBedrock]:
    with FakeBedrock.running() as fake:
        yield fake


@pytest.fixture
def bedrock(bedrock_server: FakeBedrock, monkeypatch: pytest.MonkeyPatch) -> FakeBedrock:
    """The fake, reset, with boto3 (credentials, region, endpoint) pointed at it."""
    bedrock_server.reset()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in bedrock_server.env.items():
        monkeypatch.setenv(name, value)
    return bedrock_server
