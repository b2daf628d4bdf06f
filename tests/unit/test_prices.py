"""The price table (docs/cost.md, "What each stream cost"): shipped for every default model,
overridable, and what a stream's cost is made of."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenrelay import Message, Settings
from tokenrelay.catalog import DEFAULT_PRICES, Price
from tokenrelay.events import Usage
from tokenrelay.requests import ChatRequest
from tokenrelay.settings import DEFAULT_MODELS
from tokenrelay.stores.dynamodb._items import attr
from tokenrelay.stream._cost import stream_cost

HAIKU = ("anthropic", "claude-haiku-4-5")
REQUEST = ChatRequest(
    messages=(Message("user", "x" * 40),), provider="anthropic", model="claude-haiku-4-5", max_tokens=9
)


def test_every_default_model_has_a_price() -> None:
    assert {(p, m) for p, models in DEFAULT_MODELS.items() for m in models} == set(DEFAULT_PRICES)


def test_cost_prices_fresh_cached_and_written_input_and_output_apart() -> None:
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    # 10,000 prompt tokens: 1,000 fresh, 8,000 read from the cache, 1,000 written to it
    assert price.cost_usd(10_000, 500, cached_tokens=8_000, cache_write_tokens=1_000) == pytest.approx(
        (1_000 * 3.0 + 8_000 * 0.3 + 1_000 * 3.75 + 500 * 15.0) / 1e6
    )


def test_stream_cost_exact_from_usage_estimated_without_it_none_without_a_price() -> None:
    settings = Settings()
    usage = Usage(100, 20, cached_tokens=50, cache_write_tokens=10)
    price = DEFAULT_PRICES[HAIKU]
    assert stream_cost(settings, HAIKU, REQUEST, usage, 3) == (price.cost_usd(100, 20, 50, 10), False)
    assert stream_cost(settings, HAIKU, REQUEST, None, 7) == (price.cost_usd(10, 7), True)  # 40 chars: 10
    assert stream_cost(settings, HAIKU, REQUEST, None, 0) == (None, False)  # nothing generated, nothing billed
    assert stream_cost(settings, ("openai", "my-own-model"), REQUEST, usage, 3) == (None, False)


def test_prices_are_overridden_by_file_then_variable(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    entry = {"input": 1, "output": 2, "cached_input": 0.5, "cache_write": 1.5}
    path.write_text(json.dumps({"openai/my-model": entry, "openai/gpt-4o": entry}))
    env = {"MODEL_PRICES_FILE": str(path), "MODEL_PRICES": json.dumps({"openai/gpt-4o": {**entry, "output": 9}})}
    settings = Settings.from_env(env)
    assert settings.price("openai", "my-model") == Price(1.0, 2.0, 0.5, 1.5)
    assert settings.price("openai", "gpt-4o") == Price(1.0, 9.0, 0.5, 1.5)
    assert settings.price("anthropic", "claude-haiku-4-5") == DEFAULT_PRICES[HAIKU]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{", "not JSON"),
        ('{"gpt-4o": {}}', "'provider/model'"),
        ('{"openai/x": {"input": 1}}', "exactly input, output, cached_input, cache_write"),
        ('{"openai/x": {"input": -1, "output": 1, "cached_input": 1, "cache_write": 1}}', ">= 0"),
        ('{"openai/x": {"input": true, "output": 1, "cached_input": 1, "cache_write": 1}}', "a number"),
    ],
)
def test_a_bad_price_override_stops_the_start_naming_it(value: str, words: str) -> None:
    with pytest.raises(ValueError, match="MODEL_PRICES") as caught:
        Settings.from_env({"MODEL_PRICES": value})
    assert words in str(caught.value)


def test_a_small_cost_is_written_to_dynamodb_as_plain_digits() -> None:
    assert attr(1.5e-05) == {"N": "0.000015"} and attr(0.25) == {"N": "0.25"} and attr(3) == {"N": "3"}
