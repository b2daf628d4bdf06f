"""Scripted providers typed against ``tokenrelay.providers.Provider``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from tokenrelay import ChatRequest, ProviderError, Usage
from tokenrelay.providers import Chunk, Finish, TextChunk


class ScriptedProvider:
    """Yields ``tokens`` every ``delay_s``; records whether the stream was closed early."""

    name = "scripted"

    def __init__(
        self,
        tokens: Sequence[str],
        delay_s: float = 0.0,
        *,
        usage: Usage | None = None,
        fail_after: int | None = None,
        error: ProviderError | None = None,
        first_delay_s: float = 0.0,
    ) -> None:
        self.tokens = list(tokens)
        self.delay_s = delay_s
        self.first_delay_s = first_delay_s
        self.usage = usage
        self.fail_after = fail_after
        self.error = error
        self.opened = 0
        self.closed_early = 0
        self.completed = 0
        self.closed = asyncio.Event()
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        self.opened += 1
        self.requests.append(request)
        finished = False
        try:
            if self.first_delay_s:
                await asyncio.sleep(self.first_delay_s)
            for i, token in enumerate(self.tokens):
                if self.fail_after is not None and i == self.fail_after:
                    assert self.error is not None
                    raise self.error
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                yield TextChunk(token)
            if self.usage is not None:
                yield self.usage
            yield Finish("stop")
            finished = True
        finally:
            if finished:
                self.completed += 1
            else:
                self.closed_early += 1
            self.closed.set()

    async def aclose(self) -> None:
        return None
