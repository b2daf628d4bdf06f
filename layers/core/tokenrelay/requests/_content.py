"""Content parts of a message (docs/protocol.md §1, §13): ``content`` is a string, or a list of
parts in OpenAI's shape. A ``text`` part may carry Anthropic's ``cache_control`` marker
(``{"type": "ephemeral", "ttl"?: "5m" | "1h"}``): the prompt up to and including that part is
cached (Anthropic ``cache_control``, Bedrock a ``cachePoint`` after it; OpenAI caches prompt
prefixes by itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, StrictStr

from ..errors import RequestInvalid

__all__ = ["CacheControlBody", "ContentPart", "PartBody", "TextPart", "parts_of"]

CacheTtl = Literal["5m", "1h"]


class CacheControlBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["ephemeral"]
    ttl: CacheTtl | None = None


class PartBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["text"]
    text: StrictStr
    cache_control: CacheControlBody | None = None


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    cache: CacheTtl | Literal[""] | None = None  # None: no marker; "": the provider's default TTL


ContentPart = TextPart
_CACHED_ROLES = ("system", "user")


def parts_of(where: str, role: str, raw: list[PartBody]) -> tuple[ContentPart, ...]:
    """The parts of ``messages.i.content`` (``where``), checked for what ``role`` may carry."""
    if not raw:
        raise RequestInvalid(where, "must not be an empty list")
    parts: list[ContentPart] = []
    for j, p in enumerate(raw):
        cache = None if p.cache_control is None else (p.cache_control.ttl or "")
        if cache is not None and role not in _CACHED_ROLES:
            raise RequestInvalid(f"{where}.{j}.cache_control", "only system and user parts may have it")
        parts.append(TextPart(p.text, cache))
    return tuple(parts)
