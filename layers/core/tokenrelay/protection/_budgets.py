"""Per-key token budgets, enforced atomically in DynamoDB (``RateLimitsTable``) beside the
request and concurrency limits of ``_limits`` (docs/security.md, "Token budgets").

    tokens per minute   ``tpm#<subject>#<minute>``: the tokens (prompt + completion) of the
                        streams that ended in that clock minute
    daily spend         ``usd#<subject>#<day>``: the dollars (catalog.prices) of the streams
                        that ended that UTC day

A stream is admitted while its key's counters are below their limits: one conditional write
per budget (``attribute_not_exists(used) OR used < :limit``), never a read, so racing
instances cannot disagree. What a stream used is known only at its end, so it is counted
then, with an atomic ``ADD`` (no update is lost, however many end at once): a running
stream always finishes, and once a counter reaches its limit the next request is refused,
429 ``rate_limited`` with ``Retry-After`` to the end of the minute or the UTC day. So a key
can overshoot a budget by what its streams already running use, never more; a stream's
tokens are the provider's count, or the chunks relayed when a cut stream got none, and its
cost is the one its record has (estimated when usage never came).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from ..errors import LimitExceeded, TokenRelayError
from ..stores.rate_limits import Limits, RateLimitStore

__all__ = ["DAY_S", "Budgets", "tpm_key", "usd_key"]

log = logging.getLogger("tokenrelay.limits")
MINUTE_S = 60
DAY_S = 86_400


def tpm_key(subject: str, minute: int) -> str:
    return f"tpm#{subject}#{minute}"


def usd_key(subject: str, day: int) -> str:
    return f"usd#{subject}#{day}"


class Budgets:
    def __init__(self, store: RateLimitStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    async def check(self, subject: str, limits: Limits) -> None:
        """Raise ``LimitExceeded`` when a budget of ``subject`` is spent (``StoreUnavailable``:
        the table cannot be reached, and a budget that cannot be checked is not passed)."""
        now = self._clock()
        if limits.tpm > 0:
            end = (int(now // MINUTE_S) + 1) * MINUTE_S
            if not await self.store.under_budget(tpm_key(subject, end // MINUTE_S - 1), limits.tpm, end + MINUTE_S):
                raise LimitExceeded(
                    "tokens_per_minute",
                    max(1, math.ceil(end - now)),
                    f"at most {limits.tpm} tokens per minute for this key",
                )
        if limits.daily_usd > 0:
            end = (int(now // DAY_S) + 1) * DAY_S
            if not await self.store.under_budget(usd_key(subject, end // DAY_S - 1), limits.daily_usd, end + DAY_S):
                raise LimitExceeded(
                    "daily_spend",
                    max(1, math.ceil(end - now)),
                    f"this key's daily budget of ${limits.daily_usd:g} is spent (it renews at 00:00 UTC)",
                )

    async def spend(self, subject: str, limits: Limits, tokens: int, cost_usd: float | None) -> None:
        """Count what a stream used. Never raises: a failure is logged (the stream is over)."""
        now = self._clock()
        try:
            if limits.tpm > 0 and tokens > 0:
                minute = int(now // MINUTE_S)
                await self.store.spend(tpm_key(subject, minute), tokens, (minute + 2) * MINUTE_S)
            if limits.daily_usd > 0 and cost_usd:
                day = int(now // DAY_S)
                await self.store.spend(usd_key(subject, day), cost_usd, (day + 2) * DAY_S)
        except TokenRelayError as exc:
            log.warning("%s: could not count %d tokens, $%s: %s", subject, tokens, cost_usd, exc)
        except Exception:
            log.exception("%s: could not count %d tokens, $%s", subject, tokens, cost_usd)
