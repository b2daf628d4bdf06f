"""API keys (``tokenrelay.auth``): token format, hashing, checking, the bounded cache, and AUTH_MODE."""

from __future__ import annotations

import hashlib
import time

import pytest

from tests.fakes.protection import MemoryKeyStore
from tokenrelay import ModelNotAllowed, Settings, Unauthorized
from tokenrelay.protection import (
    MAX_CACHE_S,
    REFUSAL_FLOOR_S,
    Authenticator,
    Principal,
    hash_secret,
    new_key,
    parse_token,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_new_key_token_is_trk_id_secret_and_only_the_secret_hash_is_stored() -> None:
    token, key = new_key("alice", rpm=10, concurrency=2, models=["openai:*"], now=5.0)
    prefix, key_id, secret = token.split("_", 2)
    assert prefix == "trk" and key_id == key.key_id and len(key_id) == 16
    assert len(secret) >= 40  # 32 random bytes, base64url
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest() == hash_secret(secret)
    assert secret not in repr(key) and token not in repr(key)
    assert (key.name, key.rpm, key.concurrency, key.models, key.created_at) == ("alice", 10, 2, ("openai:*",), 5.0)
    assert parse_token(token) == (key_id, secret)
    assert new_key("alice")[1].key_id != key.key_id


@pytest.mark.parametrize("models", [["gpt-4o"], ["openai:"], [":gpt-4o"], ["openai:gpt *"]])
def test_new_key_bad_model_pattern_raises_value_error(models: list[str]) -> None:
    with pytest.raises(ValueError, match="models"):
        new_key("x", models=models)


@pytest.mark.parametrize("raw", ["", "trk_", "trk_abc_secret", "sk-abc", "trk_0123456789abcdeg_" + "a" * 43, "x" * 500])
def test_parse_token_malformed_returns_none(raw: str) -> None:
    assert parse_token(raw) is None


async def test_authenticate_valid_token_returns_the_key() -> None:
    store = MemoryKeyStore()
    token, key = new_key("alice")
    store.add(key)
    assert await Authenticator(store).authenticate(token) == key
    assert await Authenticator(store).authenticate(f"  {token} ") == key


async def test_authenticate_missing_token_is_unauthorized_missing_with_bearer_challenge() -> None:
    auth = Authenticator(MemoryKeyStore())
    for token in (None, "", "   "):
        with pytest.raises(Unauthorized) as caught:
            await auth.authenticate(token)
        assert caught.value.missing and caught.value.status_code == 401
        assert caught.value.headers == {"WWW-Authenticate": 'Bearer realm="tokenrelay"'}


async def test_authenticate_wrong_unknown_revoked_and_malformed_all_get_the_same_error() -> None:
    store = MemoryKeyStore()
    token, key = new_key("alice")
    revoked_token, revoked = new_key("bob")
    store.add(key)
    store.add(revoked)
    store.revoke(revoked.key_id)
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    unknown = new_key("carol")[0]
    messages = set()
    for bad in (wrong, unknown, revoked_token, "not-a-key"):
        with pytest.raises(Unauthorized) as caught:
            await Authenticator(store).authenticate(bad)
        assert not caught.value.missing and 'error="invalid_token"' in caught.value.headers["WWW-Authenticate"]
        messages.add(caught.value.message)
        assert bad not in caught.value.message
    assert messages == {"invalid API key"}


async def test_authenticate_caches_valid_keys_within_bound_and_sees_revocation_after_it() -> None:
    store, clock = MemoryKeyStore(), Clock()
    token, key = new_key("alice")
    store.add(key)
    auth = Authenticator(store, cache_s=10, clock=clock)
    await auth.authenticate(token)
    await auth.authenticate(token)
    assert store.gets == 1  # the second came from the cache
    store.revoke(key.key_id)
    clock.now += 9.9
    await auth.authenticate(token)  # still cached: the documented bound
    clock.now += 0.2
    with pytest.raises(Unauthorized):
        await auth.authenticate(token)
    with pytest.raises(Unauthorized):  # a revoked key is never cached
        await auth.authenticate(token)
    assert store.gets == 3


async def test_key_rejection_known_id_wrong_secret_and_unknown_id_do_the_same_work() -> None:
    """Each refusal costs exactly one read of the table, whatever the cache holds (timing tells nothing)."""
    store = MemoryKeyStore()
    token, key = new_key("alice")
    store.add(key)
    auth = Authenticator(store, cache_s=10)
    assert await auth.authenticate(token) == key  # the key id is now cached
    wrong = f"trk_{key.key_id}_{'x' * 43}"
    unknown = f"trk_{'0' * 16}_{'x' * 43}"
    for attempt in range(3):
        for refused in (wrong, unknown):
            before, started = store.gets, time.monotonic()
            with pytest.raises(Unauthorized):
                await auth.authenticate(refused)
            assert store.gets - before == 1, (attempt, refused[:20])
            assert time.monotonic() - started >= REFUSAL_FLOOR_S * 0.99  # and never sooner than the floor
    before = store.gets
    assert await auth.authenticate(token) == key and store.gets - before <= 1  # the right secret still works


async def test_authenticate_without_cache_reads_the_store_every_time() -> None:
    store = MemoryKeyStore()
    token, key = new_key("alice")
    store.add(key)
    auth = Authenticator(store, cache_s=0)
    await auth.authenticate(token)
    store.revoke(key.key_id)
    with pytest.raises(Unauthorized):
        await auth.authenticate(token)


def test_authenticator_cache_longer_than_max_is_refused() -> None:
    with pytest.raises(ValueError):
        Authenticator(MemoryKeyStore(), cache_s=MAX_CACHE_S + 1)


async def test_active_raises_for_unknown_or_revoked_key_id() -> None:
    store = MemoryKeyStore()
    _, key = new_key("alice")
    store.add(key)
    auth = Authenticator(store, cache_s=0)
    assert await auth.active(key.key_id) == key
    store.revoke(key.key_id)
    with pytest.raises(Unauthorized):
        await auth.active(key.key_id)
    with pytest.raises(Unauthorized):
        await auth.active("0123456789abcdef")


def test_principal_model_list_allows_exact_and_provider_wildcard_only() -> None:
    p = Principal("k", models=("openai:gpt-4o-mini", "anthropic:*", "bedrock:amazon.nova-lite-v1:0"))
    p.check_model("openai", "gpt-4o-mini")
    p.check_model("anthropic", "claude-haiku-4-5")
    p.check_model("bedrock", "amazon.nova-lite-v1:0")
    for provider, model in (("openai", "gpt-4.1"), ("echo", "echo-1"), ("bedrock", "amazon.nova-lite-v1")):
        with pytest.raises(ModelNotAllowed) as caught:
            p.check_model(provider, model)
        assert caught.value.status_code == 403 and caught.value.field == "model"
    Principal("k").check_model("echo", "echo-1")  # no list: every model


def test_auth_mode_unset_is_off_locally_and_api_key_in_lambda() -> None:
    assert Settings.from_env({}).auth_mode == "off"
    assert Settings().auth_enabled is False
    lam = Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "f", "API_KEYS_TABLE": "keys"})
    assert lam.auth_enabled and lam.api_keys_table == "keys"
    assert Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "f", "AUTH_MODE": "off"}).auth_enabled is False


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"AWS_LAMBDA_FUNCTION_NAME": "f"}, "API_KEYS_TABLE"),  # a deployed function never opens by omission
        ({"AUTH_MODE": "api_key"}, "API_KEYS_TABLE"),
        ({"AUTH_MODE": "none"}, "AUTH_MODE"),
        ({"API_KEY_CACHE_S": "31"}, "API_KEY_CACHE_S"),
        ({"AUTH_OFF_RPM": "-1"}, "AUTH_OFF_RPM"),
    ],
)
def test_settings_protection_bad_values_stop_the_process(env: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Settings.from_env(env)


def test_principal_may_fall_back_only_to_a_model_its_key_allows() -> None:
    limited = Principal(owner="k1", models=("openai:gpt-4o-mini",))
    assert not limited.may_fall_back(("anthropic", "claude-haiku-4-5"))
    assert limited.may_fall_back(("openai", "gpt-4o-mini"))
    assert Principal(owner="k2", models=("anthropic:*",)).may_fall_back(("anthropic", "claude-haiku-4-5"))
    assert Principal(owner="k3").may_fall_back(("anthropic", "claude-haiku-4-5"))  # no model list
    assert not Principal(owner="k3").may_fall_back(None)  # no fallback configured
