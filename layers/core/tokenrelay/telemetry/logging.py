"""Structured logs: Powertools Logger's JSON on the ``tokenrelay`` logger tree, with stream context.

The code logs through plain ``logging.getLogger("tokenrelay.<part>")``; ``configure()``
(once, at cold start) gives the ``tokenrelay`` parent the handler and JSON
formatter of a Powertools ``Logger``, so every line is one JSON object with
``level``, ``location``, ``message``, ``service``, ``timestamp``, and the fields
bound to the current context: ``stream_id``, ``connection_id``, ``transport``,
``provider``, ``model`` (``bind()``, kept in a ``ContextVar``, so each asyncio
task and thread sees its own stream's fields). Outside Lambda (``LOG_JSON``
unset) logs stay plain text; the context is still bound, unused.

Never bind or log a secret: nothing here reads one, and ``tokenrelay.secrets``
logs only exception type names.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import IO

from ..settings import Settings

__all__ = ["CONTEXT_FIELDS", "ContextFilter", "bind", "bound", "configure", "current"]

CONTEXT_FIELDS = ("stream_id", "connection_id", "transport", "provider", "model", "request_id")
ROOT = "tokenrelay"
_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("tokenrelay_log_context", default=_EMPTY)


def current() -> Mapping[str, str]:
    """The fields bound in this context."""
    return _context.get()


def bind(**fields: str | None) -> None:
    """Add ``fields`` (None values skipped) to this context's log fields, until it ends."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context field(s): {', '.join(sorted(unknown))}")
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


@contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """``bind()`` for the duration of a ``with`` block (a Lambda handler's invocation)."""
    token = _context.set(_context.get())
    try:
        bind(**fields)
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record (the JSON formatter emits record extras)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def configure(settings: Settings, stream: IO[str] | None = None) -> logging.Handler | None:
    """Set the ``tokenrelay`` loggers' level, and JSON output when ``settings.log_json``.

    The handler formats with Powertools Logger's ``LambdaPowertoolsFormatter`` (its JSON
    shape, ``service`` key and exception serialization); it is built here rather than
    through ``Logger(...)``, which keeps the first handler of a service for good, so that
    calling ``configure`` again (tests, a changed stream) replaces it. Returns the handler.
    """
    parent = logging.getLogger(ROOT)
    parent.setLevel(settings.log_level)
    if not settings.log_json:
        return None
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(LambdaPowertoolsFormatter(service=settings.service_name))
    handler.addFilter(ContextFilter())
    parent.handlers = [handler]
    parent.propagate = False  # Lambda's root handler would print each line a second time
    return handler
