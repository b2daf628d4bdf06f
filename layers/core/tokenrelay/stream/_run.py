"""One stream's life, owned by one object: ``StreamRun``.

A run owns everything a stream touches: the upstream request (read by its producer
task, always closed), its state record (one create, one terminal write), its cancel
watch, its deadline, its output log (when resumable), the upstream report (retries,
fallback) and its summary (metrics). Nothing else writes its fields. A transport reads
it through ``session()`` (``_session.py``) and only iterates; leaving the session is how
a reader says it is done, and the run decides what that means.

Every way a stream can end goes through ``_produce`` (docs/architecture.md draws them):

    provider finishes             -> StreamDone
    provider raises ProviderError -> StreamError (code, retryable)
    anything else raises          -> StreamError("internal_error")
    stop(reason)                  -> StreamCancelled(reason), upstream closed
        "client"      the cancel flag, seen by the watcher (polled, not per token),
                      or a cancel request handled by this same process
        "disconnect"  the reader left (a resumable run: once the grace period is over
                      with nobody attached), or the process is shutting down
        "timeout"     the deadline passed
    the state record cannot be created -> StreamError("store_unavailable")

Then, always in this order: the upstream request is closed (``aclosing``), the
terminal state record is written (one conditional write), and exactly one
terminal event is queued.

The state record is created concurrently with the upstream call and never delays
the first token: ``open`` returns once the record exists or the first text is ready,
whichever comes first. So with DynamoDB down a stream usually fails before it starts
(HTTP 503), and a fast upstream does not wait for a DynamoDB round trip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

import anyio

from ..errors import StoreUnavailable
from ..events import CancelReason, Event, StreamStart, StreamSummary, Terminal, Usage, cancel_reason
from ..providers import Provider, UpstreamReport, with_upstream
from ..requests import ChatRequest
from ..resume import Resumable
from ..stores.streams import StreamOutcome, StreamRecord, WatchState
from ._live_queue import LiveQueue
from ._outcome import never_started
from ._producer import Producer
from ._services import Bounds, Handover, StreamServices
from ._session import Session
from ._watch import SoloWatch, Watcher

__all__ = ["CLEANUP_TIMEOUT_S", "EndHook", "StreamRun"]

log = logging.getLogger("tokenrelay.engine")

EndHook = Callable[["StreamRun"], None]
NO_BOUNDS = Bounds()
CLEANUP_TIMEOUT_S = 120.0  # a safety net: the run bounds its own last writes (FINISH_TIMEOUT_S + one call)


class StreamRun:
    def __init__(
        self,
        request: ChatRequest,
        provider: Provider,
        services: StreamServices,
        *,
        stream_id: str,
        owner: str,
        transport: str,
        bounds: Bounds = NO_BOUNDS,
        resume: Resumable | None = None,
        handover: Handover | None = None,
        record_exists: bool = False,
        on_end: EndHook | None = None,
    ) -> None:
        self.request = request
        self.stream_id = stream_id
        self.owner = owner
        self.transport = transport
        self.services = services
        self.resume = resume  # output log + grace period (docs/protocol.md §5); None: stop on disconnect
        self._handover = handover  # a transport that moves the live stream to a resumed connection
        self._record_exists = record_exists  # created by someone else (the WebSocket chat handler)
        self._on_end = on_end
        settings = services.settings
        self._live = LiveQueue(settings.stream_buffer_bytes)  # what the reader has not taken yet, bounded
        self.upstream = UpstreamReport()  # filled in by the provider stream (providers.resilient)
        self._producer = Producer(self, provider, self._live, bounds)
        self.watcher: Watcher = services.poller or SoloWatch(
            services.store, settings.cancel_poll_s, resume.attachments if resume is not None else None
        )
        self._opened = False
        self._session: Session | None = None
        self._reported = False
        self.client_gone = False
        self.detached_at: float | None = None  # epoch seconds the reader left a resumable run

    # -- what the run has produced (read-only to everyone else) ---------------------------

    @property
    def buffer(self) -> LiveQueue:
        return self._live

    @property
    def done(self) -> bool:
        return self._producer.terminal is not None

    @property
    def terminal(self) -> Terminal | None:
        return self._producer.terminal

    @property
    def outcome(self) -> StreamOutcome | None:
        return self._producer.outcome

    @property
    def usage(self) -> Usage | None:
        return self._producer.usage

    @property
    def cost_usd(self) -> float | None:
        """What the stream cost (set when it ends: docs/cost.md)."""
        return self._producer.cost[0]

    @property
    def ttft_ms(self) -> int | None:
        return self._producer.ttft_ms

    @property
    def text_chunks(self) -> int:
        return self._producer.text_chunks

    @property
    def completion_tokens(self) -> int:
        return self._producer.completion_tokens

    @property
    def delivered(self) -> int:
        """The seq of the last text its reader's client has (0 before any reader)."""
        return self._session.delivered if self._session is not None else 0

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> StreamStart:
        """Start the upstream call and, concurrently, create the state record (idempotent).

        Returns once the record exists or the first text is ready, whichever comes first.
        Raises ``StoreUnavailable`` if the record cannot be created before then (the upstream
        request is closed first, and the loss is reported as a never-started stream)."""
        start = StreamStart(self.stream_id, self.request.provider, self.request.model)
        if self._opened:
            return start
        self._opened = True
        opened_at = time.monotonic()
        try:
            await self._producer.open(None if self._record_exists else self.record())
        except StoreUnavailable as exc:
            metrics = self.services.metrics
            if metrics is not None:  # no end to report: a failed stream, so the failure-rate alarm sees it
                summary = never_started(self.record(), exc.code, time.monotonic() - opened_at)
                metrics.emit(with_upstream(summary, self.upstream))
            raise
        return start

    def stop(self, reason: CancelReason) -> None:
        """End the stream as ``cancelled`` with ``reason`` (first reason wins)."""
        if reason == "disconnect":
            self.client_gone = True
        self._producer.stop(reason)

    def detach(self) -> bool:
        """The reader lost its client. A resumable run keeps generating for the grace period
        (True); otherwise it stops as ``disconnect`` (False)."""
        if self.resume is None or self.resume.grace_s <= 0:
            self.stop("disconnect")
            return False
        self.client_gone = True
        if self.detached_at is None:
            self.detached_at = time.time()
            self.resume.log.flush_soon()  # what the client missed is replayable at once
        return True

    def session(self, delivered: Callable[[], int] | None = None) -> Session:
        """The reader's side of this run (``_session.py``); one per run."""
        assert self._session is None, "one reader per run"
        self._session = Session(self, delivered)
        return self._session

    async def reader_left(self, session: Session) -> None:
        """The reader is done: it has the terminal event, or it went away (``Session.aclose``)."""
        self._live.stop_reading()  # never hold the producer for this reader again
        if not self._opened:
            return
        if not self.done and self.detach():  # resumable: it keeps generating for its grace period
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_TIMEOUT_S):
            await self.wait()
        self._report()

    async def ended(self) -> None:
        """Wait until the terminal event is queued (``outcome`` says how it ended); ``wait()``
        also waits for the last writes."""
        await self._producer.ended.wait()

    async def wait(self) -> Terminal:
        """Wait until the terminal state is written and the terminal event queued."""
        return await self._producer.wait()

    def events(self) -> AsyncIterator[Event]:
        """Every event, read directly (tests and tools; transports read through ``session()``)."""
        return self._live.events()

    # -- the producer's callbacks ------------------------------------------------------

    def record(self) -> StreamRecord:
        """The initial (active) state record of this stream."""
        now = time.time()
        return StreamRecord(
            stream_id=self.stream_id,
            owner=self.owner,
            transport=self.transport,
            provider=self.request.provider,
            model=self.request.model,
            created_at=now,
            updated_at=now,
            expires_at=int(now) + self.services.settings.stream_ttl_s,
        )

    def react(self, state: WatchState) -> bool:
        """What the stream's record says, after each watch read: stop the run if it says so."""
        if self._handover is not None and self._handover.moved(state):
            self.detached_at = None  # attached again: a new drop starts a new grace period
        if state.cancel_requested:
            self.stop(cancel_reason(state.cancel_reason))
            return True
        if self.resume is not None and self.resume.expired(self.detached_at, state.attached_until, time.time()):
            self.stop("disconnect")  # nobody resumed within the grace period
            return True
        return False

    def finished(self) -> None:
        """The producer's last step: every write of the end has landed (or was given up)."""
        if self._on_end is not None:
            try:
                self._on_end(self)
            except Exception:
                log.exception("stream %s: on_end hook failed", self.stream_id)
        if self._session is None or self._session.closed:
            self._report()

    # -- the summary ------------------------------------------------------------------------

    def summary(self) -> StreamSummary:
        """How the stream went (for metrics); call once it has ended."""
        outcome = self.outcome
        assert outcome is not None, "the stream has not ended"
        summary = StreamSummary(
            stream_id=self.stream_id,
            transport=self.transport,
            provider=self.request.provider,
            model=self.request.model,
            status=outcome.status,  # type: ignore[arg-type]
            completion_tokens=self.completion_tokens,
            total_time_ms=outcome.total_time_ms or 0,
            ttft_ms=self.ttft_ms,
            cancel_reason=outcome.cancel_reason,  # type: ignore[arg-type]
            error_code=outcome.error_code,
            client_gone=self.client_gone,
            tokens_after_disconnect=max(self.text_chunks - self.delivered, 0) if self.client_gone else 0,
            tool_calls=self._producer.tool_calls,
            reasoning_tokens=self._producer.reasoning_tokens,
            cost_usd=self._producer.cost[0],
        )
        return with_upstream(summary, self.upstream)

    def _report(self) -> None:
        """Emit the metrics once: when the run has ended and its reader is done with it."""
        metrics = self.services.metrics
        if self._reported or not self.done or metrics is None:
            return
        self._reported = True
        metrics.emit(self.summary())
