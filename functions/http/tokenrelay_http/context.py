"""What every router of the app is given, made once by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass

from tokenrelay import Settings, StreamStore
from tokenrelay.protection import Guard
from tokenrelay.resume import ResumeStores

from .openapi import Operations
from .runs import Runs

__all__ = ["Http"]


@dataclass(frozen=True)
class Http:
    settings: Settings
    store: StreamStore
    guard: Guard
    runs: Runs
    resume: ResumeStores | None  # None: resume is off (no resume route)
    docs: Operations  # each route's OpenAPI operation

    @property
    def ping_s(self) -> float:
        return self.settings.ping_s

    @property
    def write_timeout_s(self) -> float:
        return self.settings.sse_write_timeout_s
