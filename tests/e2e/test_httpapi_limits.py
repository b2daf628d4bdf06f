"""The local HTTP API holds AWS's limits (scripts/devstack/httpapi.py), with a function built to hit them.

Real uvicorn in front, real processes behind: each Lambda execution environment runs
``lambda_runtime.py`` with the handler below, one invocation at a time, in the local stack's
environment pool (``local_functions.ProcessFunction``). The function never calls AWS: it runs
without credentials.
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.devstack.httpapi import HttpApi, build
from scripts.devstack.stack import LambdaSettings
from tests.fakes.servers import serve

HANDLER = """
    import json, os, time

    invocations = 0  # module state: kept by a warm environment, lost with a killed one

    def handler(event, context):
        global invocations
        invocations += 1
        what = event["rawPath"].rsplit("/", 1)[-1]
        if what == "sleep":
            time.sleep(float(event["queryStringParameters"]["s"]))
        elif what == "boom":
            raise RuntimeError("boom")
        elif what == "big":
            return {"statusCode": 200, "body": "x" * (7 * 1024 * 1024)}
        print("a log line, never part of the response")
        body = {"invocations": invocations, "pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis(),
                "event": event, "function": context.function_name,
                "env": {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "FROM_TEMPLATE", "FROM_STACK")}}
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
"""


def template(code: Path, timeout_s: int) -> dict[str, Any]:
    def route(method: str, path: str) -> dict[str, Any]:
        return {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "Api"}, "Method": method, "Path": path}}

    return {
        "Resources": {
            "Api": {"Type": "AWS::Serverless::HttpApi", "Properties": {}},
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": str(code),
                    "Handler": "fake.handler",
                    "Timeout": timeout_s,
                    "Environment": {"Variables": {"FROM_TEMPLATE": "yes", "FROM_STACK": {"Ref": "Api"}}},
                    "Events": {"Items": route("GET", "/items/{id}"), "Fn": route("ANY", "/fn/{rest+}")},
                },
            },
        }
    }


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, HttpApi]]:
    (tmp_path / "fake.py").write_text(textwrap.dedent(HANDLER))
    lambdas = LambdaSettings(max_envs=4, queue_timeout_s=30.0)
    app = build(template(tmp_path, timeout_s=2), None, dict(os.environ), api_id="Api", lambdas=lambdas)
    with serve(app) as url:
        yield url, app


async def get(url: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(kw.pop("method", "GET"), url, **kw)


async def test_only_declared_routes_reach_the_function(gateway: tuple[str, HttpApi]) -> None:
    url, app = gateway
    ok = await get(f"{url}/items/7?a=1")
    assert ok.status_code == 200
    body = ok.json()
    assert body["event"]["pathParameters"] == {"id": "7"} and body["event"]["routeKey"] == "GET /items/{id}"
    assert body["function"] == "tokenrelay-fn"  # the context names the function
    assert body["env"] == {"AWS_ACCESS_KEY_ID": None, "FROM_TEMPLATE": "yes", "FROM_STACK": "Api"}
    assert 0 < body["remaining_ms"] <= 2000  # the context counts down from the function's Timeout
    for method, path in (("POST", "/items/7"), ("GET", "/items"), ("GET", "/fn"), ("GET", "/elsewhere")):
        refused = await get(f"{url}{path}", method=method)
        assert (refused.status_code, refused.json()) == (404, {"message": "Not Found"}), (method, path)
    assert app.invocations == 1  # API Gateway answered the 404s itself


async def test_each_environment_serves_one_request_at_a_time_and_stays_warm(gateway: tuple[str, HttpApi]) -> None:
    url, app = gateway
    first, second = await asyncio.gather(get(f"{url}/fn/sleep?s=0.5"), get(f"{url}/fn/sleep?s=0.5"))
    assert first.status_code == second.status_code == 200
    pool: Any = app.functions["Fn"].pool  # type: ignore[attr-defined]  # local_functions.ProcessFunction
    assert pool.stats.cold_starts == 2  # the second request did not wait for the first's environment
    warm = (await get(f"{url}/items/1")).json()
    assert pool.stats.cold_starts == 2 and warm["invocations"] == 2  # reused, with its module state


async def test_a_function_past_its_timeout_is_a_500_and_its_environment_is_replaced(
    gateway: tuple[str, HttpApi],
) -> None:
    url, app = gateway
    before = (await get(f"{url}/items/1")).json()
    slow = await get(f"{url}/fn/sleep?s=10")
    assert (slow.status_code, slow.json()) == (500, {"message": "Internal Server Error"})
    after = (await get(f"{url}/items/1")).json()
    assert after["pid"] != before["pid"] and after["invocations"] == 1  # a fresh environment: a cold start
    assert app.functions["Fn"].pool.stats.cold_starts == 2  # type: ignore[attr-defined]


async def test_the_integration_timeout_is_a_503_when_it_comes_first(gateway: tuple[str, HttpApi]) -> None:
    url, app = gateway
    app.integration_timeout_s = 0.5  # below the function's 2 s, as 30 s is below a 60 s function
    slow = await get(f"{url}/fn/sleep?s=1.5")
    assert (slow.status_code, slow.json()) == (503, {"message": "Service Unavailable"})


async def test_a_function_error_is_a_500_and_its_logs_stay_out_of_the_response(gateway: tuple[str, HttpApi]) -> None:
    url, _ = gateway
    failed = await get(f"{url}/fn/boom")
    assert (failed.status_code, failed.json()) == (500, {"message": "Internal Server Error"})
    fine = await get(f"{url}/items/1")  # the environment survives a handled error
    assert fine.status_code == 200 and "a log line" not in fine.text


async def test_lambda_6mb_payloads_and_the_10mb_body_limit(gateway: tuple[str, HttpApi]) -> None:
    url, _ = gateway
    big_response = await get(f"{url}/fn/big")
    assert (big_response.status_code, big_response.json()) == (500, {"message": "Internal Server Error"})
    seven_mb = b"{" + b" " * (7 * 1024 * 1024) + b"}"  # under the HTTP API's 10 MB, over Lambda's 6 MB
    headers = {"content-type": "application/json"}
    too_big = await get(f"{url}/fn/echo", method="POST", content=seven_mb, headers=headers)
    assert (too_big.status_code, too_big.json()) == (413, {"message": "Request Entity Too Large"})
    eleven_mb = b" " * (11 * 1024 * 1024)
    over = await get(f"{url}/fn/echo", method="POST", content=eleven_mb, headers=headers)
    assert (over.status_code, over.json()) == (413, {"message": "Request Entity Too Large"})
    small = await get(f"{url}/fn/echo", method="POST", content=json.dumps({"a": 1}), headers=headers)
    assert small.status_code == 200 and small.json()["event"]["body"] == '{"a": 1}'
