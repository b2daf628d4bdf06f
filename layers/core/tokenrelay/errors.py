"""The TokenRelay error tree: every error raised on purpose, anywhere in the code.

    TokenRelayError                status code                  retryable  fields (headers)
    ├── RequestInvalid             400 invalid_request                     field
    ├── UnsupportedMediaType       415 unsupported_media_type
    ├── PayloadTooLarge            413 payload_too_large                   limit
    ├── RequestTimeout             408 request_timeout                     timeout_s (Connection: close)
    ├── BadMessage                 400 invalid_json | payload_too_large | unknown_type (a WebSocket frame)
    ├── Unauthorized               401 unauthorized                        (WWW-Authenticate: Bearer)
    ├── Forbidden                  403 forbidden                           another owner's stream
    ├── ModelNotAllowed            403 model_not_allowed                   field
    ├── NotFound                   404 not_found                           no such route (HTTP)
    ├── MethodNotAllowed           405 method_not_allowed                  (Allow: the path's methods)
    ├── StreamNotFound             404 stream_not_found
    ├── StreamFinished             409 stream_finished                     status
    ├── LimitExceeded              429 rate_limited             yes        retry_after (Retry-After)
    ├── TooManyStreams             429 too_many_streams         yes        (a WebSocket connection's)
    ├── ConnectionNotFound         410 connection_gone                     (never sent: the client left)
    ├── StoreUnavailable           503 store_unavailable        yes
    ├── WorkerUnavailable          503 worker_unavailable       yes
    ├── ResumeUnavailable          501 resume_unavailable
    └── ProviderError              502 upstream_error           no         upstream failures, translated
        ├── RateLimited            429 upstream_rate_limited    yes        (the provider's Retry-After, when retried)
        ├── Unavailable            503 upstream_unavailable     yes
        │   └── UpstreamTimeout    504 upstream_timeout         yes        (no first chunk, or a stall)
        └── Rejected               502 upstream_rejected        no

``status_code``, ``code`` and ``retryable`` are class attributes: one place decides each.
``fields()`` is what an error adds to the wire beyond its message and code; each wire
format renders them once (``transports.sse.error_body`` for JSON bodies and SSE,
``transports.websocket.error_message``, ``transports.openai.openai_error``).

Two limits, two codes: ``rate_limited`` is the caller's own per-key limit (``LimitExceeded``:
always with ``retry_after``; clients depend on it), ``upstream_rate_limited`` the provider's
rate limit that TokenRelay's own retries did not get past (``RateLimited``). docs/protocol.md §7.

Outside the tree: a cancel, a client gone or a deadline is control flow (``StreamRun.stop``,
ending with ``StreamCancelled``); ``ConnectionGone`` is the WebSocket poster's "the client
left"; ``transports.openai.OpenAIError`` is an error already in OpenAI's shape (``/v1``'s own
refusals, in OpenAI's words). Messages are written for the client: never a raw upstream
body, a key or a header value.
"""

from __future__ import annotations

from typing import Any


class TokenRelayError(Exception):
    status_code = 500
    code = "internal_error"
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def fields(self) -> dict[str, Any]:
        """What this error adds to its wire form beyond ``error`` and ``code`` (none by default)."""
        return {}

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers its answer carries (none by default)."""
        return {}


class RequestInvalid(TokenRelayError):
    status_code = 400
    code = "invalid_request"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field

    def fields(self) -> dict[str, Any]:
        return {"field": self.field}


class UnsupportedMediaType(TokenRelayError):
    status_code = 415
    code = "unsupported_media_type"

    def __init__(self) -> None:
        super().__init__("content-type: expected application/json")


class PayloadTooLarge(TokenRelayError):
    status_code = 413
    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"body: larger than {limit} bytes")
        self.limit = limit

    def fields(self) -> dict[str, Any]:
        return {"limit": self.limit}


class RequestTimeout(TokenRelayError):
    status_code = 408
    code = "request_timeout"

    def __init__(self, timeout_s: float, received: int, declared: int | None) -> None:
        of = f" of {declared}" if declared is not None else ""
        super().__init__(f"body: not received within {timeout_s:g} s ({received}{of} bytes arrived)")
        self.timeout_s = timeout_s

    def fields(self) -> dict[str, Any]:
        return {"timeout_s": self.timeout_s}

    @property
    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}  # no reuse of a connection whose body never completed


class BadMessage(TokenRelayError):
    """A WebSocket frame that is not a message TokenRelay reads (its ``code`` says why)."""

    status_code = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Unauthorized(TokenRelayError):
    """No API key, or a malformed, unknown, wrong or revoked one: every invalid key gets the same
    message, so a caller learns nothing about which part was wrong. Headers: RFC 6750."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, missing: bool = False) -> None:
        if missing:
            super().__init__("an API key is required: send 'Authorization: Bearer <key>'")
        else:
            super().__init__("invalid API key")
        self.missing = missing

    @property
    def headers(self) -> dict[str, str]:
        if self.missing:
            return {"WWW-Authenticate": 'Bearer realm="tokenrelay"'}
        return {"WWW-Authenticate": 'Bearer realm="tokenrelay", error="invalid_token"'}


class Forbidden(TokenRelayError):
    """A cancel or resume of a stream that another API key (or client) started."""

    status_code = 403
    code = "forbidden"

    def __init__(self, stream_id: str, whose: str = "client") -> None:
        super().__init__(f"stream {stream_id!r} belongs to another {whose}")
        self.stream_id = stream_id


class ModelNotAllowed(TokenRelayError):
    status_code = 403
    code = "model_not_allowed"

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(f"model: this API key may not use {provider}:{model}")
        self.field = "model"

    def fields(self) -> dict[str, Any]:
        return {"field": self.field}


class NotFound(TokenRelayError):
    status_code = 404
    code = "not_found"


class MethodNotAllowed(TokenRelayError):
    status_code = 405
    code = "method_not_allowed"


class StreamNotFound(TokenRelayError):
    status_code = 404
    code = "stream_not_found"

    def __init__(self, stream_id: str) -> None:
        super().__init__(f"no stream with id {stream_id!r}")
        self.stream_id = stream_id


class StreamFinished(TokenRelayError):
    status_code = 409
    code = "stream_finished"

    def __init__(self, stream_id: str, status: str) -> None:
        super().__init__(f"stream {stream_id!r} already ended with status {status!r}")
        self.stream_id = stream_id
        self.status = status

    def fields(self) -> dict[str, Any]:
        return {"status": self.status}


class LimitExceeded(TokenRelayError):
    """A per-key limit refused the request; ``retry_after`` seconds is when trying again may work."""

    status_code = 429
    code = "rate_limited"
    retryable = True

    def __init__(self, limit: str, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.limit = limit  # "requests_per_minute" | "concurrent_streams"
        self.retry_after = retry_after

    def fields(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyStreams(TokenRelayError):
    status_code = 429
    code = "too_many_streams"
    retryable = True

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} streams may run at once on one connection")
        self.limit = limit


class ConnectionNotFound(TokenRelayError):
    status_code = 410
    code = "connection_gone"

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id!r} is not connected")
        self.connection_id = connection_id


class StoreUnavailable(TokenRelayError):
    status_code = 503
    code = "store_unavailable"
    retryable = True


class WorkerUnavailable(TokenRelayError):
    status_code = 503
    code = "worker_unavailable"
    retryable = True


class ResumeUnavailable(TokenRelayError):
    status_code = 501
    code = "resume_unavailable"


class ProviderError(TokenRelayError):
    code = "upstream_error"
    retryable = False
    status_code = 502
    retry_after_s: float | None = None  # the upstream's Retry-After, when it sent one (providers.resilient)


class RateLimited(ProviderError):
    """The provider's rate limit (not the caller's own: that is ``LimitExceeded``)."""

    code = "upstream_rate_limited"
    retryable = True
    status_code = 429


class Unavailable(ProviderError):
    code = "upstream_unavailable"
    retryable = True
    status_code = 503


class UpstreamTimeout(Unavailable):
    """The upstream sent no first chunk, or stalled between chunks, for too long."""

    code = "upstream_timeout"
    status_code = 504


class Rejected(ProviderError):
    code = "upstream_rejected"
    retryable = False
    status_code = 502


class ConnectionGone(Exception):
    """The WebSocket client's connection no longer exists (API Gateway ``GoneException``).

    Control flow, not a failure (so not a ``TokenRelayError``): the stream ends as
    ``cancelled`` / ``disconnect``, or detaches for its grace period when resumable.
    """

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id!r} is gone")
        self.connection_id = connection_id
