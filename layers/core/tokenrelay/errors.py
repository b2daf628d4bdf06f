"""The TokenRelay error tree.

    TokenRelayError                    base of everything raised on purpose
    ├── RequestInvalid (400)           bad input; names the offending field
    ├── StreamNotFound (404)           unknown stream id
    ├── StreamFinished (409)           the stream already ended; carries its status
    ├── StoreUnavailable (503)         the state store could not be reached
    ├── Unauthorized (401)             no API key, or not a valid one (WWW-Authenticate: Bearer)
    ├── ModelNotAllowed (403)          the API key may not use this provider/model
    ├── LimitExceeded (429)            rate_limited: the key's per-minute or concurrency limit (Retry-After)
    └── ProviderError(code, retryable) upstream failures, translated at the boundary
        ├── RateLimited                rate_limited          retryable
        ├── Unavailable                upstream_unavailable  retryable
        │   └── UpstreamTimeout        upstream_timeout      retryable (no first chunk, or a stall)
        └── Rejected                   upstream_rejected     not retryable

Cancellation is control flow, not a failure, and so not an exception here:
an explicit cancel, a client gone or a deadline call ``StreamRun.stop(reason)``,
which ends the stream with a ``StreamCancelled`` event (``tokenrelay.events``).

Messages are written for the client: never put a raw upstream body, a key or a
header value in one.
"""

from __future__ import annotations


class TokenRelayError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestInvalid(TokenRelayError):
    status_code = 400
    code = "invalid_request"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


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


class StoreUnavailable(TokenRelayError):
    status_code = 503
    code = "store_unavailable"


class Unauthorized(TokenRelayError):
    """No API key, or one that is malformed, unknown, wrong or revoked.

    Every invalid key gets the same message, so a caller learns nothing about which
    part was wrong. ``headers`` is what an HTTP answer adds (RFC 6750).
    """

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


class ModelNotAllowed(TokenRelayError):
    status_code = 403
    code = "model_not_allowed"

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(f"model: this API key may not use {provider}:{model}")
        self.field = "model"


class LimitExceeded(TokenRelayError):
    """A per-key limit refused the request; ``retry_after`` seconds is when trying again may work."""

    status_code = 429
    code = "rate_limited"
    retryable = True

    def __init__(self, limit: str, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.limit = limit  # "requests_per_minute" | "concurrent_streams"
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ProviderError(TokenRelayError):
    code = "upstream_error"
    retryable = False
    status_code = 502
    retry_after_s: float | None = None  # the upstream's Retry-After, when it sent one (providers.resilient)


class RateLimited(ProviderError):
    code = "rate_limited"
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
