"""Decoding a request's JSON text, strictly: one set of rules for every transport.

Python's ``json.loads`` accepts more than RFC 8259, and some of what it accepts
fails later, far from the input (a 500 instead of a 400). ``loads_strict``
refuses, with a ``JSONRejected`` that says what is wrong:

- bytes that are not UTF-8, or that start with a byte order mark
  (``json.loads(bytes)`` would guess UTF-16 or UTF-32);
- ``NaN``, ``Infinity``, ``-Infinity`` (not JSON), and a number so large it
  becomes infinite (``1e999``);
- a key given twice in one object. RFC 8259 leaves the meaning open and
  parsers disagree (first wins, last wins), so a body that two components
  could read differently is refused rather than guessed at;
- nesting deeper than ``MAX_DEPTH`` (no request needs more than 5 levels;
  Python's recursive decoder would raise ``RecursionError`` near 1,000);
- a string, key or value, holding a lone UTF-16 surrogate (``"\\ud800"`` not in
  a pair): it cannot be encoded to UTF-8 and would break the first write.

Raw control characters inside strings are refused by ``json`` itself; escaped
ones (``"\\u0000"``) decode here and are judged per field (``requests.py``).
Integers beyond 4,300 digits are refused by Python's own limit.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["MAX_DEPTH", "JSONRejected", "loads_strict"]

MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONRejected(ValueError):
    """The text is not JSON that TokenRelay accepts; ``field`` names the key at fault, if one is."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _constant(name: str) -> Any:
    raise JSONRejected(f"{name} is not valid JSON")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONRejected(f"number {text[:32]} is out of range")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONRejected(f"duplicate key {key[:64]!r}", field=key[:64])
            seen.add(key)
    return result


_decode = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant, parse_float=_float).decode


def loads_strict(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one JSON text; raise ``JSONRejected`` for anything the module docstring refuses."""
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONRejected(f"not UTF-8 (byte {exc.start})") from None
    try:
        value = _decode(raw)
    except JSONRejected:
        raise
    except RecursionError:
        raise JSONRejected(f"nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # json.JSONDecodeError, and int() past Python's digit limit
        raise JSONRejected(f"invalid JSON ({exc})") from None
    _check(value, max_depth)
    return value


def _check(value: Any, max_depth: int) -> None:
    """Depth and lone surrogates, without recursion (the value may be deep)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise JSONRejected("a string holds a lone UTF-16 surrogate (not valid Unicode)")
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise JSONRejected(f"nested more than {max_depth} levels deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    if _SURROGATE.search(key):
                        raise JSONRejected("a key holds a lone UTF-16 surrogate (not valid Unicode)")
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
