"""DynamoDB that is slow, failing or hung, injected at botocore's ``before-send``.

The stores' own boto3 clients talk to moto's server as usual; this handler runs just
before each request is sent and can:

- add latency (``delay_ms``, uniform in a range) and now and then a long stall
  (``stall_rate`` of the calls wait ``stall_s``), holding the store's worker thread as a
  slow network does;
- answer a share of the calls as DynamoDB does when it throttles (``throttle_rate``:
  HTTP 400 ``ProvisionedThroughputExceededException``) or fails (``error_rate``: HTTP
  500 ``InternalServerError``): botocore's own retries (standard mode) then run against
  it, as in production, and what they do not absorb reaches the store as
  ``StoreUnavailable``;
- hang (``hang_file``): while that file exists, every call waits, and once botocore's
  read timeout would have passed it fails as a read timeout does (``ReadTimeoutError``,
  retried by botocore): a DynamoDB that stopped answering.

``ops`` limits the faults to some operations (``PutItem``, ``UpdateItem``...); the
random choices come from ``seed``. A process installs it from the environment
(``TOKENRELAY_DDB_CHAOS``, ``Chaos.from_spec``) on boto3's default session, before it
creates any client (``install_from_env``); a test attaches it to one client (``attach``).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from moto.core.botocore_stubber import MockRawResponse

__all__ = ["Chaos", "install_from_env"]

ENV = "TOKENRELAY_DDB_CHAOS"
READ_TIMEOUT_S = 5.0  # the stores' botocore read timeout (stores/dynamodb.py, stores/_boto.py)
_ERRORS = {
    400: "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    500: "com.amazonaws.dynamodb.v20120810#InternalServerError",
}


@dataclass
class Chaos:
    delay_ms: tuple[float, float] = (0.0, 0.0)
    stall_rate: float = 0.0
    stall_s: float = 0.0
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    hang_file: str = ""
    ops: tuple[str, ...] = ()
    spare: tuple[str, ...] = ()  # "Operation@table": calls never faulted (e.g. the record's create)
    seed: int = 0
    injected: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: str) -> Chaos:
        """``delay_ms=0-40,stall_rate=0.02,stall_s=1.5,throttle_rate=0.1,ops=PutItem+UpdateItem,seed=3``
        (``spare=PutItem@tokenrelay-streams`` keeps those calls out of it)."""
        kwargs: dict[str, Any] = {}
        names = {f.name for f in fields(cls)} - {"injected"}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, _, value = part.partition("=")
            if name not in names:
                raise ValueError(f"{ENV}: unknown setting {name!r}")
            if name == "delay_ms":
                low, _, high = value.partition("-")
                kwargs[name] = (float(low), float(high or low))
            elif name in ("ops", "spare"):
                kwargs[name] = tuple(value.split("+"))
            elif name in ("hang_file",):
                kwargs[name] = value
            elif name == "seed":
                kwargs[name] = int(value)
            else:
                kwargs[name] = float(value)
        return cls(**kwargs)

    def attach(self, client: Any) -> None:
        client.meta.events.register_first("before-send.dynamodb", self._before_send)

    def install(self) -> None:
        """On boto3's default session: every client made from it afterwards has it."""
        import boto3

        boto3.setup_default_session()
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register_first("before-send.dynamodb", self._before_send)

    def _draw(self) -> tuple[float, float]:
        with self._lock:
            return self._rng.random(), self._rng.uniform(*self.delay_ms)

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target") or b""
        operation = (target.decode() if isinstance(target, bytes) else target).rpartition(".")[2]
        if self.ops and operation not in self.ops:
            return None
        if self.spare and f"{operation}@{_table(request)}" in self.spare:
            return None
        if self.hang_file and os.path.exists(self.hang_file):
            return self._hang(request, operation)
        roll, delay_ms = self._draw()
        pause = delay_ms / 1000 + (self.stall_s if roll < self.stall_rate else 0.0)
        if pause > 0:
            time.sleep(pause)
        status = None
        if roll < self.throttle_rate:
            status = 400
        elif roll < self.throttle_rate + self.error_rate:
            status = 500
        if status is None:
            return None
        with self._lock:
            self.injected[f"{operation}:{status}"] += 1
        body = json.dumps({"__type": _ERRORS[status], "message": "injected by the test"}).encode()
        headers = {"x-amzn-RequestId": "CHAOS", "Content-Type": "application/x-amz-json-1.0"}
        return AWSResponse(request.url, status, headers, MockRawResponse(body))

    def _hang(self, request: Any, operation: str) -> None:
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if not os.path.exists(self.hang_file):
                return None  # DynamoDB answers again: the request goes out
        with self._lock:
            self.injected[f"{operation}:hang"] += 1
        raise ReadTimeoutError(endpoint_url=request.url)


def _table(request: Any) -> str:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return ""
    return str(body.get("TableName") or next(iter(body.get("RequestItems") or {}), ""))


def install_from_env() -> Chaos | None:
    spec = os.environ.get(ENV, "").strip()
    if not spec:
        return None
    chaos = Chaos.from_spec(spec)
    chaos.install()
    return chaos
