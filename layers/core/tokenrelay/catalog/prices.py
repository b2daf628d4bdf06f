"""What a model's tokens cost: a price table per model, in US dollars per million tokens
(docs/cost.md, "What each stream cost", names the sources and the date).

    input         prompt tokens not read from or written to the cache
    output        completion tokens (reasoning tokens included: they are billed as output)
    cached_input  prompt tokens read from the prompt cache
    cache_write   prompt tokens written to the prompt cache (Anthropic's 5-minute write price;
                  OpenAI and Amazon Nova charge no more than ``input`` for a write)

A model not in the table has no price: its streams record no cost rather than a wrong one.
A deployment overrides or extends the table with ``MODEL_PRICES`` (JSON) or
``MODEL_PRICES_FILE`` (a path to the same JSON), keyed ``provider/model``, each entry giving
every price: ``{"openai/my-model": {"input": 1, "output": 2, "cached_input": 0.5,
"cache_write": 1}}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ._overrides import json_overrides

__all__ = ["DEFAULT_PRICES", "PRICES_DATE", "Price", "prices_from_env", "parse_prices"]

PRICES_DATE = "2025-11-24"  # when the shipped table was last checked against the price pages


@dataclass(frozen=True, slots=True)
class Price:
    input: float
    output: float
    cached_input: float
    cache_write: float

    def cost_usd(
        self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, cache_write_tokens: int = 0
    ) -> float:
        """The cost of one answer: ``prompt_tokens`` counts the cached and written tokens too."""
        fresh = max(prompt_tokens - cached_tokens - cache_write_tokens, 0)
        micro = (
            fresh * self.input
            + cached_tokens * self.cached_input
            + cache_write_tokens * self.cache_write
            + completion_tokens * self.output
        )
        return round(micro / 1_000_000, 10)


PRICE_FIELDS = tuple(f.name for f in fields(Price))
_HAIKU = Price(input=1.0, output=5.0, cached_input=0.10, cache_write=1.25)

DEFAULT_PRICES: dict[tuple[str, str], Price] = {
    ("echo", "echo-1"): Price(0.0, 0.0, 0.0, 0.0),  # offline: free, so its streams show the accounting
    ("openai", "gpt-4o-mini"): Price(input=0.15, output=0.60, cached_input=0.075, cache_write=0.15),
    ("openai", "gpt-4.1-mini"): Price(input=0.40, output=1.60, cached_input=0.10, cache_write=0.40),
    ("openai", "gpt-4.1"): Price(input=2.00, output=8.00, cached_input=0.50, cache_write=2.00),
    ("openai", "gpt-4o"): Price(input=2.50, output=10.00, cached_input=1.25, cache_write=2.50),
    ("openai", "o4-mini"): Price(input=1.10, output=4.40, cached_input=0.275, cache_write=1.10),
    ("anthropic", "claude-haiku-4-5"): _HAIKU,
    ("anthropic", "claude-sonnet-4-6"): Price(input=3.0, output=15.0, cached_input=0.30, cache_write=3.75),
    ("anthropic", "claude-opus-4-6"): Price(input=5.0, output=25.0, cached_input=0.50, cache_write=6.25),
    ("bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0"): _HAIKU,
    ("bedrock", "amazon.nova-lite-v1:0"): Price(input=0.06, output=0.24, cached_input=0.015, cache_write=0.06),
}


def _price(source: str, name: str, entry: Any) -> Price:
    if not isinstance(entry, dict) or set(entry) != set(PRICE_FIELDS):
        raise ValueError(f"{source}: {name!r}: expected an object with exactly {', '.join(PRICE_FIELDS)}")
    for key, value in entry.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{source}: {name!r}.{key}: expected a number of dollars per million tokens, >= 0")
    return Price(**{k: float(v) for k, v in entry.items()})


def parse_prices(
    spec: Any, base: Mapping[tuple[str, str], Price], source: str = "MODEL_PRICES"
) -> dict[tuple[str, str], Price]:
    """``{"provider/model": {input, output, cached_input, cache_write}}`` over ``base``."""
    if not isinstance(spec, dict):
        raise ValueError(f"{source}: expected a JSON object of 'provider/model': {{prices}}")
    table = dict(base)
    for name, entry in spec.items():
        provider, slash, model = name.partition("/")
        if not slash or not provider or not model:
            raise ValueError(f"{source}: {name!r} is not 'provider/model'")
        table[(provider, model)] = _price(source, name, entry)
    return table


def prices_from_env(env: Mapping[str, str]) -> dict[tuple[str, str], Price]:
    """The shipped table, then ``MODEL_PRICES_FILE``, then ``MODEL_PRICES`` over it."""
    table = dict(DEFAULT_PRICES)
    for var, spec in json_overrides(env, "MODEL_PRICES"):
        table = parse_prices(spec, table, var)
    return table
