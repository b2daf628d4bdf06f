"""The stream worker with fakes: how each kind of stream ends, what it posts, what it records."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.providers import ScriptedProvider
from tokenrelay import Settings, StreamRecord, Usage
from tokenrelay.errors import ConnectionGone, ConnectionNotFound, TooManyStreams
from tokenrelay.stores import ClaimResult, ConnectionRecord

WS_FUNCTIONS = str(Path(__file__).resolve().parents[2] / "functions" / "websocket")
if WS_FUNCTIONS not in sys.path:  # until pyproject's pythonpath lists functions/websocket
    sys.path.insert(0, WS_FUNCTIONS)

from tokenrelay_ws import environment as common  # noqa: E402
from tokenrelay_ws import worker  # noqa: E402
from tokenrelay_ws.job import StreamJob  # noqa: E402

ENDPOINT = "https://abcdef1234.execute-api.us-east-1.amazonaws.com/prod"
REQUEST = {"messages": [{"role": "user", "content": "hi"}], "provider": "echo", "model": "echo-1", "max_tokens": 100}


class MemoryConnectionStore:
    """``ConnectionStore`` with the DynamoDB store's semantics, in memory."""

    def __init__(self) -> None:
        self.records: dict[str, ConnectionRecord] = {}

    async def put(self, record: ConnectionRecord) -> None:
        self.records[record.connection_id] = record

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        return self.records.get(connection_id)

    def _set(self, connection_id: str, streams: dict[str, str], **changes: Any) -> ConnectionRecord:
        record = dataclasses.replace(self.records[connection_id], streams=streams, **changes)
        self.records[connection_id] = record
        return record

    async def add_stream(self, connection_id: str, stream_id: str, limit: int) -> ConnectionRecord:
        record = self.records.get(connection_id)
        if record is None or record.status != "connected":
            raise ConnectionNotFound(connection_id)
        if len(record.streams) >= limit:
            raise TooManyStreams(limit)
        return self._set(connection_id, {**record.streams, stream_id: "pending"})

    async def claim_stream(self, connection_id: str, stream_id: str) -> ClaimResult:
        record = self.records.get(connection_id)
        if record is None or record.streams.get(stream_id) != "pending":
            return "unknown"
        if record.status != "connected":
            return "gone"
        self._set(connection_id, {**record.streams, stream_id: "running"})
        return "claimed"

    async def remove_stream(self, connection_id: str, stream_id: str) -> None:
        record = self.records.get(connection_id)
        if record is not None:
            self._set(connection_id, {k: v for k, v in record.streams.items() if k != stream_id})

    async def disconnect(self, connection_id: str) -> ConnectionRecord | None:
        record = self.records.get(connection_id)
        return None if record is None else self._set(connection_id, dict(record.streams), status="gone")


class Poster:
    def __init__(self, gone_after: int | None = None, delay_s: float = 0.001) -> None:
        self.frames: list[bytes] = []
        self.gone_after = gone_after
        self.delay_s = delay_s

    async def post(self, connection_id: str, data: bytes) -> None:
        if self.gone_after is not None and len(self.frames) >= self.gone_after:
            raise ConnectionGone(connection_id)
        await asyncio.sleep(self.delay_s)
        self.frames.append(data)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.frames]


class Registry:
    def __init__(self, provider: ScriptedProvider) -> None:
        self.provider = provider

    def get(self, name: str) -> ScriptedProvider:
        return self.provider


@dataclasses.dataclass
class World:
    svc: common.Services
    streams: MemoryStreamStore
    connections: MemoryConnectionStore
    poster: Poster

    async def add(self, stream_id: str = "s-1", connection_id: str = "conn-1") -> StreamJob:
        """What the chat handler does before the worker runs."""
        if connection_id not in self.connections.records:
            await self.connections.put(ConnectionRecord(connection_id, owner="client-a"))
        await self.connections.add_stream(connection_id, stream_id, 8)
        now = time.time()
        await self.streams.create(StreamRecord(stream_id, "client-a", "websocket", "echo", "echo-1", created_at=now))
        return StreamJob(stream_id, connection_id, "client-a", ENDPOINT, REQUEST, request_id="r-1")

    def run(self, job: StreamJob, provider: ScriptedProvider, deadline_s: float = 60.0) -> Any:
        return worker.run_stream(job, self.svc, Registry(provider), deadline_s)  # type: ignore[arg-type]


@pytest.fixture
def world() -> World:
    streams, connections, poster = MemoryStreamStore(), MemoryConnectionStore(), Poster()
    svc = common.Services(
        settings=Settings(cancel_poll_s=0.02),
        config=common.WsConfig(flush_interval_s=0.01),
        streams=streams,
        connections=connections,
        invoker=None,
        posters={ENDPOINT: poster},
    )
    return World(svc, streams, connections, poster)


async def test_worker_stream_posts_start_text_usage_done_and_releases_the_connection(world: World) -> None:
    job = await world.add()
    tokens = [f"w{i} " for i in range(60)]
    summary = await world.run(job, ScriptedProvider(tokens, delay_s=0.001, usage=Usage(3, 60)))
    messages = world.poster.messages
    assert [m["type"] for m in messages[:1] + messages[-2:]] == ["start", "usage", "done"]
    assert messages[0] == {
        "type": "start",
        "stream_id": "s-1",
        "request_id": "r-1",
        "provider": "echo",
        "model": "echo-1",
    }
    assert "".join(m["content"] for m in messages if m["type"] == "text") == "".join(tokens)
    assert summary["status"] == "done" and summary["tokens"] == 60 and summary["posts"] < 60
    assert world.streams.records["s-1"].status == "complete"
    assert world.connections.records["conn-1"].streams == {}


async def test_worker_connection_gone_midstream_closes_upstream_and_records_disconnect(world: World) -> None:
    world.poster.gone_after = 3
    job = await world.add()
    provider = ScriptedProvider(["x "] * 1000, delay_s=0.005)
    started = time.monotonic()
    summary = await asyncio.wait_for(world.run(job, provider), 5)
    assert time.monotonic() - started < 1.5  # stopped at the GoneException, not after 5 s of tokens
    assert summary["status"] == "cancelled" and summary["reason"] == "disconnect"
    assert provider.closed_early == 1
    record = world.streams.records["s-1"]
    assert record.status == "cancelled" and record.cancel_reason == "disconnect"
    assert world.connections.records["conn-1"].streams == {}


@pytest.mark.parametrize("reason", ["client", "disconnect"])
async def test_worker_cancel_flag_ends_stream_with_the_recorded_reason(world: World, reason: str) -> None:
    job = await world.add()
    provider = ScriptedProvider(["x "] * 1000, delay_s=0.005)
    task = asyncio.create_task(world.run(job, provider))
    await asyncio.sleep(0.1)
    await world.streams.request_cancel("s-1", reason)
    summary = await asyncio.wait_for(task, 2)
    assert summary["status"] == "cancelled" and summary["reason"] == reason
    assert provider.closed_early == 1
    assert world.streams.records["s-1"].cancel_reason == reason
    if reason == "client":
        assert world.poster.messages[-1] == {
            "type": "cancelled",
            "stream_id": "s-1",
            "request_id": "r-1",
            "reason": "client",
        }


async def test_worker_deadline_ends_stream_with_timeout_before_it_passes(world: World) -> None:
    job = await world.add()
    provider = ScriptedProvider(["x "] * 1000, delay_s=0.005)
    started = time.monotonic()
    summary = await world.run(job, provider, deadline_s=0.3)
    assert time.monotonic() - started < 0.8
    assert summary["status"] == "cancelled" and summary["reason"] == "timeout"
    assert world.poster.messages[-1]["type"] == "cancelled" and world.poster.messages[-1]["reason"] == "timeout"


async def test_worker_posting_slower_than_generation_still_delivers_every_message(world: World) -> None:
    # one post per token at 20 ms each: the posts finish ~2.4 s after the last token was generated
    world.svc.config = common.WsConfig(coalesce=False)
    world.poster.delay_s = 0.02
    job = await world.add()
    tokens = [f"{i} " for i in range(120)]
    summary = await world.run(job, ScriptedProvider(tokens))
    assert summary["status"] == "done"
    assert world.poster.messages[-1]["type"] == "done"
    assert "".join(m["content"] for m in world.poster.messages if m["type"] == "text") == "".join(tokens)


async def test_worker_repeated_delivery_is_skipped_without_calling_upstream(world: World) -> None:
    job = await world.add()
    provider = ScriptedProvider(["a"])
    first = await world.run(job, provider)
    second = await world.run(job, provider)
    assert first["status"] == "done" and second["status"] == "skipped"
    assert provider.opened == 1


async def test_worker_client_gone_before_start_records_disconnect_without_upstream_call(world: World) -> None:
    job = await world.add()
    await world.connections.disconnect("conn-1")
    provider = ScriptedProvider(["a"])
    summary = await world.run(job, provider)
    assert summary == {"stream_id": "s-1", "status": "cancelled", "reason": "disconnect"}
    assert provider.opened == 0 and world.poster.frames == []
    assert world.streams.records["s-1"].status == "cancelled"


async def test_worker_request_no_longer_valid_posts_error_and_records_failure(world: World) -> None:
    job = dataclasses.replace(await world.add(), request={**REQUEST, "model": "gone-model"})
    summary = await world.run(job, ScriptedProvider(["a"]))
    assert summary["status"] == "failed"
    error = world.poster.messages[-1]
    assert error["type"] == "error" and error["code"] == "invalid_request" and error["stream_id"] == "s-1"
    assert world.streams.records["s-1"].status == "failed"


class LambdaContext:
    aws_request_id = "req-1"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_worker_handler_takes_its_deadline_from_the_lambda_context(world: World) -> None:
    world.svc.config = common.WsConfig(flush_interval_s=0.01, deadline_margin_s=1.0)  # ends 0.4 s in
    world.svc.settings = Settings(cancel_poll_s=0.02, echo_delay_s=0.05)
    common.install(world.svc)
    try:
        job = asyncio.run(world.add())
        job = dataclasses.replace(job, request={**REQUEST, "messages": [{"role": "user", "content": "word " * 200}]})
        started = time.monotonic()
        summary = worker.handler(job.to_event(), LambdaContext(1_400))
        assert 0.3 < time.monotonic() - started < 1.0
        assert summary["status"] == "cancelled" and summary["reason"] == "timeout"
    finally:
        common.reset()


def test_worker_handler_malformed_event_is_rejected_not_raised(world: World) -> None:
    common.install(world.svc)
    try:
        assert worker.handler({"stream_id": "s-1"}, LambdaContext(900_000))["status"] == "rejected"
    finally:
        common.reset()


async def test_worker_emits_one_metrics_document_per_stream_with_websocket_dimension(world: World) -> None:
    from tokenrelay.telemetry.metrics import StreamMetrics

    lines: list[str] = []
    world.svc.metrics = StreamMetrics("TokenRelay", "tokenrelay", sink=lines.append)
    world.poster.gone_after = 3
    job = await world.add()
    await world.run(job, ScriptedProvider(["x "] * 1000, delay_s=0.002))
    (line,) = lines
    document = json.loads(line)
    assert document["Transport"] == "websocket" and document["Provider"] == "echo"
    assert document["StreamDisconnected"] == [1.0] and document["TokensAfterDisconnect"][0] > 0


async def test_worker_job_whose_key_may_not_use_the_fallback_keeps_that_through_the_event(world: World) -> None:
    job = dataclasses.replace(await world.add(), fallback=False)
    again = StreamJob.from_event(job.to_event())
    assert again.fallback is False
    older = {k: v for k, v in job.to_event().items() if k != "fallback"}  # queued before the field existed
    assert StreamJob.from_event(older).fallback is True
    with pytest.raises(ValueError, match="fallback"):
        StreamJob.from_event({**job.to_event(), "fallback": "no"})
    provider = ScriptedProvider(["a"])
    await world.run(again, provider)
    assert [r.fallback for r in provider.requests] == [False]
