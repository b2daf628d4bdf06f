"""In-memory ``KeyStore`` and ``RateLimitStore`` with the DynamoDB stores' semantics, for unit tests.

Each operation is atomic on the event loop (no await inside), as each DynamoDB
conditional write is atomic on its item.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tokenrelay.stores import ApiKey


@dataclass
class MemoryKeyStore:
    keys: dict[str, ApiKey] = field(default_factory=dict)
    gets: int = 0

    async def get(self, key_id: str) -> ApiKey | None:
        self.gets += 1
        return self.keys.get(key_id)

    def add(self, key: ApiKey) -> ApiKey:
        self.keys[key.key_id] = key
        return key

    def revoke(self, key_id: str, at: float = 1.0) -> None:
        self.keys[key_id] = replace(self.keys[key_id], revoked_at=at)


@dataclass
class MemoryRateLimitStore:
    counters: dict[str, int] = field(default_factory=dict)
    slots: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (stream id, expires_at)
    fail_release: bool = False
    used: dict[str, float] = field(default_factory=dict)  # budget counters: tokens or dollars

    async def count_request(self, key: str, limit: int, expires_at: int) -> bool:
        if self.counters.get(key, 0) >= limit:
            return False
        self.counters[key] = self.counters.get(key, 0) + 1
        return True

    async def acquire_slot(self, key: str, stream_id: str, now: float, expires_at: int) -> bool:
        held = self.slots.get(key)
        if held is not None and not held[1] < now:
            return False
        self.slots[key] = (stream_id, expires_at)
        return True

    async def under_budget(self, key: str, limit: float, expires_at: int) -> bool:
        return self.used.get(key, 0) < limit

    async def spend(self, key: str, amount: float, expires_at: int) -> None:
        self.used[key] = self.used.get(key, 0) + amount

    async def release_slot(self, key: str, stream_id: str) -> bool:
        if self.fail_release:
            raise RuntimeError("the table is down")
        held = self.slots.get(key)
        if held is None or held[0] != stream_id:
            return False
        del self.slots[key]
        return True
