"""API keys: the token format, how secrets are stored and checked, and who a caller is.

A key is shown to its owner once, as ``trk_<key_id>_<secret>``:

    key_id   16 hex characters (``secrets.token_hex(8)``): public; the partition key
             of ``ApiKeysTable``, the owner of the key's streams, the rate-limit subject
    secret   ``secrets.token_urlsafe(32)``: 256 random bits

Only ``sha256(secret)`` is stored. Slow password hashes (bcrypt, scrypt, argon2) make
guessing a *low-entropy* password from a leaked hash expensive; a 256-bit random
secret cannot be guessed at any hash speed, so a fast hash loses nothing, and it keeps
the check cheap enough to run on every request (a deliberately slow hash on every
request would itself be a denial-of-service lever). The stored and presented hashes
are compared with ``hmac.compare_digest``; an unknown key id is compared against a
dummy hash, and a refusal always follows one read of the table (a wrong secret for a
cached key id is looked up again), so refusing an unknown id and refusing a known id
with a wrong secret do the same work; and no refusal is answered sooner than
``REFUSAL_FLOOR_S`` (50 ms) after the request, so what is left of a difference (DynamoDB
returns a found item a little slower than none) does not show either.

``Authenticator`` looks keys up through a ``KeyStore`` (DynamoDB in
``stores/api_keys.py``) and caches a *valid* key in process for at most
``cache_s`` (``API_KEY_CACHE_S``, at most 30 s): a revoked key stops working on every
instance within that bound. Unknown and revoked keys are never cached. The cache is
an optimisation; the table is the truth.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import ModelNotAllowed, Unauthorized
from ..stores.api_keys import ApiKey, KeyStore
from ..stores.rate_limits import Limits

__all__ = [
    "MAX_CACHE_S",
    "REFUSAL_FLOOR_S",
    "TOKEN_PREFIX",
    "Authenticator",
    "Principal",
    "hash_secret",
    "model_pattern_ok",
    "new_key",
    "parse_token",
]

TOKEN_PREFIX = "trk"
MAX_CACHE_S = 30.0
REFUSAL_FLOOR_S = 0.05  # a refused key is answered no sooner than this after the request
_TOKEN = re.compile(r"trk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})")
_MODEL_PATTERN = re.compile(r"[A-Za-z0-9._-]+:(\*|[^\s:*][^\s*]*)")
_DUMMY_HASH = hashlib.sha256(b"tokenrelay: no such key").hexdigest()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _matches(presented_hash: str, key: ApiKey | None) -> bool:
    """Constant-time compare, against a dummy hash when there is no key (the same work either way)."""
    stored = key.secret_hash if key is not None else _DUMMY_HASH
    return hmac.compare_digest(presented_hash, stored) and key is not None


def parse_token(raw: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed token, else None."""
    match = _TOKEN.fullmatch(raw.strip())
    return (match.group(1), match.group(2)) if match else None


def model_pattern_ok(pattern: str) -> bool:
    """``provider:model`` or ``provider:*``."""
    return _MODEL_PATTERN.fullmatch(pattern) is not None


def new_key(
    name: str,
    *,
    rpm: int = 60,
    concurrency: int = 5,
    models: Sequence[str] | None = None,
    now: float | None = None,
    tpm: int = 0,
    daily_usd: float = 0.0,
) -> tuple[str, ApiKey]:
    """A fresh key: ``(token, record)``. The token is shown once and never stored."""
    for pattern in models or ():
        if not model_pattern_ok(pattern):
            raise ValueError(f"models: expected 'provider:model' or 'provider:*', got {pattern!r}")
    if rpm < 0 or concurrency < 0 or tpm < 0 or not daily_usd >= 0:
        raise ValueError("rpm, concurrency, tpm and daily_usd must be >= 0 (0 = no limit)")
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    record = ApiKey(
        key_id=key_id,
        secret_hash=hash_secret(secret),
        name=name,
        rpm=rpm,
        concurrency=concurrency,
        models=tuple(models) if models else None,
        created_at=time.time() if now is None else now,
        tpm=tpm,
        daily_usd=daily_usd,
    )
    return f"{TOKEN_PREFIX}_{key_id}_{secret}", record


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the owner of the streams they start, and what they may do."""

    owner: str
    limits: Limits = field(default_factory=Limits)
    models: tuple[str, ...] | None = None
    key_id: str | None = None

    def allows(self, provider: str, model: str) -> bool:
        """True if the key has no model list or it names ``provider:model`` or ``provider:*``."""
        return self.models is None or f"{provider}:{model}" in self.models or f"{provider}:*" in self.models

    def check_model(self, provider: str, model: str) -> None:
        """Raise ``ModelNotAllowed`` unless the key may use ``provider:model``."""
        if not self.allows(provider, model):
            raise ModelNotAllowed(provider, model)

    def may_fall_back(self, fallback: tuple[str, str] | None) -> bool:
        """May the deployment's fallback model serve this caller (a key limited to some models
        is never switched to another one behind its back)?"""
        return fallback is not None and self.allows(*fallback)

    @classmethod
    def of_key(cls, key: ApiKey) -> Principal:
        return cls(owner=key.key_id, limits=key.limits, models=key.models, key_id=key.key_id)


class Authenticator:
    """Token -> valid ``ApiKey``, or ``Unauthorized``; ``StoreUnavailable`` if the table is down."""

    def __init__(
        self,
        store: KeyStore,
        cache_s: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 1024,
        refusal_floor_s: float = REFUSAL_FLOOR_S,
    ) -> None:
        if not 0 <= cache_s <= MAX_CACHE_S:
            raise ValueError(f"cache_s: must be between 0 and {MAX_CACHE_S}")
        self.store = store
        self.cache_s = cache_s
        self.refusal_floor_s = refusal_floor_s
        self._clock = clock
        self._max = max_entries
        self._cache: OrderedDict[str, tuple[ApiKey, float]] = OrderedDict()

    async def authenticate(self, token: str | None) -> ApiKey:
        started = time.monotonic()
        try:
            return await self._authenticate(token)
        except Unauthorized:
            # Never sooner than the floor: what is left of a difference between refusals (a
            # found item comes back a little slower than none) hides under it.
            await asyncio.sleep(max(self.refusal_floor_s - (time.monotonic() - started), 0.0))
            raise

    async def _authenticate(self, token: str | None) -> ApiKey:
        if token is None or not token.strip():
            raise Unauthorized(missing=True)
        parsed = parse_token(token)
        if parsed is None:
            raise Unauthorized()
        key_id, secret = parsed
        presented = hash_secret(secret)
        key, cached = await self._lookup(key_id)
        if cached and not _matches(presented, key):
            # A refusal always follows one read of the table: a wrong secret for a cached id
            # would otherwise answer ~10x faster than an unknown id, telling which ids exist.
            key, _ = await self._lookup(key_id, fresh=True)
        if key is None or not _matches(presented, key):
            raise Unauthorized()
        return key

    async def active(self, key_id: str) -> ApiKey:
        """The key's record if it exists and is not revoked (cached), else ``Unauthorized``.
        Used again by WebSocket ``chat`` on an open connection."""
        key, _ = await self._lookup(key_id)
        if key is None:
            raise Unauthorized()
        return key

    async def _lookup(self, key_id: str, *, fresh: bool = False) -> tuple[ApiKey | None, bool]:
        """The key's record if it exists and is not revoked, and whether it came from the cache
        (``fresh``: from the table, whatever the cache holds)."""
        now = self._clock()
        hit = self._cache.get(key_id)
        if hit is not None and now - hit[1] < self.cache_s and not fresh:
            return hit[0], True
        self._cache.pop(key_id, None)
        key = await self.store.get(key_id)
        if key is None or key.revoked:
            return None, False
        if self.cache_s > 0:
            self._cache[key_id] = (key, now)
            while len(self._cache) > self._max:  # oldest first; another thread may have emptied it
                try:
                    self._cache.popitem(last=False)
                except KeyError:
                    break
        return key, False

    def forget(self) -> None:
        self._cache.clear()
