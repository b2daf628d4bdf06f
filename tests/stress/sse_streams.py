"""Concurrent resumable SSE streams driven the way clients use them, and what each must show.

Every stream asks for its own text: the fake upstream answers with the words of the
prompt (``Scenario(echo_prompt=True)``), so the expected text of stream ``tag`` is known
and no two streams share one. A plan says what the client does:

    live        reads the stream to its end
    drop        reads some messages, drops the connection, resumes (in another environment)
                with ``Last-Event-ID`` after a pause (once, or twice: ``drop2``)
    late        drops, and resumes only after the stream has ended (a replay from the log)
    cancel      reads some messages, then cancels (in another environment), reading on

``verify`` then checks, for each stream: the ids the client saw are 1..n once each, in
order; the text is the requested one (all of it for ``done``, a prefix otherwise); a full
replay from the output log (``Last-Event-ID: 0``) gives the very same text and terminal
event; there was exactly one terminal event; the record is terminal and agrees with it
(and with the cancel's answer); the upstream request was closed.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.e2e.sse_client import TERMINALS, SSEEvent, iter_sse
from tests.fakes.upstream import FakeUpstream
from tests.stress.stack import TABLES, Instances

STATUS_OF = {"done": "complete", "cancelled": "cancelled", "error": "failed"}
START_ATTEMPTS = 20  # a 503 (DynamoDB too slow to answer) is retried, as a client would
STREAMS = TABLES["STREAMS_TABLE"]


def words(tag: str, count: int) -> list[str]:
    return [f"{tag}.{i}" for i in range(count)]


@dataclass
class Plan:
    tag: str
    kind: str  # live, drop, drop2, late, cancel
    tokens: int
    provider: str
    drop_after: list[int] = field(default_factory=list)  # messages read before each drop
    pause_s: float = 0.0  # before each resume
    cancel_after: int = 0

    @property
    def expected(self) -> str:
        return "".join(f"{w} " for w in words(self.tag, self.tokens))


@dataclass
class Seen:
    plan: Plan
    stream_id: str = ""
    ids: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    terminals: list[SSEEvent] = field(default_factory=list)
    connections: int = 0
    starts: int = 0  # POSTs sent: a 503 may come after the upstream request opened (and was closed)
    cancel: httpx.Response | None = None
    cancel_sent_at: float = 0.0
    cancel_at: float = 0.0
    replay: list[SSEEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def take(self, event: SSEEvent) -> None:
        if event.event == "message":
            self.ids.append(int(event.id or -1))
            self.text.append(event.data["text"])
        elif event.event in TERMINALS:
            self.terminals.append(event)


def plans(count: int, tokens: int, rng: random.Random, kinds: tuple[str, ...]) -> list[Plan]:
    out = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        plan = Plan(f"s{i}", kind, tokens, ("openai", "anthropic")[i % 2])
        if kind in ("drop", "drop2", "late"):
            drops = 2 if kind == "drop2" else 1
            plan.drop_after = sorted(rng.randint(1, tokens - 5) for _ in range(drops))
            plan.pause_s = 4.0 if kind == "late" else rng.uniform(0.0, 1.0)
        if kind == "cancel":
            plan.cancel_after = rng.randint(1, tokens - 1)
        out.append(plan)
    return out


async def run(plan: Plan, stack: Instances, producer: httpx.AsyncClient, other: httpx.AsyncClient) -> Seen:
    seen = Seen(plan)
    body = {"message": " ".join(words(plan.tag, plan.tokens)), "provider": plan.provider}
    for attempt in range(START_ATTEMPTS):  # a 503 (no record could be made) is retryable: a client retries
        seen.starts += 1
        async with producer.stream("POST", "/chat/stream", json=body) as response:
            if response.status_code == 503 and attempt < START_ATTEMPTS - 1:
                await response.aread()
                await asyncio.sleep(0.5)
                continue
            assert response.status_code == 200, (plan.tag, response.status_code, await response.aread())
            seen.stream_id = response.headers["x-stream-id"]
            seen.connections += 1
            await _read(response, seen, plan.drop_after[0] if plan.drop_after else None, other)
        break
    for n, _ in enumerate(plan.drop_after):
        if seen.terminals:
            break
        await asyncio.sleep(plan.pause_s)
        until = plan.drop_after[n + 1] if n + 1 < len(plan.drop_after) else None
        for attempt in range(START_ATTEMPTS):
            last = str(seen.ids[-1]) if seen.ids else "0"
            headers = {"Last-Event-ID": last}
            async with other.stream("GET", f"/chat/stream/{seen.stream_id}", headers=headers) as response:
                if response.status_code == 503 and attempt < START_ATTEMPTS - 1:  # the record could not be read
                    await response.aread()
                    await asyncio.sleep(0.5)
                    continue
                assert response.status_code == 200, (plan.tag, response.status_code, await response.aread())
                seen.connections += 1
                await _read(response, seen, until, other)
            if not seen.terminals or seen.terminals[-1].data.get("code") != "store_unavailable":
                break
            seen.terminals.pop()  # the log could not be read for long: resume again, as a client does
    return seen


async def _read(response: httpx.Response, seen: Seen, drop_at: int | None, other: httpx.AsyncClient) -> None:
    plan = seen.plan
    async for event in iter_sse(response):
        seen.take(event)
        if event.event != "message":
            continue
        if drop_at is not None and len(seen.ids) >= drop_at:
            return  # the client goes away: leaving the block closes the connection
        if plan.kind == "cancel" and seen.cancel is None and len(seen.ids) >= plan.cancel_after:
            seen.cancel_sent_at = time.monotonic()
            for _ in range(START_ATTEMPTS):  # a 503 (DynamoDB failing past its retries) is retried
                seen.cancel = await other.post(f"/chat/stream/{seen.stream_id}/cancel")
                if seen.cancel.status_code != 503:
                    break
                await asyncio.sleep(0.5)
            seen.cancel_at = time.monotonic()


async def replay(seen: Seen, other: httpx.AsyncClient) -> None:
    """The whole stream again, from its output log, on the other instance."""
    for _ in range(START_ATTEMPTS):
        async with other.stream("GET", f"/chat/stream/{seen.stream_id}", headers={"Last-Event-ID": "0"}) as response:
            if response.status_code == 503:
                await asyncio.sleep(0.5)
                continue
            assert response.status_code == 200, (seen.plan.tag, response.status_code)
            seen.replay = [e async for e in iter_sse(response)]
            return


async def final_record(stack: Instances, stream_id: str, within_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while True:
        key = {"stream_id": {"S": stream_id}}
        item = (await asyncio.to_thread(stack.ddb.get_item, TableName=STREAMS, Key=key, ConsistentRead=True)).get(
            "Item", {}
        )
        if item.get("status", {}).get("S") not in (None, "active") or time.monotonic() > deadline:
            return dict(item)
        await asyncio.sleep(0.2)


def problems(seen: Seen, record: dict[str, Any], upstream: FakeUpstream) -> list[str]:
    """Every way ``seen`` breaks a guarantee (empty: none)."""
    plan, out = seen.plan, list(seen.problems)
    if seen.ids != list(range(1, len(seen.ids) + 1)):
        out.append(f"ids not 1..n once each: {_gaps(seen.ids)}")
    text = "".join(seen.text)
    if len(seen.terminals) != 1:
        out.append(f"{len(seen.terminals)} terminal events: {[t.event for t in seen.terminals]}")
        return out
    terminal = seen.terminals[0]
    if terminal.event == "done" and text != plan.expected:
        out.append(f"done with {len(seen.text)} of {plan.tokens} texts")
    if not plan.expected.startswith(text):
        out.append("the text is not the requested one")
    replayed = "".join(e.data["text"] for e in seen.replay if e.event == "message")
    replay_ends = [e for e in seen.replay if e.event in TERMINALS]
    if replayed != text:
        out.append(
            f"the log's replay has {len(replayed)} chars, the client saw {len(text)}; replay ends {replay_ends[-1:]}"
        )
    if [(e.event, e.data) for e in replay_ends] != [(terminal.event, terminal.data)]:
        ends = [(e.event, e.data) for e in replay_ends]
        out.append(f"the log's replay ends {ends}, the client saw {(terminal.event, terminal.data)}")
    status = record.get("status", {}).get("S")
    if status != STATUS_OF[terminal.event]:
        out.append(f"record {status}, client saw {terminal.event} {terminal.data}")
    if seen.cancel is not None:
        if seen.cancel.status_code == 200 and terminal.event != "cancelled":
            flag = record.get("cancel_requested", {}).get("BOOL")
            out.append(
                f"cancel answered 200, stream {seen.stream_id} ended {terminal.event} {_when(seen)}, flag {flag}"
            )
        if seen.cancel.status_code == 409 and seen.cancel.json().get("status") != status:
            out.append(f"cancel answered 409 {seen.cancel.json()}, record {status}")
        if seen.cancel.status_code not in (200, 202, 409):
            out.append(f"cancel answered {seen.cancel.status_code}")
    exchanges = [x for x in upstream.requests if prompt_of(x.json).startswith(f"{plan.tag}.0 ")]
    # One upstream request per start at most (a start refused with 503 closes the one it opened),
    # and every one of them closed.
    if not 1 <= len(exchanges) <= seen.starts or not all(x.ended.wait(10) for x in exchanges):
        out.append(f"upstream: {len(exchanges)} requests, ended: {[x.ended.is_set() for x in exchanges]}")
    return out


def _when(seen: Seen) -> str:
    sent, answered, ended = seen.cancel_sent_at, seen.cancel_at, seen.terminals[0].at
    return f"(cancel sent {sent - ended:+.3f} s from the end, answered {answered - ended:+.3f} s)"


def prompt_of(body: Any) -> str:
    """The last user message of an OpenAI or Anthropic request body."""
    users = [m for m in (body or {}).get("messages") or () if isinstance(m, dict) and m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    if isinstance(content, list):
        content = "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content)


def _gaps(ids: list[int]) -> str:
    wrong = [(i, got) for i, got in enumerate(ids, 1) if got != i]
    return f"{len(ids)} ids, first wrong (position, id): {wrong[:3]}"
