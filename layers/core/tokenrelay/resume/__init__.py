"""Resume: a dropped client gets back what it missed, on any instance (docs/protocol.md §5).

    _writer    the producer's side: the output log, batched, one write in flight
    _follow    the reader's side: replay after a seq, then follow until the end
    _lease     the grace period (``Resumable``), the reader's lease (``hold_lease``)
    _replay    the record as a resuming reader needs it (found when slow; its implied end)
    _handover  WebSocket: move a live stream to the new connection, or replay it once sealed

The records and store protocols are in ``tokenrelay.stores.output_log``.
"""

from ._follow import UNAVAILABLE_S, Fallback, follow
from ._handover import SEAL_ATTEMPTS, SenderHandover, replay_from_log, seal
from ._lease import Resumable, ResumeStores, heartbeat_s, hold_lease
from ._replay import LOOKUP_WAITS_S, RecordFallback, find_record, lookup_waits, terminal_from_record
from ._writer import MAX_BATCH_BYTES, MAX_TEXT_CHARS, OutputLogWriter, split_text, text_bytes

__all__ = [
    "LOOKUP_WAITS_S",
    "MAX_BATCH_BYTES",
    "MAX_TEXT_CHARS",
    "SEAL_ATTEMPTS",
    "UNAVAILABLE_S",
    "Fallback",
    "OutputLogWriter",
    "RecordFallback",
    "Resumable",
    "ResumeStores",
    "SenderHandover",
    "find_record",
    "follow",
    "heartbeat_s",
    "hold_lease",
    "lookup_waits",
    "replay_from_log",
    "seal",
    "split_text",
    "terminal_from_record",
    "text_bytes",
]
