"""A run's producer: provider chunks in, events out, and the one ending (``_run.py`` explains).

Kept apart from the reader: a reader that goes away never tears down the provider call
half-way; the run decides how to end. Its tasks, all owned here and always awaited:

    pump       reads the provider (in a context that fills in the run's upstream report)
    created    the state record's create, concurrent with the first token
    producer   waits for the pump, then ends the run: record, terminal event, log's end
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import ProviderError, StoreUnavailable, TokenRelayError
from ..events import (
    CancelReason,
    Part,
    ReasoningDelta,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamStart,
    Terminal,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    cancel_reason,
)
from ..providers import Finish, Provider, ReasoningChunk, TextChunk, ToolArgs, ToolEnd, ToolStart, reporting
from ..resume import MAX_TEXT_CHARS, split_text
from ..stores.streams import StreamOutcome, StreamRecord
from ._cost import stream_cost
from ._live_queue import LiveQueue
from ._outcome import TerminalWrite, outcome_of
from ._services import Bounds

if TYPE_CHECKING:
    from ._run import StreamRun

__all__ = ["Producer"]

log = logging.getLogger("tokenrelay.engine")


async def _noop() -> None:
    return None


class Producer:
    def __init__(self, run: StreamRun, provider: Provider, live: LiveQueue, bounds: Bounds) -> None:
        self._run, self._provider, self._live = run, provider, live
        services = run.services
        self._store, self._settings, self._clock = services.store, services.settings, services.clock
        settings = self._settings
        deadline_s = bounds.deadline_s
        self._timeout_s = (
            settings.stream_timeout_s if deadline_s is None else min(deadline_s, settings.stream_timeout_s)
        )
        # Every write of the run's end must land before this (the invocation's end); None: no such bound.
        self._finish_by = None if bounds.finish_by_s is None else self._clock() + bounds.finish_by_s
        self._stop_reason: CancelReason | None = None
        self._failure: StreamError | None = None  # ends the run if set before a stop reason
        self._pump: asyncio.Task[Terminal] | None = None
        self._created: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Terminal] | None = None
        self._started = asyncio.Event()
        self._text_ready: asyncio.Future[None] | None = None  # done once the provider has the first text
        self.ended = asyncio.Event()  # set once the terminal event is queued
        self.started_at = 0.0
        self.ttft_ms: int | None = None
        self.text_chunks = 0  # the seq of the last part (every part, whatever its kind)
        self.tokens = 0  # text and reasoning chunks: the completion tokens when the provider says none
        self.reasoning_chunks = 0
        self.tool_calls = 0
        self.usage: Usage | None = None
        self.cost: tuple[float | None, bool] = (None, False)  # (cost_usd, estimated), set at the end
        self.terminal: Terminal | None = None
        self.outcome: StreamOutcome | None = None

    @property
    def completion_tokens(self) -> int:
        return self.usage.completion_tokens if self.usage is not None else self.tokens

    @property
    def reasoning_tokens(self) -> int:
        reported = self.usage.reasoning_tokens if self.usage is not None else None
        return reported if reported is not None else self.reasoning_chunks

    async def open(self, record: StreamRecord | None) -> None:
        """Start the upstream call and create ``record`` (None: it exists); see ``StreamRun.open``."""
        run = self._run
        self.started_at = self._clock()
        self._created = created = asyncio.create_task(_noop() if record is None else self._store.create(record))
        self._text_ready = text_ready = asyncio.get_running_loop().create_future()
        self._pump = asyncio.create_task(self._read_provider(), context=reporting(run.upstream))
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
        self._live.put(StreamStart(run.stream_id, run.request.provider, run.request.model))
        self._started.set()
        self._task = asyncio.create_task(self._produce())

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
        log.error("stream %s: could not record the stream: %s", self._run.stream_id, created.exception())
        if self._stop_reason is None and self._failure is None and self.terminal is None:
            self._failure = StreamError("could not record the stream", "store_unavailable", True)
            if self._pump is not None and not self._pump.done():
                self._pump.cancel()

    def stop(self, reason: CancelReason) -> None:
        if self._stop_reason is None and self._failure is None and self.terminal is None:
            self._stop_reason = reason
            if self._pump is not None and not self._pump.done():
                self._pump.cancel()

    async def wait(self) -> Terminal:
        assert self._task is not None, "open() first"
        return await asyncio.shield(self._task)

    def _elapsed_ms(self) -> int:
        return int((self._clock() - self.started_at) * 1000)

    async def _read_provider(self) -> Terminal:
        """Read the provider until it ends or ``stop`` cancels this task."""
        run, live = self._run, self._live
        finish_reason, stop_sequence = "stop", None
        seq = 0
        sink = run.resume.log.add if run.resume is not None else None
        try:
            async with aclosing(self._provider.stream(run.request)) as chunks:
                async for chunk in chunks:
                    parts: tuple[Part, ...] | list[Part]
                    if type(chunk) is TextChunk:  # the hot path
                        text = chunk.text
                        if not text:
                            continue
                        self.tokens += 1
                        if len(text) <= MAX_TEXT_CHARS:
                            parts = (TextDelta(text, seq + 1),)
                        else:
                            parts = [TextDelta(piece, seq + 1 + i) for i, piece in enumerate(split_text(text))]
                    elif isinstance(chunk, Usage):
                        self.usage = chunk
                        continue
                    elif isinstance(chunk, Finish):
                        finish_reason, stop_sequence = chunk.reason, chunk.stop_sequence
                        continue
                    else:
                        part = self._part(chunk, seq + 1)
                        if part is None:
                            continue  # ALIVE: a sign of life, nothing to relay
                        parts = (part,)
                    if seq == 0:
                        self.ttft_ms = self._elapsed_ms()
                        if self._text_ready is not None:
                            self._text_ready.set_result(None)
                        await self._started.wait()  # start is queued before any part
                    for part in parts:
                        seq = part.seq
                        if sink is not None:
                            sink(part)  # the output log first: it has every part, read or not
                        if live.put_part(part):
                            await live.room()  # a slow reader: pause the upstream (_live_queue.py)
        except asyncio.CancelledError:
            self.text_chunks = seq
            if self._failure is not None:
                return self._failure
            if self._stop_reason is None:
                raise
            return StreamCancelled(run.stream_id, self._stop_reason)
        except ProviderError as exc:
            self.text_chunks = seq
            return StreamError.of(exc)
        except Exception:
            self.text_chunks = seq
            log.exception("stream %s failed inside the provider", run.stream_id)
            return StreamError("internal error while streaming", "internal_error", False)
        self.text_chunks = seq
        if self.usage is not None:
            live.put(self.usage)
        return StreamDone(
            stream_id=run.stream_id,
            finish_reason=finish_reason,
            ttft_ms=self.ttft_ms,
            total_time_ms=self._elapsed_ms(),
            completion_tokens=self.completion_tokens,
            stop_sequence=stop_sequence,
        )

    def _part(self, chunk: object, seq: int) -> Part | None:
        """The event for a content chunk that is not text (None: nothing to relay)."""
        if isinstance(chunk, ReasoningChunk):
            if not (chunk.text or chunk.signature or chunk.redacted):
                return None
            if chunk.text:
                self.tokens += 1
                self.reasoning_chunks += 1
            return ReasoningDelta(chunk.text, seq, chunk.signature, chunk.redacted)
        if isinstance(chunk, ToolStart):
            self.tool_calls += 1
            return ToolCallStart(chunk.index, chunk.id, chunk.name, seq)
        if isinstance(chunk, ToolArgs):  # an empty fragment (the real APIs send them) carries nothing
            return ToolCallDelta(chunk.index, chunk.arguments, seq) if chunk.arguments else None
        if isinstance(chunk, ToolEnd):
            return ToolCallEnd(chunk.index, seq)
        return None

    async def _produce(self) -> Terminal:
        assert self._pump is not None
        run = self._run
        remaining = self._timeout_s - (self._clock() - self.started_at)
        deadline = asyncio.get_running_loop().call_later(max(remaining, 0.0), run.stop, "timeout")
        run.watcher.watch(run.stream_id, run.react)  # the cancel flag, the lease, a move (_watch.py)
        try:
            terminal = await self._pump
        except asyncio.CancelledError:
            # Our own task was cancelled (process shutting down): still end cleanly.
            run.stop("disconnect")
            (result,) = await asyncio.gather(self._pump, return_exceptions=True)
            if isinstance(result, StreamDone | StreamCancelled | StreamError):
                terminal = result
            else:
                terminal = StreamCancelled(run.stream_id, "disconnect")
        finally:
            deadline.cancel()
            run.watcher.unwatch(run.stream_id)
        return await self._finish(terminal)

    async def _finish(self, terminal: Terminal) -> Terminal:
        """Record the end, tell the reader, write the log's end (docs/faults.md, "Ending a stream"):
        the terminal event waits at most ``FINISH_WAIT_S`` for the state write, which decides a
        race with a cancel; ``wait()`` returns once every write landed or was given up."""
        run = self._run
        served = (run.upstream.provider or run.request.provider, run.upstream.model or run.request.model)
        cost = self.cost = stream_cost(self._settings, served, run.request, self.usage, self.tokens)
        if isinstance(terminal, StreamDone):
            terminal = replace(terminal, cost_usd=cost[0], cost_estimated=cost[1])
        outcome = outcome_of(
            terminal,
            completion_tokens=self.completion_tokens,
            usage=self.usage,
            ttft_ms=self.ttft_ms,
            total_time_ms=terminal.total_time_ms if isinstance(terminal, StreamDone) else self._elapsed_ms(),
            last_seq=self.text_chunks,
            cost=cost,
        )  # a done's record says what its event says (a resume may rebuild the event from it)
        give_up_at = self._clock() + self._settings.finish_timeout_s
        if self._finish_by is not None:
            give_up_at = min(give_up_at, self._finish_by)
        # The record's create may still be under way (it failing has ended the run: _created_late).
        write = TerminalWrite(
            self._store, run.stream_id, outcome, give_up_at=give_up_at, after=self._created, clock=self._clock
        )
        self.outcome = told = await write.decided(self._settings.finish_wait_s)
        if told.status == "cancelled" and not isinstance(terminal, StreamCancelled):
            terminal = StreamCancelled(run.stream_id, cancel_reason(told.cancel_reason))  # the cancel won
        self.terminal = terminal
        self._live.put(terminal)
        self.ended.set()
        if run.resume is not None:  # after the local reader has its terminal event
            await run.resume.log.close(terminal, self.usage, give_up_at)
        await write.landed()
        run.finished()
        return terminal
