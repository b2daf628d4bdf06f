"""``scripts/devstack/dynamodb.py`` (moto, IAM enforced) with a meter on every DynamoDB call.

With ``TOKENRELAY_DDB_METER=PATH`` each call moto serves appends one JSON line to PATH:

    {"op": "UpdateItem", "status": 200, "error": "",
     "items": [{"table": "tokenrelay-streams", "before": 310, "after": 352, "transactional": false}],
     "read": [{"table": "...", "size": 352, "found": true, "consistent": false}]}

``items``: each item the call wrote or checked, with its size in bytes before and after, read
from moto's own tables around the call (DynamoDB bills a write by the larger). ``read``: each
item a read returned (its size), or asked for and missing (``found`` false; a missing item
still costs the minimum). Sizes follow DynamoDB's rules (``cost_model.item_size``). This is
what ``scripts/bench cost`` turns into request units; without the variable it is exactly
``dynamodb.py``.

    TOKENRELAY_DDB_METER=/tmp/ddb.jsonl python scripts/benchmarks/metered_dynamodb.py --port 0
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run as a script: scripts.* from the repo

from scripts.benchmarks.cost_model import item_size  # noqa: E402
from scripts.devstack import dynamodb  # noqa: E402  (scripts/devstack/dynamodb.py)

WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def _key(table: Any, item: dict[str, Any]) -> dict[str, Any]:
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: item[name] for name in names if name in item}


def touched(backend: Any, op: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    """(table, key, transactional) of each item ``op`` writes or checks."""
    out: list[tuple[str, dict[str, Any], bool]] = []
    if op in WRITES:
        name = params["TableName"]
        key = params.get("Key") or _key(backend.get_table(name), params.get("Item", {}))
        out.append((name, key, False))
    elif op == "BatchWriteItem":
        for name, requests in params.get("RequestItems", {}).items():
            for request in requests:
                put, delete = request.get("PutRequest"), request.get("DeleteRequest")
                key = delete["Key"] if delete else _key(backend.get_table(name), put["Item"])
                out.append((name, key, False))
    elif op == "TransactWriteItems":
        for entry in params.get("TransactItems", []):
            (_, body), *_ = entry.items()
            name = body["TableName"]
            key = body.get("Key") or _key(backend.get_table(name), body.get("Item", {}))
            out.append((name, key, True))
    return out


def _size(backend: Any, table: str, key: dict[str, Any]) -> int:
    try:
        item = backend.get_item(table, key)
    except Exception:  # the table or key is wrong: the call fails and consumes nothing
        return 0
    return item_size(item.to_json()["Attributes"]) if item is not None else 0


def reads(op: str, params: dict[str, Any], body: dict[str, Any]) -> list[dict[str, Any]]:
    """Each item a read returned or missed: table, size, found, consistent."""
    consistent = bool(params.get("ConsistentRead"))
    if op == "GetItem":
        item = body.get("Item")
        return [
            {"table": params["TableName"], "size": item_size(item), "found": item is not None, "consistent": consistent}
        ]
    if op == "BatchGetItem":
        out = []
        for name, asked in params.get("RequestItems", {}).items():
            strong = bool(asked.get("ConsistentRead"))
            found = body.get("Responses", {}).get(name, [])
            out += [{"table": name, "size": item_size(item), "found": True, "consistent": strong} for item in found]
            unprocessed = len(body.get("UnprocessedKeys", {}).get(name, {}).get("Keys", []))
            missing = max(0, len(asked.get("Keys", [])) - unprocessed - len(found))
            out += [{"table": name, "size": 0, "found": False, "consistent": strong}] * missing
        return out
    if op in ("Query", "Scan"):  # one rounding over everything read (no filter expressions here)
        size = sum(item_size(item) for item in body.get("Items", []))
        found = bool(body.get("Items"))
        return [{"table": params.get("TableName", ""), "size": size, "found": found, "consistent": consistent}]
    return []


def install(path: str) -> None:
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    lock = threading.Lock()
    out = open(path, "a", buffering=1, encoding="utf-8")

    def metered(self: Any) -> Any:
        params = dict(getattr(self, "params", None) or {})
        op = self._get_action() or ""
        try:
            items = touched(self.dynamodb_backend, op, params)
        except Exception:  # a malformed request: moto answers it; nothing to meter
            items = []
        before = [_size(self.dynamodb_backend, t, k) for t, k, _ in items]
        result = original(self)
        status, body = result[0], result[2] if len(result) > 2 else "{}"
        try:
            parsed = json.loads(body) if body else {}
        except (TypeError, ValueError):
            parsed = {}
        after = [_size(self.dynamodb_backend, t, k) for t, k, _ in items]
        record = {
            "op": op,
            "status": status,
            "error": str(parsed.get("__type", "")).rsplit("#", 1)[-1] if status != 200 else "",
            "items": [
                {"table": t, "before": b, "after": a, "transactional": x}
                for (t, _, x), b, a in zip(items, before, after, strict=True)
            ],
            "read": reads(op, params, parsed) if status == 200 else [],
        }
        with lock:
            out.write(json.dumps(record) + "\n")
        return result

    DynamoHandler.call_action = metered  # type: ignore[method-assign]


if __name__ == "__main__":
    meter = os.environ.get("TOKENRELAY_DDB_METER")
    if meter:
        install(meter)
    sys.exit(dynamodb.main())
