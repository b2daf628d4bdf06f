"""Content parts of a message (docs/protocol.md §13): ``content`` is a string, or a list of
parts in OpenAI's shape, ``text`` and ``image_url`` (``_images``). A part may carry
Anthropic's ``cache_control`` marker (``{"type": "ephemeral", "ttl"?: "5m" | "1h"}``): the
prompt up to and including that part is cached (Anthropic ``cache_control``, Bedrock a
``cachePoint`` after it; OpenAI caches prompt prefixes by itself)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from ..errors import RequestInvalid
from ._images import ImagePart, ImageUrlBody, image_of

__all__ = ["ContentPart", "ImagePart", "TextPart", "parts_of"]

CacheTtl = Literal["5m", "1h"]


class CacheControlBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["ephemeral"]
    ttl: CacheTtl | None = None


class TextPartBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["text"]
    text: StrictStr
    cache_control: CacheControlBody | None = None


class ImagePartBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["image_url"]
    image_url: ImageUrlBody
    cache_control: CacheControlBody | None = None


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    cache: CacheTtl | Literal[""] | None = None  # None: no marker; "": the provider's default TTL


ContentPart: TypeAlias = TextPart | ImagePart
_CACHED_ROLES = ("system", "user")
_KINDS: dict[str, type[BaseModel]] = {"text": TextPartBody, "image_url": ImagePartBody}


def _body(where: str, raw: Any) -> TextPartBody | ImagePartBody:
    kind = raw.get("type") if isinstance(raw, dict) else None
    model = _KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise RequestInvalid(f"{where}.type", f"must be one of text, image_url; got {kind!r}")
    try:
        return model.model_validate(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise RequestInvalid(f"{where}.{loc}", message) from None


def parts_of(where: str, role: str, raw: list[Any], max_image_bytes: int) -> tuple[ContentPart, ...]:
    """The parts of ``messages.i.content`` (``where``), checked for what ``role`` may carry."""
    if not raw:
        raise RequestInvalid(where, "must not be an empty list")
    parts: list[ContentPart] = []
    for j, item in enumerate(raw):
        body = _body(f"{where}.{j}", item)
        cache = None if body.cache_control is None else (body.cache_control.ttl or "")
        if cache is not None and role not in _CACHED_ROLES:
            raise RequestInvalid(f"{where}.{j}.cache_control", "only system and user parts may have it")
        if isinstance(body, TextPartBody):
            parts.append(TextPart(body.text, cache))
            continue
        if role != "user":
            raise RequestInvalid(f"{where}.{j}", "only a user message may have an image")
        parts.append(image_of(f"{where}.{j}", body.image_url, cache, max_image_bytes))
    return tuple(parts)
