"""One cancel watcher per process, not one per stream.

A producer must notice, within ``CANCEL_POLL_MS``, a cancel flag (or the end of a
resume lease) written by any instance (docs/protocol.md §4 and §5). Reading each
stream's record on its own costs one DynamoDB round trip, in a worker thread, per
stream per poll: at 200 streams and 250 ms that is 800 GetItem calls a second, which
alone took a third of the process's CPU in the benchmark and most of its threads.
The poller reads every watched stream with one BatchGetItem per 100 ids per interval
and hands each run its ``WatchState``; the run decides what the state means.

A failed poll is retried at the next interval, but never quietly: a poll that cannot read
(an AccessDenied from a missing ``dynamodb:BatchGetItem`` grant, a throttle, an outage)
means no cancel and no lease expiry is seen. The first failure is logged at ERROR at once,
then at most one line per ``REPORT_EVERY_S`` with the count, and each such report calls
``on_failure(count, error)`` (the ``CancelPollFailures`` metric, ``telemetry/metrics.py``).

In-process state here is a cache of who is watching; the truth stays in DynamoDB.
The poll task runs only while something is watched, on the loop of the latest
``watch`` call (tests start a new event loop per test; Lambda keeps one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..errors import TokenRelayError
from ..stores.streams import BatchWatchStore, WatchState

__all__ = ["CancelPoller", "OnState"]

log = logging.getLogger("tokenrelay.cancel")

OnState = Callable[[WatchState], object]  # what it returns is ignored
OnFailure = Callable[[int, TokenRelayError], object]  # (failed polls since the last report, the last error)
REPORT_EVERY_S = 10.0


class CancelPoller:
    def __init__(self, store: BatchWatchStore, interval_s: float, on_failure: OnFailure | None = None) -> None:
        self._store = store
        self.interval_s = interval_s
        self.on_failure = on_failure
        self.failures = 0  # failed polls, for tests
        self._unreported = 0
        self._reported_at = float("-inf")
        self._watched: dict[str, OnState] = {}
        self._task: asyncio.Task[None] | None = None
        self.polls = 0  # reads made, for tests and benchmarks

    def watch(self, stream_id: str, on_state: OnState) -> None:
        """Call ``on_state`` with the stream's state after each poll until ``unwatch``."""
        self._watched[stream_id] = on_state
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._run(), name="tokenrelay-cancel-poller")

    def unwatch(self, stream_id: str) -> None:
        self._watched.pop(stream_id, None)

    @property
    def watching(self) -> int:
        return len(self._watched)

    async def _run(self) -> None:
        while self._watched:
            await asyncio.sleep(self.interval_s)
            ids = list(self._watched)
            if not ids:
                return
            try:
                states = await self._store.watch_many(ids)
            except TokenRelayError as exc:  # retried at the next interval, but loudly
                self._failed(len(ids), exc)
                continue
            finally:
                self.polls += 1
            for stream_id, state in states.items():
                on_state = self._watched.get(stream_id)
                if on_state is None:
                    continue
                try:
                    on_state(state)
                except Exception:
                    log.exception("stream %s: cancel watch callback failed", stream_id)

    def _failed(self, streams: int, exc: TokenRelayError) -> None:
        self.failures += 1
        self._unreported += 1
        now = time.monotonic()
        if now - self._reported_at < REPORT_EVERY_S:
            return
        log.error(
            "cancel poll of %d streams failed (%d failed polls since the last report): %s;"
            " cancels and resume lease expiries are not seen until it succeeds",
            streams,
            self._unreported,
            exc,
        )
        if self.on_failure is not None:
            try:
                self.on_failure(self._unreported, exc)
            except Exception:
                log.exception("cancel poll failure report failed")
        self._unreported, self._reported_at = 0, now
