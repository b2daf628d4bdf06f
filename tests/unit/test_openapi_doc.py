"""``/openapi.json`` documents what the routes read by hand, and 404/405 answer as documented."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tokenrelay import Settings
from tokenrelay.requests import _Body
from tokenrelay_http import create_app
from tokenrelay_http.openapi import chat_body_schema

QUERY: tuple[str, ...] = ("message", "system", "provider", "model", "max_tokens", "temperature", "top_p", "seed")
QUERY += ("stop", "presence_penalty", "frequency_penalty", "user", "prompt_cache_key")
SETTINGS = Settings.from_env({"DEFAULT_PROVIDER": "echo", "ALLOWED_MODELS": "echo:echo-1,echo-2"})


@pytest.fixture
def document() -> dict[str, Any]:
    return create_app(SETTINGS, store=MemoryStreamStore()).openapi()


def test_chat_body_schema_has_exactly_the_fields_of_the_request_model() -> None:
    schema = chat_body_schema(SETTINGS)
    assert set(schema["properties"]) == set(_Body.model_fields)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["model"]["anyOf"][0]["enum"] == ["echo-1", "echo-2"]


def test_document_has_request_bodies_errors_and_the_v1_api(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for path in ("/chat/stream", "/chat/stream-simple"):
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == chat_body_schema(SETTINGS)
        assert {"400", "413", "415"} <= set(paths[path]["post"]["responses"])
    assert [p["name"] for p in paths["/chat/stream"]["get"]["parameters"]] == list(QUERY)
    assert "/v1/chat/completions" in paths and "/v1/models/{model}" in paths
    enum = paths["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert enum["properties"]["model"]["enum"] == ["echo/echo-1", "echo/echo-2"]


async def test_405_lists_every_method_of_the_path_in_allow() -> None:
    app = create_app(SETTINGS, store=MemoryStreamStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        response = await client.request("DELETE", "/chat/stream")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}


async def test_v1_path_the_mount_cannot_match_answers_in_openai_shape() -> None:
    app = create_app(SETTINGS, store=MemoryStreamStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
        response = await client.get("/v1/models/a%0Ab")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
