"""A fake OpenAI + Anthropic upstream: a real uvicorn server speaking their wire formats.

It serves, on ``127.0.0.1`` and a free port, in a background thread:

- ``POST /v1/chat/completions``: OpenAI Chat Completions, streaming
  (``chat.completion.chunk`` SSE, the usage chunk with empty ``choices`` when
  ``stream_options.include_usage`` is set, ``data: [DONE]``) and non-streaming
  (``chat.completion``); OpenAI's error JSON for error statuses.
- ``POST /v1/messages``: Anthropic Messages, streaming (``message_start``,
  ``content_block_start``, ``ping``, ``content_block_delta``,
  ``content_block_stop``, ``message_delta``, ``message_stop``; ``event: error``)
  and non-streaming; Anthropic's error JSON for error statuses.

Both check the key (``Authorization: Bearer`` or ``x-api-key``) against
``fake.api_key`` (default ``FAKE_API_KEY``; ``None`` accepts anything) and
refuse what the real APIs refuse and a provider must not send (``stream_options``
without ``stream``; a ``system`` role or a sampling parameter for Anthropic).

Use it::

    with FakeUpstream.running() as fake:           # or the ``upstream`` fixture
        env = fake.env                             # OPENAI_BASE_URL, ANTHROPIC_BASE_URL, both keys
        fake.scenario = Scenario.ok("a", "b", delay_s=0.02)   # default for every request
        fake.enqueue(Scenario.http_error(500))     # one-shot, consumed first, in order
        fake.by_model["slow-model"] = Scenario.ok(*["x "] * 200, delay_s=0.02)
        ...
        exchange = fake.last                       # or fake.requests[i]
        exchange.json, exchange.headers            # what the client sent (headers lower-cased)
        exchange.closed_early.wait(2.0)            # threading.Event: the client went away mid-stream
        fake.wait_closed_early(count=1, timeout=2.0)
        fake.closed_early_count, fake.finished_count

Choice of scenario for a request: the queue, then ``by_model[model]``, then
``scenario``. ``Scenario`` fields (all optional; constructors ``ok``,
``http_error``, ``error_frame``, ``truncated``, ``replay``):

- ``tokens``, ``delay_s`` (before each token), ``first_token_delay_s``, ``echo_prompt``
  (the tokens are the words of the request's last user message: a text per request),
  ``finish_reason`` (provider-native; default ``stop`` / ``end_turn``), ``prompt_tokens``;
- ``status``: answer with that HTTP error and the provider's error JSON;
  ``error_type`` sets its ``type`` (for Anthropic, ``*_limit_reached`` goes to
  ``error.details.error_code``); ``headers`` adds response headers
  (``{"retry-after-ms": "10"}`` makes the SDKs retry at once);
- ``error_after=n``: an error frame after ``n`` tokens, then the body ends;
  ``malformed_after=n``: a malformed event (broken JSON) after ``n`` tokens, then the body ends;
- ``headers_delay_s``: wait that long before answering at all (no status, no headers),
  ending early, as ``closed_early``, if the client goes away;
- ``stall_after=n``: wait ``stall_s`` (default 30) before token ``n`` (0-based), a stall mid-stream;
- ``truncate_after=n``: stop after ``n`` tokens without the terminal marker;
  ``drop_connection=True``: drop the TCP connection instead of ending the body;
- ``transcript="openai_happy.txt"``: replay ``tests/fixtures/sse/<name>`` verbatim
  (``delay_s`` before each of its events);
- ``parts``: a script of reasoning, text and tool call steps (``tests/fakes/parts.py``)
  sent instead of ``tokens``, in the provider's own format (``delay_s`` before each delta),
  with ``reasoning_tokens`` in OpenAI's usage;
- ``newline`` (``"\\r\\n"`` or ``"\\r"``) rewrites line endings, ``chunk_size``
  writes the body in pieces of that many bytes: both exercise SSE decoders.

The transcripts in ``tests/fixtures/sse`` were written by hand to the
documented formats (the field shapes the SDKs' own types declare), not captured
from the live APIs: happy path, error mid-stream and truncated for each
provider, plus ``openai_compatible_quirks.txt`` (comments, ``data:`` with no
space, one payload over two ``data:`` lines, ``id``/``retry`` fields, extra
blank lines).

Fixtures (``tests/conftest.py`` imports them): ``upstream_server`` is one
server for the session; ``upstream`` resets it for the test and points both
SDKs at it (``monkeypatch.setenv`` of ``fake.env``; pass ``fake.env`` to a
subprocess yourself).

Error bodies carry ``UPSTREAM_DETAIL`` and the key the client presented, so
tests can assert neither leaks into TokenRelay's own messages.

Every request is recorded as an ``Exchange`` with thread-safe ``finished``
(the whole response was written), ``closed_early`` (the client disconnected
first: seen as ``http.disconnect``) and ``ended`` (either, or the connection
was dropped on purpose) events. Waits are bounded and never need the test's
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.fakes import parts

__all__ = [
    "FAKE_API_KEY",
    "SSE_FIXTURES",
    "UPSTREAM_DETAIL",
    "Exchange",
    "FakeUpstream",
    "Scenario",
    "upstream",
    "upstream_server",
]

FAKE_API_KEY = "sk-test-SECRET123"
UPSTREAM_DETAIL = "UPSTREAM-BODY-DETAIL-7f3a"
SSE_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sse"
DEFAULT_TOKENS = ("Hello", ",", " world", "!")
ANTHROPIC_NO_SAMPLING_SINCE = "2026-10-21"

_OPENAI_ERRORS = {  # status -> (type, code)
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_ids = itertools.count(1)


@dataclass(frozen=True)
class Scenario:
    """What the fake answers to one request. See the module docstring."""

    tokens: tuple[str, ...] = DEFAULT_TOKENS
    delay_s: float = 0.0
    first_token_delay_s: float = 0.0
    finish_reason: str | None = None
    prompt_tokens: int = 12
    status: int | None = None
    error_type: str | None = None
    error_after: int | None = None
    malformed_after: int | None = None
    headers_delay_s: float = 0.0
    stall_after: int | None = None
    stall_s: float = 30.0
    truncate_after: int | None = None
    drop_connection: bool = False
    transcript: str | None = None
    newline: str = "\n"
    chunk_size: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    echo_prompt: bool = False  # the tokens are the words of the last user message (each + " ")
    parts: tuple[tuple[Any, ...], ...] | None = None  # reasoning/tool call script (tests/fakes/parts.py)
    reasoning_tokens: int = 0  # OpenAI: usage.completion_tokens_details.reasoning_tokens
    # Prompt caching: input read from the cache (OpenAI prompt_tokens_details.cached_tokens, within
    # prompt_tokens; Anthropic cache_read_input_tokens) and written to it (Anthropic cache_creation_input_tokens)
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    @classmethod
    def ok(cls, *tokens: str, delay_s: float = 0.0, **kw: Any) -> Scenario:
        return cls(tokens=tokens or DEFAULT_TOKENS, delay_s=delay_s, **kw)

    @classmethod
    def http_error(cls, status: int, *, error_type: str | None = None, retry_after_ms: int | None = None) -> Scenario:
        headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
        return cls(status=status, error_type=error_type, headers=headers)

    @classmethod
    def error_frame(cls, after: int = 2, error_type: str | None = None, **kw: Any) -> Scenario:
        return cls(error_after=after, error_type=error_type, **kw)

    @classmethod
    def truncated(cls, after: int = 2, *, drop_connection: bool = True, **kw: Any) -> Scenario:
        return cls(truncate_after=after, drop_connection=drop_connection, **kw)

    @classmethod
    def replay(cls, transcript: str, **kw: Any) -> Scenario:
        return cls(transcript=transcript, **kw)


@dataclass(eq=False)
class Exchange:
    """One request the fake received, and how its response went."""

    provider: str
    path: str
    headers: dict[str, str]
    json: Any
    scenario: Scenario | None = None
    status: int = 200
    stream: bool = False
    finished: threading.Event = field(default_factory=threading.Event)
    closed_early: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    ended_at: float = 0.0  # time.monotonic() when ``ended`` was set

    @property
    def model(self) -> str | None:
        return self.json.get("model") if isinstance(self.json, dict) else None


class FakeUpstream:
    def __init__(self) -> None:
        self.url = ""
        self.api_key: str | None = FAKE_API_KEY
        self.scenario = Scenario()
        self.by_model: dict[str, Scenario] = {}
        self._queue: deque[Scenario] = deque()
        self._requests: list[Exchange] = []
        self._changed = threading.Condition()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/v1/messages", self._anthropic, methods=["POST"]),
            ]
        )

    # -- configuration and inspection (any thread) ---------------------------------------

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def env(self) -> dict[str, str]:
        """Environment that points both SDKs (and so TokenRelay) at this fake."""
        return {
            "OPENAI_BASE_URL": self.openai_base_url,
            "OPENAI_API_KEY": self.api_key or FAKE_API_KEY,
            "ANTHROPIC_BASE_URL": self.anthropic_base_url,
            "ANTHROPIC_API_KEY": self.api_key or FAKE_API_KEY,
        }

    def enqueue(self, *scenarios: Scenario) -> None:
        with self._changed:
            self._queue.extend(scenarios)

    def reset(self) -> None:
        with self._changed:
            self.api_key = FAKE_API_KEY
            self.scenario = Scenario()
            self.by_model.clear()
            self._queue.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[Exchange]:
        with self._changed:
            return list(self._requests)

    @property
    def last(self) -> Exchange:
        with self._changed:
            return self._requests[-1]

    @property
    def closed_early_count(self) -> int:
        return sum(x.closed_early.is_set() for x in self.requests)

    @property
    def finished_count(self) -> int:
        return sum(x.finished.is_set() for x in self.requests)

    def wait(self, predicate: Callable[[FakeUpstream], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate(self)`` holds (re-checked on every change), at most ``timeout`` s."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def wait_closed_early(self, count: int = 1, timeout: float = 5.0) -> bool:
        return self.wait(lambda f: f.closed_early_count >= count, timeout)

    def wait_requests(self, count: int = 1, timeout: float = 5.0) -> bool:
        return self.wait(lambda f: len(f._requests) >= count, timeout)

    # -- running --------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def running(cls, startup_timeout_s: float = 10.0) -> Iterator[FakeUpstream]:
        fake = cls()
        # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets that say so;
        # without it, Nagle + delayed ACK hold every reused-connection response ~40 ms.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            fake.app,
            loop="asyncio",
            http="h11",
            ws="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fake-upstream", daemon=True)
        thread.start()
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the fake upstream did not start")
            time.sleep(0.01)
        try:
            yield fake
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()

    # -- bookkeeping (server thread) ------------------------------------------------------

    def _record(self, provider: str, request: Request, body: Any) -> Exchange:
        exchange = Exchange(provider, request.url.path, {k.lower(): v for k, v in request.headers.items()}, body)
        with self._changed:
            self._requests.append(exchange)
            if self._queue:
                exchange.scenario = self._queue.popleft()
            else:
                exchange.scenario = self.by_model.get(str(exchange.model), self.scenario)
            self._changed.notify_all()
        return exchange

    def _end(self, exchange: Exchange, *, finished: bool = False, closed_early: bool = False) -> None:
        with self._changed:
            if finished:
                exchange.finished.set()
            if closed_early:
                exchange.closed_early.set()
            exchange.ended_at = time.monotonic()
            exchange.ended.set()
            self._changed.notify_all()

    def _key_ok(self, request: Request, *, x_api_key: bool) -> bool:
        if self.api_key is None:
            return True
        if request.headers.get("authorization") == f"Bearer {self.api_key}":
            return True
        return x_api_key and request.headers.get("x-api-key") == self.api_key

    @staticmethod
    def _presented_key(request: Request) -> str:
        auth = request.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") or request.headers.get("x-api-key", "")

    async def _client_left(self, request: Request, exchange: Exchange, delay_s: float) -> bool:
        """Wait ``delay_s`` before answering; True (recorded as ``closed_early``) if the client left first."""

        async def gone() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        try:
            await asyncio.wait_for(gone(), delay_s)
        except TimeoutError:
            return False
        self._end(exchange, closed_early=True)
        return True

    async def _respond_error(self, exchange: Exchange, status: int, body: Any, headers: Mapping[str, str]) -> Response:
        exchange.status = status
        self._end(exchange, finished=True)
        return JSONResponse(body, status_code=status, headers=dict(headers))

    # -- OpenAI ---------------------------------------------------------------------------

    async def _openai(self, request: Request) -> Response:
        body = await _json(request)
        exchange = self._record("openai", request, body)
        sc = _for_request(exchange.scenario or Scenario(), body)
        if sc.headers_delay_s and await self._client_left(request, exchange, sc.headers_delay_s):
            return Response(status_code=204)
        key = self._presented_key(request)
        headers = {"x-request-id": f"req_fake{next(_ids)}", **sc.headers}
        if not self._key_ok(request, x_api_key=False):
            return await self._respond_error(exchange, 401, _openai_error(401, None, key), headers)
        problem = _openai_problem(body)
        if problem:
            return await self._respond_error(exchange, 400, _openai_error(400, None, key, problem), headers)
        if sc.status is not None:
            return await self._respond_error(exchange, sc.status, _openai_error(sc.status, sc.error_type, key), headers)
        exchange.stream = bool(body.get("stream"))
        if not exchange.stream:
            self._end(exchange, finished=True)
            return JSONResponse(_openai_completion(body, sc), headers=headers)
        frames = _replay(sc) if sc.transcript else _openai_frames(body, sc, key)
        return SSEStream(self, exchange, frames, sc, headers)

    # -- Anthropic ------------------------------------------------------------------------

    async def _anthropic(self, request: Request) -> Response:
        body = await _json(request)
        exchange = self._record("anthropic", request, body)
        sc = _for_request(exchange.scenario or Scenario(), body)
        if sc.headers_delay_s and await self._client_left(request, exchange, sc.headers_delay_s):
            return Response(status_code=204)
        key = self._presented_key(request)
        headers = {"request-id": f"req_fake{next(_ids)}", **sc.headers}
        if not self._key_ok(request, x_api_key=True):
            return await self._respond_error(exchange, 401, _anthropic_error(401, None, key), headers)
        problem = _anthropic_problem(body, request.headers.get("anthropic-version", ""))
        if problem:
            return await self._respond_error(exchange, 400, _anthropic_error(400, None, key, problem), headers)
        if sc.status is not None:
            return await self._respond_error(
                exchange, sc.status, _anthropic_error(sc.status, sc.error_type, key), headers
            )
        exchange.stream = bool(body.get("stream"))
        if not exchange.stream:
            self._end(exchange, finished=True)
            return JSONResponse(_anthropic_message(body, sc), headers=headers)
        frames = _replay(sc) if sc.transcript else _anthropic_frames(body, sc, key)
        return SSEStream(self, exchange, frames, sc, headers)


class SSEStream(Response):
    """Writes ``(delay_s, bytes)`` frames; notices a client that goes away (``http.disconnect``)."""

    def __init__(
        self,
        fake: FakeUpstream,
        exchange: Exchange,
        frames: list[tuple[float, bytes]],
        scenario: Scenario,
        headers: Mapping[str, str],
    ) -> None:
        # Not Response.__init__: with no body, no content-length is declared (as StreamingResponse does).
        self.status_code = 200
        self.media_type = "text/event-stream"
        self.background = None
        self.init_headers({"cache-control": "no-cache", **headers})
        self.fake = fake
        self.exchange = exchange
        self.frames = frames
        self.scenario = scenario

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        sc = self.scenario
        newline = sc.newline.encode()
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            for delay_s, frame in self.frames:
                if delay_s > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(gone.wait(), delay_s)
                if gone.is_set():
                    break
                if newline != b"\n":
                    frame = frame.replace(b"\n", newline)
                step = sc.chunk_size or len(frame) or 1
                for i in range(0, len(frame), step):
                    await send({"type": "http.response.body", "body": frame[i : i + step], "more_body": True})
                    if sc.chunk_size:
                        await asyncio.sleep(0.001)  # let each piece leave as its own segment
            if gone.is_set():
                self.fake._end(self.exchange, closed_early=True)
            elif sc.drop_connection:
                # Returning without ending the body makes uvicorn close the connection
                # (it logs "ASGI callable returned without completing response").
                self.fake._end(self.exchange)
            else:
                # Recorded first, so a client that saw the end of the body also sees ``finished``.
                self.fake._end(self.exchange, finished=True)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if not self.exchange.ended.is_set():  # cancelled: the server is shutting down
                self.fake._end(self.exchange)


# -- wire formats ---------------------------------------------------------------------------


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _for_request(sc: Scenario, body: Any) -> Scenario:
    """``sc``, with ``echo_prompt``'s tokens taken from this request's last user message."""
    if not sc.echo_prompt or not isinstance(body, dict):
        return sc
    users = [m for m in body.get("messages") or () if isinstance(m, dict) and m.get("role") == "user"]
    content = users[-1].get("content") if users else ""
    if isinstance(content, list):  # Anthropic's content blocks
        content = "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return replace(sc, tokens=tuple(f"{word} " for word in str(content).split()))


def _sse(data: Any, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "").encode() + f"data: {text}\n\n".encode()


def _replay(sc: Scenario) -> list[tuple[float, bytes]]:
    """The transcript's events, verbatim (a truncated transcript ends with a partial event)."""
    parts = (SSE_FIXTURES / str(sc.transcript)).read_bytes().split(b"\n\n")
    events = [p + b"\n\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    return [(sc.delay_s if i else 0.0, e) for i, e in enumerate(events)]


def _token_delays(sc: Scenario) -> Iterator[tuple[int, str, float]]:
    """``(index, token, delay_before)`` for the tokens this scenario sends before it stops."""
    stop = min(x for x in (sc.error_after, sc.malformed_after, sc.truncate_after, len(sc.tokens)) if x is not None)
    for i, token in enumerate(sc.tokens[:stop]):
        stall = sc.stall_s if i == sc.stall_after else 0.0
        yield i, token, sc.delay_s + (sc.first_token_delay_s if i == 0 else 0.0) + stall


def _error_text(what: str, key: str) -> str:
    return f"{what} [{UPSTREAM_DETAIL}] (key: {key})"


def _openai_error(status: int, error_type: str | None, key: str, message: str | None = None) -> dict[str, Any]:
    default_type, code = _OPENAI_ERRORS.get(status, ("server_error", None))
    kind = error_type or default_type
    if error_type == "insufficient_quota":
        code = "insufficient_quota"
    text = message or f"The server could not serve this request (HTTP {status})."
    return {"error": {"message": _error_text(text, key), "type": kind, "param": None, "code": code}}


def _openai_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in {"system", "developer", "user", "assistant", "tool"}:
            return "Invalid value for 'messages[].role'"
    if body.get("stream_options") is not None and not body.get("stream"):
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    if "max_tokens" in body and "max_completion_tokens" in body:
        return "max_tokens and max_completion_tokens cannot both be set"
    return None


def _openai_frames(body: dict[str, Any], sc: Scenario, key: str) -> list[tuple[float, bytes]]:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base = {
        "id": f"chatcmpl-fake{next(_ids)}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        data: dict[str, Any] = {**base, "choices": [choice]}
        if include_usage:
            data["usage"] = None
        if delta.get("content"):
            data["obfuscation"] = "x" * (len(delta["content"]) % 7 + 1)
        return _sse(data)

    frames = [(0.0, chunk({"role": "assistant", "content": "", "refusal": None}))]
    sent = 0
    if sc.parts is not None:
        frames += parts.openai_frames(sc.parts, sc.delay_s, chunk)
        sent = parts.output_tokens(sc.parts)
    for _, token, delay in _token_delays(sc) if sc.parts is None else ():
        frames.append((delay, chunk({"content": token})))
        sent += 1
    if sc.error_after is not None:
        text = "The server had an error while processing your request."
        error = _openai_error(500, sc.error_type or "server_error", key, text)
        return [*frames, (sc.delay_s, _sse(error))]
    if sc.malformed_after is not None:
        return [*frames, (sc.delay_s, b'data: {"choices": [{"delta": {"content": "oops"\n\n')]
    if sc.truncate_after is not None:
        return frames
    default_finish = "tool_calls" if sc.parts is not None and parts.has_calls(sc.parts) else "stop"
    frames.append((0.0, chunk({}, sc.finish_reason or default_finish)))
    if include_usage:
        usage = {
            "prompt_tokens": sc.prompt_tokens + sc.cached_tokens,
            "completion_tokens": sent,
            "total_tokens": sc.prompt_tokens + sc.cached_tokens + sent,
            "prompt_tokens_details": {"cached_tokens": sc.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": sc.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        frames.append((0.0, _sse({**base, "choices": [], "usage": usage})))
    frames.append((0.0, _sse("[DONE]")))
    return frames


def _openai_completion(body: dict[str, Any], sc: Scenario) -> dict[str, Any]:
    text = "".join(sc.tokens)
    return {
        "id": f"chatcmpl-fake{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": sc.finish_reason or "stop",
            }
        ],
        "usage": {
            "prompt_tokens": sc.prompt_tokens,
            "completion_tokens": len(sc.tokens),
            "total_tokens": sc.prompt_tokens + len(sc.tokens),
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def _anthropic_error(status: int, error_type: str | None, key: str, message: str | None = None) -> dict[str, Any]:
    kind = error_type or _ANTHROPIC_ERRORS.get(status, "api_error")
    error: dict[str, Any] = {
        "type": kind,
        "message": _error_text(message or f"The request failed (HTTP {status}).", key),
    }
    if kind.endswith("_limit_reached"):  # a cause code: error.details.error_code under the status's type
        error.update(type=_ANTHROPIC_ERRORS.get(status, "api_error"), details={"error_code": kind})
    return {"type": "error", "error": error, "request_id": f"req_fake{next(_ids)}"}


def _anthropic_problem(body: Any, version: str) -> str | None:
    if not isinstance(body, dict):
        return "The request body is not valid JSON."
    if not isinstance(body.get("model"), str):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    for m in messages:
        role = m.get("role") if isinstance(m, dict) else None
        if role not in {"user", "assistant"}:
            return (
                f'messages: Unexpected role "{role}". The Messages API accepts a top-level `system` parameter, '
                'not "system" as an input message role.'
            )
    if version >= ANTHROPIC_NO_SAMPLING_SINCE:
        for name in ("temperature", "top_p", "top_k"):
            if name in body:
                return f"{name}: Extra inputs are not permitted"
    return None


def _anthropic_stop_reason(sc: Scenario) -> str:
    if sc.finish_reason:
        return sc.finish_reason
    return "tool_use" if sc.parts is not None and parts.has_calls(sc.parts) else "end_turn"


def _anthropic_frames(body: dict[str, Any], sc: Scenario, key: str) -> list[tuple[float, bytes]]:
    message = {
        "id": f"msg_fake{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": sc.prompt_tokens,
            "cache_creation_input_tokens": sc.cache_write_tokens,
            "cache_read_input_tokens": sc.cached_tokens,
            "output_tokens": 1,
            "service_tier": "standard",
        },
    }
    frames = [
        (0.0, _sse({"type": "message_start", "message": message}, "message_start")),
        (
            0.0,
            _sse(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                "content_block_start",
            ),
        ),
        (0.0, _sse({"type": "ping"}, "ping")),
    ]
    sent = 0
    if sc.parts is not None:  # the script's own blocks, instead of the one text block
        frames = [frames[0], frames[2], *parts.anthropic_frames(sc.parts, sc.delay_s, _sse)]
        sent = parts.output_tokens(sc.parts)
    for _, token, delay in _token_delays(sc) if sc.parts is None else ():
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}}
        frames.append((delay, _sse(delta, "content_block_delta")))
        sent += 1
    if sc.error_after is not None:
        error = _anthropic_error(529, sc.error_type or "overloaded_error", key, "Overloaded")
        return [*frames, (sc.delay_s, _sse(error, "error"))]
    if sc.malformed_after is not None:
        return [*frames, (sc.delay_s, b'event: content_block_delta\ndata: {"type": "content_block_delta", "de\n\n')]
    if sc.truncate_after is not None:
        return frames
    reason = _anthropic_stop_reason(sc)
    matched = (body.get("stop_sequences") or [None])[0] if reason == "stop_sequence" else None  # as the API names it
    stop = {"stop_reason": reason, "stop_sequence": matched}
    if sc.parts is None:
        frames.append((0.0, _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")))
    frames += [
        (0.0, _sse({"type": "message_delta", "delta": stop, "usage": {"output_tokens": sent}}, "message_delta")),
        (0.0, _sse({"type": "message_stop"}, "message_stop")),
    ]
    return frames


def _anthropic_message(body: dict[str, Any], sc: Scenario) -> dict[str, Any]:
    return {
        "id": f"msg_fake{next(_ids)}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": "".join(sc.tokens)}],
        "stop_reason": _anthropic_stop_reason(sc),
        "stop_sequence": None,
        "usage": {"input_tokens": sc.prompt_tokens, "output_tokens": len(sc.tokens)},
    }


# -- pytest fixtures (tests/conftest.py imports these) -----------------------------------


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FakeUpstream]:
    """One fake upstream server for the whole test run."""
    with FakeUpstream.running() as fake:
        yield fake


@pytest.fixture
def upstream(upstream_server: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeUpstream]:
    """The fake, reset, with both SDKs pointed at it through their own environment variables."""
    upstream_server.reset()
    for name in (
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_ADMIN_KEY",
        "OPENAI_CUSTOM_HEADERS",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_CUSTOM_HEADERS",
        "ANTHROPIC_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in upstream_server.env.items():
        monkeypatch.setenv(name, value)
    yield upstream_server
    upstream_server.reset()  # what a test changed (its key, its scenario) must not leak into the next
