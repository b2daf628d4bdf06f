"""API keys: the record and the store protocol (docs/security.md; the format is in
``tokenrelay.protection``). ``stores.dynamodb.DynamoApiKeyStore`` is the implementation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .rate_limits import Limits

__all__ = ["ApiKey", "KeyStore"]


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    secret_hash: str
    name: str  # the owner label given at creation
    rpm: int = 60
    concurrency: int = 5
    models: tuple[str, ...] | None = None  # None: every model of the deployment
    created_at: float = 0.0
    revoked_at: float | None = None
    tpm: int = 0  # tokens per minute, 0 = no budget
    daily_usd: float = 0.0  # dollars per UTC day, 0 = no budget

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def limits(self) -> Limits:
        return Limits(self.rpm, self.concurrency, self.tpm, self.daily_usd)


class KeyStore(Protocol):
    async def get(self, key_id: str) -> ApiKey | None: ...
