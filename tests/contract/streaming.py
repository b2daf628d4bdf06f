"""Helpers shared by the provider contract tests."""

from __future__ import annotations

from contextlib import aclosing

from tests.fakes.upstream import FAKE_API_KEY, UPSTREAM_DETAIL
from tokenrelay import ChatRequest, ProviderError
from tokenrelay.providers import Alive, Chunk, Provider, TextChunk


async def run(
    provider: Provider, request: ChatRequest, into: list[Chunk] | None = None, *, alive: bool = False
) -> list[Chunk]:
    """Read a whole stream, as the engine does (closing it however it ends); the signs of life
    (``ALIVE``) only with ``alive``."""
    chunks: list[Chunk] = [] if into is None else into
    async with aclosing(provider.stream(request)) as stream:
        async for chunk in stream:
            if alive or not isinstance(chunk, Alive):
                chunks.append(chunk)
    return chunks


def text(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextChunk))


def assert_clean(exc: ProviderError) -> None:
    """No key, header or upstream body text in an error a client or a log would see."""
    for leaked in (FAKE_API_KEY, "SECRET", UPSTREAM_DETAIL, "Bearer"):
        assert leaked not in str(exc)
        assert leaked not in exc.message
