"""What a resuming reader needs besides the log: the record, found even when it is slow to appear,
and the end a record implies when the log has none (docs/protocol.md §5).

``find_record``: the record is written concurrently with the first token
(``StreamRun.open``), so a client that drops at once and reconnects, or cancels, may come
before a slow DynamoDB has it: an unknown id is looked up again for ~3 s before it is
``StreamNotFound`` (at once for an id that is not a uuid4: it was never TokenRelay's).

``RecordFallback``: a replay whose log has no final item asks the record once the log
stalls. The record's end counts only once its producer has surely stopped writing the log
(its last writes give up ``FINISH_TIMEOUT_S`` after the record's end); a log that ends short
of the record's ``last_seq`` is an error, never a ``done`` after a truncated text; a record
still active long past its timeout means its producer died (``stream_lost``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from ..errors import StreamNotFound
from ..events import StreamCancelled, StreamDone, StreamError, Terminal, cancel_reason
from ..settings import Settings
from ..stores.streams import StreamRecord, StreamStore

__all__ = ["LOOKUP_WAITS_S", "RecordFallback", "find_record", "lookup_waits", "terminal_from_record"]

log = logging.getLogger("tokenrelay.resume")

LOST_AFTER_S = 60.0  # past its timeout and still active: its producer died
# Past the producer's give-up time (FINISH_TIMEOUT_S after its end) a write already in flight is
# not abandoned: it lasts up to the client's connect and read timeouts (2 s + 5 s, one attempt:
# stores/dynamodb/_client.py FAST_CONFIG). Judging the log before that write lands would call a
# complete log incomplete (seen in the stress suite with DynamoDB answering in seconds).
LOG_SLACK_S = 10.0
LOOKUP_WAITS_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.5)  # ~3 s in all before an unknown id is a 404
_STREAM_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")  # uuid4, as made


def lookup_waits(stream_id: str) -> tuple[float, ...]:
    """How long to look again for a missing record: ~3 s for an id as TokenRelay makes them."""
    return LOOKUP_WAITS_S if _STREAM_ID.fullmatch(stream_id) else ()


async def find_record(store: StreamStore, stream_id: str) -> StreamRecord:
    """The stream's record, looked up again for a while before it is ``StreamNotFound``."""
    for wait_s in (*lookup_waits(stream_id), None):
        record = await store.get(stream_id)
        if record is not None:
            return record
        if wait_s is None:
            break
        await asyncio.sleep(wait_s)
    raise StreamNotFound(stream_id)


def terminal_from_record(record: StreamRecord) -> Terminal | None:
    """The terminal event a finished record implies (the producer died before logging its own)."""
    if record.status == "complete":
        return StreamDone(
            record.stream_id,
            record.finish_reason or "stop",
            record.ttft_ms,
            record.total_time_ms or 0,
            record.completion_tokens or 0,
            cost_usd=record.cost_usd,
            cost_estimated=bool(record.cost_estimated),
        )
    if record.status == "cancelled":
        return StreamCancelled(record.stream_id, cancel_reason(record.cancel_reason))
    if record.status == "failed":
        return StreamError("the stream failed", record.error_code or "internal_error", False)
    return None


class RecordFallback:
    """``follow``'s fallback for one stream: its record's end, once that can be trusted."""

    def __init__(self, store: StreamStore, stream_id: str, settings: Settings) -> None:
        self.store, self.stream_id, self.settings = store, stream_id, settings

    async def __call__(self, last_seq: int) -> Terminal | None:
        record = await self.store.get(self.stream_id)
        if record is None:
            return StreamError("the stream is gone", "stream_not_found", False)
        terminal = terminal_from_record(record)
        now = time.time()
        if terminal is None:
            if now > record.created_at + self.settings.stream_timeout_s + LOST_AFTER_S:
                return StreamError("the stream was lost", "stream_lost", True)  # its producer died
            return None
        if now < record.updated_at + self.settings.finish_timeout_s + LOG_SLACK_S:
            return None  # ended, and its log's last items may still be landing (a slow DynamoDB)
        if record.last_seq is not None and last_seq < record.last_seq:
            log.error("stream %s: output log ends at %d of %d", record.stream_id, last_seq, record.last_seq)
            return StreamError("the stream's output log is incomplete", "stream_lost", False)
        return terminal
