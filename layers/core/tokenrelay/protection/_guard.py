"""Admission: the one guard every transport asks before a stream starts (docs/security.md).

``Guard`` holds the deployment's authenticator, rate limiter and refusal counter (each may
be absent) and makes every refusal, so each is counted once, where it is made (the
``Refusals`` metric, ``Reason`` = the error's code, ``Transport`` = whose guard):

    authenticate(token)     401 unauthorized: no key, or a refused one
    admit(principal, ...)   the key still valid (``recheck``: a WebSocket connection's key,
                            which may have been revoked since ``$connect``), 403
                            model_not_allowed, then the limits: 429 rate_limited with
                            ``retry_after``; the concurrency slot taken, to give back
    check_owner(...)        403 forbidden: a cancel or resume of another owner's stream
    release(lease)          the slot back, however the stream ended (never raises)
    spend_soon(...)         what the stream used, counted against its key's token budgets

Where the key comes from (a header, a query string, a WebSocket subprotocol) is each
transport's business; what it may do is decided here.
"""

from __future__ import annotations

import asyncio
import logging

from ..errors import Forbidden, LimitExceeded, ModelNotAllowed, Unauthorized
from ..settings import Settings
from ..stores.api_keys import KeyStore
from ..stores.rate_limits import Lease, Limits, RateLimitStore
from ..telemetry.metrics import RefusalMetrics
from ._keys import Authenticator, Principal
from ._limits import LEASE_MARGIN_S, RateLimiter

__all__ = ["ANONYMOUS", "Guard", "Refusal"]

log = logging.getLogger("tokenrelay.protection")
ANONYMOUS = "anonymous"
Refusal = Unauthorized | Forbidden | ModelNotAllowed | LimitExceeded


class Guard:
    def __init__(
        self,
        settings: Settings,
        authenticator: Authenticator | None = None,
        limiter: RateLimiter | None = None,
        refusals: RefusalMetrics | None = None,
        *,
        transport: str = "http",
    ) -> None:
        if settings.auth_enabled and authenticator is None:
            raise ValueError("AUTH_MODE=api_key needs an authenticator")
        self.settings = settings
        self.authenticator = authenticator
        self.limiter = limiter
        self.refusals = refusals
        self.transport = transport
        self.open_limits = Limits(settings.auth_off_rpm, settings.auth_off_concurrency)
        self._releases: set[asyncio.Task[None]] = set()

    @classmethod
    def build(
        cls, settings: Settings, keys: KeyStore | None, rate_limits: RateLimitStore | None, *, transport: str
    ) -> Guard:
        """The deployment's guard on its stores (made once per execution environment). A slot's
        lease outlives the longest stream: ``STREAM_TIMEOUT_S`` + ``LEASE_MARGIN_S``."""
        authenticator = None
        if settings.auth_enabled:
            assert keys is not None, "AUTH_MODE=api_key needs API_KEYS_TABLE"
            authenticator = Authenticator(keys, settings.api_key_cache_s)
        limiter = None if rate_limits is None else RateLimiter(rate_limits, settings.stream_timeout_s + LEASE_MARGIN_S)
        metrics = settings.metrics_enabled
        refusals = RefusalMetrics(settings.metrics_namespace, settings.service_name) if metrics else None
        return cls(settings, authenticator, limiter, refusals, transport=transport)

    def refused(self, exc: Refusal) -> None:
        """Count a refusal (the ``Refusals`` metric, ``Reason`` = its code); never raises."""
        if self.refusals is not None:
            self.refusals.emit(exc.code, self.transport)

    async def authenticate(self, token: str | None) -> Principal:
        """The caller of ``token``; ``Unauthorized`` (counted), or ``StoreUnavailable``."""
        assert self.authenticator is not None, "AUTH_MODE=off: use open_principal"
        try:
            return Principal.of_key(await self.authenticator.authenticate(token))
        except Unauthorized as exc:
            self.refused(exc)
            raise

    def open_principal(self, owner: str | None) -> Principal:
        """AUTH_MODE=off: the caller is whoever they say (or ``anonymous``), under the open limits."""
        return Principal(owner=owner or ANONYMOUS, limits=self.open_limits)

    async def admit(
        self, principal: Principal, provider: str, model: str, stream_id: str, *, recheck: bool = False
    ) -> Lease | None:
        """Admit one stream of ``principal`` or refuse it (counted); the slot taken, if any.

        ``recheck``: look the principal's key up again first (a revoked key shows within
        ``API_KEY_CACHE_S``); a principal without a key is refused when keys are required."""
        try:
            if recheck and self.authenticator is not None:
                if principal.key_id is None:  # e.g. a WebSocket connected before AUTH_MODE=api_key
                    raise Unauthorized()
                await self.authenticator.active(principal.key_id)
            principal.check_model(provider, model)
            if self.limiter is None or not principal.limits.any:
                return None
            return await self.limiter.admit(principal.owner, principal.limits, stream_id)
        except (Unauthorized, ModelNotAllowed, LimitExceeded) as exc:
            self.refused(exc)
            raise

    def check_owner(self, principal: Principal, owner: str, stream_id: str) -> None:
        """403 ``forbidden`` (counted) unless ``principal`` owns the stream (cancel, resume)."""
        if owner != principal.owner:
            exc = Forbidden(stream_id, "API key" if self.settings.auth_enabled else "client")
            self.refused(exc)
            raise exc

    async def release(self, lease: Lease | None) -> None:
        """Give the slot back (never raises: a failure is logged and the lease expires by itself)."""
        if lease is not None and self.limiter is not None:
            await self.limiter.release(lease)

    async def spend(self, owner: str, limits: Limits, tokens: int, cost_usd: float | None) -> None:
        """Count what a stream of ``owner`` used against its key's budgets (never raises)."""
        if self.limiter is not None and limits.budgeted:
            await self.limiter.spend(owner, limits, tokens, cost_usd)

    def spend_soon(self, owner: str, limits: Limits, tokens: int, cost_usd: float | None) -> None:
        """Count what a stream of ``owner`` used against its key's budgets, without waiting
        (a synchronous hook on the loop; never raises)."""
        if self.limiter is None or not limits.budgeted:
            return
        task = asyncio.get_running_loop().create_task(self.limiter.spend(owner, limits, tokens, cost_usd))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    def release_soon(self, lease: Lease | None) -> None:
        """``release`` without waiting (callable from a synchronous hook on the loop)."""
        if lease is None or self.limiter is None:
            return
        task = asyncio.get_running_loop().create_task(self.limiter.release(lease))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def drain(self) -> None:
        """Wait for the releases under way (shutdown, tests)."""
        while self._releases:
            await asyncio.gather(*list(self._releases), return_exceptions=True)
