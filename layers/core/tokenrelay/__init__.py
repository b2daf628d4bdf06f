"""TokenRelay core: provider-agnostic LLM token streaming for AWS serverless."""

from .engine import StreamRun
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
    Event,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamStart,
    Terminal,
    TextDelta,
    Usage,
    is_terminal,
)
from .providers import ProviderRegistry
from .requests import ChatRequest, Message, parse_chat_request
from .settings import Settings
from .stores.base import StreamOutcome, StreamRecord, StreamStore
from .transports.sse import encode_comment, encode_sse

__all__ = [
    "ChatRequest",
    "Event",
    "LimitExceeded",
    "Message",
    "ModelNotAllowed",
    "ProviderError",
    "ProviderRegistry",
    "RateLimited",
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
    "StreamStart",
    "StreamStore",
    "Terminal",
    "TextDelta",
    "TokenRelayError",
    "Unauthorized",
    "Unavailable",
    "Usage",
    "encode_comment",
    "encode_sse",
    "is_terminal",
    "parse_chat_request",
]
