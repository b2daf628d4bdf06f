"""The stream worker: produces one stream and posts it to the client's connection.

The chat handler invokes it asynchronously (``InvocationType="Event"``), so a
stream may run for this function's timeout (up to 15 min), not for API
Gateway's 29 s integration timeout.

    claim the stream on its connection   once: Lambda may deliver an async invoke twice
    StreamRun (record made by chat)  ->  CoalescingSender  ->  ApiGatewayPoster
    release the stream on its connection, and its key's concurrency slot (``job.slot``)

How it ends, always with one terminal message and one terminal state write:

    done / error                 the provider finished or failed
    cancelled, client            the cancel flag, polled every CANCEL_POLL_MS
    cancelled, disconnect        a post got GoneException (the upstream is closed
                                 at once), or ``$disconnect`` set the flag
    cancelled, timeout           Lambda's remaining time minus WORKER_DEADLINE_MARGIN_MS

It never raises: Lambda retries a failed async invoke, which would stream twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import common
import resume_ws
from job import StreamJob
from tokenrelay import (
    ProviderRegistry,
    RequestInvalid,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamOutcome,
    StreamRecord,
    StreamRun,
    StreamStore,
    TokenRelayError,
    parse_chat_request,
)
from tokenrelay.limits import Lease
from tokenrelay.providers.resilient import track_upstream, with_upstream
from tokenrelay.stores.base import WatchState
from tokenrelay.telemetry.logging import bound as log_context
from tokenrelay.transports.websocket import CoalescingSender, ConnectionPoster, encode_error
from tokenrelay.transports.ws_resume import ResumableSender

log = logging.getLogger("tokenrelay.websocket")
FLUSH_SAFETY_S = 0.5  # stop flushing this long before Lambda's timeout
TERMINAL_NAMES = {StreamDone: "done", StreamCancelled: "cancelled", StreamError: "error"}


class CancelReasonStore:
    """The engine's cancel watcher ends a flagged stream as ``client``; a flag set by
    ``$disconnect`` must end it as ``disconnect``. Reads the reason once, when the flag shows."""

    def __init__(self, inner: StreamStore) -> None:
        self._inner = inner
        self.on_disconnect: Callable[[], None] | None = None

    async def create(self, record: StreamRecord) -> None:
        await self._inner.create(record)

    async def get(self, stream_id: str) -> StreamRecord | None:
        return await self._inner.get(stream_id)

    async def cancel_requested(self, stream_id: str) -> bool:
        if not await self._inner.cancel_requested(stream_id):
            return False
        record = await self._inner.get(stream_id)
        if record is not None and record.cancel_reason == "disconnect" and self.on_disconnect is not None:
            self.on_disconnect()
        return True

    async def request_cancel(self, stream_id: str, reason: str = "client") -> None:
        await self._inner.request_cancel(stream_id, reason)

    async def finish(self, stream_id: str, outcome: StreamOutcome) -> bool:
        return await self._inner.finish(stream_id, outcome)

    async def finish_unless_cancelled(self, stream_id: str, outcome: StreamOutcome) -> WatchState | None:
        return await self._inner.finish_unless_cancelled(stream_id, outcome)


async def run_stream(
    job: StreamJob, svc: common.Services, registry: ProviderRegistry, deadline_s: float
) -> dict[str, Any]:
    """Produce ``job``'s stream; a summary of what happened (logged, returned to Lambda)."""
    claim = await svc.connections.claim_stream(job.connection_id, job.stream_id)
    if claim == "unknown":  # a repeated delivery, or a stream its chat handler gave up on
        return {"stream_id": job.stream_id, "status": "skipped"}
    try:
        if claim == "gone":  # the client left before the stream started: no upstream call at all
            outcome = StreamOutcome(status="cancelled", completion_tokens=0, cancel_reason="disconnect")
            await svc.streams.finish(job.stream_id, outcome)
            return {"stream_id": job.stream_id, "status": "cancelled", "reason": "disconnect"}
        return await _produce(job, svc, registry, svc.poster(job.endpoint), deadline_s)
    finally:
        try:
            await svc.connections.remove_stream(job.connection_id, job.stream_id)
        finally:  # the key's concurrency slot, however the stream ended (release never raises)
            if svc.limiter is not None and job.slot is not None:
                await svc.limiter.release(Lease(job.slot, job.stream_id))


async def _produce(
    job: StreamJob, svc: common.Services, registry: ProviderRegistry, poster: ConnectionPoster, deadline_s: float
) -> dict[str, Any]:
    try:
        chat = parse_chat_request(job.request, svc.settings)
        if not job.fallback:
            chat = replace(chat, fallback=False)
        provider = registry.get(chat.provider)
    except Exception as exc:  # settings changed under the stream, or the provider cannot load
        code, message = (
            (exc.code, exc.message) if isinstance(exc, RequestInvalid) else ("internal_error", "internal error")
        )
        log.error("stream %s: cannot start: %r", job.stream_id, exc)
        await svc.streams.finish(job.stream_id, StreamOutcome(status="failed", completion_tokens=0, error_code=code))
        data = encode_error(code, message, request_id=job.request_id, stream_id=job.stream_id)
        await common.reply(poster, job.connection_id, data)
        return {"stream_id": job.stream_id, "status": "failed", "code": code}

    config = svc.config
    # Posting may lag behind generation: the queued messages and the terminal one get all
    # the time left before Lambda stops this invocation (the margin), not a fixed budget.
    flush_until = time.monotonic() + max(deadline_s, 0.0) + config.deadline_margin_s - FLUSH_SAFETY_S
    store = CancelReasonStore(svc.streams)
    resume = resume_ws.deps(svc.settings)  # None: RESUME_GRACE_S=0 or no output log, stop on disconnect
    run = StreamRun(
        chat,
        stream_id=job.stream_id,
        owner=job.owner,
        transport="websocket",
        provider=provider,
        store=store,
        settings=svc.settings,
        deadline_s=max(deadline_s, 0.0),
        record_exists=True,
        finish_by_s=max(flush_until - time.monotonic(), 0.1),  # its state and log writes, before Lambda's end
    )

    def client_gone() -> None:
        if resume is None:
            run.stop("disconnect")
        else:
            run.detach()  # the grace period starts; a resume moves the stream (resume_ws.py)

    store.on_disconnect = client_gone
    sender = (CoalescingSender if resume is None else ResumableSender)(
        poster,
        job.connection_id,
        stream_id=job.stream_id,
        request_id=job.request_id,
        flush_interval_s=config.flush_interval_s,
        max_frame_bytes=config.max_frame_bytes,
        coalesce=config.coalesce,
        on_gone=client_gone,
    )
    if resume is not None:
        assert isinstance(sender, ResumableSender)
        watcher = resume_ws.MoveWatcher(resume.attachments, sender, run)
        run.resume = resume_ws.resumable(svc.settings, resume, job.stream_id, watcher)
    upstream = track_upstream()  # retries and fallback of the provider stream (metrics)
    await run.open()
    sender.start()
    try:
        async for event in run.events():
            sender.send(event)
    finally:
        await sender.aclose(max(flush_until - time.monotonic(), 0.1))
        # The record and the output log's end: landed (or given up) before this invocation returns,
        # and so before the seal hands the stream over to the log (Lambda may freeze what is left).
        await asyncio.wait([asyncio.ensure_future(run.wait())], timeout=max(flush_until - time.monotonic(), 0.1))
        if resume is not None and isinstance(sender, ResumableSender):
            await resume_ws.seal(resume, sender, job.stream_id, flush_until)
            if sender.connection_id != job.connection_id:  # moved: leave the new connection's list too
                await svc.connections.remove_stream(sender.connection_id, job.stream_id)
        run.delivered = sender.delivered
        if svc.metrics is not None:
            try:
                svc.metrics.emit(with_upstream(run.summary(), upstream))
            except Exception:
                log.exception("stream %s: metrics failed", job.stream_id)
    terminal = run.terminal
    return {
        "stream_id": job.stream_id,
        "status": TERMINAL_NAMES.get(type(terminal), "unknown"),
        "reason": getattr(terminal, "reason", None),
        "tokens": run.text_chunks,
        "posts": sender.posts,
        "text_messages": sender.text_messages,
        "max_frame_bytes": sender.max_frame,
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    svc = common.services()
    deadline_s = context.get_remaining_time_in_millis() / 1000 - svc.config.deadline_margin_s
    try:
        job = StreamJob.from_event(event)
    except ValueError as exc:
        log.error("%s", exc)
        return {"status": "rejected", "error": str(exc)}
    with log_context(
        stream_id=job.stream_id,
        connection_id=job.connection_id,
        request_id=job.request_id,
        transport="websocket",
        provider=_text(job.request.get("provider")),
        model=_text(job.request.get("model")),
    ):
        try:
            summary = common.run(run_stream(job, svc, common.providers(svc.settings), deadline_s))
        except TokenRelayError as exc:  # the state store failed: nothing more can be recorded
            log.error("stream %s: %s", job.stream_id, exc)
            return {"stream_id": job.stream_id, "status": "failed", "error": exc.code}
        except Exception:
            log.exception("stream %s: worker failed", job.stream_id)
            return {"stream_id": job.stream_id, "status": "failed", "error": "internal_error"}
        log.info("stream %s: %s", job.stream_id, summary)
        return summary


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
