from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import pytest
from aws_xray_sdk.core import AsyncAWSXRayRecorder
from aws_xray_sdk.core.async_context import AsyncContext

from tests.fakes.providers import ScriptedProvider
from tokenrelay import ChatRequest, Message, Settings
from tokenrelay.providers import ProviderRegistry, TextChunk, TracedProvider, traced
from tokenrelay.telemetry.tracing import TraceHeaderMiddleware

REQUEST = ChatRequest(messages=(Message("user", "hi"),), provider="scripted", model="m-1", max_tokens=10)


class CapturingEmitter:
    def __init__(self) -> None:
        self.segments: list[Any] = []

    def send_entity(self, entity: Any) -> None:
        self.segments.append(entity)

    def set_daemon_address(self, address: str) -> None:
        return None

    @property
    def ip(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return 2000


@pytest.fixture(scope="module", autouse=True)
def _close_global_recorder_socket() -> Iterator[None]:
    yield
    # importing aws_xray_sdk.core creates a global recorder with a UDP socket; in Lambda it lives
    # as long as the process, here it would be reported unclosed at interpreter exit
    from aws_xray_sdk.core import xray_recorder

    xray_recorder._emitter._socket.close()


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[AsyncAWSXRayRecorder, CapturingEmitter]]:
    emitter = CapturingEmitter()
    rec = AsyncAWSXRayRecorder()
    rec._emitter._socket.close()  # the default UDP emitter, replaced below
    context = AsyncContext(loop=asyncio.get_running_loop(), use_task_factory=False)
    rec.configure(emitter=emitter, context=context, sampling=False, context_missing="RUNTIME_ERROR")
    yield rec, emitter


async def test_tracing_stream_runs_in_annotated_subsegment_closed_on_early_exit(
    recorder: tuple[AsyncAWSXRayRecorder, CapturingEmitter],
) -> None:
    rec, emitter = recorder
    inner = ScriptedProvider(["a", "b", "c"])
    provider = traced(inner, rec)
    assert isinstance(provider, TracedProvider) and provider.name == "scripted"
    segment = rec.begin_segment("invocation")
    async with aclosing(provider.stream(REQUEST)) as chunks:
        async for chunk in chunks:
            assert chunk == TextChunk("a")
            break  # the engine closes a cancelled stream like this
    assert inner.closed_early == 1
    (sub,) = segment.subsegments
    assert sub.name == "## scripted.stream" and not sub.in_progress
    assert sub.annotations == {"provider": "scripted", "model": "m-1"}
    rec.end_segment()
    assert emitter.segments


def test_tracing_off_outside_lambda_returns_the_provider_itself() -> None:
    registry = ProviderRegistry(Settings.from_env({}))
    assert not Settings.from_env({}).tracing_enabled
    assert type(registry.get("echo")).__name__ == "EchoProvider"
    in_lambda = {"AWS_LAMBDA_FUNCTION_NAME": "f", "API_KEYS_TABLE": "keys"}  # Lambda: API keys unless AUTH_MODE=off
    assert Settings.from_env(in_lambda).tracing_enabled
    assert not Settings.from_env({**in_lambda, "POWERTOOLS_TRACE_DISABLED": "true"}).tracing_enabled


async def test_tracing_middleware_copies_trace_header_for_the_xray_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)
    seen: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(os.environ.get("_X_AMZN_TRACE_ID"))

    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    await TraceHeaderMiddleware(app)({"type": "http", "headers": [(b"x-amzn-trace-id", trace.encode())]}, None, None)
    assert seen == [trace]
