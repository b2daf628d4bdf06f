"""The cost benchmark's arithmetic (scripts/benchmarks/cost_model.py): AWS's unit rules, by hand."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.benchmarks import cost_model as m


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"pk": {"S": "abc"}}, 2 + 3),
        ({"pk": {"S": "é"}}, 2 + 2),  # UTF-8 bytes, not characters
        ({"n": {"N": "12345"}}, 1 + 4),  # 5 significant digits: 3 bytes, plus 1
        ({"n": {"N": "0.0012300"}}, 1 + 3),  # leading and trailing zeros do not count: "123"
        ({"n": {"N": "-7"}}, 1 + 2),
        ({"b": {"BOOL": True}, "z": {"NULL": True}}, 2 + 2),
        ({"b": {"B": "AAEC"}}, 1 + 3),  # base64 in the JSON: the raw bytes count
        ({"l": {"L": [{"S": "a"}, {"N": "1"}]}}, 1 + 3 + (1 + 1) + (1 + 2)),
        ({"m": {"M": {"k": {"S": "v"}}}}, 1 + 3 + (1 + 1 + 1)),
        ({"s": {"SS": ["ab", "c"]}}, 1 + 3),
        ({"s": {"NS": ["1", "22"]}}, 1 + 2 + 2),
        ({}, 0),
    ],
)
def test_item_size_follows_dynamodb_rules(item: dict[str, Any], size: int) -> None:
    assert m.item_size(item) == size


def test_an_unknown_type_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="unknown DynamoDB type"):
        m.item_size({"x": {"Q": "?"}})


def test_write_units_round_up_per_kb_of_the_larger_image() -> None:
    assert m.write_units(0, 0) == 1  # a write always costs one
    assert m.write_units(0, 1024) == 1
    assert m.write_units(0, 1025) == 2
    assert m.write_units(2000, 100) == 2  # the item before was larger
    assert m.write_units(0, 1025, transactional=True) == 4


def test_read_units_round_up_per_4_kb_and_halve_when_eventually_consistent() -> None:
    assert m.read_units(0, consistent=False) == 0.5  # a missing item still costs the minimum
    assert m.read_units(4096, consistent=True) == 1
    assert m.read_units(4097, consistent=True) == 2
    assert m.read_units(5000, consistent=False) == 1.0
    assert m.read_units(100, consistent=False, transactional=True) == 2


def test_gb_seconds_bill_each_invocation_by_the_millisecond() -> None:
    assert m.gb_seconds(512, 1.0) == pytest.approx(0.5)
    assert m.gb_seconds(512, 0.0001) == pytest.approx(0.5 * 0.001)  # rounded up to 1 ms
    assert m.gb_seconds(1024, 2.0004) == pytest.approx(2.001)
    assert m.gb_seconds(512, 0.25) == pytest.approx(0.125)  # exact milliseconds are not rounded up


def test_api_gateway_units() -> None:
    assert m.ws_message_units(0) == 1
    assert m.ws_message_units(32 * 1024) == 1
    assert m.ws_message_units(32 * 1024 + 1) == 2
    assert m.http_api_units(512 * 1024) == 1
    assert m.http_api_units(512 * 1024 + 1) == 2
    assert m.connection_minutes(0.5) == 1
    assert m.connection_minutes(60) == 1
    assert m.connection_minutes(61) == 2


def test_a_bill_in_dollars_per_thousand_streams() -> None:
    lines = [
        m.Line("Lambda", "requests", 4, "lambda_request"),  # $0.20 per million
        m.Line("Lambda", "GB-seconds", 2.5, "lambda_gb_s_arm64"),
        m.Line("API Gateway", "messages", 100, "ws_message"),  # $1 per million
    ]
    assert m.per_thousand(lines) == pytest.approx(1000 * (4 * 0.2e-6 + 2.5 * 0.0000133334 + 100 * 1e-6))
    by = m.by_service(lines)
    assert by["API Gateway"] == pytest.approx(0.1)
    assert by["Lambda"] == pytest.approx(1000 * (4 * 0.2e-6 + 2.5 * 0.0000133334))


def test_every_price_has_a_source_and_a_unit() -> None:
    for name, price in m.PRICES.items():
        assert price.usd > 0, name
        assert price.source.startswith("https://aws.amazon.com/"), name
        assert price.unit, name
