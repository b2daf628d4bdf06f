"""A small SSE reader that notes when each event arrived (to tell streaming from buffering)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

TERMINALS = ("done", "cancelled", "error")


@dataclass
class Event:
    name: str
    data: Any
    id: str | None
    at: float  # time.monotonic() when it arrived


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    name, last_id = "", None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Event(name or "message", json.loads("\n".join(data)), last_id, time.monotonic())
            name = ""
            data = []
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
            elif key == "id":
                last_id = value


def parse(body: str) -> list[Event]:
    """Every event of a whole (buffered) SSE body."""
    out = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, list[str]] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                key, _, value = line.partition(":")
                fields.setdefault(key, []).append(value[1:] if value.startswith(" ") else value)
        if "data" in fields:
            name = fields.get("event", ["message"])[-1]
            out.append(Event(name, json.loads("\n".join(fields["data"])), fields.get("id", [None])[-1], 0.0))
    return out


def text(evs: list[Event]) -> str:
    return "".join(e.data.get("text", "") for e in evs if e.name == "message")


def terminals(evs: list[Event]) -> list[Event]:
    return [e for e in evs if e.name in TERMINALS]
