"""Messages on an open connection: the ``chat``, ``cancel`` and ``$default`` routes.

Route selection is ``$request.body.type``: API Gateway sends a frame that is not
JSON, or whose ``type`` names no route, to ``$default``. One handler serves all
three and dispatches on the parsed body. A refused message gets an ``error``
message back (``request_id`` echoed) and the connection stays open:

    not JSON, binary, not an object   invalid_json
    no "type", or not a string        invalid_request   field "type"
    any other type                    unknown_type
    a bad chat request                invalid_request   field named, as over HTTP
    cancel of an unknown stream       stream_not_found
    cancel of someone else's stream   forbidden
    cancel of a finished stream       stream_finished   with its final "status"
    resume (resume_ws.py)             stream_not_found, forbidden, invalid_request, resume_unavailable
    more streams than allowed         too_many_streams  retryable
    DynamoDB or the worker down       store_unavailable / worker_unavailable, retryable

``chat`` validates the request, reserves the stream on the connection, creates
its state record (owner: the connection's owner) and hands it to the worker with
an asynchronous invoke, then returns at once. It posts nothing on success: the
worker posts ``start``. ``cancel`` only writes the cancel flag; the worker
observes it and posts the stream's ``cancelled``. ``cancel`` with no stream id
flags every active stream of the connection, and is a no-op when there is none.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import common
import resume_ws
from connect import owner_for
from job import StreamJob, request_fields
from poster import WorkerUnavailable, management_endpoint
from tokenrelay import (
    RequestInvalid,
    StoreUnavailable,
    StreamFinished,
    StreamNotFound,
    StreamOutcome,
    StreamRecord,
    TokenRelayError,
    parse_chat_request,
)
from tokenrelay.stores.connections import TooManyStreams
from tokenrelay.transports.websocket import ConnectionPoster, encode_error

log = logging.getLogger("tokenrelay.websocket")

ENVELOPE_FIELDS = ("type", "request_id")
CANCEL_FIELDS = frozenset({"type", "stream_id", "request_id"})
MAX_ID_CHARS = 128
RETRYABLE = (StoreUnavailable, WorkerUnavailable, TooManyStreams)


class BadMessage(TokenRelayError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NotOwner(TokenRelayError):
    status_code = 403
    code = "forbidden"

    def __init__(self, stream_id: str) -> None:
        super().__init__(f"stream {stream_id!r} belongs to another client")
        self.stream_id = stream_id


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_body(event: dict[str, Any]) -> dict[str, Any]:
    if event.get("isBase64Encoded"):
        raise BadMessage("invalid_json", "expected a JSON text message, got binary data")
    try:
        body = json.loads(event.get("body") or "", parse_constant=_reject_constant)
    except ValueError:
        raise BadMessage("invalid_json", "the message is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadMessage("invalid_json", "expected a JSON object with a 'type' field")
    return body


def _optional_id(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS):
        raise RequestInvalid(name, f"expected a string of 1 to {MAX_ID_CHARS} characters")
    return value


async def start_chat(body: dict[str, Any], request_id: str | None, event: dict[str, Any], svc: common.Services) -> None:
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
    job = StreamJob(
        stream_id, connection_id, connection.owner, management_endpoint(ctx), request_fields(chat), request_id
    )
    created = False
    try:
        await svc.streams.create(record)
        created = True
        await svc.invoker.invoke(job.to_event())
    except BaseException as exc:
        await _abandon(svc, connection_id, stream_id, created, exc)
        raise


async def _abandon(svc: common.Services, connection_id: str, stream_id: str, created: bool, exc: BaseException) -> None:
    """The stream never reached a worker: end its record and free its slot on the connection."""
    code = exc.code if isinstance(exc, TokenRelayError) else "internal_error"
    try:
        if created:
            await svc.streams.finish(stream_id, StreamOutcome(status="failed", completion_tokens=0, error_code=code))
        await svc.connections.remove_stream(connection_id, stream_id)
    except TokenRelayError as cleanup:
        log.error("stream %s: cleanup after %s failed: %s", stream_id, code, cleanup)


async def cancel(body: dict[str, Any], connection_id: str, svc: common.Services) -> None:
    unknown = sorted(set(body) - CANCEL_FIELDS)
    if unknown:
        raise RequestInvalid(unknown[0], "unknown field")
    stream_id = _optional_id(body, "stream_id")
    connection = await svc.connections.get(connection_id)
    if stream_id is None:
        if connection is not None:
            await common.request_cancel_all(svc.streams, connection.active_streams, "client")
        return
    record = await svc.streams.get(stream_id)
    if record is None:
        raise StreamNotFound(stream_id)
    owner = connection.owner if connection is not None else owner_for(connection_id, None)
    if record.owner != owner:
        raise NotOwner(stream_id)
    await svc.streams.request_cancel(stream_id, "client")


def _error_for(exc: TokenRelayError, request_id: str | None) -> bytes:
    extra: dict[str, object] = {}
    if isinstance(exc, RequestInvalid):
        extra["field"] = exc.field
    if isinstance(exc, StreamFinished):
        extra["status"] = exc.status
    stream_id = getattr(exc, "stream_id", None)
    return encode_error(
        exc.code, exc.message, retryable=isinstance(exc, RETRYABLE), request_id=request_id, stream_id=stream_id, **extra
    )


async def on_message(event: dict[str, Any], svc: common.Services) -> dict[str, Any]:
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
            await resume_ws.resume(
                body,
                request_id,
                connection_id,
                svc.settings,
                svc.streams,
                svc.connections,
                poster,
                svc.config.max_streams,
            )
        else:
            expected = "expected 'chat', 'cancel' or 'resume'"
            raise BadMessage("unknown_type", f"unknown message type {kind[:64]!r}; {expected}")
    except TokenRelayError as exc:
        await common.reply(poster, connection_id, _error_for(exc, request_id))
    except Exception:
        log.exception("message on %s failed", connection_id)
        error = encode_error("internal_error", "internal error", request_id=request_id)
        await common.reply(poster, connection_id, error)
    return common.OK


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return common.run(on_message(event, common.services()))
