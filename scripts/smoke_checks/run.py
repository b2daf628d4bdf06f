"""What the checks share: the target, one HTTP client, what the deployment answers with, and the
streams each check ran (the metrics check looks for exactly those)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from .target import Target

CANCEL_BOUND_S = 3.0  # a cancel from a second connection ends the stream within this (poll: 250 ms)
ECHO_TEXT = "Counting one two three four five six seven eight nine ten, one token at a time"
ECHO_LONG = " ".join(f"word{i}" for i in range(400))  # 400 tokens: 12 s at the echo's 30 ms


class CheckFailed(Exception):
    """What went wrong, in one line."""


def require(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass
class Run:
    target: Target
    http: httpx.AsyncClient
    provider: str = ""
    completed: dict[str, str] = field(default_factory=dict)  # stream id -> the check that ran it
    cancelled: dict[str, str] = field(default_factory=dict)

    @property
    def echo(self) -> bool:
        """The offline echo provider: its answer is known, so the text itself is checked."""
        return self.provider == "echo"

    def short(self) -> dict[str, object]:
        if self.echo:
            return {"message": ECHO_TEXT}
        return {"message": "Count from 1 to 20 in words, separated by spaces. Nothing else.", "max_tokens": 120}

    def long(self) -> dict[str, object]:
        if self.echo:
            return {"message": ECHO_LONG}
        return {"message": "Write a long story about a lighthouse keeper, at least 800 words.", "max_tokens": 2000}

    def expected(self) -> str | None:
        return f"You said: {ECHO_TEXT}" if self.echo else None
