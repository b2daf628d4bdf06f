"""What the API-key and rate-limit stores share: one low-level client, calls in a thread.

As in ``dynamodb.py``: boto3 runs in a worker thread (``asyncio.to_thread``) so the
event loop never blocks; a failed condition is ``ConditionFailed`` for the store to
interpret; anything else becomes ``StoreUnavailable`` naming the operation, the table
and the error code only, never a request, a response body or a credential.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import StoreUnavailable

T = TypeVar("T")


class ConditionFailed(Exception):
    """A conditional write was refused."""


def new_client() -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})
    # Lambda sets AWS_REGION; botocore reads only AWS_DEFAULT_REGION.
    return boto3.client("dynamodb", region_name=os.environ.get("AWS_REGION") or None, config=config)


async def call(table: str, operation: str, method: Callable[..., T], **kwargs: Any) -> T:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return await asyncio.to_thread(method, **kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code") or "unknown error"
        if code == "ConditionalCheckFailedException":
            raise ConditionFailed() from None
        raise StoreUnavailable(f"DynamoDB {operation} on {table!r} failed: {code}") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"DynamoDB {operation} on {table!r} failed: {type(exc).__name__}") from exc
