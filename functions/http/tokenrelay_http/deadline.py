"""The Lambda invocation's deadline, as the HTTP app sees it.

A stream must end (upstream closed, terminal state written, terminal event sent)
before Lambda stops the invocation; a stream cut off by the timeout leaves the
client without a terminal event and the record ``active``. So each run gets
``deadline_s`` = the invocation's remaining time minus ``DEADLINE_MARGIN_S``
(``StreamRun`` takes the smaller of that and ``STREAM_TIMEOUT_S``). Where the
remaining time comes from:

- Lambda Web Adapter (``run.sh``, the Function URL): the adapter puts the
  invocation's context on every request as JSON in the ``x-amzn-lambda-context``
  header, replacing any such header from the client. It is aws-lambda-rust-runtime's
  ``Context`` serialized as is (``fetch_response`` in the adapter's ``src/lib.rs``):
  ``deadline`` is the invocation's deadline in epoch milliseconds (the
  ``Lambda-Runtime-Deadline-Ms`` of the Runtime API). The adapter's guide names it
  ``deadline_ms``; the code sends ``deadline``.
- Mangum (``handler.py``, the HTTP API): the context object is ``scope["aws.context"]``.
- Neither (uvicorn run locally, the tests): no deadline; ``STREAM_TIMEOUT_S`` alone.

A header that cannot be read is logged and ignored, never a failed request.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("tokenrelay.http")

HEADER = b"x-amzn-lambda-context"
MAX_HEADER_BYTES = 8192


def remaining_s(scope: Mapping[str, Any], now: Callable[[], float] = time.time) -> float | None:
    """Seconds left in this request's Lambda invocation; None outside Lambda."""
    context = scope.get("aws.context")
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        return float(context.get_remaining_time_in_millis()) / 1000
    for name, value in scope.get("headers") or ():
        if name == HEADER:
            return _from_header(value, now)
    return None


def stream_deadline_s(scope: Mapping[str, Any], margin_s: float, now: Callable[[], float] = time.time) -> float | None:
    """The ``deadline_s`` for a ``StreamRun`` started now: the time left minus ``margin_s``."""
    remaining = remaining_s(scope, now)
    return None if remaining is None else max(remaining - margin_s, 0.0)


def _from_header(value: bytes, now: Callable[[], float]) -> float | None:
    try:
        if len(value) > MAX_HEADER_BYTES:
            raise ValueError("too large")
        deadline_ms = json.loads(value)["deadline"]
        if isinstance(deadline_ms, bool) or not isinstance(deadline_ms, int | float) or not math.isfinite(deadline_ms):
            raise ValueError("deadline is not a number")
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring an unreadable x-amzn-lambda-context header (%s)", type(exc).__name__)
        return None
    return float(deadline_ms) / 1000 - now()
