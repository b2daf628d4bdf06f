"""The TokenRelay error tree.

    TokenRelayError                    base of everything raised on purpose
    ├── RequestInvalid (400)           bad input; names the offending field
    ├── StreamNotFound (404)           unknown stream id
    ├── StreamFinished (409)           the stream already ended; carries its status
    ├── StoreUnavailable (503)         the state store could not be reached
    └── ProviderError(code, retryable) upstream failures, translated at the boundary
        ├── RateLimited                rate_limited          retryable
        ├── Unavailable                upstream_unavailable  retryable
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


class ProviderError(TokenRelayError):
    code = "upstream_error"
    retryable = False
    status_code = 502


class RateLimited(ProviderError):
    code = "rate_limited"
    retryable = True
    status_code = 429


class Unavailable(ProviderError):
    code = "upstream_unavailable"
    retryable = True
    status_code = 503


class Rejected(ProviderError):
    code = "upstream_rejected"
    retryable = False
    status_code = 502
