"""Normalized stream events: small immutable values, one per protocol event.

A stream is ``StreamStart, TextDelta*, Usage?, terminal`` where ``terminal`` is
exactly one of ``StreamDone``, ``StreamCancelled`` or ``StreamError``.
Encoding them for a transport is a pure function (see ``tokenrelay.transports``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from .errors import TokenRelayError

__all__ = [
    "TERMINAL_TYPES",
    "CancelReason",
    "Event",
    "StreamCancelled",
    "StreamDone",
    "StreamError",
    "StreamStart",
    "StreamSummary",
    "Terminal",
    "TextDelta",
    "Usage",
    "cancel_reason",
    "is_terminal",
]

CancelReason: TypeAlias = Literal["client", "disconnect", "timeout"]


def cancel_reason(value: str | None) -> CancelReason:
    """A cancel reason as a record keeps it (any string) -> one the protocol names (default ``client``)."""
    if value == "disconnect":
        return "disconnect"
    if value == "timeout":
        return "timeout"
    return "client"


@dataclass(frozen=True, slots=True)
class StreamStart:
    stream_id: str
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    seq: int


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class StreamDone:
    stream_id: str
    finish_reason: str
    ttft_ms: int | None
    total_time_ms: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class StreamCancelled:
    stream_id: str
    reason: CancelReason


@dataclass(frozen=True, slots=True)
class StreamError:
    error: str
    code: str
    retryable: bool

    @classmethod
    def of(cls, exc: TokenRelayError) -> StreamError:
        """The terminal event of a stream that ``exc`` ended."""
        return cls(exc.message, exc.code, exc.retryable)


Terminal: TypeAlias = StreamDone | StreamCancelled | StreamError
Event: TypeAlias = StreamStart | TextDelta | Usage | Terminal
TERMINAL_TYPES = (StreamDone, StreamCancelled, StreamError)


def is_terminal(event: Event) -> bool:
    return isinstance(event, TERMINAL_TYPES)


@dataclass(frozen=True, slots=True)
class StreamSummary:
    """How a stream went, for telemetry; built once when the stream ends."""

    stream_id: str
    transport: str
    provider: str
    model: str
    status: Literal["complete", "cancelled", "failed"]
    completion_tokens: int
    total_time_ms: int
    ttft_ms: int | None = None
    cancel_reason: CancelReason | None = None
    error_code: str | None = None
    client_gone: bool = False
    tokens_after_disconnect: int = 0
    # Upstream fault tolerance (providers.resilient.with_upstream): retries before the first
    # text, whether the fallback model was tried, and the target that served (or was tried last).
    upstream_retries: int = 0
    upstream_fallback: bool = False
    served_provider: str | None = None
    served_model: str | None = None
