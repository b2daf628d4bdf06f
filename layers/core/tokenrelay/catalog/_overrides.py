"""A table's overrides from the environment: ``<NAME>_FILE`` (a JSON file), then ``<NAME>``
(inline JSON), each applied over what came before."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


def json_overrides(env: Mapping[str, str], name: str) -> Iterator[tuple[str, Any]]:
    """``(variable, parsed JSON)`` for each of ``name``'s variables that is set, file first;
    ``ValueError`` naming the variable for a file it cannot read or text that is not JSON."""
    for var in (f"{name}_FILE", name):
        raw = env.get(var, "").strip()
        if not raw:
            continue
        if var.endswith("_FILE"):
            try:
                raw = Path(raw).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"{var}: cannot read {raw!r}: {exc.strerror}") from None
        try:
            yield var, json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"{var}: not JSON: {exc}") from None
