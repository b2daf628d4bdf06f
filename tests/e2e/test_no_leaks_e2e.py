"""Upstream error bodies and the API key never reach a client or a log.

The fake upstream puts ``UPSTREAM_DETAIL`` and the key the client presented in
every error body and error frame (as real providers quote part of a bad key).
Each case drives a real SDK against it through the local Function URL, on every
HTTP route, and checks the client's bytes (headers and body) and every line the
function's environments printed (what Lambda ships to CloudWatch), at DEBUG.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LocalApp
from tests.fakes.upstream import FAKE_API_KEY, UPSTREAM_DETAIL, Scenario

SECRET_TEXT = (FAKE_API_KEY, "SECRET123", UPSTREAM_DETAIL, "Bearer ")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
SCENARIOS = {
    "http_400": Scenario.http_error(400),
    "http_401": Scenario.http_error(401),
    "http_429": Scenario.http_error(429),
    "http_500": Scenario.http_error(500),
    "error_frame": Scenario.error_frame(after=2),
}


async def _call(client: httpx.AsyncClient, route: str, provider: str) -> httpx.Response:
    if route.startswith("/v1"):
        body: dict[str, Any] = {
            "model": f"{provider}/{MODELS[provider]}",
            "messages": [{"role": "user", "content": "hi"}],
        }
        if route.endswith("stream"):
            body["stream"] = True
        return await client.post("/v1/chat/completions", json=body)
    return await client.post(route, json={"message": "hi", "provider": provider})


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("route", ["/chat/stream", "/chat/stream-simple", "/v1 stream", "/v1"])
async def test_upstream_error_body_and_key_never_reach_client_or_logs(
    app: LocalApp, route: str, provider: str, scenario: str
) -> None:
    app.upstream.scenario = SCENARIOS[scenario]
    mark = app.logs.mark()
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
        response = await _call(client, route, provider)
    seen = "\n".join([response.text, *(f"{k}: {v}" for k, v in response.headers.items())])
    # The failure did reach the client: a status, an in-band error, or (raw text has no framing) a cut-off body...
    if route == "/chat/stream-simple" and scenario == "error_frame":
        assert response.text == "Hello,"
    else:
        assert response.status_code >= 400 or "error" in response.text
    assert app.upstream.last.provider == provider
    # ...without the upstream's words or the key, and the logs hold neither.
    await asyncio.sleep(0.2)  # the environment's last lines of this request, through its pipe
    logged = "\n".join(app.logs.since(mark))
    assert logged, "the function printed nothing: the check below would prove nothing"
    for secret in SECRET_TEXT:
        assert secret not in seen, f"{secret!r} reached the client"
        assert secret not in logged, f"{secret!r} reached the logs"
