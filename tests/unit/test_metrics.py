from __future__ import annotations

import json
from typing import Any

import pytest

from tokenrelay.events import StreamSummary
from tokenrelay.telemetry.metrics import REFUSAL_REASONS, RefusalMetrics, StreamMetrics


def emitted(*summaries: StreamSummary) -> list[dict[str, Any]]:
    lines: list[str] = []
    metrics = StreamMetrics("TokenRelay", "tokenrelay-test", sink=lines.append)
    for s in summaries:
        metrics.emit(s)
    return [json.loads(line) for line in lines]


def values(doc: dict[str, Any]) -> dict[str, float]:
    names = [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    out = {}
    for n in names:  # EMF allows a value or a list of values; one stream = one value
        v = doc[n]
        assert not isinstance(v, list) or len(v) == 1, (n, v)
        out[n] = v[0] if isinstance(v, list) else v
    return out


def units(doc: dict[str, Any]) -> dict[str, str]:
    return {m["Name"]: m["Unit"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def summary(**kw: Any) -> StreamSummary:
    base: dict[str, Any] = {
        "stream_id": "s1",
        "transport": "sse",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "status": "complete",
        "completion_tokens": 12,
        "total_time_ms": 900,
        "ttft_ms": 120,
    }
    return StreamSummary(**{**base, **kw})


def test_metrics_completed_stream_emits_counts_latency_and_dimensions() -> None:
    (doc,) = emitted(summary())
    cw = doc["_aws"]["CloudWatchMetrics"][0]
    assert cw["Namespace"] == "TokenRelay"
    assert sorted(cw["Dimensions"][0]) == ["Provider", "Transport", "service"]
    assert (doc["Transport"], doc["Provider"], doc["service"]) == ("sse", "openai", "tokenrelay-test")
    assert values(doc) == {
        "StreamStarted": 1.0,
        "StreamCompleted": 1.0,
        "StreamCancelled": 0.0,
        "StreamFailed": 0.0,
        "StreamDisconnected": 0.0,
        "TimeToFirstToken": 120.0,
        "StreamDuration": 900.0,
        "OutputTokens": 12.0,
        "UpstreamRetries": 0.0,
        "UpstreamFallbacks": 0.0,
        "ToolCalls": 0.0,
        "ReasoningTokens": 0.0,
    }
    assert "ServedBy" not in doc
    assert units(doc)["TimeToFirstToken"] == "Milliseconds" and units(doc)["OutputTokens"] == "Count"
    assert doc["stream_id"] == "s1"


@pytest.mark.parametrize(
    ("kw", "flag"),
    [
        ({"status": "cancelled", "cancel_reason": "client"}, "StreamCancelled"),
        ({"status": "failed", "error_code": "rate_limited"}, "StreamFailed"),
    ],
)
def test_metrics_cancelled_or_failed_stream_counts_once(kw: dict[str, Any], flag: str) -> None:
    (doc,) = emitted(summary(**kw))
    assert values(doc)[flag] == 1.0 and values(doc)["StreamCompleted"] == 0.0
    if flag == "StreamFailed":
        assert doc["ErrorCode"] == "rate_limited"


def test_metrics_disconnected_stream_reports_tokens_after_disconnect() -> None:
    (doc,) = emitted(
        summary(status="cancelled", cancel_reason="disconnect", client_gone=True, tokens_after_disconnect=3)
    )
    assert values(doc)["StreamDisconnected"] == 1.0 and values(doc)["TokensAfterDisconnect"] == 3.0


def test_metrics_stream_without_text_has_no_ttft() -> None:
    (doc,) = emitted(summary(ttft_ms=None, completion_tokens=0))
    assert "TimeToFirstToken" not in values(doc)


def test_metrics_two_streams_of_different_providers_do_not_mix_dimensions() -> None:
    a, b = emitted(summary(provider="openai", transport="sse"), summary(provider="anthropic", transport="websocket"))
    assert (a["Provider"], a["Transport"]) == ("openai", "sse")
    assert (b["Provider"], b["Transport"]) == ("anthropic", "websocket")
    assert values(a)["StreamStarted"] == 1.0 and values(b)["StreamStarted"] == 1.0


def test_metrics_sink_failure_never_raises() -> None:
    def broken(_: str) -> None:
        raise OSError("stdout closed")

    StreamMetrics("TokenRelay", "svc", sink=broken).emit(summary())


def test_metrics_upstream_retries_fallback_and_serving_model_are_reported() -> None:
    upstream = {"upstream_retries": 2, "upstream_fallback": True}
    (doc,) = emitted(summary(**upstream, served_provider="anthropic", served_model="claude-haiku-4-5"))
    assert values(doc)["UpstreamRetries"] == 2.0 and values(doc)["UpstreamFallbacks"] == 1.0
    assert doc["ServedBy"] == "anthropic:claude-haiku-4-5" and doc["Provider"] == "openai"  # as requested


@pytest.mark.parametrize("reason", REFUSAL_REASONS)
def test_refusal_metric_counts_one_by_reason_with_the_transport_as_a_property(reason: str) -> None:
    lines: list[str] = []
    RefusalMetrics("TokenRelay", "tokenrelay-test", sink=lines.append).emit(reason, "websocket")
    (doc,) = [json.loads(line) for line in lines]
    cw = doc["_aws"]["CloudWatchMetrics"]
    assert cw == [{"Namespace": "TokenRelay", "Dimensions": [["Reason", "service"]], "Metrics": cw[0]["Metrics"]}]
    assert values(doc) == {"Refusals": 1.0} and units(doc) == {"Refusals": "Count"}
    assert (doc["Reason"], doc["service"], doc["Transport"]) == (reason, "tokenrelay-test", "websocket")


def test_refusal_metric_with_an_unknown_reason_or_a_broken_sink_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    lines: list[str] = []
    RefusalMetrics("TokenRelay", "svc", sink=lines.append).emit("invalid_request", "http")  # not a refusal
    assert lines == [] and "invalid_request" in caplog.text

    def broken(_: str) -> None:
        raise OSError("stdout closed")

    RefusalMetrics("TokenRelay", "svc", sink=broken).emit("forbidden", "http")


def test_metrics_count_tool_calls_and_reasoning_tokens() -> None:
    (doc,) = emitted(summary(tool_calls=2, reasoning_tokens=150))
    assert values(doc)["ToolCalls"] == 2.0 and values(doc)["ReasoningTokens"] == 150.0
    assert units(doc)["ToolCalls"] == "Count" and units(doc)["ReasoningTokens"] == "Count"


def test_metrics_stream_cost_is_emitted_in_dollars_only_when_priced() -> None:
    priced, unpriced = emitted(summary(cost_usd=0.00123), summary())
    assert values(priced)["StreamCost"] == pytest.approx(0.00123) and units(priced)["StreamCost"] == "None"
    assert "StreamCost" not in values(unpriced)
