"""Offline, deterministic provider: replays a reply derived from the prompt.

It is the default when no API key is configured, so the local stack and the
tests run with no account. Tokens are words with their trailing whitespace,
emitted every ``delay_s`` seconds; ``max_tokens`` truncates with
``finish_reason="length"``. Stop sequences cut the reply before the first one
found, as the real APIs do (the stop string itself is not emitted).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from ..events import Usage
from ..requests import ChatRequest
from .base import Chunk, Finish, TextChunk

_TOKEN = re.compile(r"\S+\s*|\s+")


def echo_reply(request: ChatRequest) -> str:
    reply = f"You said: {request.last_user_text}"
    cut = min((i for i in (reply.find(s) for s in request.stop if s) if i >= 0), default=-1)
    return reply if cut < 0 else reply[:cut]


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


class EchoProvider:
    name = "echo"

    def __init__(self, delay_s: float = 0.03) -> None:
        self.delay_s = delay_s

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        tokens = tokenize(echo_reply(request))
        prompt_tokens = sum(len(tokenize(m.content)) for m in request.messages)
        prompt_tokens += len(tokenize(request.system or ""))
        emitted = tokens[: request.max_tokens]
        for token in emitted:
            await asyncio.sleep(self.delay_s)
            yield TextChunk(token)
        yield Usage(prompt_tokens=prompt_tokens, completion_tokens=len(emitted))
        yield Finish("length" if len(emitted) < len(tokens) else "stop")

    async def aclose(self) -> None:
        return None
