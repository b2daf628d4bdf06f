"""Upstream error bodies and the API key never reach a client or a log.

The fake upstream puts ``UPSTREAM_DETAIL`` and the key the client presented in
every error body and error frame (as real providers quote part of a bad key).
Each case drives a real SDK against it through the app under uvicorn, on every
HTTP route, and checks the client's bytes (headers and body) and every log
record of the process, at DEBUG.
"""

from __future__ import annotations

import logging

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
        body = {"model": f"{provider}/{MODELS[provider]}", "messages": [{"role": "user", "content": "hi"}]}
        if route.endswith("stream"):
            body["stream"] = True
        return await client.post("/v1/chat/completions", json=body)
    return await client.post(route, json={"message": "hi", "provider": provider})


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize("route", ["/chat/stream", "/chat/stream-simple", "/v1 stream", "/v1"])
async def test_upstream_error_body_and_key_never_reach_client_or_logs(
    app: LocalApp, caplog: pytest.LogCaptureFixture, route: str, provider: str, scenario: str
) -> None:
    app.upstream.scenario = SCENARIOS[scenario]
    with caplog.at_level(logging.DEBUG):
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
    logged = "\n".join(
        [caplog.text, *(str(r.args) for r in caplog.records), *(str(r.exc_info) for r in caplog.records)]
    )
    for secret in SECRET_TEXT:
        assert secret not in seen, f"{secret!r} reached the client"
        assert secret not in logged, f"{secret!r} reached the logs"
