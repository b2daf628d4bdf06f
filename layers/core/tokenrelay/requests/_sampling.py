"""Sampling settings of a chat request (docs/protocol.md §1): ``top_p``, ``seed``, ``stop``,
``presence_penalty``, ``frequency_penalty`` and ``user``, each checked for its range here; what
a provider cannot take is refused in ``_capabilities``, never dropped."""

from __future__ import annotations

from typing import Any

from ..errors import RequestInvalid

__all__ = ["MAX_STOP", "MAX_STOP_CHARS", "MAX_USER_CHARS", "SAMPLING_FIELDS", "sampling_of"]

MAX_STOP = 4  # OpenAI's and Bedrock's limit
MAX_STOP_CHARS = 256
MAX_USER_CHARS = 256  # OpenAI's user and Anthropic's metadata.user_id
_SEED = 2**63  # a signed 64-bit integer, as OpenAI takes it
SAMPLING_FIELDS = ("top_p", "seed", "stop", "presence_penalty", "frequency_penalty", "user")


def _between(field: str, value: float | None, low: float, high: float) -> float | None:
    if value is None:
        return None
    if not low <= value <= high:
        raise RequestInvalid(field, f"must be between {low:g} and {high:g}")
    return float(value)


def stop_of(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not stops or len(stops) > MAX_STOP:
        raise RequestInvalid("stop", f"expected a string or a list of 1 to {MAX_STOP} strings")
    for i, s in enumerate(stops):
        field = "stop" if isinstance(value, str) else f"stop.{i}"
        if not s:
            raise RequestInvalid(field, "must not be empty")
        if len(s) > MAX_STOP_CHARS:
            raise RequestInvalid(field, f"at most {MAX_STOP_CHARS} characters")
    return tuple(stops)


def sampling_of(raw: Any) -> dict[str, Any]:
    """The body's sampling fields, checked, as ``ChatRequest`` keyword arguments."""
    if raw.seed is not None and not -_SEED <= raw.seed < _SEED:
        raise RequestInvalid("seed", "must be a signed 64-bit integer")
    if raw.user is not None and not 1 <= len(raw.user) <= MAX_USER_CHARS:
        raise RequestInvalid("user", f"1 to {MAX_USER_CHARS} characters")
    return {
        "top_p": _between("top_p", raw.top_p, 0.0, 1.0),
        "seed": raw.seed,
        "stop": stop_of(raw.stop),
        "presence_penalty": _between("presence_penalty", raw.presence_penalty, -2.0, 2.0),
        "frequency_penalty": _between("frequency_penalty", raw.frequency_penalty, -2.0, 2.0),
        "user": raw.user,
    }
