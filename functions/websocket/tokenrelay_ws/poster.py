"""AWS glue of the WebSocket function, the one place here that imports boto3.

- ``ApiGatewayPoster``: ``ConnectionPoster`` over ``@connections`` (``post_to_connection``),
  run in a worker thread so posting never blocks the event loop. ``GoneException``
  becomes ``ConnectionGone`` (control flow: the client left).
- ``LambdaInvoker``: hands a stream to the worker function with an asynchronous
  invoke (``InvocationType="Event"``), so the chat handler returns at once and the
  stream is not bound by API Gateway's 29 s integration timeout.

Endpoints: the management API lives at ``https://{domainName}/{stage}`` of the
WebSocket API (for a custom domain, the ``execute-api`` name of the API). boto3's
``AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`` / ``AWS_ENDPOINT_URL_LAMBDA`` override
both, which is how a local run reaches ``scripts/devstack/gateway.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

from tokenrelay.errors import ConnectionGone, WorkerUnavailable

__all__ = ["ApiGatewayPoster", "LambdaInvoker", "WorkerInvoker", "WorkerUnavailable", "management_endpoint"]

ENDPOINT_OVERRIDE = "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"
# A post is retried here, not by botocore: botocore's standard mode also retries a read timeout,
# and a post whose answer timed out may well have been delivered; posting it again showed the
# client the same message twice (the WebSocket load suite, seq 5 then 5). So: a post is retried
# only when it surely was not delivered (not connected, throttled, a 5xx answer), and a read
# timeout, long enough to mean a broken connection, ends the posting.
POST_CONFIG = Config(
    connect_timeout=2,
    read_timeout=15,
    retries={"mode": "standard", "total_max_attempts": 1},
    max_pool_connections=20,
)
POST_ATTEMPTS = 3
POST_BACKOFF_S = 0.05
INVOKE_CONFIG = Config(connect_timeout=2, read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3})
_client_lock = threading.Lock()  # creating clients is not thread-safe (the local gateway uses threads)


class WorkerInvoker(Protocol):
    async def invoke(self, payload: Mapping[str, Any]) -> None: ...


def management_endpoint(request_context: Mapping[str, Any]) -> str:
    """``https://{domain}/{stage}``: where ``@connections`` of this API is served."""
    domain = str(request_context.get("domainName", ""))
    stage = str(request_context.get("stage", ""))
    if ".execute-api." not in domain and request_context.get("apiId"):  # custom domain name
        region = os.environ.get("AWS_REGION", "us-east-1")
        domain = f"{request_context['apiId']}.execute-api.{region}.amazonaws.com"
    return f"https://{domain}/{stage}"


class ApiGatewayPoster:
    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def for_endpoint(cls, endpoint: str) -> ApiGatewayPoster:
        url = None if os.environ.get(ENDPOINT_OVERRIDE) else endpoint
        with _client_lock:
            client = boto3.client("apigatewaymanagementapi", endpoint_url=url, config=POST_CONFIG)
        return cls(client)

    @staticmethod
    def preload() -> None:
        """Load the ``apigatewaymanagementapi`` model and endpoint rules into boto3's default
        session (at init), so the first invocation's client for its endpoint is quick to build."""
        with _client_lock:
            boto3.client("apigatewaymanagementapi", endpoint_url="https://preload.invalid", config=POST_CONFIG).close()

    async def post(self, connection_id: str, data: bytes) -> None:
        for attempt in range(1, POST_ATTEMPTS + 1):
            try:
                await asyncio.to_thread(self._client.post_to_connection, ConnectionId=connection_id, Data=data)
                return
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "GoneException":
                    raise ConnectionGone(connection_id) from None
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if attempt == POST_ATTEMPTS or not (status == 429 or status >= 500):
                    raise
            except (ConnectTimeoutError, EndpointConnectionError):  # never sent
                if attempt == POST_ATTEMPTS:
                    raise
            await asyncio.sleep(POST_BACKOFF_S * 2**attempt)


class LambdaInvoker:
    def __init__(self, function_name: str, client: Any = None) -> None:
        self.function_name = function_name
        if client is None:
            with _client_lock:
                client = boto3.client("lambda", config=INVOKE_CONFIG)
        self._client = client

    async def invoke(self, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            response = await asyncio.to_thread(
                self._client.invoke, FunctionName=self.function_name, InvocationType="Event", Payload=body
            )
        except (ClientError, BotoCoreError) as exc:
            code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else type(exc).__name__
            raise WorkerUnavailable(f"could not start the stream worker ({code})") from exc
        if response.get("StatusCode") != 202:
            raise WorkerUnavailable(f"could not start the stream worker (status {response.get('StatusCode')})")
