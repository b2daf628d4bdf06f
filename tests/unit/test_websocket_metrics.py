"""Metrics from the WebSocket worker: one EMF document per stream, right outcome, own dimensions.

The SSE equivalent is ``tests/e2e/test_sse_metrics.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.providers import ScriptedProvider
from tests.unit.test_websocket_worker import ENDPOINT, REQUEST, MemoryConnectionStore, Poster, Registry, World
from tokenrelay import Rejected, Settings
from tokenrelay.telemetry.metrics import StreamMetrics
from tokenrelay_ws import environment as common
from tokenrelay_ws import worker
from tokenrelay_ws.job import StreamJob


@pytest.fixture
def metered() -> tuple[World, list[str]]:
    lines: list[str] = []
    svc = common.Services(
        settings=Settings(cancel_poll_s=0.02, configured_providers=frozenset({"echo", "openai"})),
        config=common.WsConfig(flush_interval_s=0.01),
        streams=MemoryStreamStore(),
        connections=MemoryConnectionStore(),
        invoker=None,
        metrics=StreamMetrics("TokenRelay", "tokenrelay-ws", sink=lines.append),
        posters={ENDPOINT: Poster()},
    )
    world = World(svc, svc.streams, svc.connections, svc.posters[ENDPOINT])  # type: ignore[arg-type]
    return world, lines


def values(doc: dict[str, Any]) -> dict[str, float]:
    names = [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    return {n: float(doc[n][0] if isinstance(doc[n], list) else doc[n]) for n in names}


def units(doc: dict[str, Any]) -> dict[str, str]:
    return {m["Name"]: m["Unit"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def outcome(doc: dict[str, Any]) -> tuple[float, float, float, float]:
    v = values(doc)
    return v["StreamCompleted"], v["StreamCancelled"], v["StreamFailed"], v["StreamDisconnected"]


async def test_ws_metrics_completed_stream_counts_latency_tokens_and_dimensions(
    metered: tuple[World, list[str]],
) -> None:
    world, lines = metered
    await world.run(await world.add(), ScriptedProvider(["a ", "b ", "c "]))
    (doc,) = [json.loads(line) for line in lines]
    cw = doc["_aws"]["CloudWatchMetrics"][0]
    assert cw["Namespace"] == "TokenRelay" and cw["Dimensions"] == [["Transport", "Provider", "service"], ["service"]]
    assert (doc["Transport"], doc["Provider"], doc["service"]) == ("websocket", "echo", "tokenrelay-ws")
    assert outcome(doc) == (1, 0, 0, 0) and values(doc)["StreamStarted"] == 1
    assert values(doc)["OutputTokens"] == 3 and values(doc)["TimeToFirstToken"] >= 0
    assert units(doc)["TimeToFirstToken"] == units(doc)["StreamDuration"] == "Milliseconds"
    assert "TokensAfterDisconnect" not in doc and doc["stream_id"] == "s-1"


async def test_ws_metrics_cancelled_stream_carries_reason(metered: tuple[World, list[str]]) -> None:
    world, lines = metered
    task = asyncio.create_task(world.run(await world.add(), ScriptedProvider(["x "] * 1000, delay_s=0.005)))
    await asyncio.sleep(0.1)
    await world.streams.request_cancel("s-1", "client")
    await asyncio.wait_for(task, 2)
    (doc,) = [json.loads(line) for line in lines]
    assert outcome(doc) == (0, 1, 0, 0) and doc["CancelReason"] == "client"


async def test_ws_metrics_failed_stream_carries_error_code(metered: tuple[World, list[str]]) -> None:
    world, lines = metered
    provider = ScriptedProvider(["a ", "b "], fail_after=1, error=Rejected("bad key"))
    await world.run(await world.add(), provider)
    (doc,) = [json.loads(line) for line in lines]
    assert outcome(doc) == (0, 0, 1, 0) and doc["ErrorCode"] == "upstream_rejected"


async def test_ws_metrics_disconnected_stream_counts_tokens_after_disconnect(
    metered: tuple[World, list[str]],
) -> None:
    world, lines = metered
    world.poster.gone_after = 3
    await world.run(await world.add(), ScriptedProvider(["x "] * 1000, delay_s=0.002))
    (doc,) = [json.loads(line) for line in lines]
    assert outcome(doc)[1:] == (1, 0, 1) and doc["CancelReason"] == "disconnect"
    assert values(doc)["TokensAfterDisconnect"] >= 0 and units(doc)["TokensAfterDisconnect"] == "Count"


async def test_ws_metrics_two_concurrent_streams_of_different_providers_do_not_mix(
    metered: tuple[World, list[str]],
) -> None:
    world, lines = metered
    echo_job = await world.add("s-echo", "conn-1")
    await world.add("s-openai", "conn-2")
    openai_job = StreamJob("s-openai", "conn-2", "client-a", ENDPOINT, {**REQUEST, "provider": "openai",
                           "model": "gpt-4o-mini"})  # fmt: skip
    await asyncio.gather(
        worker.run_stream(echo_job, world.svc, Registry(ScriptedProvider(["e "] * 5, delay_s=0.005)), 60.0),  # type: ignore[arg-type]
        worker.run_stream(openai_job, world.svc, Registry(ScriptedProvider(["o "] * 7, delay_s=0.003)), 60.0),  # type: ignore[arg-type]
    )
    docs = {d["stream_id"]: d for d in (json.loads(line) for line in lines)}
    assert (docs["s-echo"]["Provider"], values(docs["s-echo"])["OutputTokens"]) == ("echo", 5)
    assert (docs["s-openai"]["Provider"], values(docs["s-openai"])["OutputTokens"]) == ("openai", 7)
    assert all(d["Transport"] == "websocket" and outcome(d) == (1, 0, 0, 0) for d in docs.values())
