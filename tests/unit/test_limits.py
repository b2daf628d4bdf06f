"""Rate limits (``tokenrelay.limits``) over the in-memory store: windows, slots, leases, release."""

from __future__ import annotations

import logging
import random

import pytest

from tests.fakes.protection import MemoryRateLimitStore
from tokenrelay import LimitExceeded
from tokenrelay.protection import RateLimiter, rpm_key, slot_key
from tokenrelay.stores import Lease, Limits


class Clock:
    def __init__(self, now: float = 600.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(store: MemoryRateLimitStore, clock: Clock, lease_s: float = 100.0) -> RateLimiter:
    return RateLimiter(store, lease_s, clock=clock, rng=random.Random(7))


async def test_rpm_admits_limit_then_refuses_with_seconds_to_window_end() -> None:
    store, clock = MemoryRateLimitStore(), Clock(600.0 + 45.2)  # 14.8 s before the minute ends
    rl = limiter(store, clock)
    for i in range(3):
        assert await rl.admit("k", Limits(rpm=3), f"s{i}") is None  # no concurrency limit: no lease
    with pytest.raises(LimitExceeded) as caught:
        await rl.admit("k", Limits(rpm=3), "s3")
    exc = caught.value
    assert (exc.status_code, exc.code, exc.limit, exc.retry_after) == (429, "rate_limited", "requests_per_minute", 15)
    assert exc.headers == {"Retry-After": "15"} and exc.retryable
    assert store.counters == {rpm_key("k", 10): 3}
    clock.now = 660.0  # the next minute: a fresh counter
    await rl.admit("k", Limits(rpm=3), "s4")
    await rl.admit("other", Limits(rpm=3), "s5")  # per subject


async def test_concurrency_admits_n_then_refuses_and_a_release_frees_a_slot() -> None:
    store, clock = MemoryRateLimitStore(), Clock()
    rl = limiter(store, clock)
    leases = [await rl.admit("k", Limits(concurrency=2), f"s{i}") for i in range(2)]
    assert {lease.slot for lease in leases if lease} == {slot_key("k", 0), slot_key("k", 1)}
    with pytest.raises(LimitExceeded) as caught:
        await rl.admit("k", Limits(concurrency=2), "s2")
    assert caught.value.limit == "concurrent_streams" and caught.value.retry_after == 1
    await rl.release(leases[0])
    again = await rl.admit("k", Limits(concurrency=2), "s3")
    assert again is not None and leases[0] is not None and again.slot == leases[0].slot


async def test_expired_lease_is_taken_over_and_the_late_release_leaves_it_alone() -> None:
    store, clock = MemoryRateLimitStore(), Clock()
    rl = limiter(store, clock, lease_s=100)
    crashed = await rl.admit("k", Limits(concurrency=1), "crashed")
    clock.now += 99
    with pytest.raises(LimitExceeded):
        await rl.admit("k", Limits(concurrency=1), "early")
    clock.now += 2  # past the lease
    taken = await rl.admit("k", Limits(concurrency=1), "next")
    assert taken is not None and store.slots[taken.slot][0] == "next"
    await rl.release(crashed)  # the crashed stream's release comes late: it names itself, not "next"
    assert store.slots[taken.slot][0] == "next"


async def test_refused_for_concurrency_still_counts_one_request_of_the_minute() -> None:
    store, clock = MemoryRateLimitStore(), Clock()
    rl = limiter(store, clock)
    await rl.admit("k", Limits(rpm=5, concurrency=1), "a")
    with pytest.raises(LimitExceeded):
        await rl.admit("k", Limits(rpm=5, concurrency=1), "b")
    assert store.counters[rpm_key("k", 10)] == 2


async def test_release_failure_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryRateLimitStore(fail_release=True)
    rl = limiter(store, Clock())
    with caplog.at_level(logging.ERROR, logger="tokenrelay.limits"):
        await rl.release(Lease(slot_key("k", 0), "s1"))
    assert "s1" in caplog.text and "expires by itself" in caplog.text
    await rl.release(None)


def test_long_subjects_are_hashed_into_a_bounded_key() -> None:
    key = slot_key("x" * 5000, 3)
    assert len(key) < 100 and key.startswith("slot#sha256:") and key.endswith("#3")
    assert slot_key("x" * 5000, 3) == key != slot_key("y" * 5000, 3)
