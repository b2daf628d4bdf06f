"""The fault matrix's stack: both transports as deployed, faults injected at the edges.

- SSE: the local Function URL (``frontdoor.py``), one request per StreamFunction environment.
- WebSocket: the local API Gateway emulator, the ``$connect``/chat/``$disconnect`` functions
  and the worker each in their own process environments, invoked as Lambda does (the worker
  asynchronously), posting through ``@connections``.
- Every function with its own IAM identity, on the stack's DynamoDB (``tests/fakes/local_stack.py``).
- The provider: the real ``openai`` SDK through ``ChaosProxy`` (refuse, reset) to the
  fake upstream; the real ``anthropic`` SDK straight to it (the fallback model).
- DynamoDB faults: ``DynamoFaults`` has the DynamoDB server answer chosen calls of the
  functions (by their access keys; the test's own reads, as the operator, are spared) as
  DynamoDB answers when throttling (HTTP 400 ``ProvisionedThroughputExceededException``):
  each function's own botocore retries (standard mode) then run against it, as in production
  (``scripts/devstack/dynamodb_faults.py``).
- Metrics: every EMF document the functions print, by stream id.

Settings are small (1.5 s first-chunk and stall timeouts, 10 ms backoff) so every case
ends within a few seconds; ``FALLBACK_MODEL`` is the Anthropic model.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.devstack.dynamodb_faults import injected, set_faults
from scripts.devstack.gateway import Gateway
from tests.fakes.chaos import ChaosProxy
from tests.fakes.local_stack import LocalAws, LogCapture, changed_template, function_stack
from tests.fakes.upstream import FakeUpstream
from tokenrelay.stores import StreamRecord
from tokenrelay.stores.dynamodb import DynamoStreamStore

FIRST_CHUNK_S = 1.5  # long enough that a busy machine never trips it by accident
WORKER_MARGIN_S = 1.0
SSE_MARGIN_S = 1.0
SSE_TIMEOUT_S = 2.5  # the short function's Timeout: its streams end SSE_TIMEOUT_S - SSE_MARGIN_S in
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
    "METRICS_ENABLED": "true",  # one EMF document per stream, in the functions' output
    "AUTH_MODE": "off",
    "CONNECTIONS_TABLE": "tokenrelay-connections-faults",
    "WORKER_FUNCTION_NAME": "tokenrelay-worker",
}
STREAMS = "tokenrelay-streams-faults"
# Which calls of the streams table each kind of fault takes (the functions' calls only).
KINDS: dict[str, dict[str, Any]] = {
    "create": {"operations": ["PutItem"]},  # a stream record's create
    "read": {"operations": ["GetItem", "BatchGetItem"]},  # the cancel watch
    "finish": {"operations": ["UpdateItem"], "contains": ":final"},  # the terminal write
}


class DynamoFaults:
    """Throttles the next ``count`` calls of a kind that the functions make, at the DynamoDB server."""

    def __init__(self, endpoint: str, table: str, callers: list[str]) -> None:
        self.endpoint, self.table, self.callers = endpoint, table, callers

    def throttle(self, kind: str, count: int) -> None:
        rule = {"name": kind, "answer": "throttle", "count": count, "table": self.table, "callers": self.callers}
        set_faults(self.endpoint, rules=[{**rule, **KINDS[kind]}])

    def clear(self) -> None:
        set_faults(self.endpoint)

    @property
    def injected(self) -> Counter[str]:
        return injected(self.endpoint)


class Metrics:
    """The EMF documents the stack's functions printed since the last ``clear``, by stream id."""

    def __init__(self, logs: LogCapture) -> None:
        self.logs = logs
        self.mark = logs.mark()

    def clear(self) -> None:
        self.mark = self.logs.mark()

    @property
    def docs(self) -> list[dict[str, Any]]:
        return self.logs.emf(self.mark)

    def of(self, stream_id: str) -> list[dict[str, Any]]:
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
    short_sse_url: str  # the same function with a Timeout of SSE_TIMEOUT_S: the invocation's deadline
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


def fault_stack(aws: LocalAws, upstream: FakeUpstream, workdir: Path) -> Iterator[FaultStack]:
    """Build the stack (a generator for a module-scoped fixture)."""
    short = changed_template(workdir, "StreamFunction", Timeout=SSE_TIMEOUT_S)
    with ChaosProxy.running(upstream.openai_base_url) as proxy:
        env = {
            **upstream.env,
            **FAULT_ENV,
            "OPENAI_BASE_URL": proxy.url,
            "STREAMS_TABLE": STREAMS,
            "OUTPUT_LOG_TABLE": "",  # resume off: a client gone stops the stream
        }
        with (
            function_stack(aws, env, http=True, ws=True, name="faults") as stack,
            stack.serve_front_door(short) as short_url,
        ):
            assert stack.gateway is not None
            keys = [identity.access_key_id for identity in stack.identities.values()]
            records = DynamoStreamStore(STREAMS)  # the operator's: reads and cancels as another instance would
            faults = DynamoFaults(aws.endpoint, STREAMS, keys)
            try:
                metrics = Metrics(stack.logs)
                yield FaultStack(
                    stack.http, short_url, stack.ws, stack.gateway, upstream, proxy, faults, metrics, records
                )
                stack.assert_no_access_denied()
            finally:
                faults.clear()
                records.close()
