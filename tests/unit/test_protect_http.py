"""``protect.py`` in the app, in process (httpx ASGITransport, in-memory stores): what stays open,
the Mangum path, and AUTH_MODE=off ownership and limits per client."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from mangum import Mangum

from tests.fakes.lambda_context import LambdaContext
from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.protection import MemoryKeyStore, MemoryRateLimitStore
from tests.fakes.providers import ScriptedProvider
from tokenrelay import Settings
from tokenrelay.protection import Authenticator, Guard, RateLimiter, new_key
from tokenrelay.providers import ProviderRegistry
from tokenrelay_http import create_app
from tokenrelay_http.auth import bearer_token

EVENTS = Path(__file__).parent.parent / "events"
ON = Settings(auth_mode="api_key", api_keys_table="keys", echo_delay_s=0.0)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test")


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, None), ("", None), ("Bearer", None), ("Bearer  abc ", "abc"), ("bearer abc", "abc"), ("Basic abc", None)],
)
def test_bearer_token_parses_only_the_bearer_scheme(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


async def test_health_and_docs_stay_open_and_preflight_passes_without_a_key_lookup() -> None:
    keys = MemoryKeyStore()
    app = create_app(ON, store=MemoryStreamStore(), guard=Guard(ON, Authenticator(keys)))
    async with client(app) as http:
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/openapi.json")).status_code == 200
        assert (await http.options("/chat/stream")).status_code != 401
        unknown = await http.get("/no-such-route")
    assert unknown.status_code == 401  # closed by default, before routing
    assert keys.gets == 0


def test_mangum_path_checks_the_key_too() -> None:
    keys = MemoryKeyStore()
    token, key = new_key("alice")
    keys.add(key)
    app = create_app(ON, store=MemoryStreamStore(), guard=Guard(ON, Authenticator(keys)))
    handler = Mangum(app, lifespan="off")
    event = json.loads((EVENTS / "httpapi_post_chat_stream.json").read_text())
    answer = handler(event, LambdaContext())
    assert answer["statusCode"] == 401 and "Bearer" in answer["headers"]["www-authenticate"]
    event["headers"]["authorization"] = f"Bearer {token[:-4]}AAAA"  # the secret does not match
    assert handler(event, LambdaContext())["statusCode"] == 401
    event["headers"]["authorization"] = f"Bearer {token}"
    answer = handler(event, LambdaContext())
    assert answer["statusCode"] == 200 and "event: done" in answer["body"]


async def test_auth_off_owner_is_client_id_and_limits_apply_per_client_when_configured() -> None:
    settings = Settings(echo_delay_s=0.0, auth_off_rpm=1)
    store = MemoryStreamStore()
    limiter = RateLimiter(MemoryRateLimitStore(), lease_s=60, clock=lambda: 30.0)
    app = create_app(settings, store=store, guard=Guard(settings, None, limiter))
    async with client(app) as http:
        first = await http.post("/chat/stream-simple", json={"message": "hi"}, headers={"X-Client-Id": "a"})
        again = await http.post("/chat/stream-simple", json={"message": "hi"}, headers={"X-Client-Id": "a"})
        other = await http.post("/chat/stream-simple", json={"message": "hi"}, headers={"X-Client-Id": "b"})
    assert first.status_code == other.status_code == 200
    assert again.status_code == 429 and again.headers["retry-after"] == "30"
    assert sorted(r.owner for r in store.records.values()) == ["a", "b"]


class RecordingRegistry(ProviderRegistry):  # its get() and aclose() only
    """Every provider name streams from one scripted provider, which records its requests."""

    def __init__(self) -> None:
        self.provider = ScriptedProvider(["ok"])

    def get(self, name: str) -> ScriptedProvider:
        return self.provider

    async def aclose(self) -> None:
        return None


async def test_a_key_limited_to_some_models_is_never_switched_to_the_fallback_model() -> None:
    settings = dataclasses.replace(ON, fallback_model=("openai", "gpt-4o-mini"))
    keys = MemoryKeyStore()
    limited, key = new_key("limited", models=("echo:*",))
    keys.add(key)
    anything, key = new_key("anything")
    keys.add(key)
    registry = RecordingRegistry()
    app = create_app(
        settings, store=MemoryStreamStore(), providers=registry, guard=Guard(settings, Authenticator(keys))
    )
    async with client(app) as http:
        for token in (limited, anything):
            answer = await http.post(
                "/chat/stream-simple", json={"message": "hi"}, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 200 and answer.text == "ok"
    assert [r.fallback for r in registry.provider.requests] == [False, True]
