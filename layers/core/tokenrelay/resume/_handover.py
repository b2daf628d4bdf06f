"""The WebSocket handover (docs/protocol.md §5): a resume moves a live stream to a new connection,
or, once its worker has ended, is replayed from the log exactly as it was posted.

Who replays depends on who owns the stream, decided by one conditional write on the
stream record (``AttachmentStore.request_move``):

    worker still running   the move succeeds: the record names the new connection; the
                           worker's run sees it within CANCEL_POLL_MS and hands it to
                           ``SenderHandover.moved``: the sender re-posts (byte for byte)
                           every message after n from its history, and goes on posting
                           the live stream there
    worker has ended       it sealed the record with its text message boundaries
                           (``seal``): the move fails, and ``replay_from_log`` rebuilds
                           the very same messages after n from the output log, then
                           posts usage and the terminal message

Either way the client sees each part once, in order, with the original ``seq`` values,
and exactly one terminal message.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..errors import ConnectionGone
from ..events import Event, TextDelta
from ..stores.output_log import AttachmentStore, OutputLogStore
from ..stores.streams import WatchState
from ..transports import ConnectionPoster, ResumableSender, encode_message
from ._follow import follow

__all__ = ["SEAL_ATTEMPTS", "SenderHandover", "replay_from_log", "seal"]

log = logging.getLogger("tokenrelay.websocket")
SEAL_ATTEMPTS = 5


class SenderHandover:
    """A worker's sender, as its run sees it: a move in the record moves the sender."""

    def __init__(self, sender: ResumableSender) -> None:
        self.sender = sender

    def moved(self, state: WatchState) -> bool:
        sender = self.sender
        if state.moves > sender.moves and state.connection_id:
            sender.move(state.connection_id, state.resume_after)
            sender.moves = state.moves
            return True
        return False


async def seal(attachments: AttachmentStore, sender: ResumableSender, stream_id: str, flush_until: float) -> None:
    """Hand the stream over to the log: record the message boundaries, unless a move came first
    (then follow it, flush, and try again)."""
    for _ in range(SEAL_ATTEMPTS):
        if await attachments.seal(stream_id, sender.final_marks(), sender.moves):
            return
        state = await attachments.watch(stream_id)
        if state.connection_id:
            sender.move(state.connection_id, state.resume_after)
        sender.moves = state.moves
        await sender.aclose(max(flush_until - time.monotonic(), 0.1))
    log.error("stream %s: could not seal after %d moves", stream_id, SEAL_ATTEMPTS)


async def replay_from_log(
    store: OutputLogStore,
    attachments: AttachmentStore,
    stream_id: str,
    after: int,
    *,
    poster: ConnectionPoster,
    connection_id: str,
    request_id: str | None,
    poll_s: float,
) -> None:
    """Post every message after ``after`` of a sealed stream, rebuilt from its log and marks."""
    marks: list[int] = await attachments.marks(stream_id) or []
    texts: dict[int, str] = {}
    tail: list[Event] = []
    async with asyncio.timeout(10):  # the log's end is written before the seal: it is there
        async for event in follow(store, stream_id, 0, poll_s=poll_s):
            if type(event) is TextDelta:
                texts[event.seq] = event.text
            else:
                tail.append(event)
    last = max(texts, default=0)
    if not marks or marks[-1] < last:
        marks = [*marks, last] if last else marks
    messages: list[bytes] = []
    for k in range(after + 1, len(marks) + 1):
        low = marks[k - 2] if k >= 2 else 0
        text = "".join(texts.get(s, "") for s in range(low + 1, marks[k - 1] + 1))
        messages.append(encode_message(TextDelta(text, k), stream_id, request_id, tokens=marks[k - 1] - low))
    messages += [encode_message(event, stream_id, request_id) for event in tail]
    for data in messages:
        try:
            await poster.post(connection_id, data)
        except ConnectionGone:
            return
