"""The runs of this process: how a request becomes a run, how a cancel that lands here is
confirmed, how they all end at shutdown. The routers start runs through ``Runs.start``.

In-process memory is a cache here, never the truth: a cancel for a stream produced by
another instance goes through its record (``ended_as`` polls it until it has ended).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import replace

from starlette.requests import Request

from tokenrelay import Bounds, ChatRequest, ProviderRegistry, StreamRun, StreamServices
from tokenrelay.errors import StoreUnavailable
from tokenrelay.protection import Guard, Principal
from tokenrelay.resume import ResumeStores
from tokenrelay.stores import Lease
from tokenrelay.telemetry.logging import bind as bind_log_context

from .auth import principal_of
from .deadline import remaining_s, stream_deadline_s

__all__ = ["CONFIRM_MARGIN_S", "CONFIRM_POLL_S", "FINISH_MARGIN_S", "Runs"]

log = logging.getLogger("tokenrelay.http")

FINISH_MARGIN_S = 1.0  # a run's last writes end this long before the Lambda invocation does
CONFIRM_MARGIN_S = 1.0
CONFIRM_POLL_S = 0.1  # a cancel on another instance reads the record after 0.1, 0.2, 0.4... s until it ended


class Runs:
    def __init__(
        self, services: StreamServices, providers: ProviderRegistry, guard: Guard, resume: ResumeStores | None
    ) -> None:
        self.services, self.providers, self.guard, self.resume = services, providers, guard, resume
        self.live: dict[str, StreamRun] = {}  # streams produced by this process: a cache, not the truth
        self._leases: dict[str, Lease] = {}  # their concurrency slots, released however they end
        self._budgets: dict[str, Principal] = {}  # their callers with token budgets, counted at the end
        settings = services.settings
        # A cancel's answer waits for the stream's end: its producer sees the flag within a poll or
        # two, closes the upstream and records the end within FINISH_WAIT_S.
        self.confirm_s = 2 * settings.cancel_poll_s + settings.finish_wait_s + CONFIRM_MARGIN_S

    async def start(
        self, request: Request, chat: ChatRequest, transport: str = "sse", *, resumable: bool = False
    ) -> StreamRun:
        """Admit and open a run for ``chat``: 403 / 429 before any work, 503 if its record cannot be made."""
        settings = self.services.settings
        stream_id = str(uuid.uuid4())
        principal = principal_of(request)
        if not principal.may_fall_back(settings.fallback_model):
            chat = replace(chat, fallback=False)
        remaining = remaining_s(request.scope)
        run = StreamRun(
            chat,
            self.providers.get(chat.provider),
            self.services,
            stream_id=stream_id,
            owner=principal.owner,
            transport=transport,
            bounds=Bounds(
                deadline_s=stream_deadline_s(request.scope, settings.deadline_margin_s),  # Lambda's, less a margin
                finish_by_s=None if remaining is None else max(remaining - FINISH_MARGIN_S, 0.1),
            ),
            resume=self.resume.for_stream(stream_id) if self.resume is not None and resumable else None,
            on_end=self._ended,
        )
        lease = await self.guard.admit(principal, chat.provider, chat.model, stream_id)
        self.live[stream_id] = run
        if principal.limits.budgeted:
            self._budgets[stream_id] = principal
        if lease is not None:
            self._leases[stream_id] = lease
        # Log fields of this request's task and of the tasks run.open() starts (they copy the context).
        bind_log_context(stream_id=stream_id, transport=transport, provider=chat.provider, model=chat.model)
        try:
            await run.open()
        except BaseException:
            self._ended(run)
            raise
        return run

    def _ended(self, run: StreamRun) -> None:
        self.live.pop(run.stream_id, None)
        self.guard.release_soon(self._leases.pop(run.stream_id, None))  # however the stream ended
        principal = self._budgets.pop(run.stream_id, None)
        if principal is not None:  # what it used, against its key's token budgets (also after its client left)
            tokens = run.usage.total_tokens if run.usage is not None else run.completion_tokens
            self.guard.spend_soon(principal.owner, principal.limits, tokens, run.cost_usd)

    async def ended_as(self, stream_id: str) -> str | None:
        """How the stream ended, once it has (None: not within ``confirm_s``)."""
        local = self.live.get(stream_id)
        if local is not None:  # same process: stop now instead of at the next poll
            local.stop("client")
            try:
                await asyncio.wait_for(local.ended(), self.confirm_s)
            except TimeoutError:
                return None
            return local.outcome.status if local.outcome is not None else None
        deadline, delay = time.monotonic() + self.confirm_s, CONFIRM_POLL_S
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            try:
                record = await self.services.store.get(stream_id)
            except StoreUnavailable:
                record = None
            if record is not None and record.status != "active":
                return record.status
            if time.monotonic() >= deadline:
                return None

    async def shutdown(self) -> None:
        """Every run still going stops as ``disconnect``; wait for their ends, the slots, the providers."""
        for run in list(self.live.values()):
            run.stop("disconnect")
        await asyncio.gather(*(r.wait() for r in list(self.live.values())), return_exceptions=True)
        await self.guard.drain()
        await self.providers.aclose()
