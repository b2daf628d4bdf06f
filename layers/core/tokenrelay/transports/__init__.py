"""Wire formats: pure encoders from events (and errors) to bytes, one module per format, and the
WebSocket senders that post them.

    sse          Server-Sent Events and TokenRelay's JSON error body (docs/protocol.md §2, §7)
    websocket    WebSocket messages (§3)
    openai       OpenAI's Chat Completions chunks, objects and errors (§6)
    _coalescing  ``CoalescingSender``: one connection's posts, tokens merged under 32 KB frames
    _resumable   ``ResumableSender``: one that survives its connection (§5)

A new wire format is a new module here (its encoder, its error renderer) and a route or
handler that sends it; nothing else changes.
"""

from ._coalescing import CoalescingSender
from ._resumable import ResumableSender
from .openai import OpenAIError, OpenAIStreamEncoder, openai_error
from .sse import encode_comment, encode_sse, error_body
from .websocket import MAX_FRAME_BYTES, ConnectionPoster, encode_error, encode_message, error_message

__all__ = [
    "MAX_FRAME_BYTES",
    "CoalescingSender",
    "ConnectionPoster",
    "OpenAIError",
    "OpenAIStreamEncoder",
    "ResumableSender",
    "encode_comment",
    "encode_error",
    "encode_message",
    "encode_sse",
    "error_body",
    "error_message",
    "openai_error",
]
