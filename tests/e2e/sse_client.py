"""A small, independent SSE reader for the tests (WHATWG parsing rules)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SSEEvent:
    event: str
    data: Any
    id: str | None
    at: float = field(default=0.0)  # monotonic arrival time


async def iter_sse(response: httpx.Response) -> AsyncIterator[SSEEvent]:
    name, last_id = "", None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SSEEvent(name or "message", json.loads("\n".join(data)), last_id, time.monotonic())
            name, data = "", []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
        elif key == "id":
            last_id = value


def text_of(events: list[SSEEvent]) -> str:
    return "".join(e.data["text"] for e in events if e.event == "message")


TERMINALS = ("done", "cancelled", "error")
