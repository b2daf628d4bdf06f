"""``ProviderRegistry.prepare()``: the default provider (and the fallback's) created at init, the rest left alone."""

from __future__ import annotations

import asyncio

import pytest

from tokenrelay import Settings
from tokenrelay.errors import Rejected
from tokenrelay.providers import ProviderRegistry
from tokenrelay.requests import ChatRequest, Message


def settings(**env: str) -> Settings:
    base = {"DEFAULT_PROVIDER": "openai", "ALLOWED_MODELS": "openai:gpt-4o-mini", "OPENAI_API_KEY": "sk-test"}
    return Settings.from_env({**base, **env})


def test_prepare_builds_the_default_providers_client_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    registry = ProviderRegistry(settings(ANTHROPIC_API_KEY="sk-ant", ALLOWED_MODELS="openai:gpt-4o-mini;anthropic:x"))
    registry.prepare()
    assert set(registry._raw) == {"openai"}  # anthropic is configured, not the default: its first request makes it
    assert registry._raw["openai"]._client is not None  # type: ignore[attr-defined]
    asyncio.run(registry.aclose())


def test_prepare_without_a_key_leaves_the_error_to_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # gone since the settings were read: the SDK finds none
    registry = ProviderRegistry(settings(UPSTREAM_MAX_RETRIES="0"))
    registry.prepare()  # does not raise: init must not fail for a provider a request may never use

    async def first() -> None:
        request = ChatRequest(messages=(Message("user", "hi"),), provider="openai", model="gpt-4o-mini", max_tokens=8)
        async for _ in registry.get("openai").stream(request):
            pass

    with pytest.raises(Rejected, match="no API key"):
        asyncio.run(first())
