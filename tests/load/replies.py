"""The load suites' prompts: each one's echo reply is exactly ``TOKENS`` tokens."""

from __future__ import annotations

TOKENS = 200


def prompt(i: int) -> tuple[str, str]:
    """A message whose echo reply ("You said: ...") is exactly TOKENS tokens, and that reply."""
    message = " ".join(f"s{i}w{j}" for j in range(TOKENS - 2))
    return message, "You said: " + message
