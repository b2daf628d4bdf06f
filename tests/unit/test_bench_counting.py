"""The pure parts of the Lambda benchmarks: what the cost bench makes of counted calls, the
DynamoDB meter's reads, import-time lines, profile buckets (scripts/benchmarks/)."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.benchmarks import cold_path, cost_paths, cost_report, metered_dynamodb, per_token


def write(table: str, before: int, after: int, status: int = 200, error: str = "") -> dict[str, Any]:
    items = [{"table": table, "before": before, "after": after, "transactional": False}]
    return {"op": "UpdateItem", "status": status, "error": error, "items": items, "read": []}


def test_dynamodb_units_count_what_dynamodb_bills() -> None:
    records = [
        write("streams", 0, 1500),  # 2 WRU
        write("limits", 300, 300, 400, "ConditionalCheckFailedException"),  # refused by its condition: still 1
        write("streams", 0, 300, 400, "AccessDeniedException"),  # refused by IAM: nothing
        {"op": "GetItem", "status": 200, "error": "", "items": [],
         "read": [{"table": "streams", "size": 5000, "found": True, "consistent": False}]},  # 1.0 RRU
        {"op": "GetItem", "status": 200, "error": "", "items": [],
         "read": [{"table": "keys", "size": 0, "found": False, "consistent": True}]},  # 1.0: missing, strong
    ]  # fmt: skip
    rru, wru, tables = cost_report.dynamodb_units(records)
    assert (rru, wru) == (2.0, 3.0)
    assert tables == {"streams": (1.0, 2.0), "limits": (0.0, 1.0), "keys": (1.0, 0.0)}


def test_a_websocket_bill_from_counts() -> None:
    counts = cost_paths.Counts("websocket", "WebSocket", streams=2, memory_mb=512)
    counts.invocations["WorkerFunction"] = [5.0, 5.0]
    counts.invocations["ConnectFunction"] = [0.05, 0.05]
    counts.ws_posts, counts.ws_max_post, counts.ws_client_messages = 10, 100, 2
    counts.connection_s = [61.0, 30.0]
    counts.log_bytes = {"worker": 2000}
    lines = {(line.service, line.item): line.quantity for line in cost_report.bill(counts)}
    assert lines[("Lambda", "requests")] == 2
    assert lines[("Lambda", "GB-seconds")] == pytest.approx((2.5 + 0.025) * 2 / 2)
    assert lines[("API Gateway", "WebSocket messages (32 KB units)")] == 6  # (10 posts + 2 chats) / 2
    assert lines[("API Gateway", "connection minutes")] == 1.5  # 2 + 1 minutes over 2 streams
    platform = cost_report.PLATFORM_BYTES * 4  # four invocations' START, END, REPORT, XRAY lines
    assert lines[("CloudWatch Logs", "GB ingested (logs, EMF, platform lines)")] == pytest.approx(
        (2000 + platform) / 2 / 1e9
    )


def test_posts_over_32_kb_are_billed_by_their_size() -> None:
    counts = cost_paths.Counts(
        "websocket", "WebSocket", streams=1, ws_posts=2, ws_post_bytes=70_000, ws_max_post=40_000
    )
    lines = {(line.service, line.item): line.quantity for line in cost_report.bill(counts)}
    assert lines[("API Gateway", "WebSocket messages (32 KB units)")] == 3


def test_leavers_are_the_asked_share_spread_over_the_run() -> None:
    assert cost_paths.leavers(20, 0.0) == set()
    chosen = cost_paths.leavers(20, 0.2)
    assert len(chosen) == 4 and all(0 <= i < 20 for i in chosen)


def test_a_client_notes_tokens_latency_and_its_stream_id() -> None:
    client = cost_paths.Client(leave_after=2)
    assert not client.read(b'event: start\ndata: {"stream_id": "3f0c6f3e-8f0b-4b8e-9d1e-3c2a1b0c9d8e"}\n\n')
    assert client.read(b'data: {"text": "T1000000 T1000001 "}\n\n')  # two tokens: it leaves
    assert client.tokens == 2 and client.stream_id == "3f0c6f3e-8f0b-4b8e-9d1e-3c2a1b0c9d8e"
    assert len(client.latencies) == 2 and client.left is not None


def test_emf_durations_read_powertools_lists() -> None:
    lines = [
        '{"_aws": {}, "stream_id": "s1", "StreamDuration": [5012.0]}',
        '{"_aws": {}, "StreamDuration": 1}',
        "plain",
    ]
    assert cost_paths.emf_durations(lines) == {"s1": pytest.approx(5.012)}


def test_the_meter_reads_what_a_read_returned_or_missed() -> None:
    item = {"pk": {"S": "abc"}}
    assert metered_dynamodb.reads("GetItem", {"TableName": "t"}, {}) == [
        {"table": "t", "size": 0, "found": False, "consistent": False}
    ]
    batch = metered_dynamodb.reads(
        "BatchGetItem",
        {"RequestItems": {"t": {"Keys": [item, item, item], "ConsistentRead": True}}},
        {"Responses": {"t": [item]}, "UnprocessedKeys": {"t": {"Keys": [item]}}},
    )
    assert batch == [
        {"table": "t", "size": 5, "found": True, "consistent": True},
        {"table": "t", "size": 0, "found": False, "consistent": True},  # asked, not unprocessed, not found
    ]


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |     pydantic_core._pydantic_core
import time:       300 |        400 |   pydantic.main
import time:        50 |        450 | fastapi
import time:      1200 |       1200 | openai
some other line
"""


def test_import_time_lines_by_package_and_top_level() -> None:
    imports = cold_path.parse(IMPORTTIME.splitlines())
    assert [(i.module, i.depth) for i in imports] == [
        ("pydantic_core._pydantic_core", 2),
        ("pydantic.main", 1),
        ("fastapi", 0),
        ("openai", 0),
    ]
    assert cold_path.by_package(imports) == {"openai": 1200, "pydantic": 300, "pydantic_core": 100, "fastapi": 50}
    assert [i.module for i in cold_path.top_level(imports)] == ["openai", "fastapi"]


def test_profile_samples_go_to_their_leaf_most_named_part() -> None:
    signing = "run (threading.py:1);_worker (concurrent/futures/thread.py:2);add_auth (botocore/auth.py:3)"
    provider_json = "handler (worker.py:1);stream (tokenrelay/providers/openai.py:2);loads (json/__init__.py:3)"
    loop = "handler (worker.py:1);_run_once (asyncio/base_events.py:2)"
    assert per_token.bucket(signing).startswith("boto3 calls")
    assert per_token.bucket(provider_json).startswith("provider read")
    assert per_token.bucket(loop) == "event loop, other"
    shares = dict(per_token.profile_table(f"{signing} 3\n{loop} 1\n"))
    assert shares == {per_token.bucket(signing): 0.75, "event loop, other": 0.25}


def test_calls_by_table_and_operation_per_stream() -> None:
    records = [write("streams", 0, 10), write("streams", 10, 20), write("limits", 0, 5)]
    assert cost_report.calls_by_op(records, 2) == {"streams UpdateItem": 1.0, "limits UpdateItem": 0.5}
