"""What TokenRelay keeps, and the protocols of the stores that keep it.

Each protocol sits next to its record (``streams``, ``output_log``, ``api_keys``,
``rate_limits``, ``connections``); the DynamoDB implementations are in
``stores.dynamodb``, which imports only these and ``errors``. Fakes for the tests are
typed against the same protocols (``tests/fakes``).
"""

from .api_keys import ApiKey, KeyStore
from .chats import ChatStore, ChatStream
from .connections import ClaimResult, ConnectionRecord, ConnectionStore
from .output_log import AttachmentStore, LogBatch, LogEnd, LogItem, OutputLogStore, decode_end, encode_end
from .rate_limits import Lease, Limits, RateLimitStore
from .streams import FINAL_STATUSES, BatchWatchStore, Status, StreamOutcome, StreamRecord, StreamStore, WatchState

__all__ = [
    "FINAL_STATUSES",
    "ApiKey",
    "AttachmentStore",
    "BatchWatchStore",
    "ChatStore",
    "ChatStream",
    "ClaimResult",
    "ConnectionRecord",
    "ConnectionStore",
    "KeyStore",
    "Lease",
    "Limits",
    "LogBatch",
    "LogEnd",
    "LogItem",
    "OutputLogStore",
    "RateLimitStore",
    "Status",
    "StreamOutcome",
    "StreamRecord",
    "StreamStore",
    "WatchState",
    "decode_end",
    "encode_end",
]
