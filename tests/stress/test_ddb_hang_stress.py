"""DynamoDB stops answering just before a stream ends (issue 14, item 2).

The stream's last text goes out, then DynamoDB stops answering for ``HANG_S`` (its server holds
every call: each function's client gives up at botocore's read timeout and retries, and a call
given up on is never applied: ``dynamodb_faults.py``). The client must get its terminal
event about ``FINISH_WAIT_S`` after the last text (before: 18-30 s), the response must stay
open until the record and the log's end are written (in Lambda the invocation ends with the
response), and once DynamoDB answers again the record is terminal and a full replay from the
log is the text the client saw.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from scripts.devstack.dynamodb_faults import set_hang
from tests.e2e.sse_client import TERMINALS, iter_sse
from tests.fakes.local_stack import FunctionStack, LocalAws
from tests.fakes.upstream import FakeUpstream, Scenario
from tests.stress.sse_streams import final_record, words
from tests.stress.stack import instances

pytestmark = pytest.mark.heavy

HANG_S = 8.0
FINISH_WAIT_S = 2.0  # the default


async def test_stress_done_with_dynamodb_hung_arrives_within_finish_wait_and_record_ends_terminal(
    aws: LocalAws, stress_stack: FunctionStack, upstream_server: FakeUpstream, hogs: list[int]
) -> None:
    upstream_server.reset()
    upstream_server.scenario = Scenario(echo_prompt=True, delay_s=0.02)
    released = None
    with instances(aws, stress_stack, None) as stack:
        async with httpx.AsyncClient(base_url=stack.producer, timeout=120) as client:
            body = {"message": " ".join(words("h", 60)), "provider": "openai"}
            async with client.stream("POST", "/chat/stream", json=body) as response:
                assert response.status_code == 200, (response.status_code, await response.aread())
                stream_id, texts, last_text_at, terminal_at = response.headers["x-stream-id"], [], 0.0, 0.0
                async for event in iter_sse(response):
                    if event.event == "message":
                        texts.append(event.data["text"])
                        last_text_at = event.at
                        if len(texts) == 50:
                            set_hang(aws.endpoint, True)  # DynamoDB stops answering: the end's writes hang
                            released = asyncio.get_running_loop().call_later(HANG_S, set_hang, aws.endpoint, False)
                    if event.event in TERMINALS:
                        terminal, terminal_at = event, event.at
            body_closed_at = time.monotonic()
        if released is not None:
            released.cancel()
        set_hang(aws.endpoint, False)
        record = await final_record(stack, stream_id, within_s=60)
        async with httpx.AsyncClient(base_url=stack.other, timeout=60) as other:
            async with other.stream("GET", f"/chat/stream/{stream_id}", headers={"Last-Event-ID": "0"}) as replay:
                replayed = [e async for e in iter_sse(replay)]
    waited = terminal_at - last_text_at
    print(f"DynamoDB hung {HANG_S:g} s: terminal event {waited:.2f} s after the last text (FINISH_WAIT_S 2)")
    assert terminal.event == "done" and "".join(texts) == "".join(f"{w} " for w in words("h", 60))
    # FINISH_WAIT_S, plus what a machine this loaded adds; the unbounded wait took 18-30 s.
    assert waited < FINISH_WAIT_S + 3.0, f"done came {waited:.1f} s after the last text"
    assert body_closed_at - terminal_at > 1.0  # the response stayed open for the writes to land
    assert record.get("status", {}).get("S") == "complete"
    assert "".join(e.data["text"] for e in replayed if e.event == "message") == "".join(texts)
    assert [e.event for e in replayed if e.event in TERMINALS] == ["done"]
