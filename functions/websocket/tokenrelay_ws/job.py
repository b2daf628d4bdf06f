"""The worker's event: one stream to produce, as the chat handler hands it over.

    {"stream_id", "connection_id", "owner", "request_id": str | null,
     "endpoint": "https://{domain}/{stage}", "request": {validated request fields},
     "slot": str | null}

``slot`` is the concurrency slot the chat handler took for the stream
(``tokenrelay.limits``): the worker gives it back when the stream ends.

``request`` is the validated ``ChatRequest`` written back as request-body fields
(provider and model resolved), so the worker re-validates it with the same
``parse_chat_request`` and the two functions cannot disagree on a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tokenrelay.requests import request_fields

__all__ = ["StreamJob", "request_fields"]


@dataclass(frozen=True, slots=True)
class StreamJob:
    stream_id: str
    connection_id: str
    owner: str
    endpoint: str
    request: Mapping[str, Any]
    request_id: str | None = None
    slot: str | None = None
    fallback: bool = True  # may FALLBACK_MODEL serve it (False: the connection's key may not use that model)
    budget: tuple[int, float] | None = None  # the key's (tokens per minute, daily dollars): counted at the end

    def to_event(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "fallback": self.fallback,
            "budget": None if self.budget is None else {"tpm": self.budget[0], "daily_usd": self.budget[1]},
            "stream_id": self.stream_id,
            "connection_id": self.connection_id,
            "owner": self.owner,
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "request": dict(self.request),
        }

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> StreamJob:
        """Raises ``ValueError`` naming the first missing or mistyped field."""
        for name in ("stream_id", "connection_id", "owner", "endpoint"):
            if not isinstance(event.get(name), str) or not event[name]:
                raise ValueError(f"worker event: {name!r} must be a non-empty string")
        if not isinstance(event.get("request"), Mapping):
            raise ValueError("worker event: 'request' must be an object")
        request_id = event.get("request_id")
        if request_id is not None and not isinstance(request_id, str):
            raise ValueError("worker event: 'request_id' must be a string or null")
        slot = event.get("slot")
        if slot is not None and not isinstance(slot, str):
            raise ValueError("worker event: 'slot' must be a string or null")
        fallback = event.get("fallback", True)  # absent in events queued before the field existed
        if not isinstance(fallback, bool):
            raise ValueError("worker event: 'fallback' must be a boolean")
        budget = event.get("budget")
        if budget is not None and not (
            isinstance(budget, Mapping)
            and isinstance(budget.get("tpm"), int)
            and isinstance(budget.get("daily_usd"), int | float)
        ):
            raise ValueError("worker event: 'budget' must be {tpm, daily_usd} or null")
        return cls(
            budget=None if budget is None else (budget["tpm"], float(budget["daily_usd"])),
            stream_id=event["stream_id"],
            connection_id=event["connection_id"],
            owner=event["owner"],
            endpoint=event["endpoint"],
            request=event["request"],
            request_id=request_id,
            slot=slot,
            fallback=fallback,
        )
