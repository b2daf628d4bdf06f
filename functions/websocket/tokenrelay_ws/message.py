"""Messages on an open connection: the ``chat``, ``cancel`` and ``$default`` routes.

Route selection is ``$request.body.type``: API Gateway sends a frame that is not
JSON, or whose ``type`` names no route, to ``$default``. One handler serves all
three and dispatches on the parsed body. A refused message gets an ``error``
message back (``request_id`` echoed) and the connection stays open:

    not JSON, binary, not an object   invalid_json      (JSON as strict as over HTTP: json_text.py)
    larger than 128 KB                payload_too_large (API Gateway closes the socket first; defence in depth)
    no "type", or not a string        invalid_request   field "type"
    any other type                    unknown_type
    a bad chat request                invalid_request   field named, as over HTTP
    cancel of an unknown stream       stream_not_found
    cancel of someone else's stream   forbidden
    cancel of a finished stream       stream_finished   with its final "status"
    resume (resume.py)                stream_not_found, forbidden, invalid_request, resume_unavailable
    more streams than allowed         too_many_streams  retryable
    the API key revoked since connect unauthorized      (seen within API_KEY_CACHE_S)
    a model the key may not use       model_not_allowed field "model"
    over the key's limits             rate_limited      retryable, with retry_after (seconds)
    DynamoDB or the worker down       store_unavailable / worker_unavailable, retryable

``chat`` validates the request, reserves the stream on the connection, creates
its state record (owner: the connection's owner) and hands it to the worker with
an asynchronous invoke, then returns at once. It posts nothing on success: the
worker posts ``start``. ``cancel`` only writes the cancel flag; the worker
observes it and posts the stream's ``cancelled``. ``cancel`` with no stream id
flags every active stream of the connection, and is a no-op when there is none.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from tokenrelay import (
    RequestInvalid,
    StoreUnavailable,
    StreamNotFound,
    StreamOutcome,
    StreamRecord,
    TokenRelayError,
    parse_chat_request,
)
from tokenrelay.errors import BadMessage, WorkerUnavailable
from tokenrelay.json_text import JSONRejected, loads_strict
from tokenrelay.stores import Lease
from tokenrelay.stream import never_started
from tokenrelay.transports import ConnectionPoster, encode_error, error_message

from . import environment, resume
from .connect import principal_of
from .job import StreamJob, request_fields
from .poster import management_endpoint

log = logging.getLogger("tokenrelay.websocket")

ENVELOPE_FIELDS = ("type", "request_id")
CANCEL_FIELDS = frozenset({"type", "stream_id", "request_id"})
MAX_ID_CHARS = 128
MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway's WebSocket message limit; the handler holds to it as well


def parse_body(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("isBase64Encoded"):
        raise BadMessage("invalid_json", "expected a JSON text message, got binary data")
    raw = event.get("body")
    if not isinstance(raw, str) or not raw:
        raise BadMessage("invalid_json", "the message is empty; expected a JSON object with a 'type' field")
    if len(raw) > MAX_MESSAGE_BYTES or len(raw.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise BadMessage("payload_too_large", f"the message is larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        body = loads_strict(raw)
    except JSONRejected as exc:
        raise BadMessage("invalid_json", f"the message is not valid JSON: {exc.message}") from None
    if not isinstance(body, dict):
        raise BadMessage("invalid_json", "expected a JSON object with a 'type' field")
    return body


def _optional_id(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS):
        raise RequestInvalid(name, f"expected a string of 1 to {MAX_ID_CHARS} characters")
    return value


async def start_chat(
    body: dict[str, Any], request_id: str | None, event: dict[str, Any], svc: environment.Services
) -> None:
    ctx = event["requestContext"]
    connection_id = ctx["connectionId"]
    chat = parse_chat_request({k: v for k, v in body.items() if k not in ENVELOPE_FIELDS}, svc.settings)
    stream_id = str(uuid.uuid4())
    connection = await svc.connections.add_stream(connection_id, stream_id, svc.config.max_streams)
    now = time.time()
    record = StreamRecord(
        stream_id=stream_id,
        owner=connection.owner,
        transport="websocket",
        provider=chat.provider,
        model=chat.model,
        created_at=now,
        updated_at=now,
        expires_at=int(now) + svc.settings.stream_ttl_s,
    )
    lease: Lease | None = None
    created = False
    started = time.monotonic()
    try:
        # The key still valid (a revocation shows within API_KEY_CACHE_S), allowed this model, within its
        # limits: the concurrency slot taken, for the worker to give back. Refusals are counted there.
        principal = principal_of(connection, connection_id)
        lease = await svc.guard.admit(principal, chat.provider, chat.model, stream_id, recheck=True)
        job = StreamJob(
            stream_id,
            connection_id,
            connection.owner,
            management_endpoint(ctx),
            request_fields(chat),
            request_id,
            slot=lease.slot if lease is not None else None,
            fallback=principal.may_fall_back(svc.settings.fallback_model),
            budget=(principal.limits.tpm, principal.limits.daily_usd) if principal.limits.budgeted else None,
        )
        await svc.streams.create(record)
        created = True
        await svc.invoker.invoke(job.to_event())
    except BaseException as exc:
        await _abandon(svc, connection_id, stream_id, created, exc)
        await svc.guard.release(lease)
        if isinstance(exc, StoreUnavailable | WorkerUnavailable) and svc.metrics is not None:
            # admitted, then lost before any worker ran: a failed stream, as over SSE, so the
            # failure-rate alarm sees a DynamoDB or Lambda outage (refusals are counted apart)
            svc.metrics.emit(never_started(record, exc.code, time.monotonic() - started))
        raise


async def _abandon(
    svc: environment.Services, connection_id: str, stream_id: str, created: bool, exc: BaseException
) -> None:
    """The stream never reached a worker: end its record and free its slot on the connection."""
    code = exc.code if isinstance(exc, TokenRelayError) else "internal_error"
    try:
        if created:
            await svc.streams.finish(stream_id, StreamOutcome(status="failed", completion_tokens=0, error_code=code))
        await svc.connections.remove_stream(connection_id, stream_id)
    except TokenRelayError as cleanup:
        log.error("stream %s: cleanup after %s failed: %s", stream_id, code, cleanup)


async def cancel(body: dict[str, Any], connection_id: str, svc: environment.Services) -> None:
    unknown = sorted(set(body) - CANCEL_FIELDS)
    if unknown:
        raise RequestInvalid(unknown[0], "unknown field")
    stream_id = _optional_id(body, "stream_id")
    connection = await svc.connections.get(connection_id)
    if stream_id is None:
        if connection is not None:
            await environment.request_cancel_all(svc.streams, connection.active_streams, "client")
        return
    record = await svc.streams.get(stream_id)
    if record is None:
        raise StreamNotFound(stream_id)
    svc.guard.check_owner(principal_of(connection, connection_id), record.owner, stream_id)
    await svc.streams.request_cancel(stream_id, "client")


async def on_message(event: dict[str, Any], svc: environment.Services) -> dict[str, Any]:
    ctx = event["requestContext"]
    connection_id = ctx["connectionId"]
    poster: ConnectionPoster = svc.poster(management_endpoint(ctx))
    request_id: str | None = None
    try:
        body = parse_body(event)
        request_id = _optional_id(body, "request_id")
        kind = body.get("type")
        if not isinstance(kind, str):
            raise RequestInvalid("type", "field required: a string, 'chat' or 'cancel'")
        if kind == "chat":
            await start_chat(body, request_id, event, svc)
        elif kind == "cancel":
            await cancel(body, connection_id, svc)
        elif kind == "resume":
            await resume.resume(body, request_id, connection_id, svc, poster)
        else:
            expected = "expected 'chat', 'cancel' or 'resume'"
            raise BadMessage("unknown_type", f"unknown message type {kind[:64]!r}; {expected}")
    except TokenRelayError as exc:  # refusals (401/403/429) were counted by the guard that made them
        await environment.reply(poster, connection_id, error_message(exc, request_id))
    except Exception:
        log.exception("message on %s failed", connection_id)
        error = encode_error("internal_error", "internal error", request_id=request_id)
        await environment.reply(poster, connection_id, error)
    return environment.OK


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return environment.run(on_message(event, environment.services()))
