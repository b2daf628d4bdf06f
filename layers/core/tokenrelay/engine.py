"""Run one stream: provider chunks in, normalized events out.

A ``StreamRun`` owns a producer task that reads the provider and puts events on
an in-process queue; the transport reads them with ``events()``. Keeping the
producer apart from the reader means a reader that goes away never tears down
the provider call half-way: the run decides how to end.

Every way a stream can end goes through ``_produce``:

    provider finishes             -> StreamDone
    provider raises ProviderError -> StreamError (code, retryable)
    anything else raises          -> StreamError("internal_error")
    stop(reason) is called        -> StreamCancelled(reason), upstream closed
        "client"      cancel flag seen by the watcher (polled, not per token),
                      or a cancel request handled by this same process
        "disconnect"  the transport reports its client gone
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

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from functools import partial

from .cancel_poller import CancelPoller
from .errors import ProviderError, StoreUnavailable, TokenRelayError
from .events import (
    CancelReason,
    Event,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamStart,
    StreamSummary,
    Terminal,
    TextDelta,
    Usage,
)
from .live_queue import LiveQueue
from .outcome import TerminalWrite, outcome_of, summary_of
from .output_log_writer import MAX_TEXT_CHARS, split_text
from .providers.base import Finish, Provider, TextChunk
from .requests import ChatRequest
from .resume import Resumable, cancel_reason
from .settings import Settings
from .stores.base import StreamOutcome, StreamRecord, StreamStore
from .watch import poll_alone, react

log = logging.getLogger("tokenrelay.engine")

Clock = Callable[[], float]
EndHook = Callable[["StreamRun"], None]


async def _noop() -> None:
    return None


class StreamRun:
    def __init__(
        self,
        request: ChatRequest,
        *,
        stream_id: str,
        owner: str,
        transport: str,
        provider: Provider,
        store: StreamStore,
        settings: Settings,
        deadline_s: float | None = None,
        clock: Clock = time.monotonic,
        on_end: EndHook | None = None,
        record_exists: bool = False,
        resume: Resumable | None = None,
        poller: CancelPoller | None = None,
        finish_by_s: float | None = None,
    ) -> None:
        self.request = request
        self.stream_id = stream_id
        self.owner = owner
        self.transport = transport
        self._provider = provider
        self._store = store
        self._settings = settings
        self._clock = clock
        self._on_end = on_end
        self._record_exists = record_exists  # created by someone else (the WebSocket chat handler)
        self._poller = poller  # the process's shared cancel watcher; None: this run polls on its own
        timeout = settings.stream_timeout_s if deadline_s is None else min(deadline_s, settings.stream_timeout_s)
        self._timeout_s = timeout
        # Every write of the run's end must land before this (the invocation's end); None: no such bound.
        self._finish_by = None if finish_by_s is None else clock() + finish_by_s
        self._live = LiveQueue(settings.stream_buffer_bytes)  # what the reader has not taken yet, bounded
        self._stop_reason: CancelReason | None = None
        self._producer: asyncio.Task[Terminal] | None = None
        self._pump: asyncio.Task[Terminal] | None = None
        self._created: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._ended = asyncio.Event()  # set once the terminal event is queued
        self._text_ready: asyncio.Future[None] | None = None  # done once the provider has the first text
        self._failure: StreamError | None = None  # ends the run if set before a stop reason
        self.started_at = 0.0
        self.ttft_ms: int | None = None
        self.text_chunks = 0
        self.usage: Usage | None = None
        self.terminal: Terminal | None = None
        self.outcome: StreamOutcome | None = None
        self.delivered = 0  # highest seq the transport handed to its client (set by the transport)
        self.client_gone = False
        self.resume = resume  # output log + grace period (PROTOCOL section 5); None: stop on disconnect
        self.detached_at: float | None = None  # epoch seconds the transport lost its client

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> StreamStart:
        """Start the upstream call and, concurrently, create the state record.

        Returns once the record exists or the first text is ready, whichever comes
        first (a provider that fails before any text waits for the record, so its
        terminal state can be written). Raises ``StoreUnavailable`` if the record
        cannot be created before then; the upstream request is closed before this
        returns. A create that fails after ``start`` ends the run as
        ``store_unavailable``.
        """
        self.started_at = self._clock()
        create = _noop() if self._record_exists else self._store.create(self.record())
        self._created = created = asyncio.create_task(create)
        self._text_ready = text_ready = asyncio.get_running_loop().create_future()
        self._pump = asyncio.create_task(self._run_provider())
        try:
            await asyncio.wait((created, text_ready), return_when=asyncio.FIRST_COMPLETED)
            if created.done():
                created.result()
        except BaseException as exc:
            await self._abandon()
            if isinstance(exc, TokenRelayError | asyncio.CancelledError):
                raise
            raise StoreUnavailable("could not record the stream") from exc
        if not created.done():
            created.add_done_callback(self._created_late)
        start = StreamStart(self.stream_id, self.request.provider, self.request.model)
        self._live.put(start)
        self._started.set()
        self._producer = asyncio.create_task(self._produce())
        return start

    async def _abandon(self) -> None:
        """open() failed: close the upstream request and let the create finish or fail quietly."""
        assert self._pump is not None and self._created is not None
        self._pump.cancel()
        await asyncio.gather(self._pump, return_exceptions=True)
        if not self._created.done():
            self._created.cancel()
        await asyncio.gather(self._created, return_exceptions=True)

    def _created_late(self, created: asyncio.Task[None]) -> None:
        """The record's create finished after ``start``: if it failed, end the run now."""
        if created.cancelled() or created.exception() is None:
            return
        log.error("stream %s: could not record the stream: %s", self.stream_id, created.exception())
        if self._stop_reason is None and self._failure is None and self.terminal is None:
            self._failure = StreamError("could not record the stream", "store_unavailable", True)
            if self._pump is not None and not self._pump.done():
                self._pump.cancel()

    def stop(self, reason: CancelReason) -> None:
        """End the stream as ``cancelled`` with ``reason`` (first reason wins)."""
        if reason == "disconnect":
            self.client_gone = True
        if self._stop_reason is None and self._failure is None and self.terminal is None:
            self._stop_reason = reason
            if self._pump is not None and not self._pump.done():
                self._pump.cancel()

    def detach(self) -> bool:
        """The transport lost its client. A resumable run keeps generating for the grace period
        (True); otherwise it stops as ``disconnect`` (False)."""
        if self.resume is None or self.resume.grace_s <= 0:
            self.stop("disconnect")
            return False
        self.client_gone = True
        if self.detached_at is None:
            self.detached_at = time.time()
            self.resume.log.flush_soon()  # what the client missed is replayable at once
        return True

    def reader_left(self) -> None:
        """The transport will read no more events: never hold the producer for it again."""
        self._live.stop_reading()

    @property
    def buffer(self) -> LiveQueue:
        return self._live

    @property
    def done(self) -> bool:
        return self.terminal is not None

    async def ended(self) -> None:
        """Wait until the terminal event is queued (``outcome`` says how it ended); ``wait()``
        also waits for the last writes."""
        await self._ended.wait()

    async def wait(self) -> Terminal:
        """Wait until the terminal state is written and the terminal event queued."""
        assert self._producer is not None, "open() first"
        return await asyncio.shield(self._producer)

    def events(self) -> AsyncIterator[Event]:
        """Yield ``start``, the deltas, usage, and exactly one terminal event."""
        return self._live.events()

    def batches(self) -> AsyncIterator[list[Event]]:
        """The same events as ``events()``, grouped (``LiveQueue.batches``)."""
        return self._live.batches()

    # -- internals ---------------------------------------------------------

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
            expires_at=int(now) + self._settings.stream_ttl_s,
        )

    def _elapsed_ms(self) -> int:
        return int((self._clock() - self.started_at) * 1000)

    async def _run_provider(self) -> Terminal:
        """Read the provider until it ends or ``stop`` cancels this task."""
        finish_reason = "stop"
        live = self._live
        seq = 0
        sink = self.resume.log.add if self.resume is not None else None
        try:
            async with aclosing(self._provider.stream(self.request)) as chunks:
                async for chunk in chunks:
                    if type(chunk) is TextChunk:
                        text = chunk.text
                        if not text:
                            continue
                        if seq == 0:
                            self.ttft_ms = self._elapsed_ms()
                            if self._text_ready is not None:
                                self._text_ready.set_result(None)
                            await self._started.wait()  # start is queued before any text
                        for piece in (text,) if len(text) <= MAX_TEXT_CHARS else split_text(text):
                            seq += 1
                            delta = TextDelta(piece, seq)
                            if sink is not None:
                                sink(delta)  # the output log first: it has every delta, read or not
                            if live.put_text(delta):
                                await live.room()  # a slow reader: pause the upstream (live_queue.py)
                    elif isinstance(chunk, Usage):
                        self.usage = chunk
                    elif isinstance(chunk, Finish):
                        finish_reason = chunk.reason
        except asyncio.CancelledError:
            self.text_chunks = seq
            if self._failure is not None:
                return self._failure
            if self._stop_reason is None:
                raise
            return StreamCancelled(self.stream_id, self._stop_reason)
        except ProviderError as exc:
            self.text_chunks = seq
            return StreamError(exc.message, exc.code, exc.retryable)
        except Exception:
            self.text_chunks = seq
            log.exception("stream %s failed inside the provider", self.stream_id)
            return StreamError("internal error while streaming", "internal_error", False)
        self.text_chunks = seq
        if self.usage is not None:
            live.put(self.usage)
        return StreamDone(
            stream_id=self.stream_id,
            finish_reason=finish_reason,
            ttft_ms=self.ttft_ms,
            total_time_ms=self._elapsed_ms(),
            completion_tokens=self.completion_tokens,
        )

    def summary(self) -> StreamSummary:
        """How the stream went (for metrics); call once it has ended."""
        return summary_of(self)

    @property
    def completion_tokens(self) -> int:
        return self.usage.completion_tokens if self.usage is not None else self.text_chunks

    async def _produce(self) -> Terminal:
        assert self._pump is not None and self._created is not None
        loop = asyncio.get_running_loop()
        remaining = self._timeout_s - (self._clock() - self.started_at)
        deadline = loop.call_later(max(remaining, 0.0), self.stop, "timeout")
        poller = self._poller
        watcher: asyncio.Task[None] | None = None
        if poller is not None:
            poller.watch(self.stream_id, partial(react, self))
        else:
            watcher = asyncio.create_task(poll_alone(self, self._store, self._settings.cancel_poll_s))
        try:
            terminal = await self._pump
        except asyncio.CancelledError:
            # Our own task was cancelled (process shutting down): still end cleanly.
            self.stop("disconnect")
            (result,) = await asyncio.gather(self._pump, return_exceptions=True)
            if isinstance(result, StreamDone | StreamCancelled | StreamError):
                terminal = result
            else:
                terminal = StreamCancelled(self.stream_id, "disconnect")
        finally:
            deadline.cancel()
            if watcher is not None:
                watcher.cancel()
            if poller is not None:
                poller.unwatch(self.stream_id)
        return await self._finish(terminal)

    async def _finish(self, terminal: Terminal) -> Terminal:
        """Record the end, tell the reader, write the log's end (docs/faults.md, "Ending a stream"):
        the terminal event waits at most ``FINISH_WAIT_S`` for the state write, which decides a
        race with a cancel; ``wait()`` returns once every write landed or was given up."""
        outcome = outcome_of(
            terminal,
            completion_tokens=self.completion_tokens,
            usage=self.usage,
            ttft_ms=self.ttft_ms,
            total_time_ms=terminal.total_time_ms if isinstance(terminal, StreamDone) else self._elapsed_ms(),
            last_seq=self.text_chunks,
        )  # a done's record says what its event says (a resume may rebuild the event from it)
        give_up_at = self._clock() + self._settings.finish_timeout_s
        if self._finish_by is not None:
            give_up_at = min(give_up_at, self._finish_by)
        # The record's create may still be under way (it failing has ended the run: _created_late).
        write = TerminalWrite(
            self._store, self.stream_id, outcome, give_up_at=give_up_at, after=self._created, clock=self._clock
        )
        self.outcome = told = await write.decided(self._settings.finish_wait_s)
        if told.status == "cancelled" and not isinstance(terminal, StreamCancelled):
            terminal = StreamCancelled(self.stream_id, cancel_reason(told.cancel_reason))  # the cancel won
        self.terminal = terminal
        self._live.put(terminal)
        self._ended.set()
        if self.resume is not None:  # after the local reader has its terminal event
            await self.resume.log.close(terminal, self.usage, give_up_at)
        await write.landed()
        if self._on_end is not None:
            try:
                self._on_end(self)
            except Exception:
                log.exception("stream %s: on_end hook failed", self.stream_id)
        return terminal
