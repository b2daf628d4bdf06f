"""Amazon Bedrock provider: any Bedrock chat model through ``ConverseStream``.

Authenticated by the function's IAM role (``bedrock:InvokeModelWithResponseStream``
on the configured model ARNs): no key to keep. This module imports boto3 because
here boto3 *is* the provider SDK. The endpoint comes from boto3's configuration
(``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` points it at the fake in the tests);
``region`` (``BEDROCK_REGION``) overrides the function's region.

boto3 blocks, and its ``EventStream`` iterator reads the socket: each stream gets
a worker thread that calls ``converse_stream`` and iterates the events, handing
them to the event loop through an ``asyncio.Queue``. Closing the generator
(cancel, disconnect, deadline) sets a stop flag and shuts the socket down for
reading, which wakes the thread's blocked read; the thread then closes the
response, so the connection closes and Bedrock stops generating. A stream still
waiting for its response headers is closed as soon as they arrive.

Events (``application/vnd.amazon.eventstream``, decoded by botocore): ``messageStart``,
``contentBlockStart`` (``start.toolUse``: a tool call's ``toolUseId`` and ``name``),
``contentBlockDelta`` (``delta.text``; ``delta.toolUse.input``, an argument fragment;
``delta.reasoningContent``: ``text``, ``signature`` or ``redactedContent`` bytes, relayed
base64), ``contentBlockStop`` (a tool call's end), ``messageStop`` (``stopReason``),
``metadata`` (``usage``); exceptions such as ``throttlingException``. Every event is a
sign of life for the timers (``ALIVE`` when it has nothing to relay). A stream is complete when it ends cleanly after
``messageStop``, else it was truncated: ``Unavailable``. ``stopReason``:
``end_turn``/``stop_sequence`` -> ``stop``; ``tool_use`` -> ``tool_calls``;
``max_tokens``/``model_context_window_exceeded``
-> ``length``; ``guardrail_intervened``/``content_filtered`` -> ``content_filter``;
others pass through. ``prompt_tokens`` counts cache reads and writes, as for Anthropic, and
``cached_tokens`` / ``cache_write_tokens`` say how many.

Errors are mapped by AWS error code in ``map_error``, never quoting the message.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import boto3
from botocore import exceptions as aws
from botocore.config import Config
from botocore.eventstream import ParserError
from urllib3 import exceptions as urllib3_errors

from ..errors import ProviderError, RateLimited, Rejected, Unavailable
from ..events import Usage
from ..requests import ChatRequest
from ._bedrock_params import request_params
from .base import ALIVE, Chunk, Finish, ReasoningChunk, TextChunk, ToolArgs, ToolEnd, ToolStart

__all__ = ["BedrockProvider", "BedrockStreamState", "map_error", "request_params"]  # request_params: _bedrock_params

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# AWS error codes, lower-cased, without the "Exception" suffix.
_RATE_LIMIT = frozenset("throttling servicequotaexceeded toomanyrequests".split())
_UNAVAILABLE = frozenset(
    "serviceunavailable internalserver modeltimeout modelnotready modelstreamerror modelerror".split()
)
_REJECTED = frozenset(
    "validation accessdenied resourcenotfound unrecognizedclient invalidsignature expiredtoken "
    "signaturedoesnotmatch".split()
)
_CONNECT_S = 5.0
_CLOSE_WAIT_S = 2.0
_END = object()


class BedrockProvider:
    """Streams ``converse_stream`` through one lazily created ``bedrock-runtime`` client."""

    name = "bedrock"

    def __init__(
        self,
        region: str | None = None,
        max_retries: int = 2,
        timeout_s: float = 60.0,
        connect_timeout_s: float = _CONNECT_S,
    ) -> None:
        self.region = region
        self.max_retries = max_retries  # the registry passes 0: providers.resilient retries
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._client: Any = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Build the ``bedrock-runtime`` client (its service model, endpoint rules) at init.
        Without a region, nothing: the stream reports it."""
        try:
            self._get_client()
        except aws.BotoCoreError:
            return

    def _get_client(self) -> Any:
        """The client, created once (in a worker thread: creating it blocks for tens of ms)."""
        with self._lock:
            if self._client is None:
                config = Config(
                    connect_timeout=min(self.timeout_s, self.connect_timeout_s),
                    read_timeout=self.timeout_s,
                    retries={"mode": "standard", "total_max_attempts": self.max_retries + 1},
                )
                session = boto3.session.Session()
                self._client = session.client("bedrock-runtime", region_name=self.region, config=config)
            return self._client

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        params = request_params(request)
        state = BedrockStreamState()
        reader = _StreamReader(lambda: self._get_client().converse_stream(**params))
        try:
            while True:
                item = await reader.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    mapped = map_error(item)
                    if mapped is None:
                        raise item
                    raise mapped from None  # botocore errors may quote the upstream body
                assert isinstance(item, Mapping)
                chunk = state.handle(item)
                yield ALIVE if chunk is None else chunk
        finally:
            await reader.close()
        if not state.done:
            raise Unavailable("Bedrock stream ended unexpectedly")
        if state.usage is not None:
            yield state.usage
        yield Finish(state.finish_reason, state.stop_sequence)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)


class _StreamReader:
    """Runs the blocking call and event iteration in a thread; events arrive on an asyncio queue."""

    def __init__(self, open_stream: Callable[[], Any]) -> None:
        self._open = open_stream
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name="bedrock-stream", daemon=True)
        self._thread.start()

    async def get(self) -> object:
        return await self._queue.get()

    def _send(self, callback: Callable[..., None], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    def _run(self) -> None:
        stream: Any = None
        try:
            stream = self._open()["stream"]
            with self._lock:
                self._stream = stream
            for event in stream:
                if self._stopped.is_set():
                    break
                self._send(self._queue.put_nowait, event)
            else:
                self._send(self._queue.put_nowait, _END)
        except BaseException as exc:  # handed to the loop; raised from ``stream`` there
            if not self._stopped.is_set():
                self._send(self._queue.put_nowait, exc)
        finally:
            if stream is not None:
                try:
                    stream.close()
                except Exception:  # closing a response that already failed
                    pass
            self._send(_set_done, self._exited)

    async def close(self) -> None:
        """Stop reading and close the upstream response; wait (briefly) for the thread to end."""
        self._stopped.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            _shutdown(getattr(stream, "_raw_stream", None))
        if not self._exited.done():
            await asyncio.wait({self._exited}, timeout=_CLOSE_WAIT_S)


def _shutdown(raw: Any) -> None:
    """Shut the response's socket down: a read blocked in another thread returns at once."""
    try:
        raw.shutdown()  # urllib3 >= 2.3
        return
    except (AttributeError, NotImplementedError):  # an older urllib3: reach for the connection's socket
        pass
    except (ValueError, RuntimeError, OSError):  # already released or closed
        return
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class BedrockStreamState:
    """Pure accumulator over decoded ConverseStream events: no I/O."""

    __slots__ = ("done", "finish_reason", "stop_sequence", "tools", "usage")

    def __init__(self) -> None:
        self.done = False  # saw messageStop
        self.finish_reason = "stop"
        self.stop_sequence: str | None = None
        self.usage: Usage | None = None
        self.tools: dict[int, int] = {}  # content block index -> tool call index

    def handle(self, event: Mapping[str, Any]) -> Chunk | None:
        """Take one event; return what it gives, if anything."""
        try:
            delta = event.get("contentBlockDelta")
            if delta is not None:
                return self._delta(delta)
            start = event.get("contentBlockStart")
            if start is not None:
                tool = (start.get("start") or {}).get("toolUse")
                if tool is None:
                    return None
                index = self.tools[int(start["contentBlockIndex"])] = len(self.tools)
                return ToolStart(index, str(tool["toolUseId"]), str(tool["name"]))
            block_stop = event.get("contentBlockStop")
            if block_stop is not None:
                ended = self.tools.get(int(block_stop.get("contentBlockIndex", -1)))
                return None if ended is None else ToolEnd(ended)
            stop = event.get("messageStop")
            if stop is not None:
                self.done = True
                reason = str(stop.get("stopReason") or "end_turn")
                self.finish_reason = STOP_REASONS.get(reason, reason)
                if reason == "stop_sequence":  # Claude models say which in their own fields
                    fields = stop.get("additionalModelResponseFields") or {}
                    self.stop_sequence = str(fields.get("stop_sequence") or "") if isinstance(fields, dict) else ""
                return None
            metadata = event.get("metadata")
            if metadata is not None:
                usage = metadata.get("usage") or {}
                read = int(usage.get("cacheReadInputTokens") or 0)
                written = int(usage.get("cacheWriteInputTokens") or 0)
                self.usage = Usage(
                    prompt_tokens=int(usage.get("inputTokens") or 0) + read + written,
                    completion_tokens=int(usage.get("outputTokens") or 0),
                    cached_tokens=read,
                    cache_write_tokens=written,
                )
        except (AttributeError, TypeError, ValueError, LookupError):
            raise Unavailable("Bedrock sent a malformed stream event") from None
        return None

    def _delta(self, delta: Mapping[str, Any]) -> Chunk | None:
        body = delta["delta"]
        text = body.get("text")
        if isinstance(text, str):
            return TextChunk(text) if text else None
        tool = body.get("toolUse")
        if tool is not None:
            fragment = str(tool.get("input") or "")
            return ToolArgs(self.tools[int(delta["contentBlockIndex"])], fragment) if fragment else None
        reasoning = body.get("reasoningContent")
        if reasoning is not None:
            if reasoning.get("redactedContent") is not None:
                return ReasoningChunk("", redacted=base64.b64encode(reasoning["redactedContent"]).decode())
            if reasoning.get("signature"):
                return ReasoningChunk("", signature=str(reasoning["signature"]))
            return ReasoningChunk(str(reasoning.get("text") or ""))
        return None


def map_error(exc: BaseException) -> ProviderError | None:
    """Translate a botocore error (``None``: not one of ours) by its AWS error code (see the sets
    above); connection errors and timeouts are ``Unavailable``, missing credentials ``Rejected``."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, aws.ClientError):
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "")
        status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        kind = code.lower().removesuffix("exception")
        where = " mid-stream" if isinstance(exc, aws.EventStreamError) else ""
        if kind in _RATE_LIMIT or (not kind and status == 429):
            return RateLimited(f"Bedrock rate limit exceeded{where} ({code or 'HTTP 429'})")
        if kind in _UNAVAILABLE:
            return Unavailable(f"Bedrock is unavailable{where} ({code})")
        if kind in _REJECTED:
            return Rejected(f"Bedrock rejected the request{where} ({code})")
        if isinstance(status, int) and 400 <= status < 500 and not where:
            return Rejected(f"Bedrock rejected the request (HTTP {status})")
        return Unavailable(f"Bedrock request failed{where} ({code or f'HTTP {status}'})")
    if isinstance(exc, aws.NoCredentialsError | aws.PartialCredentialsError | aws.NoRegionError):
        return Rejected("Bedrock is not configured on this deployment (no AWS credentials or region)")
    if isinstance(exc, aws.ParamValidationError):
        return Rejected("Bedrock refused the request parameters")
    if isinstance(exc, aws.ReadTimeoutError | urllib3_errors.ReadTimeoutError):
        return Unavailable("Bedrock stopped sending (read timed out)")
    if isinstance(exc, aws.ConnectTimeoutError | aws.EndpointConnectionError):
        return Unavailable("could not connect to Bedrock")
    if isinstance(exc, ParserError):
        return Unavailable("Bedrock sent a malformed stream event")
    if isinstance(exc, aws.BotoCoreError | urllib3_errors.HTTPError | OSError):  # the body broke off mid-stream
        return Unavailable("Bedrock stream ended unexpectedly")
    return None
