"""What a stream cost (docs/cost.md, "What each stream cost"): the served model's price
(``catalog.prices``) times the usage the provider reported. A stream cut before the provider
reported usage (a cancel, a dropped client, an error mid-answer) is still billed upstream for
what it generated: its cost is estimated from the text, and marked so."""

from __future__ import annotations

import math

from ..events import Usage
from ..requests import ChatRequest
from ..settings import Settings

__all__ = ["CHARS_PER_TOKEN", "stream_cost"]

CHARS_PER_TOKEN = 4  # the providers' own rule of thumb for English text


def _prompt_estimate(request: ChatRequest) -> int:
    chars = len(request.system or "") + sum(
        len(m.content) + sum(len(c.arguments) for c in m.tool_calls) for m in request.messages
    )
    return math.ceil(chars / CHARS_PER_TOKEN)


def stream_cost(
    settings: Settings, served: tuple[str, str], request: ChatRequest, usage: Usage | None, chunks: int
) -> tuple[float | None, bool]:
    """``(cost_usd, estimated)``: None when the served model has no price, or nothing was
    generated and nothing reported (a request refused upstream is not billed)."""
    price = settings.price(*served)
    if price is None:
        return None, False
    if usage is not None:
        cost = price.cost_usd(
            usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens or 0, usage.cache_write_tokens or 0
        )
        return cost, False
    if chunks == 0:
        return None, False
    return price.cost_usd(_prompt_estimate(request), chunks), True  # a chunk is about a token
