"""Faults of the local DynamoDB, injected at the server (``dynamodb.py``), as AWS would show them.

The tests that check what TokenRelay does when DynamoDB is slow, throttles, fails or stops
answering set them here, on the server every function's environment talks to, so that each
function meets them with its own client, its own retries and its own timeouts, whatever
process it runs in. Nothing is changed in the functions. A fault is one of:

- ``throttle``: HTTP 400 ``ProvisionedThroughputExceededException``, as DynamoDB answers when
  it throttles; ``error``: HTTP 500 ``InternalServerError``. botocore's own retries (standard
  mode) then run against it, as in production. The call is not applied.
- ``delay_ms`` (a range) and now and then a ``stall`` (``stall_rate`` of the calls wait
  ``stall_s``): a slow DynamoDB; the call is applied after the wait.
- ``hang``: while on, every call waits; a client that gives up meanwhile (botocore's read
  timeout, then its retry) leaves a call that is never applied; calls still waiting when it
  ends go through.

Set with ``PUT /_tokenrelay/faults`` (JSON: ``rules``, ``chaos``, ``hang``; each one given
replaces what was set; new rules or chaos reset the counts), read with ``GET`` (the counts of
what was injected), cleared with ``DELETE``. Two ways to choose the calls:

- ``rules``: the next ``count`` calls that match (``operations``, ``table``, and a string the
  request body ``contains``) get ``answer``: throttle, error, or ``delay`` (applied after
  ``delay_s``); a rule is used up after that.
- ``chaos``: every call, at random (``seed``): ``throttle_rate``, ``error_rate``, ``delay_ms``,
  ``stall_rate``/``stall_s``; ``spare`` ("Operation@table") keeps some calls out of it.

Both may be limited to some ``callers`` (access key ids: the functions' identities), so that
a test's own reads, as the operator, see DynamoDB as it is. A hang holds every caller.

Only for the local stack (127.0.0.1): a deployment has no such thing, and no product code
calls it. ``set_faults``/``injected`` are the tests' client.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

PATH = "/_tokenrelay/faults"
HANG_MAX_S = 120.0
ERRORS = {
    "throttle": (400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"),
    "error": (500, "com.amazonaws.dynamodb.v20120810#InternalServerError"),
}
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class Rule:
    name: str
    answer: str = "throttle"
    count: int = 1
    operations: tuple[str, ...] = ()
    table: str = ""
    contains: str = ""
    callers: tuple[str, ...] = ()
    delay_s: float = 0.0  # answer "delay": how long the call waits before it is applied

    def matches(self, caller: str, operation: str, table: str, body: bytes) -> bool:
        if self.callers and caller not in self.callers:
            return False
        if self.operations and operation not in self.operations:
            return False
        if self.table and self.table != table:
            return False
        return not self.contains or self.contains.encode() in body


@dataclass
class Chaos:
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    delay_ms: tuple[float, float] = (0.0, 0.0)
    stall_rate: float = 0.0
    stall_s: float = 0.0
    spare: tuple[str, ...] = ()  # "Operation@table": never faulted (e.g. a stream record's create)
    callers: tuple[str, ...] = ()  # access key ids; empty: everyone
    seed: int = 0
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class Faults:
    """The WSGI middleware in front of moto: what it injects, and the endpoint that sets it."""

    def __init__(self, app: Wsgi) -> None:
        self.app = app
        self.rules: list[Rule] = []
        self.chaos: Chaos | None = None
        self.hang = False
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == PATH:
            return self._control(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)
        body = _read_body(environ)
        operation = target.rpartition(".")[2]
        table = _table(body)
        answer, pause = self._choose(_caller(environ), operation, table, body)
        if pause > 0:
            time.sleep(pause)
        if answer is not None:
            return _error(start_response, answer)
        if self.hang and not self._wait_out_hang(environ):
            return _error(start_response, "error")  # the client gave up: the call is never applied
        return self.app(environ, start_response)

    def _choose(self, caller: str, operation: str, table: str, body: bytes) -> tuple[str | None, float]:
        with self._lock:
            for rule in self.rules:
                if rule.count > 0 and rule.matches(caller, operation, table, body):
                    rule.count -= 1
                    self.injected[rule.name] += 1
                    if rule.answer == "delay":
                        return None, rule.delay_s
                    return rule.answer, 0.0
            chaos = self.chaos
            if chaos is None or f"{operation}@{table}" in chaos.spare:
                return None, 0.0
            if chaos.callers and caller not in chaos.callers:
                return None, 0.0
            roll = chaos.rng.random()
            pause = chaos.rng.uniform(*chaos.delay_ms) / 1000 + (chaos.stall_s if roll < chaos.stall_rate else 0.0)
            answer = None
            if roll < chaos.throttle_rate:
                answer = "throttle"
            elif roll < chaos.throttle_rate + chaos.error_rate:
                answer = "error"
            if answer is not None:
                self.injected[f"{operation}:{answer}"] += 1
            return answer, pause

    def _wait_out_hang(self, environ: dict[str, Any]) -> bool:
        """Hold the call while the hang lasts; False if its client left meanwhile."""
        deadline = time.monotonic() + HANG_MAX_S
        with self._lock:
            while self.hang and time.monotonic() < deadline:
                self._changed.wait(0.05)
                if _client_left(environ):
                    self.injected["hang"] += 1
                    return False
        return True

    def _control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method in ("PUT", "DELETE"):
            spec = json.loads(_read_body(environ) or b"{}") if method == "PUT" else {"rules": [], "chaos": None}
            with self._lock:
                if "rules" in spec:
                    self.rules = [Rule(**_tuples(r, "operations", "callers")) for r in spec["rules"]]
                if "chaos" in spec:
                    self.chaos = (
                        Chaos(**_tuples(spec["chaos"], "delay_ms", "spare", "callers")) if spec["chaos"] else None
                    )
                if "rules" in spec or "chaos" in spec:
                    self.injected.clear()
                self.hang = bool(spec.get("hang", False if method == "DELETE" else self.hang))
                self._changed.notify_all()
        with self._lock:
            out = json.dumps({"injected": dict(self.injected), "hang": self.hang}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
        return [out]


def _tuples(spec: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {k: tuple(v) if k in names else v for k, v in spec.items()}


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = BytesIO(body)  # moto reads it again
    return bytes(body)


def _table(body: bytes) -> str:
    try:
        params = json.loads(body or b"{}")
    except ValueError:
        return ""
    return str(params.get("TableName") or next(iter(params.get("RequestItems") or {}), ""))


def _caller(environ: dict[str, Any]) -> str:
    """The access key id that signed the request (SigV4's ``Credential=KEY/...``)."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    _, found, rest = authorization.partition("Credential=")
    return rest.split("/", 1)[0] if found else ""


def _client_left(environ: dict[str, Any]) -> bool:
    sock: socket.socket | None = environ.get("werkzeug.socket")
    if sock is None:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _error(start_response: Callable[..., Any], answer: str) -> Iterable[bytes]:
    status, kind = ERRORS[answer]
    body = json.dumps({"__type": kind, "message": f"injected by the local stack ({answer})"}).encode()
    reason = "Bad Request" if status == 400 else "Internal Server Error"
    headers = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("x-amzn-RequestId", "LOCALFAULT"),
        ("Content-Length", str(len(body))),
    ]
    start_response(f"{status} {reason}", headers)
    return [body]


# -- the tests' client ---------------------------------------------------------------------------


def set_faults(
    endpoint: str, *, rules: Iterable[Mapping[str, Any]] = (), chaos: Mapping[str, Any] | None = None
) -> None:
    """Replace the server's rules and chaos (nothing given: none), end any hang, reset the counts."""
    _call(endpoint, "PUT", {"rules": list(rules), "chaos": chaos, "hang": False})


def set_hang(endpoint: str, hang: bool) -> None:
    """Start or end a hang, keeping the rules, the chaos and the counts."""
    _call(endpoint, "PUT", {"hang": hang})


def injected(endpoint: str) -> Counter[str]:
    return Counter(_call(endpoint, "GET", None)["injected"])


def _call(endpoint: str, method: str, spec: Mapping[str, Any] | None) -> dict[str, Any]:
    import urllib.request

    data = json.dumps(spec).encode() if spec is not None else None
    request = urllib.request.Request(endpoint + PATH, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer
