"""SnapStart's restore hook: what a restored environment must not share with the others
(``tokenrelay.snapstart``), and the route the Web Adapter calls (``tokenrelay_http.snapstart``)."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from tests.fakes.memory_store import MemoryStreamStore
from tests.fakes.protection import MemoryKeyStore
from tokenrelay import Settings
from tokenrelay.protection import Authenticator, Guard
from tokenrelay.snapstart import after_restore
from tokenrelay.stores.dynamodb import _client
from tokenrelay_http import create_app

ON = Settings(auth_mode="api_key", api_keys_table="keys", echo_delay_s=0.0)
HOOK = "/_lwa/after-restore"


def test_after_restore_reseeds_random_and_closes_every_dynamodb_clients_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    clients = [_client.new_client(), _client.new_client(_client.FAST_CONFIG)]
    closed: list[Any] = []
    for client in clients:
        monkeypatch.setattr(client, "close", lambda client=client: closed.append(client))
    random.seed(7)
    snapshot_draws = [random.random() for _ in range(4)]
    random.seed(7)  # every environment restored from one snapshot starts from the same state...
    after_restore()
    assert [random.random() for _ in range(4)] != snapshot_draws  # ...until the hook reseeds it
    assert all(any(c is client for c in closed) for client in clients)


async def test_the_adapter_reaches_the_hook_without_a_key_and_only_by_post(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH", HOOK)
    calls: list[int] = []
    monkeypatch.setattr("tokenrelay_http.snapstart.after_restore", lambda: calls.append(1))
    app = create_app(ON, store=MemoryStreamStore(), guard=Guard(ON, Authenticator(MemoryKeyStore())))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        restored = await http.post(HOOK)
        wrong_method = await http.get(HOOK)
        stream = await http.post("/chat/stream", json={"message": "hi"})  # every other route still needs a key
    assert restored.status_code == 204 and calls == [1]
    assert wrong_method.status_code == 405 and calls == [1]
    assert stream.status_code == 401


async def test_without_snapstart_there_is_no_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH", raising=False)
    app = create_app(ON, store=MemoryStreamStore(), guard=Guard(ON, Authenticator(MemoryKeyStore())))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        response = await http.post(HOOK)
    assert response.status_code in (401, 404)  # closed like any unknown path: no key, no answer
