"""Normalized stream events: small immutable values, one per protocol event.

A stream is ``StreamStart, Part*, Usage?, terminal`` where ``terminal`` is
exactly one of ``StreamDone``, ``StreamCancelled`` or ``StreamError``.
Encoding them for a transport is a pure function (see ``tokenrelay.transports``).

A ``Part`` is one piece of the answer's content (docs/protocol.md §11), each with the
stream's ``seq`` (1, 2, 3... over every part, whatever its kind, so resume and "nothing
lost, nothing repeated" hold for all of them):

    TextDelta        text
    ReasoningDelta   reasoning text; a ``signature`` closes a reasoning block (Anthropic,
                     Bedrock: a later turn sends it back); ``redacted`` is a whole
                     encrypted block
    ToolCallStart    a tool call opens: its ``index`` (0, 1... in the answer), ``id``, ``name``
    ToolCallDelta    a fragment of that call's JSON arguments
    ToolCallEnd      its arguments are complete
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
    "PART_TYPES",
    "Part",
    "ReasoningDelta",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "Usage",
    "part_size",
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
class ReasoningDelta:
    text: str
    seq: int
    signature: str = ""  # set (with text "") on the part that closes a signed reasoning block
    redacted: str = ""  # set (with text "") for a redacted block: opaque data, sent back as is


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    index: int
    id: str
    name: str
    seq: int


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    arguments: str  # a fragment of the JSON arguments (may be ""): concatenated, they are the whole
    seq: int


@dataclass(frozen=True, slots=True)
class ToolCallEnd:
    index: int
    seq: int


Part: TypeAlias = TextDelta | ReasoningDelta | ToolCallStart | ToolCallDelta | ToolCallEnd
PART_TYPES = (TextDelta, ReasoningDelta, ToolCallStart, ToolCallDelta, ToolCallEnd)


def part_size(part: Part) -> int:
    """The characters a part carries (what a buffer or a batch holds of it)."""
    if type(part) is TextDelta:
        return len(part.text)
    if isinstance(part, ReasoningDelta):
        return len(part.text) + len(part.signature) + len(part.redacted)
    if isinstance(part, ToolCallDelta):
        return len(part.arguments)
    if isinstance(part, ToolCallStart):
        return len(part.id) + len(part.name)
    return 0


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one answer. ``prompt_tokens`` counts every input token, cached or not (as
    OpenAI's does); ``cached_tokens`` and ``cache_write_tokens`` are the parts of it read from
    and written to the provider's prompt cache (None: the provider does not say)."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int | None = None  # of completion_tokens; None: the provider does not say
    cached_tokens: int | None = None  # of prompt_tokens: read from the prompt cache
    cache_write_tokens: int | None = None  # of prompt_tokens: written to the prompt cache

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
    # The stop sequence that ended the answer (finish_reason "stop"): "" when the provider does not
    # say which; None when none did. Only the Anthropic wire format shows it (docs/anthropic-compat.md).
    stop_sequence: str | None = None
    cost_usd: float | None = None  # what the answer cost (catalog.prices); None: the model has no price
    cost_estimated: bool = False  # the provider reported no usage: estimated from the text (docs/cost.md)


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
Event: TypeAlias = StreamStart | Part | Usage | Terminal
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
    # Content parts (docs/protocol.md §11): tool calls the model made, and its reasoning tokens
    # (the provider's count, else the reasoning parts streamed).
    tool_calls: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # what the stream cost, whoever read it (docs/cost.md)
