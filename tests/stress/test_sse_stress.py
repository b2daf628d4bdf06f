"""Dozens of concurrent resumable SSE streams under CPU load, with a slow and with a failing
DynamoDB, and clients that drop, resume in another environment and cancel from another: nothing
is lost or repeated, and every stream ends with one terminal event and one terminal record that
agree (``sse_streams.py`` says what is checked for each stream). Each request runs in its own
StreamFunction environment with the function's own identity, as on AWS."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import httpx
import pytest

from tests.fakes.local_stack import FunctionStack, LocalAws
from tests.fakes.upstream import FakeUpstream, Scenario
from tests.stress.sse_streams import Seen, final_record, plans, problems, replay, run
from tests.stress.stack import FAILING, SLOW, instances

pytestmark = pytest.mark.heavy

STREAMS = 32  # with their resumes, cancels and replays: about STRESS_LAMBDAS.max_envs environments
TOKENS = 100
TOKEN_DELAY_S = 0.01
KINDS = ("live", "drop", "drop2", "late", "cancel", "drop", "live", "drop2")
WITHIN_S = 150.0  # a bound on the whole phase, never a pass condition


@pytest.mark.parametrize("store", ["slow", "failing"])
async def test_stress_resumable_sse_streams_lose_nothing_and_end_once(
    store: str,
    aws: LocalAws,
    stress_stack: FunctionStack,
    upstream_server: FakeUpstream,
    hogs: list[int],
    rng: random.Random,
) -> None:
    upstream_server.reset()
    upstream_server.scenario = Scenario(echo_prompt=True, delay_s=TOKEN_DELAY_S)
    chaos = {"slow": SLOW, "failing": FAILING}[store]
    todo = plans(STREAMS, TOKENS, rng, KINDS)
    by_tag = {p.tag: p for p in todo}
    with instances(aws, stress_stack, chaos, seed=rng.randrange(1 << 30)) as stack:
        limits = httpx.Limits(max_connections=4 * STREAMS, max_keepalive_connections=0)
        async with (
            httpx.AsyncClient(base_url=stack.producer, timeout=60, limits=limits) as producer,
            httpx.AsyncClient(base_url=stack.other, timeout=60, limits=limits) as other,
            asyncio.timeout(WITHIN_S),
        ):

            async def one(index: int) -> Seen:
                await asyncio.sleep(index * 0.02)  # arrivals spread over a second, not one burst
                return await run(todo[index], stack, producer, other)

            seen = await asyncio.gather(*(one(i) for i in range(len(todo))))
            await asyncio.gather(*(replay(s, other) for s in seen))
            records = [await final_record(stack, s.stream_id) for s in seen]
        logs = stack.log_text()
    report = {s.plan.tag: problems(s, r, upstream_server) for s, r in zip(seen, records, strict=True)}
    endings = Counter((s.plan.kind, s.terminals[0].event if s.terminals else "none") for s in seen)
    retried = logs.count("write failed")
    print(f"{store}: {len(seen)} streams, endings {dict(endings)}, {retried} store writes retried by TokenRelay")
    wrong = [f"{tag} ({plan.kind}): {'; '.join(p)}" for tag, p in report.items() if p for plan in [by_tag[tag]]]
    assert not wrong, "\n".join(wrong)
    assert "Traceback" not in logs, logs[logs.index("Traceback") - 2000 :][:4000]
