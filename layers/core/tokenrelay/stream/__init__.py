"""The stream's life, owned by one object: ``StreamRun`` (docs/architecture.md).

_run         StreamRun: opens, watches, stops, detaches, summarises; one owner
_producer    its producer: the provider read, the deadline, the one ending
_session     the reader's side: what a transport iterates, and how it lets go
_services    what a run is given: the process's services, its bounds, a handover
_watch       what it watches: the Watcher protocol, SoloWatch (one stream)
_poller      CancelPoller: one batched watch for all of a process's streams
_outcome     how a stream ended, as its record keeps it; the one terminal write
_live_queue  what the reader has not taken yet, bounded (backpressure)
"""

from ._live_queue import EVENT_COST, LiveQueue
from ._outcome import TerminalWrite, never_started, outcome_of
from ._poller import CancelPoller
from ._run import CLEANUP_TIMEOUT_S, EndHook, StreamRun
from ._services import Bounds, Handover, StreamServices
from ._session import Session
from ._watch import SoloWatch, Watcher

__all__ = [
    "CLEANUP_TIMEOUT_S",
    "EVENT_COST",
    "Bounds",
    "CancelPoller",
    "EndHook",
    "Handover",
    "LiveQueue",
    "Session",
    "SoloWatch",
    "StreamRun",
    "StreamServices",
    "TerminalWrite",
    "Watcher",
    "never_started",
    "outcome_of",
]
