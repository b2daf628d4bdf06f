"""What a run is given: the process's shared services, its time bounds, and the narrow
protocols of the features it may have (resume, a WebSocket handover)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..settings import Settings
from ..stores.streams import StreamStore, WatchState
from ..telemetry.metrics import StreamMetrics
from ._poller import CancelPoller

__all__ = ["Bounds", "Clock", "Handover", "StreamServices"]

Clock = Callable[[], float]


@dataclass(frozen=True)
class StreamServices:
    """What every run of a process shares, made once per execution environment.

    ``poller``: one batched cancel watch for all of the process's runs (None: each run
    polls its own record: a process with one stream at a time, the WebSocket worker).
    ``metrics``: one EMF document per stream, when it has ended and its reader is done.
    """

    settings: Settings
    store: StreamStore
    poller: CancelPoller | None = None
    metrics: StreamMetrics | None = None
    clock: Clock = time.monotonic


@dataclass(frozen=True, slots=True)
class Bounds:
    """When a run must end, in seconds from its start (None: only ``STREAM_TIMEOUT_S``).

    ``deadline_s``: generation stops (``cancelled``/``timeout``) at the smaller of this and
    ``STREAM_TIMEOUT_S``. ``finish_by_s``: every write of the run's end is done or given up
    by then (the invocation's end, less a margin: Lambda may freeze what is left after it).
    """

    deadline_s: float | None = None
    finish_by_s: float | None = None


class Handover(Protocol):
    """A transport that can move a live stream to another client connection (WebSocket resume)."""

    def moved(self, state: WatchState) -> bool:
        """Follow a move the record asks for; True if the stream has a client again."""
        ...
