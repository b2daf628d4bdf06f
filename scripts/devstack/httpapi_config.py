"""What the local HTTP API takes from the template besides its routes: the API's CORS configuration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Cors:
    origins: Sequence[str]
    methods: Sequence[str]
    headers: Sequence[str]
    expose: Sequence[str]
    max_age: int | None

    def origin_header(self, origin: str | None) -> list[tuple[str, str]]:
        if origin is None or not (origin in self.origins or "*" in self.origins):
            return []
        allow = "*" if "*" in self.origins else origin
        out = [("access-control-allow-origin", allow)]
        if self.expose:
            out.append(("access-control-expose-headers", ",".join(self.expose)))
        return out

    def preflight(self, origin: str | None) -> tuple[int, Headers, bytes]:
        headers = self.origin_header(origin)
        if headers:
            headers = [
                headers[0],
                ("access-control-allow-methods", ",".join(self.methods)),
                ("access-control-allow-headers", ",".join(self.headers)),
            ]
            if self.max_age is not None:
                headers.append(("access-control-max-age", str(self.max_age)))
        return 204, headers, b""


def _parameter(template: Mapping[str, Any], value: Any) -> Any:
    """A literal, or a ``!Ref`` to a parameter (its default); anything else is None."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        spec = template.get("Parameters", {}).get(value["Ref"])
        if spec is None or "Default" not in spec:
            return None
        default = spec["Default"]
        return [v.strip() for v in str(default).split(",")] if spec["Type"] == "CommaDelimitedList" else default
    return None if isinstance(value, dict) else value


def cors_of(template: Mapping[str, Any], api_id: str) -> Cors | None:
    config = template["Resources"][api_id].get("Properties", {}).get("CorsConfiguration")
    if not config:
        return None
    value = {k: _parameter(template, v) for k, v in config.items()}
    return Cors(
        origins=list(value.get("AllowOrigins") or []),
        methods=list(value.get("AllowMethods") or []),
        headers=list(value.get("AllowHeaders") or []),
        expose=list(value.get("ExposeHeaders") or []),
        max_age=value.get("MaxAge"),
    )
