"""TokenRelay core: provider-agnostic LLM token streaming for AWS serverless.

    errors.py     the whole error tree, drawn in its docstring
    events.py     the stream's vocabulary: small immutable events every package shares
    settings.py   frozen settings, read once at cold start
    requests.py   the chat request, validated against the deployment's limits
    stream/       one stream's life: StreamRun (the one owner), its session, watch, outcome
    resume/       the output log, the grace period and lease, the WebSocket handover
    protection/   API keys, per-key limits, admission (one Guard for every transport)
    providers/    the provider protocol, OpenAI, Anthropic, Bedrock, echo; retries, fallback
    transports/   wire formats: SSE, WebSocket, OpenAI (pure encoders), the WebSocket senders
    stores/       each record next to its store protocol; stores.dynamodb implements them
    telemetry/    metrics (EMF), logs, tracing: the only importers of Powertools
    wiring.py     the composition root: a deployment's stores, guard, metrics, made once

Dependencies point one way, with no cycles (docs/architecture.md; tests/unit/test_import_graph.py).
"""

from .errors import (
    LimitExceeded,
    ModelNotAllowed,
    ProviderError,
    RateLimited,
    Rejected,
    RequestInvalid,
    StoreUnavailable,
    StreamFinished,
    StreamNotFound,
    TokenRelayError,
    Unauthorized,
    Unavailable,
)
from .events import (
    PART_TYPES,
    Event,
    Part,
    ReasoningDelta,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamStart,
    Terminal,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    is_terminal,
)
from .providers import ProviderRegistry
from .requests import ChatRequest, Message, parse_chat_request
from .settings import Settings
from .stores import StreamOutcome, StreamRecord, StreamStore
from .stream import Bounds, StreamRun, StreamServices
from .transports.sse import encode_comment, encode_sse

__all__ = [
    "PART_TYPES",
    "Bounds",
    "ChatRequest",
    "Event",
    "LimitExceeded",
    "Message",
    "ModelNotAllowed",
    "Part",
    "ProviderError",
    "ProviderRegistry",
    "RateLimited",
    "ReasoningDelta",
    "Rejected",
    "RequestInvalid",
    "Settings",
    "StoreUnavailable",
    "StreamCancelled",
    "StreamDone",
    "StreamError",
    "StreamFinished",
    "StreamNotFound",
    "StreamOutcome",
    "StreamRecord",
    "StreamRun",
    "StreamServices",
    "StreamStart",
    "StreamStore",
    "Terminal",
    "TextDelta",
    "TokenRelayError",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "Unauthorized",
    "Unavailable",
    "Usage",
    "encode_comment",
    "encode_sse",
    "is_terminal",
    "parse_chat_request",
]
