"""What the WebSocket handlers and the worker share, made once per execution environment.

- ``WsConfig``: the WebSocket settings, read from the environment once.
- ``services()``: settings, the deployment's stores, guard parts and metrics, wired as the
  HTTP app wires them (``tokenrelay.wiring``), plus the connection store, the worker
  invoker and the ``@connections`` posters (boto3 clients created once).
- ``run(coro)``: runs the async core on this thread's event loop. Lambda runs
  one invocation at a time per environment, so the loop is kept across warm
  invocations, and with it the providers' pooled HTTP connections (an HTTP
  client is bound to the loop it first ran on; ``providers()`` is per loop).
  The local gateway calls handlers from a thread pool: one loop per thread.
- ``prepare(worker=...)``: all of the above at init (the Lambda entry modules call it), so that
  Lambda's init phase, and a SnapStart snapshot, carry it and the first invocation builds nothing.
- ``reset()``: closes every loop and forgets everything (tests, gateway shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tokenrelay import ProviderRegistry, Settings, StreamFinished, StreamNotFound, StreamStore
from tokenrelay.errors import ConnectionGone
from tokenrelay.protection import Authenticator, Guard, RateLimiter
from tokenrelay.resume import ResumeStores
from tokenrelay.stores import ConnectionStore
from tokenrelay.telemetry.metrics import RefusalMetrics, StreamMetrics
from tokenrelay.transports import MAX_FRAME_BYTES, ConnectionPoster

log = logging.getLogger("tokenrelay.websocket")
T = TypeVar("T")
OK: dict[str, Any] = {"statusCode": 200}


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float = float("inf")) -> float:
    raw = env.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}: expected a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name}: must be between {low} and {high}, got {raw!r}")
    return value


@dataclass(frozen=True)
class WsConfig:
    connections_table: str = "tokenrelay-connections"
    worker_function_name: str = "tokenrelay-worker"
    connection_ttl_s: int = 3 * 3600  # API Gateway closes connections after 2 h
    max_streams: int = 8  # concurrent streams per connection
    flush_interval_s: float = 0.05  # the coalescing window just after the first text
    max_flush_interval_s: float = 0.2  # ... widened to this once the stream flows (docs/cost.md)
    flush_ramp_s: float = 1.0  # ... over this long
    coalesce: bool = True
    max_frame_bytes: int = MAX_FRAME_BYTES
    deadline_margin_s: float = 3.0  # the stream ends this long before the Lambda timeout; posting goes on

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WsConfig:
        env = os.environ if env is None else env
        return cls(
            connections_table=env.get("CONNECTIONS_TABLE") or cls.connections_table,
            worker_function_name=env.get("WORKER_FUNCTION_NAME") or cls.worker_function_name,
            connection_ttl_s=int(_number(env, "CONNECTION_TTL_S", cls.connection_ttl_s, 7200)),
            max_streams=int(_number(env, "WS_MAX_STREAMS", cls.max_streams, 1, 100)),
            flush_interval_s=_number(env, "WS_FLUSH_MS", 50, 0, 1000) / 1000,
            max_flush_interval_s=_number(env, "WS_FLUSH_MAX_MS", 200, 0, 1000) / 1000,
            flush_ramp_s=_number(env, "WS_FLUSH_RAMP_MS", 1000, 0, 60_000) / 1000,
            coalesce=env.get("WS_COALESCE", "1").lower() not in ("0", "false", "off", "no"),
            max_frame_bytes=int(_number(env, "WS_MAX_FRAME_BYTES", cls.max_frame_bytes, 1024, 32_768)),
            deadline_margin_s=_number(env, "WORKER_DEADLINE_MARGIN_MS", 3000, 100) / 1000,
        )


@dataclass
class Services:
    settings: Settings
    config: WsConfig
    streams: StreamStore
    connections: ConnectionStore
    invoker: Any  # poster.WorkerInvoker
    metrics: StreamMetrics | None = None  # one EMF document per stream, when METRICS_ENABLED
    authenticator: Authenticator | None = None  # AUTH_MODE=api_key: $connect checks the key, chat re-checks it
    limiter: RateLimiter | None = None  # RATE_LIMITS_TABLE: per-key requests per minute and concurrent streams
    refusals: RefusalMetrics | None = None  # the Refusals metric (401/403/429), when METRICS_ENABLED
    posters: dict[str, ConnectionPoster] = field(default_factory=dict)  # by endpoint
    resume: ResumeStores | None = None  # the output log and lease stores; None: resume is off

    def poster(self, endpoint: str) -> ConnectionPoster:
        poster = self.posters.get(endpoint)
        if poster is None:
            from .poster import ApiGatewayPoster

            poster = self.posters.setdefault(endpoint, ApiGatewayPoster.for_endpoint(endpoint))
        return poster

    @property
    def guard(self) -> Guard:
        """Admission, as over HTTP (``tokenrelay.protection``), from this environment's parts."""
        return Guard(self.settings, self.authenticator, self.limiter, self.refusals, transport="websocket")


_lock = threading.Lock()
_services: Services | None = None
_local = threading.local()
_runtimes: list[_Runtime] = []


def services() -> Services:
    global _services
    with _lock:
        if _services is None:
            from tokenrelay.stores.dynamodb import DynamoConnectionStore
            from tokenrelay.telemetry.logging import configure
            from tokenrelay.wiring import Deployment

            from .poster import LambdaInvoker

            settings, config = Settings.from_env(), WsConfig.from_env()
            configure(settings)  # JSON logs (Powertools Logger) in Lambda; plain text locally
            deployment = Deployment.from_settings(settings, transport="websocket")
            guard = deployment.guard
            _services = Services(
                settings=settings,
                config=config,
                streams=deployment.store,
                connections=DynamoConnectionStore(config.connections_table),
                invoker=LambdaInvoker(config.worker_function_name),
                metrics=deployment.metrics,
                authenticator=guard.authenticator,
                limiter=guard.limiter,
                refusals=guard.refusals,
                resume=deployment.resume,
            )
        return _services


def prepare(*, worker: bool = False) -> Services:
    """Build this environment's services at init. The worker also creates the configured
    providers (their SDKs and clients, ``ProviderRegistry.prepare``) on this thread's loop and
    loads the ``@connections`` client's model; its endpoint comes with each invocation."""
    svc = services()
    if worker:
        providers(svc.settings).prepare()
        from .poster import ApiGatewayPoster

        ApiGatewayPoster.preload()
    return svc


def install(svc: Services) -> None:
    """Use ``svc`` instead of the environment's services (tests, benchmarks)."""
    global _services
    with _lock:
        _services = svc


class _Runtime:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.providers: ProviderRegistry | None = None


def _runtime() -> _Runtime:
    runtime: _Runtime | None = getattr(_local, "runtime", None)
    if runtime is None or runtime.loop.is_closed():
        runtime = _local.runtime = _Runtime()
        with _lock:
            _runtimes.append(runtime)
    return runtime


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on this thread's long-lived event loop."""
    return _runtime().loop.run_until_complete(coro)


def providers(settings: Settings) -> ProviderRegistry:
    """This loop's provider registry (providers hold loop-bound HTTP clients)."""
    runtime = _runtime()
    if runtime.providers is None:
        runtime.providers = ProviderRegistry(settings)
    return runtime.providers


def reset() -> None:
    """Close every thread's loop and providers and forget the services (from any thread)."""
    global _services
    with _lock:
        runtimes, _runtimes[:] = list(_runtimes), []
        _services = None

    def close_all() -> None:
        for runtime in runtimes:
            if runtime.loop.is_closed() or runtime.loop.is_running():
                continue
            if runtime.providers is not None:
                runtime.loop.run_until_complete(runtime.providers.aclose())
            runtime.loop.run_until_complete(runtime.loop.shutdown_default_executor())
            runtime.loop.close()

    closer = threading.Thread(target=close_all, name="ws-reset")  # this thread may be running a loop
    closer.start()
    closer.join()


# -- helpers shared by the handlers -------------------------------------------


async def reply(poster: ConnectionPoster, connection_id: str, data: bytes) -> bool:
    """Post ``data`` to the caller; False (and no exception) if it could not be delivered."""
    try:
        await poster.post(connection_id, data)
    except ConnectionGone:
        return False
    except Exception as exc:
        log.error("reply to %s failed: %r", connection_id, exc)
        return False
    return True


async def request_cancel_all(streams: StreamStore, stream_ids: Iterable[str], reason: str) -> int:
    """Set the cancel flag of each stream still active; the number of streams flagged."""

    async def one(stream_id: str) -> bool:
        try:
            await streams.request_cancel(stream_id, reason)
        except (StreamNotFound, StreamFinished):
            return False
        return True

    results = await asyncio.gather(*(one(s) for s in stream_ids), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            log.error("cancel (%s) failed: %r", reason, result)
    return sum(1 for r in results if r is True)
