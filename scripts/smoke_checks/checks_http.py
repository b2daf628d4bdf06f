"""The HTTP checks: health, SSE streaming, cancel, resume (Function URL), and the HTTP API path."""

from __future__ import annotations

import time

from . import sse
from .run import CANCEL_BOUND_S, Run, require


async def health(run: Run) -> str:
    response = await run.http.get(run.target.function_url + "health")
    require(response.status_code == 200, f"GET /health: {response.status_code} {response.text[:200]}")
    body = response.json()
    dynamodb = body.get("dependencies", {}).get("dynamodb")
    require(body.get("status") == "ok" and dynamodb == "ok", f"status {body.get('status')}, dynamodb {dynamodb}")
    run.provider = body.get("default_provider", "")
    return f"version {body.get('version')}, providers {', '.join(body.get('providers', []))}, dynamodb ok"


async def sse_stream(run: Run) -> str:
    started = time.monotonic()
    url = run.target.function_url + "chat/stream"
    async with run.http.stream("POST", url, json=run.short()) as response:
        require(response.status_code == 200, f"POST /chat/stream: {response.status_code}")
        evs = [e async for e in sse.events(response)]
    require(evs and evs[0].name == "start", f"first event {evs[0].name if evs else 'none'}, not start")
    ends = sse.terminals(evs)
    require([e.name for e in ends] == ["done"], f"terminal events {[e.name for e in ends]}, not one done")
    messages = [e for e in evs if e.name == "message"]
    spread_ms = (messages[-1].at - messages[0].at) * 1000 if messages else 0.0
    instants = len({round(e.at, 2) for e in messages})  # arrivals 10 ms apart count apart
    require(len(messages) >= 3, f"{len(messages)} message events")
    require(spread_ms >= 100 and instants >= 3, f"tokens arrived at once ({spread_ms:.0f} ms apart): buffered")
    expected = run.expected()
    require(expected is None or sse.text(evs) == expected, f"text {sse.text(evs)[:80]!r}")
    run.completed[evs[0].data["stream_id"]] = "sse"
    first_ms = (messages[0].at - started) * 1000
    return f"{len(messages)} tokens over {spread_ms:.0f} ms, the first after {first_ms:.0f} ms"


async def cancel(run: Run) -> str:
    url = run.target.function_url + "chat/stream"
    async with run.http.stream("POST", url, json=run.long()) as response:
        require(response.status_code == 200, f"POST /chat/stream: {response.status_code}")
        reader = sse.events(response)
        start = await anext(reader)
        stream_id = start.data["stream_id"]
        async for event in reader:
            if event.name == "message":
                break
        sent = time.monotonic()
        second = await run.http.post(f"{run.target.function_url}chat/stream/{stream_id}/cancel")  # another connection
        require(second.status_code == 200, f"cancel: {second.status_code} {second.text[:200]}")
        rest = [e async for e in reader]
    ends = sse.terminals(rest)
    took = (ends[-1].at - sent) if ends else float("inf")
    require([e.name for e in ends] == ["cancelled"], f"terminal events {[e.name for e in ends]}, not cancelled")
    require(ends[0].data.get("reason") == "client", f"cancelled for {ends[0].data.get('reason')}, not client")
    require(took <= CANCEL_BOUND_S, f"stopped {took:.2f} s after the cancel, over the {CANCEL_BOUND_S:.0f} s bound")
    again = await run.http.post(f"{run.target.function_url}chat/stream/{stream_id}/cancel")
    status = again.json().get("status") if again.status_code == 409 else None
    require(status == "cancelled", f"second cancel: {again.status_code} {again.text[:200]}, not 409 cancelled")
    run.cancelled[stream_id] = "cancel"
    bound = f"bound {CANCEL_BOUND_S:.0f} s"
    return f"stopped {took * 1000:.0f} ms after a cancel on a second connection ({bound}); record cancelled"


async def resume(run: Run) -> str:
    url = run.target.function_url + "chat/stream"
    async with run.http.stream("POST", url, json=run.short()) as response:
        require(response.status_code == 200, f"POST /chat/stream: {response.status_code}")
        before: list[sse.Event] = []
        async for event in sse.events(response):
            before.append(event)
            if sum(e.name == "message" for e in before) == 2:
                break  # the connection drops here
    stream_id, last = before[0].data["stream_id"], before[-1].id
    resumed_url = f"{run.target.function_url}chat/stream/{stream_id}"
    async with run.http.stream("GET", resumed_url, headers={"Last-Event-ID": str(last)}) as response:
        require(response.status_code == 200, f"resume: {response.status_code}")
        after = [e async for e in sse.events(response)]
    ids = [int(e.id or 0) for e in after if e.name == "message"]
    require(ids == list(range(int(str(last)) + 1, int(str(last)) + 1 + len(ids))), f"resumed ids {ids[:10]}...")
    ends = sse.terminals(after)
    require([e.name for e in ends] == ["done"], f"terminal events {[e.name for e in ends]} after the resume")
    expected = run.expected()
    require(expected is None or sse.text(before) + sse.text(after) == expected, "the resumed text differs")
    run.completed[stream_id] = "resume"
    return f"dropped after id {last}; Last-Event-ID gave {len(ids)} more, then done, each part once"


async def http_api(run: Run) -> str:
    base = run.target.http_api_url
    require(base, "no HTTP API URL")
    response = await run.http.post(f"{base}chat/stream", json=run.short())
    require(response.status_code == 200, f"POST /chat/stream: {response.status_code} {response.text[:200]}")
    evs = sse.parse(response.text)
    require(evs and evs[0].name == "start" and [e.name for e in sse.terminals(evs)] == ["done"], "not start..done")
    expected = run.expected()
    require(expected is None or sse.text(evs) == expected, f"text {sse.text(evs)[:80]!r}")
    stream_id = evs[0].data["stream_id"]
    replay = await run.http.get(f"{base}chat/stream/{stream_id}", headers={"Last-Event-ID": "1"})
    require(replay.status_code == 200 and sse.text(sse.parse(replay.text)), f"resume: {replay.status_code}")
    unknown = await run.http.get(f"{base}no/such/route")
    require(
        unknown.status_code == 404 and unknown.json() == {"message": "Not Found"},
        f"unknown route: {unknown.status_code}",
    )
    run.completed[stream_id] = "http-api"
    count = sum(e.name == "message" for e in evs)
    return f"buffered stream ({count} tokens in one response), resume, API Gateway's 404 off the route table"
