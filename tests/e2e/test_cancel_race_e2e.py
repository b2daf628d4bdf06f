"""A cancel sent the moment ``start`` arrives, to another instance, before the record exists.

The engine creates the state record concurrently with the first token, so with a slow
DynamoDB the client can hold a stream id whose record is not written yet. Two app
instances (real uvicorn) share one store whose create takes 300 ms.
"""

from __future__ import annotations

import httpx

from tests.e2e.sse_client import TERMINALS, iter_sse
from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.servers import serve
from tokenrelay import Settings
from tokenrelay_http import create_app

SETTINGS = Settings(echo_delay_s=0.02, cancel_poll_s=0.02)


async def test_cancel_on_another_instance_before_the_record_exists_still_cancels() -> None:
    store = MemoryStreamStore(create_delay_s=0.3)
    with serve(create_app(SETTINGS, store=store)) as producer, serve(create_app(SETTINGS, store=store)) as other:
        async with httpx.AsyncClient(timeout=10) as client:
            body = {"message": " ".join(["word"] * 200)}
            async with client.stream("POST", f"{producer}/chat/stream", json=body) as response:
                events = []
                async for event in iter_sse(response):
                    events.append(event)
                    if event.event == "start":
                        assert event.data["stream_id"] not in store.records  # not created yet
                        cancel = await client.post(f"{other}/chat/stream/{event.data['stream_id']}/cancel")
                        assert cancel.status_code == 200, cancel.text
    terminals = [e for e in events if e.event in TERMINALS]
    assert [(t.event, t.data.get("reason")) for t in terminals] == [("cancelled", "client")]
    assert store.records[events[0].data["stream_id"]].status == "cancelled"
