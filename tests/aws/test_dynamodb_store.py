"""``DynamoStreamStore`` against moto, on the table schema of ``template.yaml``."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.aws.conftest import FAKE_SECRET, REGION, STREAMS_TABLE
from tests.aws.schema import TableSpec, create_tables, load_template
from tokenrelay import Settings, StoreUnavailable, StreamFinished, StreamNotFound, StreamOutcome, StreamRecord
from tokenrelay.stores.dynamodb import PARTITION_KEY, TTL_ATTRIBUTE, DynamoStreamStore, from_settings

NOW = 1_760_000_000.25


def make_record(stream_id: str = "s-1", **overrides: Any) -> StreamRecord:
    fields: dict[str, Any] = {
        "stream_id": stream_id,
        "owner": "client-1",
        "transport": "sse",
        "provider": "echo",
        "model": "echo-1",
        "created_at": NOW,
        "updated_at": NOW,
        "expires_at": int(NOW) + 3600,
    }
    return StreamRecord(**(fields | overrides))


COMPLETE = StreamOutcome(
    status="complete",
    completion_tokens=42,
    prompt_tokens=7,
    finish_reason="stop",
    ttft_ms=120,
    total_time_ms=900,
)


@pytest.fixture
def store(dynamodb: Any) -> DynamoStreamStore:
    return DynamoStreamStore(STREAMS_TABLE, client=dynamodb)


def raw_item(client: Any, stream_id: str) -> dict[str, Any]:
    item: dict[str, Any] = client.get_item(
        TableName=STREAMS_TABLE, Key={PARTITION_KEY: {"S": stream_id}}, ConsistentRead=True
    )["Item"]
    return item


# -- create / get ---------------------------------------------------------------


async def test_create_new_record_round_trips_through_get(store: DynamoStreamStore) -> None:
    record = make_record()
    await store.create(record)
    assert await store.get("s-1") == record


async def test_create_existing_id_raises_value_error_and_keeps_first(store: DynamoStreamStore) -> None:
    await store.create(make_record(owner="first"))
    with pytest.raises(ValueError, match="already exists"):
        await store.create(make_record(owner="second"))
    got = await store.get("s-1")
    assert got is not None and got.owner == "first"


async def test_get_unknown_id_returns_none(store: DynamoStreamStore) -> None:
    assert await store.get("nope") is None


async def test_create_record_writes_integer_ttl_attribute(store: DynamoStreamStore, dynamodb: Any) -> None:
    await store.create(make_record())
    item = raw_item(dynamodb, "s-1")
    assert item[TTL_ATTRIBUTE] == {"N": str(int(NOW) + 3600)}
    assert item["cancel_requested"] == {"BOOL": False}
    assert item["status"] == {"S": "active"}


async def test_create_record_without_times_fills_now_and_ttl(dynamodb: Any) -> None:
    store = DynamoStreamStore(STREAMS_TABLE, client=dynamodb, ttl_s=600)
    before = time.time()
    await store.create(make_record(created_at=0.0, updated_at=0.0, expires_at=0))
    got = await store.get("s-1")
    assert got is not None
    assert before <= got.created_at <= time.time()
    assert got.updated_at == got.created_at
    assert got.expires_at == int(got.created_at) + 600


async def test_create_record_with_none_fields_omits_them(store: DynamoStreamStore, dynamodb: Any) -> None:
    await store.create(make_record())
    item = raw_item(dynamodb, "s-1")
    for absent in ("cancel_reason", "prompt_tokens", "completion_tokens", "finish_reason", "error_code", "ttft_ms"):
        assert absent not in item


# -- cancellation ---------------------------------------------------------------


async def test_cancel_requested_new_stream_returns_false(store: DynamoStreamStore) -> None:
    await store.create(make_record())
    assert await store.cancel_requested("s-1") is False


async def test_cancel_requested_unknown_id_returns_false(store: DynamoStreamStore) -> None:
    assert await store.cancel_requested("nope") is False


async def test_request_cancel_active_stream_sets_flag(store: DynamoStreamStore) -> None:
    await store.create(make_record())
    await store.request_cancel("s-1", "client")
    assert await store.cancel_requested("s-1") is True
    got = await store.get("s-1")
    assert got is not None
    assert (got.status, got.cancel_requested, got.cancel_reason) == ("active", True, "client")
    assert got.updated_at > NOW


async def test_request_cancel_twice_while_active_succeeds_and_keeps_first_reason(store: DynamoStreamStore) -> None:
    await store.create(make_record())
    await store.request_cancel("s-1", "client")
    await store.request_cancel("s-1", "timeout")
    got = await store.get("s-1")
    assert got is not None and (got.cancel_requested, got.cancel_reason) == (True, "client")


async def test_request_cancel_unknown_id_raises_stream_not_found(store: DynamoStreamStore, dynamodb: Any) -> None:
    with pytest.raises(StreamNotFound) as caught:
        await store.request_cancel("nope")
    assert caught.value.stream_id == "nope"
    assert "Item" not in dynamodb.get_item(TableName=STREAMS_TABLE, Key={PARTITION_KEY: {"S": "nope"}})


@pytest.mark.parametrize("status", ["complete", "cancelled", "failed"])
async def test_request_cancel_finished_stream_raises_stream_finished_with_status(
    store: DynamoStreamStore, status: Any
) -> None:
    await store.create(make_record())
    assert await store.finish("s-1", StreamOutcome(status=status, completion_tokens=1))
    with pytest.raises(StreamFinished) as caught:
        await store.request_cancel("s-1")
    assert (caught.value.stream_id, caught.value.status) == ("s-1", status)
    assert await store.cancel_requested("s-1") is False


# -- finish -----------------------------------------------------------------------


async def test_finish_active_stream_stores_outcome(store: DynamoStreamStore) -> None:
    await store.create(make_record())
    assert await store.finish("s-1", COMPLETE) is True
    got = await store.get("s-1")
    assert got is not None
    assert got.status == "complete"
    assert (got.completion_tokens, got.prompt_tokens, got.finish_reason) == (42, 7, "stop")
    assert (got.ttft_ms, got.total_time_ms) == (120, 900)
    assert got.created_at == NOW and got.updated_at > NOW


async def test_finish_twice_returns_false_and_keeps_first_outcome(store: DynamoStreamStore) -> None:
    await store.create(make_record())
    assert await store.finish("s-1", COMPLETE) is True
    second = StreamOutcome(status="failed", completion_tokens=3, error_code="upstream_unavailable")
    assert await store.finish("s-1", second) is False
    got = await store.get("s-1")
    assert got is not None
    assert (got.status, got.completion_tokens, got.error_code) == ("complete", 42, None)


async def test_finish_unknown_id_returns_false_and_creates_nothing(store: DynamoStreamStore) -> None:
    assert await store.finish("nope", COMPLETE) is False
    assert await store.get("nope") is None


async def test_finish_unless_cancelled_active_stream_is_written_with_last_seq(store: DynamoStreamStore) -> None:
    await store.create(make_record())
    assert await store.finish_unless_cancelled("s-1", replace(COMPLETE, last_seq=40)) is None
    got = await store.get("s-1")
    assert got is not None and (got.status, got.last_seq) == ("complete", 40)


async def test_finish_unless_cancelled_after_accepted_cancel_writes_nothing(store: DynamoStreamStore) -> None:
    await store.create(make_record())
    await store.request_cancel("s-1", "client")
    state = await store.finish_unless_cancelled("s-1", COMPLETE)
    assert state is not None and state.cancel_requested and state.cancel_reason == "client"
    assert state.status == "active"
    got = await store.get("s-1")
    assert got is not None and got.status == "active"  # the caller decides: cancelled, as the cancel said
    assert await store.finish("s-1", replace(COMPLETE, status="cancelled", cancel_reason="client")) is True
    with pytest.raises(StreamFinished):
        await store.request_cancel("s-1")  # from now on a cancel is 409


async def test_finish_unless_cancelled_ended_or_unknown_stream_says_so(store: DynamoStreamStore) -> None:
    await store.create(make_record())
    await store.finish("s-1", COMPLETE)
    ended = await store.finish_unless_cancelled("s-1", COMPLETE)
    assert ended is not None and ended.status == "complete"
    missing = await store.finish_unless_cancelled("nope", COMPLETE)
    assert missing is not None and missing.status == "missing"


async def test_finish_with_active_status_raises_value_error(store: DynamoStreamStore) -> None:
    await store.create(make_record())
    with pytest.raises(ValueError, match="not a final status"):
        await store.finish("s-1", StreamOutcome(status="active", completion_tokens=0))


async def test_create_over_finished_stream_is_refused_status_stays_final(store: DynamoStreamStore) -> None:
    await store.create(make_record())
    await store.finish("s-1", COMPLETE)
    with pytest.raises(ValueError):
        await store.create(make_record())
    got = await store.get("s-1")
    assert got is not None and got.status == "complete"


async def test_finish_none_outcome_fields_are_omitted(store: DynamoStreamStore, dynamodb: Any) -> None:
    await store.create(make_record())
    await store.finish("s-1", StreamOutcome(status="cancelled", completion_tokens=5, cancel_reason="timeout"))
    item = raw_item(dynamodb, "s-1")
    assert item["status"] == {"S": "cancelled"}
    assert item["completion_tokens"] == {"N": "5"}
    assert item["cancel_reason"] == {"S": "timeout"}
    for absent in ("prompt_tokens", "finish_reason", "error_code", "ttft_ms", "total_time_ms"):
        assert absent not in item, absent


# -- failures and threading ---------------------------------------------------------


async def test_store_unreachable_endpoint_raises_store_unavailable_fast(closed_port: int) -> None:
    client = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{closed_port}",
        config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"total_max_attempts": 1}),
    )
    store = DynamoStreamStore(STREAMS_TABLE, client=client)
    calls = [
        store.create(make_record()),
        store.get("s-1"),
        store.cancel_requested("s-1"),
        store.request_cancel("s-1"),
        store.finish("s-1", COMPLETE),
    ]
    started = time.monotonic()
    for call in calls:
        with pytest.raises(StoreUnavailable) as caught:
            await call
        assert FAKE_SECRET not in caught.value.message and "testing" not in caught.value.message
        assert caught.value.__cause__ is not None
    assert time.monotonic() - started < 5.0
    store.close()


async def test_store_missing_table_raises_store_unavailable(dynamodb: Any) -> None:
    store = DynamoStreamStore("no-such-table", client=dynamodb)
    with pytest.raises(StoreUnavailable, match="ResourceNotFoundException"):
        await store.get("s-1")


async def test_store_calls_run_off_the_event_loop_thread() -> None:
    seen: list[int] = []

    class RecordingClient:
        def get_item(self, **kwargs: Any) -> dict[str, Any]:
            seen.append(threading.get_ident())
            return {}

    store = DynamoStreamStore(STREAMS_TABLE, client=RecordingClient())
    assert await store.get("s-1") is None
    assert seen and seen[0] != threading.get_ident()


# -- real HTTP: moto's server mode, endpoint from the environment ------------------------


async def test_store_over_moto_server_works_across_instances(
    moto_server: str, monkeypatch: pytest.MonkeyPatch, streams_spec: TableSpec
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_server)
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # as in Lambda, AWS_REGION alone must do
    monkeypatch.setenv("STREAMS_TABLE", "tokenrelay-streams-http")
    admin = boto3.client("dynamodb", region_name=REGION)
    template = load_template()
    assert create_tables(admin, template)["StreamsTable"] == "tokenrelay-streams-http"
    assert create_tables(admin, template)["StreamsTable"] == "tokenrelay-streams-http"  # idempotent
    ttl = admin.describe_time_to_live(TableName="tokenrelay-streams-http")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", streams_spec.ttl_attribute)

    settings = Settings(streams_table="tokenrelay-streams-http")
    producer, canceller = from_settings(settings), from_settings(settings)  # two "instances"
    try:
        record = make_record("s-http")
        await producer.create(record)
        await canceller.request_cancel("s-http", "client")
        assert await producer.cancel_requested("s-http") is True
        assert await producer.finish("s-http", StreamOutcome(status="cancelled", completion_tokens=3)) is True
        with pytest.raises(StreamFinished) as caught:
            await canceller.request_cancel("s-http")
        assert caught.value.status == "cancelled"
        with pytest.raises(StreamNotFound):
            await canceller.request_cancel("unknown")
        got = await canceller.get("s-http")
        assert got is not None and (got.status, got.cancel_reason, got.completion_tokens) == ("cancelled", "client", 3)
    finally:
        producer.close()
        canceller.close()
        admin.close()


# -- watch_many (the process's cancel poller) ---------------------------------------


async def test_watch_many_reads_more_than_one_batch_and_skips_unknown_ids(store: DynamoStreamStore) -> None:
    ids = [f"w-{i}" for i in range(130)]  # two BatchGetItem calls (100 + 30)
    for sid in ids:
        await store.create(make_record(sid))
    await store.request_cancel("w-5", "client")
    await store.request_cancel("w-120", "disconnect")
    states = await store.watch_many([*ids, "never-created"])
    assert set(states) == set(ids)
    flagged = {sid: s.cancel_reason for sid, s in states.items() if s.cancel_requested}
    assert flagged == {"w-5": "client", "w-120": "disconnect"}
    assert all(s.status == "active" for s in states.values())
