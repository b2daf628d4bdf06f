"""Stream-health metrics: one CloudWatch EMF document per stream, when it ends.

Powertools' ``Metrics`` keeps one metric set per namespace shared by every
instance, and its ``log_metrics`` decorator never fires under the Lambda Web
Adapter; concurrent streams of different providers would mix dimensions. So
each stream gets its own ``AmazonCloudWatchEMFProvider`` (instance-local
sets), serialized and printed at once: CloudWatch Logs turns the line into
metrics, with no API call on the request path.

Each document carries two dimension sets: ``[Transport, Provider, service]`` for
the breakdowns, and ``[service]`` alone, the whole deployment, which the
template's alarms and dashboard read without a SEARCH (alarms cannot search).

Metrics (dimensions ``Transport``, ``Provider``; ``service`` as Powertools adds):
``StreamStarted``, ``StreamCompleted``, ``StreamCancelled``, ``StreamFailed``
(error code in the ``ErrorCode`` property), ``StreamDisconnected``,
``TimeToFirstToken`` (ms), ``StreamDuration`` (ms), ``OutputTokens``,
``TokensAfterDisconnect``, ``UpstreamRetries`` (retries before the first text) and
``UpstreamFallbacks`` (1 when the fallback model was tried; the target that served
is in the ``ServedBy`` property, ``provider:model``), ``ToolCalls`` (the tool calls the
model made) and ``ReasoningTokens`` (the provider's count, else the reasoning parts
streamed; docs/protocol.md §11). See docs/faults.md.

``RefusalMetrics``: one document per request refused before any stream (401, 403,
429), ``Refusals`` = 1 with the dimension ``Reason`` (``unauthorized``, ``forbidden``,
``model_not_allowed``, ``rate_limited``) and ``service``; ``Transport`` (``http`` or
``websocket``) is a property, not a dimension, so the dashboard reads four plain
metrics. Emitted by ``functions/http/protect.py`` and the WebSocket handlers. A flood
of bad keys costs one log line per request on top of the key lookup (docs/security.md).

``CancelPollFailures``: failed reads of the cancel poller (``cancel_poller.py``), summed per
report (at most one document per 10 s per process), dimension ``service``, the store's error
in the ``Error`` property. Any at all means cancels are not being seen.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from ..events import StreamSummary

log = logging.getLogger("tokenrelay.metrics")

Sink = Callable[[str], None]
SERVICE_DIMENSION = "service"
REFUSAL_REASONS = ("unauthorized", "forbidden", "model_not_allowed", "rate_limited")


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class StreamMetrics:
    """Emit one EMF document per finished stream to ``sink`` (stdout by default)."""

    def __init__(self, namespace: str, service: str, sink: Sink = _stdout) -> None:
        self.namespace = namespace
        self.service = service
        self._sink = sink

    def document(self, s: StreamSummary) -> dict[str, Any]:
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

        emf = AmazonCloudWatchEMFProvider(namespace=self.namespace, service=self.service)
        emf.add_dimension("Transport", s.transport)
        emf.add_dimension("Provider", s.provider)
        emf.add_metric("StreamStarted", "Count", 1)
        emf.add_metric("StreamCompleted", "Count", 1 if s.status == "complete" else 0)
        emf.add_metric("StreamCancelled", "Count", 1 if s.status == "cancelled" else 0)
        emf.add_metric("StreamFailed", "Count", 1 if s.status == "failed" else 0)
        emf.add_metric("StreamDisconnected", "Count", 1 if s.client_gone else 0)
        if s.ttft_ms is not None:
            emf.add_metric("TimeToFirstToken", "Milliseconds", s.ttft_ms)
        emf.add_metric("StreamDuration", "Milliseconds", s.total_time_ms)
        emf.add_metric("OutputTokens", "Count", s.completion_tokens)
        if s.client_gone:
            emf.add_metric("TokensAfterDisconnect", "Count", s.tokens_after_disconnect)
        emf.add_metric("UpstreamRetries", "Count", s.upstream_retries)
        emf.add_metric("UpstreamFallbacks", "Count", 1 if s.upstream_fallback else 0)
        emf.add_metric("ToolCalls", "Count", s.tool_calls)
        emf.add_metric("ReasoningTokens", "Count", s.reasoning_tokens)
        if s.cost_usd is not None:  # US dollars (catalog.prices): the dashboard sums it as spend
            emf.add_metric("StreamCost", "None", s.cost_usd)
        if s.served_provider:
            emf.add_metadata("ServedBy", f"{s.served_provider}:{s.served_model}")
        emf.add_metadata("stream_id", s.stream_id)
        emf.add_metadata("model", s.model)
        if s.error_code:
            emf.add_metadata("ErrorCode", s.error_code)
        if s.cancel_reason:
            emf.add_metadata("CancelReason", s.cancel_reason)
        doc: dict[str, Any] = dict(emf.serialize_metric_set())
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            directive["Dimensions"].append([SERVICE_DIMENSION])
        return doc

    def emit(self, summary: StreamSummary) -> None:
        """Never raises: a metrics problem must not fail a stream."""
        try:
            self._sink(json.dumps(self.document(summary), separators=(",", ":")))
        except Exception:
            log.exception("could not emit metrics for stream %s", summary.stream_id)


class RefusalMetrics:
    """Emit one EMF document per refused request to ``sink`` (stdout by default), at once:
    a refusal has no stream end to wait for, and no decorator flushes under the adapter."""

    def __init__(self, namespace: str, service: str, sink: Sink = _stdout) -> None:
        self.namespace = namespace
        self.service = service
        self._sink = sink

    def document(self, reason: str, transport: str) -> dict[str, Any]:
        if reason not in REFUSAL_REASONS:
            raise ValueError(f"reason: expected one of {', '.join(REFUSAL_REASONS)}, got {reason!r}")
        from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

        emf = AmazonCloudWatchEMFProvider(namespace=self.namespace, service=self.service)
        emf.add_dimension("Reason", reason)
        emf.add_metric("Refusals", "Count", 1)
        emf.add_metadata("Transport", transport)
        return dict(emf.serialize_metric_set())

    def emit(self, reason: str, transport: str) -> None:
        """Never raises: a metrics problem must not change the answer."""
        try:
            self._sink(json.dumps(self.document(reason, transport), separators=(",", ":")))
        except Exception:
            log.exception("could not emit the %s refusal metric", reason)


class CancelPollMetrics:
    """Emit the ``CancelPollFailures`` metric to ``sink`` (stdout by default)."""

    def __init__(self, namespace: str, service: str, sink: Sink = _stdout) -> None:
        self.namespace = namespace
        self.service = service
        self._sink = sink

    def emit(self, failures: int, error: Exception) -> None:
        """Never raises."""
        try:
            from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

            emf = AmazonCloudWatchEMFProvider(namespace=self.namespace, service=self.service)
            emf.add_metric("CancelPollFailures", "Count", failures)
            emf.add_metadata("Error", str(error))
            self._sink(json.dumps(dict(emf.serialize_metric_set()), separators=(",", ":")))
        except Exception:
            log.exception("could not emit the cancel poll failure metric")
