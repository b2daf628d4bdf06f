"""The one way the DynamoDB stores call boto3: a low-level client, each call in a thread.

boto3 is synchronous, the core is not: every call runs in a worker thread (the default
pool, or the one given) so the event loop never blocks. Clients are created once per
store, on the caller's thread: creating one is not thread-safe and costs tens of
milliseconds; using one is thread-safe. The endpoint comes from boto3's own
configuration (``AWS_ENDPOINT_URL_DYNAMODB`` points a local run at moto's server).

botocore errors are translated here, at the boundary: a refused condition is
``ConditionFailed`` (with the old item, when the call asked for it) for the store to
interpret; anything else (connection refused, timeout, throttling, access denied, a
missing table) is ``StoreUnavailable`` naming the operation, the table and the error
code only, never a request, a response body or a credential.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ...errors import StoreUnavailable

__all__ = [
    "CLIENT_CONFIG",
    "FAST_CONFIG",
    "STREAMS_CONFIG",
    "ConditionFailed",
    "Item",
    "call",
    "close_connections",
    "new_client",
]

T = TypeVar("T")
Item = dict[str, dict[str, Any]]

CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})
# The streams table: the cancel flag is polled every few hundred milliseconds while streams run.
STREAMS_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "total_max_attempts": 3},
    max_pool_connections=50,
)
# The terminal write, the cancel watch and the output log fail fast instead (one attempt): their
# callers retry with their own short backoff, or at the next poll. botocore's own retries would
# back off up to 3 s inside a single call. The timeouts stay: a shorter read timeout only turns a
# slow answer into a retry that adds to what made it slow.
FAST_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "total_max_attempts": 1},
    max_pool_connections=50,
)


class ConditionFailed(Exception):
    """A conditional write was refused; ``item`` is the old item if the call returned it."""

    def __init__(self, item: Item | None = None) -> None:
        super().__init__("conditional check failed")
        self.item = item


_clients: weakref.WeakSet[Any] = weakref.WeakSet()  # every client new_client made, while in use


def new_client(config: Config = CLIENT_CONFIG) -> Any:
    import boto3

    # Lambda sets AWS_REGION (and AWS_DEFAULT_REGION); botocore reads only the latter.
    client = boto3.client("dynamodb", region_name=os.environ.get("AWS_REGION") or None, config=config)
    _clients.add(client)
    return client


def close_connections() -> int:
    """Close the pooled connections of every client ``new_client`` made; each opens new ones at
    its next call. After a SnapStart restore a pooled connection (the readiness check's GetItem
    opened one before the snapshot) is dead, though its socket looks open. The number closed."""
    clients = list(_clients)
    for client in clients:
        client.close()
    return len(clients)


async def call(
    table: str, operation: str, method: Callable[..., T], /, *, executor: Executor | None = None, **kwargs: Any
) -> T:
    """``method(**kwargs)`` in a thread (``executor``'s, else the default pool), errors translated."""
    try:
        if executor is not None:
            return await asyncio.get_running_loop().run_in_executor(executor, partial(method, **kwargs))
        return await asyncio.to_thread(method, **kwargs)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code") or "unknown error")
        if code == "ConditionalCheckFailedException":
            raise ConditionFailed(exc.response.get("Item")) from None
        raise StoreUnavailable(f"DynamoDB {operation} on {table!r} failed: {code}") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"DynamoDB {operation} on {table!r} failed: {type(exc).__name__}") from exc
