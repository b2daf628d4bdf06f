"""Image parts (docs/protocol.md §13): ``{"type": "image_url", "image_url": {"url", "detail"?}}``.

The URL is a ``data:`` URL (``data:image/png;base64,...``) or an ``https`` URL the provider
fetches itself. A data URL must be base64 of a PNG, JPEG, GIF or WebP image (its bytes are
checked, not only its label), at most ``MAX_IMAGE_BYTES`` decoded. An https URL must name a
public host: not ``localhost``, and not an IP address that is loopback, private, link-local
(the cloud metadata address 169.254.169.254 among them), reserved or multicast. TokenRelay
never fetches it: Bedrock, which wants the bytes, is refused remote URLs (``_capabilities``).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, StrictStr

from ..errors import RequestInvalid

__all__ = ["FORMATS", "ImagePart", "ImageUrlBody", "image_of"]

# media type -> (Bedrock's format name, how the file starts)
FORMATS: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "image/png": ("png", (b"\x89PNG\r\n\x1a\n",)),
    "image/jpeg": ("jpeg", (b"\xff\xd8\xff",)),
    "image/gif": ("gif", (b"GIF87a", b"GIF89a")),
    "image/webp": ("webp", (b"RIFF",)),  # and "WEBP" at offset 8
}
_DATA_URL = re.compile(r"data:([a-z0-9.+/-]+)((?:;[a-z0-9=.+-]+)*);base64,(.*)", re.IGNORECASE | re.DOTALL)
MAX_URL_CHARS = 2048


class ImageUrlBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: StrictStr
    detail: Literal["auto", "low", "high"] | None = None


@dataclass(frozen=True, slots=True)
class ImagePart:
    url: str  # the data: URL or the https URL, as given
    media_type: str = ""  # a data URL's (checked against its bytes); "" for an https URL
    detail: str | None = None
    cache: Literal["5m", "1h", ""] | None = None

    @property
    def inline(self) -> bool:
        return self.url.startswith("data:")

    @property
    def base64(self) -> str:
        return self.url.partition(",")[2]

    def data(self) -> bytes:
        return base64.b64decode(self.base64)

    @property
    def format(self) -> str:
        return FORMATS[self.media_type][0]


def _sniff(data: bytes) -> str | None:
    for media_type, (_, magics) in FORMATS.items():
        if any(data.startswith(m) for m in magics):
            if media_type == "image/webp" and data[8:12] != b"WEBP":
                continue
            return media_type
    return None


def _data_url(field: str, url: str, max_bytes: int) -> str:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise RequestInvalid(field, "a data: URL must be data:image/<type>;base64,<data>")
    declared = match.group(1).lower()
    if declared not in FORMATS:
        raise RequestInvalid(field, f"not an image TokenRelay relays ({declared}); use PNG, JPEG, GIF or WebP")
    encoded = match.group(3)
    if len(encoded) * 3 // 4 > max_bytes + 3:
        raise RequestInvalid(field, f"image too large: over {max_bytes} bytes (MAX_IMAGE_BYTES)")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise RequestInvalid(field, "the data: URL's base64 does not decode") from None
    if len(data) > max_bytes:
        raise RequestInvalid(field, f"image too large: {len(data)} bytes, the limit is {max_bytes} (MAX_IMAGE_BYTES)")
    actual = _sniff(data)
    if actual is None:
        raise RequestInvalid(field, f"the data is not a PNG, JPEG, GIF or WebP image (labelled {declared})")
    if actual != declared:
        raise RequestInvalid(field, f"labelled {declared} but the data is {actual}")
    return declared


def _public_https(field: str, url: str) -> None:
    if len(url) > MAX_URL_CHARS:
        raise RequestInvalid(field, f"at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018  (a malformed port raises here)
    except ValueError:
        raise RequestInvalid(field, "not a valid URL") from None
    if parts.scheme.lower() != "https":
        raise RequestInvalid(field, "must be an https: or data: URL")
    if not host or parts.username is not None or parts.password is not None:
        raise RequestInvalid(field, "an https URL needs a host and no user or password")
    if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
        raise RequestInvalid(field, f"{host!r} is not a public host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: the provider resolves and fetches it, never TokenRelay
    if not address.is_global or address.is_multicast:
        raise RequestInvalid(field, f"{host} is not a public address (loopback, private, link-local or reserved)")


def image_of(field: str, raw: ImageUrlBody, cache: Literal["5m", "1h", ""] | None, max_bytes: int) -> ImagePart:
    """The checked image of ``field`` (``messages.i.content.j``)."""
    where = f"{field}.image_url.url"
    if max_bytes <= 0:
        raise RequestInvalid(field, "images are turned off on this deployment (MAX_IMAGE_BYTES=0)")
    if raw.url[:5].lower() == "data:":
        return ImagePart(raw.url, _data_url(where, raw.url, max_bytes), raw.detail, cache)
    _public_https(where, raw.url)
    return ImagePart(raw.url, "", raw.detail, cache)
