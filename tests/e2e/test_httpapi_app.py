"""The app's routes on both deployed paths, as docs/deploy.md promises them.

The Function URL path: the local Function URL (``frontdoor.py``), every route, each request in
an execution environment of StreamFunction (``run.sh``: the app under uvicorn). The HTTP API
path: the local HTTP API (``scripts/devstack/httpapi.py``) built from ``template.yaml``, its
routes only, each request a payload 2.0 event for ``ApiFunction`` (Mangum) in an execution
environment of its own. Each function runs with its own IAM identity, as everywhere in tests/e2e.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route

from scripts.devstack.httpapi_routes import routes_from_template
from scripts.devstack.tables import load_template
from tests.e2e.sse_client import TERMINALS, SSEEvent, iter_sse, text_of
from tests.fakes.local_stack import FunctionStack, LocalAws, function_stack
from tests.fakes.route_samples import sample_request
from tokenrelay import Settings
from tokenrelay_http import create_app

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "deploy.md")
ROW = re.compile(r"^\| `([A-Z]+) (/\S*)` \| ([^|]+) \| ([^|]+) \|$")
ENV = {
    "DEFAULT_PROVIDER": "echo",
    "ALLOWED_MODELS": "echo:echo-1",
    "ECHO_DELAY_MS": "20",
    "CANCEL_POLL_MS": "50",
    "AUTH_MODE": "off",
    "OUTPUT_LOG_TABLE": "tokenrelay-output-log",  # the session's tables: template names
    "RESUME_POLL_MS": "100",
    "OUTPUT_LOG_FLUSH_MS": "100",
}
GATEWAY_404 = {"message": "Not Found"}
LONG = " ".join(f"w{i}" for i in range(250))  # 252 tokens x 20 ms: about 5 s


@dataclass
class Paths:
    function_url: str
    http_api: str
    stack: FunctionStack


@pytest.fixture(scope="module")
def paths(aws: LocalAws) -> Iterator[Paths]:
    with function_stack(aws, ENV, http=True, http_api=True, name="httpapi") as stack:
        yield Paths(stack.http, stack.http_api, stack)
        stack.assert_no_access_denied()


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, in API Gateway's syntax ({x:path} is {x+})."""
    settings = Settings.from_env({**os.environ, **ENV})

    def walk(routes: list[BaseRoute], prefix: str) -> Iterator[tuple[str, str]]:
        for route in routes:
            if isinstance(route, Mount):
                yield from walk(route.routes, prefix + route.path)
            elif isinstance(route, Route):
                path = re.sub(r"\{(\w+):path\}", r"{\1+}", prefix + route.path)
                yield from ((m, path) for m in route.methods or () if m != "HEAD")

    return set(walk(create_app(settings).routes, ""))


def promised() -> dict[tuple[str, str], tuple[bool, bool]]:
    """docs/deploy.md's route table: (method, path) -> (on the Function URL, on the HTTP API)."""
    rows = {}
    with open(DOCS, encoding="utf-8") as f:
        for line in f:
            if m := ROW.match(line.strip()):
                rows[(m[1], m[2])] = (m[3].strip().startswith("yes"), m[4].strip().startswith("yes"))
    return rows


async def post_stream(url: str, body: dict[str, Any]) -> list[SSEEvent]:
    async with httpx.AsyncClient(timeout=40) as client, client.stream("POST", f"{url}/chat/stream", json=body) as r:
        assert r.status_code == 200, await r.aread()
        return [e async for e in iter_sse(r)]


async def test_every_app_route_is_reachable_on_each_path_the_docs_promise(paths: Paths) -> None:
    docs, app = promised(), app_routes()
    assert set(docs) == app, f"docs/deploy.md's route table and the app differ: {set(docs) ^ app}"
    declared = {(r.method, r.path) for r in routes_from_template(load_template(), "HttpApi")}
    assert declared <= app, f"HttpApi events for routes the app does not serve: {declared - app}"
    stream_id = (await post_stream(paths.function_url, {"message": "a finished stream"}))[0].data["stream_id"]
    async with httpx.AsyncClient(timeout=40) as client:
        for (method, path), (on_url, on_api) in sorted(docs.items()):
            for base, served in ((paths.function_url, on_url), (paths.http_api, on_api)):
                request = sample_request(method, path, stream_id)
                response = await client.request(**{**request, "url": base + request["url"]})
                where = f"{method} {path} on {base}"
                if served:
                    assert response.status_code not in (404, 405) and response.status_code < 500, where
                else:
                    assert (response.status_code, response.json()) == (404, GATEWAY_404), where
            assert on_api == ((method, path) in declared), f"{method} {path}: the docs and the template differ"


async def test_buffered_stream_and_its_resume_through_the_http_api(paths: Paths) -> None:
    events = await post_stream(paths.http_api, {"message": "three little words"})
    names = [e.event for e in events]
    assert names[0] == "start" and names[-1] == "done" and text_of(events) == "You said: three little words"
    stream_id = events[0].data["stream_id"]
    url = f"{paths.http_api}/chat/stream/{stream_id}"
    async with httpx.AsyncClient(timeout=40) as client, client.stream("GET", url, headers={"Last-Event-ID": "2"}) as r:
        assert r.status_code == 200 and r.headers["x-stream-id"] == stream_id
        resumed = [e async for e in iter_sse(r)]
    after = [e for e in events if e.event == "message" and int(e.id or 0) > 2]
    assert [(e.id, e.data) for e in resumed if e.event == "message"] == [(e.id, e.data) for e in after]
    assert [e.event for e in resumed if e.event != "message"] == ["usage", "done"]


async def test_buffered_resume_of_a_live_stream_ends_at_the_deadline_then_resumes(paths: Paths) -> None:
    template = load_template()
    template["Resources"]["ApiFunction"]["Properties"]["Timeout"] = 4  # 29 s on AWS: the same, faster
    with paths.stack.serve_http_api(template, DEADLINE_MARGIN_S="1") as api:
        async with httpx.AsyncClient(timeout=40) as client:
            async with client.stream("POST", f"{paths.function_url}/chat/stream", json={"message": LONG}) as live:
                events, reader = [], iter_sse(live)
                async for event in reader:
                    events.append(event)
                    if event.event == "message":
                        break
                stream_id = events[0].data["stream_id"]
                started = time.monotonic()
                first = await client.get(f"{api}/chat/stream/{stream_id}", headers={"Last-Event-ID": "1"})
                took = time.monotonic() - started
                events += [e async for e in reader]
        # Ended by the deadline: past its Timeout the invocation is killed and the gateway answers
        # 500 (httpapi.py), so a 200 means it ended within 4 s of the invocation's start (a client's
        # clock would also count a cold start, which Lambda bills outside the Timeout); not early:
        assert first.status_code == 200 and took > 2.5, (first.status_code, took)
        ids = [int(i) for i in re.findall(r"^id: (\d+)$", first.text, re.M)]
        assert ids and ids == list(range(2, 2 + len(ids)))  # in order, from the one after Last-Event-ID
        assert not any(f"event: {t}" in first.text for t in TERMINALS)  # no end: the stream is still live
        assert events[-1].event == "done"
        async with httpx.AsyncClient(timeout=40) as client:
            rest = await client.get(f"{api}/chat/stream/{stream_id}", headers={"Last-Event-ID": str(ids[-1])})
        more = [int(i) for i in re.findall(r"^id: (\d+)$", rest.text, re.M)]
        total = sum(e.event == "message" for e in events)
        assert ids + more == list(range(2, total + 1)) and rest.text.count("event: done") == 1


async def test_a_route_missing_from_the_template_is_a_404_on_the_http_api_only(paths: Paths) -> None:
    template = copy.deepcopy(load_template())
    del template["Resources"]["ApiFunction"]["Properties"]["Events"]["ChatStreamResume"]
    stream_id = (await post_stream(paths.function_url, {"message": "hi"}))[0].data["stream_id"]
    with paths.stack.serve_http_api(template) as api:
        async with httpx.AsyncClient(timeout=40) as client:
            on_api = await client.get(f"{api}/chat/stream/{stream_id}")
            on_url = await client.get(f"{paths.function_url}/chat/stream/{stream_id}")
    assert (on_api.status_code, on_api.json()) == (404, GATEWAY_404)
    assert on_url.status_code == 200 and "event: done" in on_url.text


async def test_http_api_cors_follows_the_templates_cors_configuration(paths: Paths) -> None:
    cors = load_template()["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    origin = {"Origin": "https://app.example"}
    async with httpx.AsyncClient(timeout=40) as client:
        preflight = await client.options(
            f"{paths.http_api}/chat/stream", headers={**origin, "Access-Control-Request-Method": "POST"}
        )
        health = await client.get(f"{paths.http_api}/health", headers=origin)
    assert preflight.status_code == 204  # answered by API Gateway: no invocation
    assert preflight.headers["access-control-allow-origin"] == "*"  # CorsAllowOrigins' default
    assert preflight.headers["access-control-allow-methods"] == ",".join(cors["AllowMethods"])
    assert preflight.headers["access-control-max-age"] == str(cors["MaxAge"])
    assert health.status_code == 200 and health.headers["access-control-allow-origin"] == "*"
    assert set(health.headers["access-control-expose-headers"].split(",")) == set(cors["ExposeHeaders"])
