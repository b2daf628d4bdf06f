"""The provider protocol: one chat request in, an async stream of chunks out.

A provider's ``stream`` is an async generator. The engine always consumes it
inside ``contextlib.aclosing``, so closing the generator closes the upstream
HTTP response (each implementation holds it in ``async with``): a cancelled or
abandoned stream never leaves a generation running upstream.

Providers translate their SDK's exceptions into ``tokenrelay.errors``
(``RateLimited``, ``Unavailable``, ``Rejected``) at this boundary, with a message
that never contains the upstream body, a key or a header.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from ..events import Usage
from ..requests import ChatRequest


@dataclass(frozen=True, slots=True)
class TextChunk:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningChunk:
    text: str
    signature: str = ""  # closes a signed reasoning block
    redacted: str = ""  # a whole redacted block


@dataclass(frozen=True, slots=True)
class ToolStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolArgs:
    index: int
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolEnd:
    index: int


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str
    stop_sequence: str | None = None  # the stop sequence that ended the answer ("": the provider did not say which)


class Alive:
    """The upstream sent something with nothing to relay (a ping, a block boundary, usage
    so far): a sign of life for the first-chunk and stall timers (``providers.resilient``)."""

    __slots__ = ()


ALIVE = Alive()
PartChunk: TypeAlias = TextChunk | ReasoningChunk | ToolStart | ToolArgs | ToolEnd
Chunk: TypeAlias = PartChunk | Usage | Finish | Alive


class Provider(Protocol):
    name: str

    def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """Yield content (``TextChunk``, ``ReasoningChunk``, ``ToolStart``/``ToolArgs``/``ToolEnd``)
        and ``ALIVE`` for every upstream event with nothing to relay, then at most one ``Usage``
        and one ``Finish``. Every tool call started is ended before ``Finish``."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections (called at shutdown)."""
        ...
