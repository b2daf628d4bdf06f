"""OpenAI Chat Completions provider; works with any OpenAI-compatible server.

The ``openai`` SDK does what it is good at: credentials and base URL (from its
own ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``), request building and turning
error statuses into typed errors. Its retries are off in a deployment (the registry
passes ``max_retries=0``): ``providers.resilient`` retries every provider alike.
The body of the stream is read raw (``with_streaming_response``) and parsed
here with a small bytes-level SSE decoder and stdlib ``json``: the SDK's typed
stream builds a pydantic model per chunk (measured against the fake upstream:
about 80 us of CPU per token, against about 12 us here).

Wire format (``stream_options.include_usage``)::

    data: {"choices":[{"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null,...}
    data: {"choices":[{"delta":{"content":"Hel"},"finish_reason":null}],"usage":null,...}
    data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":null,...}
    data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,...},...}
    data: [DONE]

``delta.content`` becomes text; ``delta.reasoning_content`` (vLLM, DeepSeek and other
compatible servers; ``delta.reasoning`` on some) becomes reasoning; ``delta.tool_calls``
become tool calls: the first fragment of an ``index`` carries ``id`` and ``function.name``
(a server that sends the name later is waited for), the rest carry argument fragments,
and every call ends when the choice finishes. ``usage.completion_tokens_details.
reasoning_tokens`` is kept. A network read that brings nothing to relay is a sign of
life (``ALIVE``) for the timers. Refusals are not relayed.

A stream is complete at ``[DONE]``, or at a clean end of body after a
``finish_reason`` (lenient for compatible servers that omit ``[DONE]``).
Anything else is a truncated stream: ``Unavailable``. An error frame
(``data: {"error": {...}}``, or an ``event: error``) is mapped by its type.

Errors are translated here, with messages that never carry the upstream body,
the key or a header: 429 -> ``RateLimited`` (except ``insufficient_quota``,
which no retry fixes: ``Rejected``); 408/409/5xx, connection errors and
timeouts -> ``Unavailable``; other 4xx -> ``Rejected``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx2
import openai

from ..errors import ProviderError, RateLimited, Rejected, Unavailable
from ..events import Usage
from ..requests import ChatRequest
from ._openai_params import request_params
from ._sse import BODY_ERRORS, CONNECT_S, SSEDecoder, aiohttp_client, connect_failed, relay, retry_after_s, timeout
from .base import Chunk, Finish, ReasoningChunk, TextChunk, ToolArgs, ToolEnd, ToolStart

__all__ = ["OpenAIProvider", "OpenAIStreamState", "request_params"]


_QUOTA = frozenset({"insufficient_quota"})
_RATE_LIMIT = frozenset({"rate_limit_exceeded", "rate_limit_error", "requests", "tokens"})
_REJECTED = frozenset(
    {
        "invalid_request_error",
        "invalid_api_key",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "model_not_found",
        "context_length_exceeded",
        "content_policy_violation",
        "content_filter",
    }
)
_UNAVAILABLE = frozenset({"server_error", "api_error", "overloaded_error", "service_unavailable", "timeout"})
_KNOWN = _QUOTA | _RATE_LIMIT | _REJECTED | _UNAVAILABLE


class OpenAIProvider:
    """Streams ``chat.completions`` through one lazily created ``AsyncOpenAI``."""

    name = "openai"

    def __init__(
        self,
        max_retries: int = 2,
        timeout_s: float = 60.0,
        api_key: str | None = None,
        connect_timeout_s: float = CONNECT_S,
    ) -> None:
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._api_key = api_key  # None: the SDK reads its own environment variable
        self._client: openai.AsyncOpenAI | None = None

    def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            try:
                self._client = openai.AsyncOpenAI(
                    api_key=self._api_key,
                    max_retries=self.max_retries,
                    timeout=timeout(self.timeout_s, self.connect_timeout_s),
                    http_client=aiohttp_client(openai.DefaultAioHttpClient),
                )
            except openai.OpenAIError:
                raise Rejected("OpenAI is not configured on this deployment (no API key)") from None
        return self._client

    def prepare(self) -> None:
        """Build the client and load what the SDK imports at its first call (``chat.completions``):
        at init, so the first request builds nothing (``ProviderRegistry.prepare``). Without a key,
        nothing: the stream says so. The aiohttp session is made at the first request, on its loop."""
        try:
            client = self._get_client()
        except Rejected:
            return
        client.chat.completions.with_streaming_response  # noqa: B018  (the SDK imports its resources lazily)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        client = self._get_client()
        state = OpenAIStreamState()
        decoder = SSEDecoder("OpenAI")
        try:
            async with client.chat.completions.with_streaming_response.create(**request_params(request)) as response:
                async with aclosing(response.http_response.aiter_bytes()) as body:
                    async with aclosing(relay(body, decoder, state)) as chunks:
                        async for chunk in chunks:
                            yield chunk
        except openai.APIError as exc:
            raise map_api_error(exc) from None  # the SDK error holds the upstream body
        except openai.OpenAIError as exc:
            raise ProviderError("OpenAI request failed") from exc
        except BODY_ERRORS as exc:
            if isinstance(exc, httpx2.TimeoutException):
                raise Unavailable("OpenAI stopped sending (read timed out)") from exc
            raise Unavailable("OpenAI stream ended unexpectedly") from exc
        if not state.complete:
            raise Unavailable("OpenAI stream ended unexpectedly")
        if state.usage is not None:
            yield state.usage
        yield Finish(state.finish_reason or "stop")

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class _Call:
    __slots__ = ("id", "name", "pending", "started")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.pending: list[str] = []  # argument fragments before the name arrived
        self.started = False


class OpenAIStreamState:
    """Pure accumulator over decoded SSE events: no I/O, easy to test and to profile."""

    __slots__ = ("_calls", "done", "eof", "finish_reason", "out", "usage")

    def __init__(self) -> None:
        self.done = False  # saw [DONE]
        self.eof = False  # the body ended cleanly
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.out: list[Chunk] = []  # what the events handled so far give, in order
        self._calls: dict[int, _Call] = {}

    def at_eof(self) -> None:
        self.eof = True
        self.end_calls()

    def end_calls(self) -> None:
        """The choice finished: every call started ends (in index order)."""
        for index in sorted(self._calls):
            call = self._calls[index]
            if call.started:
                self.out.append(ToolEnd(index))
        self._calls.clear()

    def _tool_calls(self, deltas: list[dict[str, Any]]) -> None:
        for delta in deltas:
            index = int(delta["index"])
            call = self._calls.get(index)
            if call is None:
                call = self._calls[index] = _Call()
            function = delta.get("function") or {}
            call.id = call.id or str(delta.get("id") or "")
            call.name = call.name or str(function.get("name") or "")
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                call.pending.append(arguments)
            if not call.started and call.name:
                call.started = True
                self.out.append(ToolStart(index, call.id or f"call_{index}", call.name))
            if call.started and call.pending:
                self.out.extend(ToolArgs(index, a) for a in call.pending)
                call.pending.clear()

    @property
    def complete(self) -> bool:
        return self.done or (self.eof and self.finish_reason is not None)

    def handle(self, event: bytes, data: bytes) -> None:
        """Take one event; what it gives goes to ``out``. Raises ``ProviderError`` for an error frame."""
        if self.done:
            return
        if data.startswith(b"[DONE]"):
            self.done = True
            self.end_calls()
            return
        try:
            payload = json.loads(data)
        except ValueError:
            raise Unavailable("OpenAI sent a malformed stream event") from None
        if not isinstance(payload, dict):
            raise Unavailable("OpenAI sent a malformed stream event")
        if event == b"error" or payload.get("error"):
            raise frame_error(payload)
        try:
            usage = payload.get("usage")
            if usage:
                details = usage.get("completion_tokens_details") or {}
                reasoning = details.get("reasoning_tokens")
                cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
                self.usage = Usage(
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                    reasoning_tokens=int(reasoning) if reasoning is not None else None,
                    cached_tokens=int(cached) if cached is not None else None,
                )
            choices = payload.get("choices")
            if not choices:
                return
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                reasoning_text = delta.get("reasoning_content")
                if reasoning_text is None:
                    reasoning_text = delta.get("reasoning")
                if isinstance(reasoning_text, str) and reasoning_text:
                    self.out.append(ReasoningChunk(reasoning_text))
                text = delta.get("content")
                if isinstance(text, str) and text:
                    self.out.append(TextChunk(text))
                calls = delta.get("tool_calls")
                if calls:
                    self._tool_calls(calls)
            reason = choice.get("finish_reason")
            if reason:
                self.finish_reason = str(reason)
                self.end_calls()
        except (AttributeError, TypeError, ValueError, LookupError):
            raise Unavailable("OpenAI sent a malformed stream event") from None


def map_api_error(exc: openai.APIError) -> ProviderError:
    """Translate an SDK error; the message names the status, never the body. A status
    error keeps the upstream's Retry-After (``retry_after_s``) for ``providers.resilient``."""
    if isinstance(exc, openai.APIStatusError):
        error = _map_status(exc)
        error.retry_after_s = retry_after_s(exc.response.headers)
        return error
    if isinstance(exc, openai.APITimeoutError) and not connect_failed(exc):
        return Unavailable("OpenAI request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return Unavailable("could not connect to OpenAI")
    return Unavailable("OpenAI request failed")


def _map_status(exc: openai.APIStatusError) -> ProviderError:
    status = exc.status_code
    if status == 429:
        if exc.code in _QUOTA or exc.type in _QUOTA:
            return Rejected("OpenAI quota exhausted for this account (HTTP 429)")
        return RateLimited("OpenAI rate limit exceeded (HTTP 429)")
    if status >= 500 or status in (408, 409):
        return Unavailable(f"OpenAI is unavailable (HTTP {status})")
    if status in (401, 403):
        return Rejected(f"OpenAI rejected the credentials (HTTP {status})")
    return Rejected(f"OpenAI rejected the request (HTTP {status})")


def frame_error(payload: dict[str, Any]) -> ProviderError:
    """Map an error frame received mid-stream by its type/code (never quoting its message)."""
    error = payload.get("error")
    if not isinstance(error, dict):
        error = payload
    kinds = {str(error.get(key) or "").lower() for key in ("type", "code")}
    status = next((v for v in (error.get("code"), error.get("status")) if isinstance(v, int)), None)
    known = sorted(kinds & _KNOWN)
    detail = f" ({known[0]})" if known else ""
    if kinds & _QUOTA:
        return Rejected(f"OpenAI quota exhausted for this account{detail}")
    if kinds & _RATE_LIMIT or status == 429:
        return RateLimited(f"OpenAI rate limit exceeded mid-stream{detail}")
    if kinds & _REJECTED or (status is not None and 400 <= status < 500):
        return Rejected(f"OpenAI rejected the request mid-stream{detail}")
    return Unavailable(f"OpenAI stream failed mid-response{detail}")
