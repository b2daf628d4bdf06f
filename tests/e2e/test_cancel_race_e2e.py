"""A cancel sent the moment ``start`` arrives, to another environment, before the record exists.

The engine creates the state record concurrently with the first token, so with a slow
DynamoDB the client can hold a stream id whose record is not written yet. Here DynamoDB takes
a second over the StreamFunction's next record create (injected at the server); the cancel,
sent on a second connection, lands in another execution environment, as on AWS, and must
still cancel the stream.
"""

from __future__ import annotations

import httpx

from scripts.devstack.dynamodb_faults import injected, set_faults
from tests.e2e.conftest import LocalApp
from tests.e2e.sse_client import TERMINALS, iter_sse

CREATE_DELAY_S = 1.0


async def test_cancel_on_another_environment_before_the_record_exists_still_cancels(app: LocalApp) -> None:
    endpoint = app.aws.endpoint
    stream_fn = app.stack.identities["StreamFunction"].access_key_id
    slow_create = {"name": "slow-create", "answer": "delay", "delay_s": CREATE_DELAY_S, "count": 1}
    set_faults(endpoint, rules=[{**slow_create, "operations": ["PutItem"], "table": app.streams_table,
                                 "callers": [stream_fn]}])  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            body = {"message": " ".join(["word"] * 200)}
            async with client.stream("POST", "/chat/stream", json=body) as response:
                events = []
                async for event in iter_sse(response):
                    events.append(event)
                    if event.event == "start":
                        stream_id = event.data["stream_id"]
                        assert await app.record(stream_id) is None  # not created yet
                        cancel = await client.post(f"/chat/stream/{stream_id}/cancel")
                        assert cancel.status_code == 200, cancel.text
        assert injected(endpoint)["slow-create"] == 1
    finally:
        set_faults(endpoint)
    terminals = [e for e in events if e.event in TERMINALS]
    assert [(t.event, t.data.get("reason")) for t in terminals] == [("cancelled", "client")]
    record = await app.record(events[0].data["stream_id"])
    assert record is not None and record.status == "cancelled"
