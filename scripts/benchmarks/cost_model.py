"""What AWS bills for what the local stack did: units and us-east-1 list prices. Pure arithmetic.

Each rule below is the one AWS documents for the service (sources and dates in docs/cost.md
and ``PRICES``); ``scripts/bench cost`` (cost.py) feeds it the calls it counted.

- DynamoDB on-demand: a write is ``ceil(size / 1 KB)`` write request units, the size being the
  larger of the item before and after (a failed condition check still pays for the item it
  read); a read is ``ceil(size / 4 KB)`` read request units, half for an eventually consistent
  read; a read of a missing item still costs the minimum; a batch rounds each item on its own;
  a query rounds the sum of what it read; a transaction costs twice.
- Item size: attribute names and values in UTF-8 bytes; a number about one byte per two
  significant digits plus one; binary its raw bytes; a boolean or null one byte; a list or map
  3 bytes plus one per element plus its elements; a set the sum of its elements.
- Lambda: $ per request and per GB-second, duration rounded up to the millisecond, GB = MB / 1024.
- API Gateway WebSocket: messages in 32 KB units, connection minutes; HTTP API: requests in
  512 KB units.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

KB = 1024


@dataclass(frozen=True)
class Price:
    usd: float  # per unit
    unit: str
    source: str


PRICES_CHECKED = "2026-12-04"
LAMBDA_PRICING = "https://aws.amazon.com/lambda/pricing/"
PRICES: dict[str, Price] = {
    "lambda_request": Price(0.20 / 1e6, "request", LAMBDA_PRICING),
    "lambda_gb_s_arm64": Price(0.0000133334, "GB-second (arm64, first 7.5 billion GB-s a month)", LAMBDA_PRICING),
    "lambda_gb_s_x86": Price(0.0000166667, "GB-second (x86_64, first 6 billion GB-s a month)", LAMBDA_PRICING),
    "lambda_stream_gb": Price(0.008, "GB streamed past the first 6 MB of a response", LAMBDA_PRICING),
    "snapstart_restore_gb": Price(0.0001397998, "GB restored (Python/.NET SnapStart)", LAMBDA_PRICING),
    "snapstart_cache_gb_s": Price(0.0000015046, "GB-second cached, per published version", LAMBDA_PRICING),
    "ddb_wru": Price(0.625 / 1e6, "write request unit (on-demand)", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "ddb_rru": Price(0.125 / 1e6, "read request unit (on-demand)", "https://aws.amazon.com/dynamodb/pricing/on-demand/"),
    "ws_message": Price(1.00 / 1e6, "WebSocket message, 32 KB units (first 1 billion)", "https://aws.amazon.com/api-gateway/pricing/"),
    "ws_minute": Price(0.25 / 1e6, "WebSocket connection minute", "https://aws.amazon.com/api-gateway/pricing/"),
    "http_api_request": Price(1.00 / 1e6, "HTTP API request, 512 KB units (first 300 million)", "https://aws.amazon.com/api-gateway/pricing/"),
    "logs_gb": Price(0.50, "GB of logs ingested (Standard; Lambda logs: first tier)", "https://aws.amazon.com/cloudwatch/pricing/"),
    "xray_trace": Price(5.00 / 1e6, "trace recorded", "https://aws.amazon.com/xray/pricing/"),
    "egress_gb": Price(0.09, "GB out to the internet (first 10 TB; 100 GB a month free)", "https://aws.amazon.com/ec2/pricing/on-demand/"),
}  # fmt: skip


# -- DynamoDB ------------------------------------------------------------------------------


def _number_size(text: str) -> int:
    digits = text.lstrip("+-").replace(".", "").split("e")[0].split("E")[0].strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value in its JSON form (``{"S": "x"}``...)."""
    (kind, raw), *_ = value.items()
    if kind == "S":
        return len(str(raw).encode())
    if kind == "N":
        return _number_size(str(raw))
    if kind == "B":
        return len(raw) if isinstance(raw, bytes | bytearray) else len(base64.b64decode(raw))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(v).encode()) for v in raw)
    if kind == "NS":
        return sum(_number_size(str(v)) for v in raw)
    if kind == "BS":
        return sum(len(v) if isinstance(v, bytes | bytearray) else len(base64.b64decode(v)) for v in raw)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in raw.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    """Bytes of an item: each attribute's name plus its value (0 for no item)."""
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


def write_units(before: int, after: int, transactional: bool = False) -> int:
    units = max(1, math.ceil(max(before, after) / KB))
    return units * 2 if transactional else units


def read_units(size: int, consistent: bool, transactional: bool = False) -> float:
    units = max(1, math.ceil(size / (4 * KB)))
    if transactional:
        return float(units * 2)
    return float(units) if consistent else units / 2


# -- Lambda and API Gateway ------------------------------------------------------------------


def gb_seconds(memory_mb: int, duration_s: float) -> float:
    """GB-seconds of one invocation: its duration rounded up to the millisecond, at ``memory_mb``."""
    billed_ms = math.ceil(round(duration_s * 1000, 6))
    return memory_mb / 1024 * billed_ms / 1000


def ws_message_units(size: int) -> int:
    return max(1, math.ceil(size / (32 * KB)))


def http_api_units(size: int) -> int:
    return max(1, math.ceil(size / (512 * KB)))


def connection_minutes(seconds: float) -> int:
    """Connection minutes of one WebSocket connection (billed by the minute, rounded up)."""
    return max(1, math.ceil(seconds / 60))


# -- a bill ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    service: str  # Lambda, DynamoDB, API Gateway, CloudWatch Logs...
    item: str  # what is counted: "requests", "GB-s", "WRU"...
    quantity: float  # per stream
    price: str  # a key of PRICES

    @property
    def usd(self) -> float:
        return self.quantity * PRICES[self.price].usd


def per_thousand(lines: Iterable[Line]) -> float:
    """Dollars per 1,000 streams for lines counted per stream (exact to the cent's thousandth)."""
    return float(sum(Decimal(str(line.usd)) for line in lines) * 1000)


def by_service(lines: Iterable[Line]) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in lines:
        out[line.service] = out.get(line.service, 0.0) + line.usd * 1000
    return out
