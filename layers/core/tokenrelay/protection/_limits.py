"""Per-key rate limits, enforced atomically in DynamoDB (``RateLimitsTable``).

Two limits, each checked with one conditional write and no read before it, so any
number of Lambda instances racing for the same key can never admit more than the
limit between them (in-process memory is never the truth):

    requests per minute    one counter item per subject per clock minute,
                           ``rpm#<subject>#<minute>``: ``ADD count :1`` on condition
                           ``attribute_not_exists(pk) OR count < :limit``; the item
                           expires (TTL) a minute after its window
    concurrent streams     ``limit`` slot items per subject, ``slot#<subject>#<n>``
                           (``0 <= n < limit``): a stream takes a free one with a
                           conditional put (``attribute_not_exists(pk) OR
                           expires_at < :now``) naming itself, and gives it back
                           with a conditional delete naming itself

A slot is a lease: it expires after the longest a stream can live
(``STREAM_TIMEOUT_S`` + ``LEASE_MARGIN_S``), so a process that crashed without
releasing frees its slots by itself; the condition treats an expired item as free
(DynamoDB's TTL deletion may lag by days, so it is never relied on).

Token budgets (tokens per minute, daily spend) are checked after the request count and
before a slot is taken (``_budgets``). The per-minute check comes first: a request it
refuses costs one failed write; one
refused for concurrency has used one request of its minute. ``0`` means no limit.
A refusal is ``LimitExceeded`` (429, ``rate_limited``) with ``retry_after``: the
seconds to the end of the minute, or ``CONCURRENCY_RETRY_AFTER_S`` for a slot.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
from collections.abc import Callable

from ..errors import LimitExceeded, TokenRelayError
from ..stores.rate_limits import Lease, Limits, RateLimitStore
from ._budgets import Budgets

__all__ = [
    "CONCURRENCY_RETRY_AFTER_S",
    "LEASE_MARGIN_S",
    "RateLimiter",
    "rpm_key",
    "slot_key",
]

log = logging.getLogger("tokenrelay.limits")
LEASE_MARGIN_S = 120.0  # past the stream deadline: the worker's own margin, posting the tail, clock skew
CONCURRENCY_RETRY_AFTER_S = 1
WINDOW_S = 60
MAX_SUBJECT_CHARS = 128


def _subject(subject: str) -> str:
    """Client-chosen owners (X-Client-Id) may be long or odd: keep the key bounded."""
    if len(subject) <= MAX_SUBJECT_CHARS:
        return subject
    return "sha256:" + hashlib.sha256(subject.encode()).hexdigest()


def rpm_key(subject: str, minute: int) -> str:
    return f"rpm#{_subject(subject)}#{minute}"


def slot_key(subject: str, n: int) -> str:
    return f"slot#{_subject(subject)}#{n}"


class RateLimiter:
    """Admit a stream under a subject's ``Limits``; release its slot when it ends."""

    def __init__(
        self,
        store: RateLimitStore,
        lease_s: float,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.lease_s = lease_s
        self._clock = clock
        self.budgets = Budgets(store, clock=clock)
        # os.urandom per draw: environments restored from one SnapStart snapshot draw apart
        self._rng = rng or random.SystemRandom()

    async def admit(self, subject: str, limits: Limits, stream_id: str) -> Lease | None:
        """Count the request and take a slot; the lease to release (None with no concurrency limit).

        Raises ``LimitExceeded`` when a limit refuses, ``StoreUnavailable`` when the
        table cannot be reached (fail closed: a limit that cannot be checked is not passed).
        """
        now = self._clock()
        if limits.rpm > 0:
            minute = int(now // WINDOW_S)
            window_end = (minute + 1) * WINDOW_S
            if not await self.store.count_request(rpm_key(subject, minute), limits.rpm, window_end + WINDOW_S):
                retry = max(1, math.ceil(window_end - now))
                raise LimitExceeded(
                    "requests_per_minute", retry, f"at most {limits.rpm} requests per minute for this key"
                )
        if limits.budgeted:
            await self.budgets.check(_subject(subject), limits)
        if limits.concurrency <= 0:
            return None
        expires_at = math.ceil(now + self.lease_s)
        start = self._rng.randrange(limits.concurrency)  # spread racing requests over the slots
        for i in range(limits.concurrency):
            key = slot_key(subject, (start + i) % limits.concurrency)
            if await self.store.acquire_slot(key, stream_id, now, expires_at):
                return Lease(key, stream_id)
        raise LimitExceeded(
            "concurrent_streams",
            CONCURRENCY_RETRY_AFTER_S,
            f"at most {limits.concurrency} streams may run at once for this key",
        )

    async def spend(self, subject: str, limits: Limits, tokens: int, cost_usd: float | None) -> None:
        """Count what a stream used against ``subject``'s budgets (never raises)."""
        await self.budgets.spend(_subject(subject), limits, tokens, cost_usd)

    async def release(self, lease: Lease | None) -> None:
        """Give the slot back. Never raises: a failure is logged and the lease expires by itself."""
        if lease is None:
            return
        try:
            if not await self.store.release_slot(lease.slot, lease.stream_id):
                log.info("stream %s: its slot had already expired and moved on", lease.stream_id)
        except TokenRelayError as exc:
            log.warning("stream %s: slot release failed (it expires by itself): %s", lease.stream_id, exc)
        except Exception:
            log.exception("stream %s: slot release failed (it expires by itself)", lease.stream_id)
