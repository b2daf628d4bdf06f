"""The input rules of README's "rules worth knowing": strict JSON text (``json_text``) and
strict field types and characters (``requests``), each refusal naming what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from tokenrelay import RequestInvalid, Settings, parse_chat_request
from tokenrelay.json_text import MAX_DEPTH, JSONRejected, loads_strict

SETTINGS = Settings.from_env({"DEFAULT_PROVIDER": "echo", "ALLOWED_MODELS": "echo:echo-1"})


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ('{"message": "a", "message": "b"}', "message", "duplicate key 'message'"),
        ('{"messages": [{"role": "user", "role": "user", "content": "x"}]}', "role", "duplicate key"),
        ('{"temperature": NaN}', "body", "NaN is not valid JSON"),
        ('{"temperature": Infinity}', "body", "Infinity is not valid JSON"),
        ('{"temperature": -Infinity}', "body", "-Infinity is not valid JSON"),
        ('{"temperature": 1e999}', "body", "out of range"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "body", f"nested more than {MAX_DEPTH} levels"),
        ("[" * 100_000, "body", "nested more than"),  # would be a RecursionError (a 500) in json.loads
        ('{"message": "\\ud800"}', "body", "lone UTF-16 surrogate"),
        ('{"\\udfff": 1}', "body", "lone UTF-16 surrogate"),
        ('{"message": "raw \x01 control"}', "body", "invalid JSON"),
        ("\ufeff{}", "body", "invalid JSON"),
        ('{"max_tokens": ' + "9" * 5000 + "}", "body", "invalid JSON"),
        ('{"message": "x"} trailing', "body", "invalid JSON"),
        ("", "body", "invalid JSON"),
    ],
)
def test_loads_strict_refuses_what_the_rules_refuse_naming_it(text: str, field: str, says: str) -> None:
    with pytest.raises(JSONRejected) as exc:
        loads_strict(text)
    assert exc.value.field == field and says in exc.value.message


@pytest.mark.parametrize("raw", [b"\xff{}", b'{"message": "\xc3"}', '{"message":"hi"}'.encode("utf-16")])
def test_loads_strict_bytes_not_utf8_are_refused(raw: bytes) -> None:
    with pytest.raises(JSONRejected, match="not UTF-8"):
        loads_strict(raw)


def test_loads_strict_accepts_ordinary_json_pairs_surrogates_and_escaped_controls() -> None:
    text = '{"message": "\\ud83d\\ude00 caf\\u00e9", "n": [1, 2.5, true, null], "deep": ' + "[" * 30 + "]" * 30 + "}"
    assert loads_strict(text.encode())["message"] == "\U0001f600 café"
    assert loads_strict('"\\u0000"') == "\x00"  # decodes; whether a field may hold it is requests.py's rule


def _invalid(body: dict[str, Any]) -> RequestInvalid:
    with pytest.raises(RequestInvalid) as exc:
        parse_chat_request(body, SETTINGS)
    return exc.value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": "hi", "max_tokens": True}, "max_tokens"),
        ({"message": "hi", "max_tokens": 5.0}, "max_tokens"),
        ({"message": "hi", "max_tokens": "5"}, "max_tokens"),
        ({"message": "hi", "temperature": True}, "temperature"),
        ({"message": "hi", "temperature": "0.5"}, "temperature"),
        ({"message": 1}, "message"),
        ({"message": "hi", "system": False}, "system"),
        ({"messages": [{"role": "user", "content": None}]}, "messages.0.content"),
    ],
)
def test_parse_chat_request_bool_is_not_a_number_and_types_are_strict(body: dict[str, Any], field: str) -> None:
    assert _invalid(body).field == field


@pytest.mark.parametrize(
    ("body", "field", "char"),
    [
        ({"message": "a\x00b"}, "message", "U+0000"),
        ({"message": "esc \x1b[31m"}, "message", "U+001B"),
        ({"message": "hi", "system": "\x7f ok, \x0b not"}, "system", "U+000B"),
        (
            {"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": "x\x08"}]},
            "messages.1.content",
            "U+0008",
        ),
        ({"message": "half \ud83d pair"}, "message", "U+D83D"),
    ],
)
def test_parse_chat_request_control_characters_and_lone_surrogates_are_refused(
    body: dict[str, Any], field: str, char: str
) -> None:
    error = _invalid(body)
    assert error.field == field and char in error.message


def test_parse_chat_request_tab_newline_return_del_and_c1_are_allowed() -> None:
    text = "col1\tcol2\r\nline \x7f \x85 \u2028 end"
    assert parse_chat_request({"message": text, "system": "a\nb"}, SETTINGS).messages[0].content == text


def test_parse_chat_request_integer_temperature_is_a_number() -> None:
    assert parse_chat_request({"message": "hi", "temperature": 1}, SETTINGS).temperature == 1.0
