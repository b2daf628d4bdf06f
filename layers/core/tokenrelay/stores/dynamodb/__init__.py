"""The DynamoDB implementations of the stores' protocols (``tokenrelay.stores``), one per table.

    streams        DynamoStreamStore     records, the cancel flag, each stream's end
    attachments    DynamoAttachments     the resume lease and the WebSocket handover (streams table)
    chats          DynamoChats           each AI SDK chat's latest stream (streams table)
    output_log     DynamoOutputLog       the resumable output of each stream
    api_keys       DynamoApiKeyStore     API keys (read by the functions; written by scripts/keys)
    rate_limits    DynamoRateLimitStore  per-key counters and concurrency slots
    connections    DynamoConnectionStore WebSocket connections and their streams

Every call goes through ``_client.call``: in a worker thread, botocore's errors
translated at this boundary. ``tokenrelay.wiring`` builds a deployment's stores, once.
"""

from ._client import close_connections
from ._items import PARTITION_KEY, TTL_ATTRIBUTE, WATCH_PROJECTION, watch_state
from .api_keys import DynamoApiKeyStore
from .attachments import DynamoAttachments
from .chats import DynamoChats
from .connections import DynamoConnectionStore
from .output_log import DynamoOutputLog
from .rate_limits import DynamoRateLimitStore
from .streams import DynamoStreamStore, from_settings

__all__ = [
    "close_connections",
    "PARTITION_KEY",
    "TTL_ATTRIBUTE",
    "WATCH_PROJECTION",
    "DynamoApiKeyStore",
    "DynamoAttachments",
    "DynamoChats",
    "DynamoConnectionStore",
    "DynamoOutputLog",
    "DynamoRateLimitStore",
    "DynamoStreamStore",
    "from_settings",
    "watch_state",
]
