"""The composition root: a deployment's stores, guard and metrics, made once per execution
environment, the same way for every function (the HTTP app and the WebSocket handlers).

``Deployment.from_settings`` is the one place that turns settings into DynamoDB stores
(``stores.dynamodb``), the admission guard (``protection``), the resume stores and the
metrics. Tests build a ``Deployment`` (or pass its parts) with fakes instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .protection import Guard
from .resume import ResumeStores
from .settings import Settings
from .stores.streams import StreamStore
from .telemetry.metrics import StreamMetrics

__all__ = ["Deployment"]

log = logging.getLogger("tokenrelay")


@dataclass(frozen=True)
class Deployment:
    settings: Settings
    store: StreamStore
    guard: Guard
    resume: ResumeStores | None = None  # None: RESUME_GRACE_S=0 or no OUTPUT_LOG_TABLE (stop on disconnect)
    metrics: StreamMetrics | None = None  # None: METRICS_ENABLED=false

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: str,
        store: StreamStore | None = None,
        guard: Guard | None = None,
        metrics: StreamMetrics | None = None,
    ) -> Deployment:
        """Every store of the deployment not given (each creates its boto3 client now, at cold start)."""
        from .stores import dynamodb

        if store is None:
            store = dynamodb.from_settings(settings)
        if guard is None:
            if not settings.auth_enabled:
                log.warning("AUTH_MODE=off: every route is open to anyone who can reach it")
            keys = dynamodb.DynamoApiKeyStore(settings.api_keys_table) if settings.auth_enabled else None
            limits = dynamodb.DynamoRateLimitStore(settings.rate_limits_table) if settings.rate_limits_table else None
            guard = Guard.build(settings, keys, limits, transport=transport)
        resume = None
        if settings.resume_enabled:
            log_store = dynamodb.DynamoOutputLog(settings.output_log_table)
            attachments = dynamodb.DynamoAttachments(settings.streams_table)
            chats = dynamodb.DynamoChats(settings.streams_table, ttl_s=settings.stream_ttl_s)
            resume = ResumeStores(settings, log_store, attachments, chats)
        if metrics is None and settings.metrics_enabled:
            metrics = StreamMetrics(settings.metrics_namespace, settings.service_name)
        return cls(settings, store, guard, resume, metrics)
