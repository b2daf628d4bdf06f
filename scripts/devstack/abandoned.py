"""When an invocation whose client left is done: what the front door waits for (``frontdoor.py``).

The HTTP function goes on working after its client leaves: a resumable stream generates into
its output log for ``RESUME_GRACE_S``, then ends, and Lambda keeps that execution environment
busy until the invocation ends. The front door cannot see that end itself (it closed its
connection to the app, so that the app sees its client go), so it reads what the app records:
the stream's record (the response's ``X-Stream-Id``) in ``STREAMS_TABLE``, with the function's
own identity (``GetItem`` is in its grant), until it is no longer ``active``, then allows a
moment for the last writes (the output log's end). The environment then serves again, warm.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

POLL_S = 0.25
LAST_WRITES_S = 1.0  # after the record: the output log's end item


class StreamRecords:
    """Reads stream records with the function's environment (its endpoint, table and credentials)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.table = env.get("STREAMS_TABLE", "")
        self._client: Any = None

    def _get_status(self, stream_id: str) -> str | None:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "dynamodb",
                endpoint_url=self.env.get("AWS_ENDPOINT_URL_DYNAMODB") or None,
                region_name=self.env.get("AWS_REGION") or "us-east-1",
                aws_access_key_id=self.env.get("AWS_ACCESS_KEY_ID"),
                aws_secret_access_key=self.env.get("AWS_SECRET_ACCESS_KEY"),
                config=Config(retries={"mode": "standard", "total_max_attempts": 2}, read_timeout=5),
            )
        item = self._client.get_item(
            TableName=self.table,
            Key={"stream_id": {"S": stream_id}},
            ProjectionExpression="#s",
            ExpressionAttributeNames={"#s": "status"},
            ConsistentRead=True,
        ).get("Item")
        return str(item["status"]["S"]) if item and "status" in item else None

    async def ended(self, stream_id: str) -> None:
        """Return once the stream's record is terminal and its last writes have had their moment
        (an unknown stream, or an error reading it, never returns: the caller's bound applies)."""
        while True:
            try:
                status = await asyncio.to_thread(self._get_status, stream_id)
            except Exception:  # DynamoDB unreachable: wait, bounded by the caller
                status = None
            if status not in (None, "active"):
                await asyncio.sleep(LAST_WRITES_S)
                return
            await asyncio.sleep(POLL_S)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
