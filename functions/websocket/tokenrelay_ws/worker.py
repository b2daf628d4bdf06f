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
from dataclasses import replace
from typing import Any

from tokenrelay import (
    Bounds,
    ProviderRegistry,
    RequestInvalid,
    StreamCancelled,
    StreamDone,
    StreamError,
    StreamOutcome,
    StreamRun,
    StreamServices,
    TokenRelayError,
    parse_chat_request,
)
from tokenrelay.resume import SenderHandover, seal
from tokenrelay.stores import Lease, Limits
from tokenrelay.telemetry.logging import bound as log_context
from tokenrelay.transports import CoalescingSender, ConnectionPoster, ResumableSender, encode_error

from . import environment
from .job import StreamJob

log = logging.getLogger("tokenrelay.websocket")
FLUSH_SAFETY_S = 0.5  # stop flushing this long before Lambda's timeout
TERMINAL_NAMES = {StreamDone: "done", StreamCancelled: "cancelled", StreamError: "error"}


async def run_stream(
    job: StreamJob, svc: environment.Services, registry: ProviderRegistry, deadline_s: float
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
            if job.slot is not None:
                await svc.guard.release(Lease(job.slot, job.stream_id))


async def _produce(
    job: StreamJob,
    svc: environment.Services,
    registry: ProviderRegistry,
    poster: ConnectionPoster,
    deadline_s: float,
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
        await environment.reply(poster, job.connection_id, data)
        return {"stream_id": job.stream_id, "status": "failed", "code": code}

    config = svc.config
    # Posting may lag behind generation: the queued messages and the terminal one get all
    # the time left before Lambda stops this invocation (the margin), not a fixed budget.
    flush_until = time.monotonic() + max(deadline_s, 0.0) + config.deadline_margin_s - FLUSH_SAFETY_S
    resume = svc.resume  # None: RESUME_GRACE_S=0 or no output log, stop on disconnect
    run: StreamRun  # made below, with the sender as its handover
    sender = (CoalescingSender if resume is None else ResumableSender)(
        poster,
        job.connection_id,
        stream_id=job.stream_id,
        request_id=job.request_id,
        flush_interval_s=config.flush_interval_s,
        max_flush_interval_s=config.max_flush_interval_s,
        ramp_s=config.flush_ramp_s,
        max_frame_bytes=config.max_frame_bytes,
        coalesce=config.coalesce,
        on_gone=lambda: run.detach(),  # the client left: its grace period starts (resumable), or the run stops
    )
    run = StreamRun(
        chat,
        provider,
        StreamServices(svc.settings, svc.streams, metrics=svc.metrics),  # no poller: one stream per process
        stream_id=job.stream_id,
        owner=job.owner,
        transport="websocket",
        bounds=Bounds(
            deadline_s=max(deadline_s, 0.0),
            finish_by_s=max(flush_until - time.monotonic(), 0.1),  # its state and log writes, before Lambda's end
        ),
        resume=resume.for_stream(job.stream_id) if resume is not None else None,
        handover=SenderHandover(sender) if isinstance(sender, ResumableSender) else None,
        record_exists=True,
    )
    async with run.session(delivered=lambda: sender.delivered) as events:
        sender.start()
        try:
            async for event in events:
                sender.send(event)
        finally:
            await sender.aclose(max(flush_until - time.monotonic(), 0.1))
            # The record and the output log's end: landed (or given up) before this invocation returns,
            # and so before the seal hands the stream over to the log (Lambda may freeze what is left).
            await asyncio.wait([asyncio.ensure_future(run.wait())], timeout=max(flush_until - time.monotonic(), 0.1))
            if resume is not None and isinstance(sender, ResumableSender):
                await seal(resume.attachments, sender, job.stream_id, flush_until)
                if sender.connection_id != job.connection_id:  # moved: leave the new connection's list too
                    await svc.connections.remove_stream(sender.connection_id, job.stream_id)
    terminal = run.terminal
    if job.budget is not None:  # what it used, against its key's token budgets (never raises)
        tokens = run.usage.total_tokens if run.usage is not None else run.completion_tokens
        await svc.guard.spend(job.owner, Limits(tpm=job.budget[0], daily_usd=job.budget[1]), tokens, run.cost_usd)
    return {
        "cost_usd": run.cost_usd,
        "stream_id": job.stream_id,
        "status": TERMINAL_NAMES.get(type(terminal), "unknown"),
        "reason": getattr(terminal, "reason", None),
        "tokens": run.text_chunks,
        "posts": sender.posts,
        "text_messages": sender.text_messages,
        "max_frame_bytes": sender.max_frame,
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    svc = environment.services()
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
            summary = environment.run(run_stream(job, svc, environment.providers(svc.settings), deadline_s))
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
