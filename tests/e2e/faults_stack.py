"""The fault matrix's stack: both transports, real servers, faults injected at the edges.

- SSE: the FastAPI app under real uvicorn (``serve``), its DynamoDB store on moto's server.
- WebSocket: the local API Gateway emulator, the real ``$connect``/chat/``$disconnect``
  handlers and the worker, invoked asynchronously as Lambda does, posting through
  ``@connections``; the same moto server.
- The provider: the real ``openai`` SDK through ``ChaosProxy`` (refuse, reset) to the
  fake upstream; the real ``anthropic`` SDK straight to it (the fallback model).
- DynamoDB faults: ``DynamoFaults`` answers chosen calls of the stream stores' own
  boto3 clients, at botocore's ``before-send``, with what DynamoDB answers when
  throttling (HTTP 400 ``ProvisionedThroughputExceededException``); botocore's own
  retries (standard mode) then run against it, as in production.
- Metrics: every EMF document both transports emit, captured by stream id.

Settings are small (1.5 s first-chunk and stall timeouts, 10 ms backoff) so every case
ends within a few seconds; ``FALLBACK_MODEL`` is the Anthropic model.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import MockRawResponse

from scripts.devstack.gateway import Gateway, GatewayConfig, serving
from scripts.devstack.tables import create_table, table_spec
from tests.fakes.chaos import ChaosProxy
from tests.fakes.environ import environ
from tests.fakes.servers import free_port, serve
from tests.fakes.upstream import FakeUpstream
from tokenrelay import Settings
from tokenrelay.stores import StreamRecord
from tokenrelay.stores.dynamodb import DynamoStreamStore
from tokenrelay.telemetry.metrics import StreamMetrics
from tokenrelay_http import create_app

FIRST_CHUNK_S = 1.5  # long enough that a busy machine never trips it by accident
WORKER_MARGIN_S = 1.0
SSE_MARGIN_S = 1.0
FAULT_ENV = {
    "ALLOWED_MODELS": "echo:echo-1;openai:gpt-4o-mini;anthropic:claude-haiku-4-5",
    "DEFAULT_PROVIDER": "openai",
    "FALLBACK_MODEL": "anthropic:claude-haiku-4-5",
    "UPSTREAM_MAX_RETRIES": "2",
    "UPSTREAM_RETRY_BUDGET_S": "5",
    "UPSTREAM_BACKOFF_MS": "10",
    "UPSTREAM_FIRST_CHUNK_S": str(FIRST_CHUNK_S),
    "UPSTREAM_STALL_S": str(FIRST_CHUNK_S),
    "UPSTREAM_TIMEOUT_S": "10",
    "DEADLINE_MARGIN_S": str(SSE_MARGIN_S),
    "WORKER_DEADLINE_MARGIN_MS": str(int(WORKER_MARGIN_S * 1000)),
    "CANCEL_POLL_MS": "50",
    "WS_FLUSH_MS": "10",
    "METRICS_ENABLED": "false",  # the stack captures its own
    "AUTH_MODE": "off",
    "CONNECTIONS_TABLE": "tokenrelay-connections-faults",
    "WORKER_FUNCTION_NAME": "tokenrelay-worker",
}
THROTTLED = json.dumps(
    {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    }
).encode()


class DynamoFaults:
    """Throttles the next ``count`` calls of a kind, on every client it is attached to.

    Kinds: ``create`` (PutItem of a stream record), ``read`` (GetItem/BatchGetItem of the
    streams table: the cancel watch), ``finish`` (the terminal UpdateItem). Thread-safe:
    the stores call boto3 from worker threads.
    """

    def __init__(self, table: str) -> None:
        self.table = table
        self._left: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        client.meta.events.register_first("before-send.dynamodb", self._before_send)

    def throttle(self, kind: str, count: int) -> None:
        with self._lock:
            self._left[kind] = count

    def clear(self) -> None:
        with self._lock:
            self._left.clear()
            self.injected.clear()

    def _kind(self, request: Any) -> str | None:
        target = request.headers.get("X-Amz-Target") or b""
        operation = (target.decode() if isinstance(target, bytes) else target).rpartition(".")[2]
        body = json.loads(request.body or b"{}")
        if operation == "BatchGetItem":
            return "read" if self.table in body.get("RequestItems", {}) else None
        if body.get("TableName") != self.table:
            return None
        if operation == "PutItem":
            return "create"
        if operation == "GetItem":
            return "read"
        if operation == "UpdateItem" and ":final" in body.get("ExpressionAttributeValues", {}):
            return "finish"
        return None

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        kind = self._kind(request)
        with self._lock:
            if kind is None or self._left[kind] <= 0:
                return None
            self._left[kind] -= 1
            self.injected[kind] += 1
        headers = {"x-amzn-RequestId": "FAULT", "Content-Type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, 400, headers, MockRawResponse(THROTTLED))


class Metrics:
    """EMF documents, by stream id (thread-safe: the worker emits from its own threads)."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def sink(self, line: str) -> None:
        with self._lock:
            self.docs.append(json.loads(line))

    def clear(self) -> None:
        with self._lock:
            self.docs.clear()

    def of(self, stream_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [d for d in self.docs if d.get("stream_id") == stream_id]

    def wait(self, stream_id: str, within_s: float = 10.0) -> list[dict[str, Any]]:
        """The stream's documents once there is one (blocking: call it in a thread)."""
        deadline = time.monotonic() + within_s
        while not self.of(stream_id) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)  # a second document would be a bug: give it a chance to show
        return self.of(stream_id)


@dataclass
class FaultStack:
    sse_url: str
    ws_url: str
    gateway: Gateway
    upstream: FakeUpstream
    proxy: ChaosProxy
    dynamo: DynamoFaults
    metrics: Metrics
    records: DynamoStreamStore  # a separate client: reads and cancels as another instance would

    async def final_record(self, stream_id: str, within_s: float = 10.0) -> StreamRecord | None:
        """The record once it left ``active`` (or as it is after ``within_s``)."""
        deadline = time.monotonic() + within_s
        record = await self.records.get(stream_id)
        while (record is None or record.status == "active") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            record = await self.records.get(stream_id)
        return record

    def reset(self) -> None:
        self.upstream.reset()
        self.proxy.up()
        self.proxy.reset_next(0)
        self.dynamo.clear()
        self.metrics.clear()
        self.gateway.lambdas.timeout_s = 900.0

    def wait_idle(self, within_s: float = 10.0) -> bool:
        """No worker running and every upstream exchange ended: the next case starts clean."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if not self.gateway.lambdas.busy and all(x.ended.is_set() for x in self.upstream.requests):
                return True
            time.sleep(0.02)
        return False


def fault_stack(dynamodb_endpoint: str, upstream: FakeUpstream) -> Iterator[FaultStack]:
    """Build the stack (a generator for a module-scoped fixture)."""
    with ChaosProxy.running(upstream.openai_base_url) as proxy:
        port = free_port()
        here = f"http://127.0.0.1:{port}"
        env = {
            **upstream.env,
            **FAULT_ENV,
            "OPENAI_BASE_URL": proxy.url,
            "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": here,
            "AWS_ENDPOINT_URL_LAMBDA": here,
        }
        with environ(env, remove=["OUTPUT_LOG_TABLE"]):  # resume off: a client gone stops the stream
            yield from _stack(env, port, dynamodb_endpoint, upstream, proxy)


def _stack(
    env: dict[str, str], port: int, dynamodb_endpoint: str, upstream: FakeUpstream, proxy: ChaosProxy
) -> Iterator[FaultStack]:
    client = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)
    create_table(client, table_spec("ConnectionsTable"), env["CONNECTIONS_TABLE"])
    client.close()
    settings = Settings.from_env(os.environ)
    faults = DynamoFaults(settings.streams_table)
    metrics = Metrics()
    store = DynamoStreamStore(settings.streams_table)
    for client in store.clients:
        faults.attach(client)
    app = create_app(settings, store=store, metrics=StreamMetrics("TokenRelay", "faults", sink=metrics.sink))
    from tokenrelay_ws import environment as common  # functions/websocket

    common.reset()
    svc = common.services()
    svc.metrics = StreamMetrics("TokenRelay", "faults", sink=metrics.sink)
    for client in svc.streams.clients:  # type: ignore[attr-defined]
        faults.attach(client)
    gateway = Gateway(GatewayConfig.from_env(port=port))
    records = DynamoStreamStore(settings.streams_table)
    with serve(app) as sse_url, serving(gateway) as ws_url:
        yield FaultStack(sse_url, ws_url, gateway, upstream, proxy, faults, metrics, records)
    records.close()
    store.close()
