"""Anthropic Messages provider.

The ``anthropic`` SDK does credentials and base URL (its own
``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``), request building and typed
status errors. Its retries are off in a deployment (the registry passes
``max_retries=0``): ``providers.resilient`` retries every provider alike. The body of the stream is read
raw (``messages.with_streaming_response.create(stream=True)``) and parsed here
with a small bytes-level SSE decoder and stdlib ``json``: the SDK's
``messages.stream()`` helper rebuilds a pydantic snapshot of the message on
every event (measured against the fake upstream: about 45 us of CPU per token,
against about 10 us here).

Wire format::

    event: message_start        {"message":{"usage":{"input_tokens":25,"output_tokens":1,...},...}}
    event: content_block_start  {"index":0,"content_block":{"type":"text","text":""}}
    event: ping
    event: content_block_delta  {"index":0,"delta":{"type":"text_delta","text":"Hel"}}
    event: content_block_stop
    event: message_delta        {"delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}
    event: message_stop
    event: error                {"type":"error","error":{"type":"overloaded_error","message":"..."}}

``text_delta`` becomes text; a ``thinking`` block's ``thinking_delta`` becomes reasoning
and its ``signature_delta`` closes it (kept, to be sent back); a ``redacted_thinking``
block is one reasoning part with its ``data``; a ``tool_use`` block is a tool call (its
start has ``id`` and ``name``, ``input_json_delta`` its argument fragments, its
``content_block_stop`` its end; tool calls are numbered 0, 1... in the message).
``stop_reason`` ``tool_use`` is ``tool_calls``. Every other event (``ping``,
``message_start``, block boundaries) is a sign of life (``ALIVE``). Citations are not
relayed. The API does not count thinking tokens apart: ``reasoning_tokens`` stays unknown.
``prompt_tokens`` counts cached input too (``input_tokens`` +
``cache_creation_input_tokens`` + ``cache_read_input_tokens``), as OpenAI's does, and
``cached_tokens`` / ``cache_write_tokens`` say how much of it was read from / written to the cache.
A stream that ends without ``message_stop`` is truncated: ``Unavailable``.
``stop_reason`` maps ``end_turn``/``stop_sequence`` -> ``stop``,
``max_tokens`` -> ``length``; any other value passes through.

Request: system messages in ``messages`` are folded, after ``system``, into the
``system`` parameter. ``temperature`` is not sent: API version 2026-10-21 (what
this SDK sends) refuses every sampling parameter with a 400, and the SDK no
longer has them. For a model the SDK lists as deprecated, ``create`` warns with
a ``DeprecationWarning`` (attributed to this module, so hidden by Python's
default filters, but an error under ``filterwarnings = error``).

Errors: 429 -> ``RateLimited`` (a spend limit, which no retry fixes:
``Rejected``); 408/409/5xx including 529 overloaded, connection errors and
timeouts -> ``Unavailable``; other 4xx -> ``Rejected``; an ``event: error``
mid-stream maps by its ``error.type``. Messages never carry the upstream body,
the key or a header.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace
from typing import Any

import anthropic
import httpx2

from ..errors import ProviderError, RateLimited, Rejected, Unavailable
from ..events import Usage
from ..requests import ChatRequest
from ._anthropic_params import request_params
from ._sse import BODY_ERRORS, CONNECT_S, SSEDecoder, aiohttp_client, connect_failed, relay, retry_after_s, timeout
from .base import Chunk, Finish, ReasoningChunk, TextChunk, ToolArgs, ToolEnd, ToolStart

__all__ = ["AnthropicProvider", "AnthropicStreamState", "request_params"]


STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}

_RATE_LIMIT = frozenset({"rate_limit_error"})
_OVERLOADED = frozenset({"overloaded_error"})
_UNAVAILABLE = frozenset({"api_error", "timeout_error"})
_REJECTED = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "billing_error",
    }
)
_SPEND_LIMIT = frozenset({"contract_spend_limit_reached", "enforced_spend_limit_reached"})


class AnthropicProvider:
    """Streams ``messages`` through one lazily created ``AsyncAnthropic``."""

    name = "anthropic"

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
        self._client: anthropic.AsyncAnthropic | None = None

    def _get_client(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            try:
                self._client = anthropic.AsyncAnthropic(
                    api_key=self._api_key,
                    max_retries=self.max_retries,
                    timeout=timeout(self.timeout_s, self.connect_timeout_s),
                    http_client=aiohttp_client(anthropic.DefaultAioHttpClient),
                )
            except anthropic.AnthropicError:
                raise Rejected("Anthropic is not configured on this deployment (no API key)") from None
        return self._client

    def prepare(self) -> None:
        """Build the client and load the SDK's lazily imported ``messages`` resource, at init."""
        try:
            client = self._get_client()
        except Rejected:
            return
        client.messages.with_streaming_response  # noqa: B018  (the SDK imports its resources lazily)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        client = self._get_client()
        state = AnthropicStreamState()
        decoder = SSEDecoder("Anthropic")
        try:
            async with client.messages.with_streaming_response.create(**request_params(request)) as response:
                async with aclosing(response.http_response.aiter_bytes()) as body:
                    async with aclosing(relay(body, decoder, state)) as chunks:
                        async for chunk in chunks:
                            yield chunk
        except anthropic.APIError as exc:
            raise map_api_error(exc) from None  # the SDK error holds the upstream body
        except anthropic.AnthropicError as exc:
            raise ProviderError("Anthropic request failed") from exc
        except BODY_ERRORS as exc:
            if isinstance(exc, httpx2.TimeoutException):
                raise Unavailable("Anthropic stopped sending (read timed out)") from exc
            raise Unavailable("Anthropic stream ended unexpectedly") from exc
        if not state.done:
            raise Unavailable("Anthropic stream ended unexpectedly")
        if state.usage is not None:
            yield state.usage
        yield Finish(state.finish_reason, state.stop_sequence)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class AnthropicStreamState:
    """Pure accumulator over decoded SSE events: no I/O, easy to test and to profile."""

    __slots__ = ("done", "finish_reason", "out", "stop_sequence", "tools", "usage")

    def __init__(self) -> None:
        self.done = False  # saw message_stop
        self.finish_reason = "stop"
        self.stop_sequence: str | None = None
        self.usage: Usage | None = None
        self.out: list[Chunk] = []  # what the events handled so far give, in order
        self.tools: dict[int, int] = {}  # content block index -> tool call index

    def _block_start(self, payload: dict[str, Any]) -> None:
        block = payload["content_block"]
        kind = block.get("type")
        if kind == "tool_use":
            index = self.tools[int(payload["index"])] = len(self.tools)
            self.out.append(ToolStart(index, str(block["id"]), str(block["name"])))
        elif kind == "redacted_thinking":
            self.out.append(ReasoningChunk("", redacted=str(block["data"])))

    def _block_delta(self, payload: dict[str, Any]) -> None:
        delta = payload["delta"]
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and text:
                self.out.append(TextChunk(text))
        elif kind == "thinking_delta":
            text = delta.get("thinking")
            if isinstance(text, str) and text:
                self.out.append(ReasoningChunk(text))
        elif kind == "signature_delta":
            self.out.append(ReasoningChunk("", signature=str(delta["signature"])))
        elif kind == "input_json_delta":
            fragment = str(delta.get("partial_json") or "")
            if fragment:  # the first one is often empty: it carries nothing
                self.out.append(ToolArgs(self.tools[int(payload["index"])], fragment))

    def at_eof(self) -> None:
        pass  # a body cut before message_stop is judged by the provider (``done``)

    def handle(self, event: bytes, data: bytes) -> None:
        """Take one event; what it gives goes to ``out``. Raises ``ProviderError`` for an error event."""
        if event == b"ping" or self.done:
            return
        try:
            payload = json.loads(data)
        except ValueError:
            raise Unavailable("Anthropic sent a malformed stream event") from None
        if not isinstance(payload, dict):
            raise Unavailable("Anthropic sent a malformed stream event")
        kind = payload.get("type")
        try:
            if kind == "content_block_delta":
                self._block_delta(payload)
            elif kind == "content_block_start":
                self._block_start(payload)
            elif kind == "content_block_stop":
                index = self.tools.get(int(payload["index"]))
                if index is not None:
                    self.out.append(ToolEnd(index))
            elif event == b"error" or kind == "error":
                raise frame_error(payload)
            elif kind == "message_start":
                usage = payload["message"].get("usage") or {}
                self.usage = _usage(usage, _int(usage, "output_tokens"))
            elif kind == "message_delta":
                delta = payload.get("delta") or {}
                reason = delta.get("stop_reason")
                if reason:
                    self.finish_reason = STOP_REASONS.get(reason, str(reason))
                if reason == "stop_sequence":
                    self.stop_sequence = str(delta.get("stop_sequence") or "")
                usage = payload.get("usage") or {}
                if self.usage is not None and usage:
                    completion = _int(usage, "output_tokens") or self.usage.completion_tokens
                    if usage.get("input_tokens") is not None:  # the final count of the input too
                        self.usage = _usage(usage, completion)
                    else:
                        self.usage = replace(self.usage, completion_tokens=completion)
            elif kind == "message_stop":
                self.done = True
        except (AttributeError, TypeError, ValueError, LookupError):
            raise Unavailable("Anthropic sent a malformed stream event") from None


def _int(usage: dict[str, Any], key: str) -> int:
    return int(usage.get(key) or 0)


def _usage(usage: dict[str, Any], completion_tokens: int) -> Usage:
    """Anthropic's ``input_tokens`` leaves out the cached input: the prompt is all three."""
    read, written = _int(usage, "cache_read_input_tokens"), _int(usage, "cache_creation_input_tokens")
    return Usage(
        prompt_tokens=_int(usage, "input_tokens") + read + written,
        completion_tokens=completion_tokens,
        cached_tokens=read,
        cache_write_tokens=written,
    )


def map_api_error(exc: anthropic.APIError) -> ProviderError:
    """Translate an SDK error; the message names the status, never the body. A status
    error keeps the upstream's Retry-After (``retry_after_s``) for ``providers.resilient``."""
    if isinstance(exc, anthropic.APIStatusError):
        error = _map_status(exc)
        error.retry_after_s = retry_after_s(exc.response.headers)
        return error
    if isinstance(exc, anthropic.APITimeoutError) and not connect_failed(exc):
        return Unavailable("Anthropic request timed out")
    if isinstance(exc, anthropic.APIConnectionError):
        return Unavailable("could not connect to Anthropic")
    return Unavailable("Anthropic request failed")


def _map_status(exc: anthropic.APIStatusError) -> ProviderError:
    status = exc.status_code
    if status == 429:
        if exc.error_code in _SPEND_LIMIT:
            return Rejected("Anthropic spend limit reached for this account (HTTP 429)")
        return RateLimited("Anthropic rate limit exceeded (HTTP 429)")
    if status == 529:
        return Unavailable("Anthropic is overloaded (HTTP 529)")
    if status >= 500 or status in (408, 409):
        return Unavailable(f"Anthropic is unavailable (HTTP {status})")
    if status in (401, 403):
        return Rejected(f"Anthropic rejected the credentials (HTTP {status})")
    return Rejected(f"Anthropic rejected the request (HTTP {status})")


def frame_error(payload: dict[str, Any]) -> ProviderError:
    """Map an ``event: error`` received mid-stream by ``error.type`` (never quoting its message)."""
    error = payload.get("error")
    kind = str(error.get("type") or "") if isinstance(error, dict) else ""
    if kind in _RATE_LIMIT:
        return RateLimited(f"Anthropic rate limit exceeded mid-stream ({kind})")
    if kind in _OVERLOADED:
        return Unavailable(f"Anthropic is overloaded ({kind} mid-stream)")
    if kind in _REJECTED:
        return Rejected(f"Anthropic rejected the request mid-stream ({kind})")
    detail = f" ({kind})" if kind in _UNAVAILABLE else ""
    return Unavailable(f"Anthropic stream failed mid-response{detail}")
