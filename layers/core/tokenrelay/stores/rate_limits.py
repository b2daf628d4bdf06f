"""Per-key limits: what a subject may do, a held concurrency slot, and the store protocol.

The scheme (counters per minute, slot leases) is ``tokenrelay.protection``'s;
``stores.dynamodb.DynamoRateLimitStore`` is the implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Lease", "Limits", "RateLimitStore"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one subject (an API key, or a client when auth is off) may do; 0 = unlimited."""

    rpm: int = 0
    concurrency: int = 0
    tpm: int = 0  # tokens (prompt + completion) per clock minute
    daily_usd: float = 0.0  # spend per UTC day, at the price table's prices

    @property
    def any(self) -> bool:
        return self.rpm > 0 or self.concurrency > 0 or self.budgeted

    @property
    def budgeted(self) -> bool:
        return self.tpm > 0 or self.daily_usd > 0


@dataclass(frozen=True, slots=True)
class Lease:
    """A concurrency slot held by one stream, until ``RateLimiter.release``."""

    slot: str  # the slot item's partition key
    stream_id: str


class RateLimitStore(Protocol):
    async def count_request(self, key: str, limit: int, expires_at: int) -> bool:
        """Add one to counter ``key`` unless it reached ``limit``; False if it had."""
        ...

    async def acquire_slot(self, key: str, stream_id: str, now: float, expires_at: int) -> bool:
        """Take slot ``key`` for ``stream_id`` until ``expires_at`` if free or expired at ``now``."""
        ...

    async def release_slot(self, key: str, stream_id: str) -> bool:
        """Delete slot ``key`` if ``stream_id`` still holds it; False if it did not."""
        ...

    async def under_budget(self, key: str, limit: float, expires_at: int) -> bool:
        """Is budget counter ``key`` still below ``limit`` (one conditional write, no read)."""
        ...

    async def spend(self, key: str, amount: float, expires_at: int) -> None:
        """Add ``amount`` to budget counter ``key`` (atomically: no update is ever lost)."""
        ...
